package webpush_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tilecast/tilecast/notify/webpush"
)

// Keys of keys.json's subscription, for building documents.
const (
	goodP256 = "BFDZ5JD0Ib4oxvIt__F5k7nkTG-roGeX6Hun6agEvq9gisJi5J5rX7eTvgFaanEX2yX6XIZbT_u0PwMhzpPOst8"
	goodAuth = "R7sQMSD-sO4heEqd2ME0mw"
	fcmURL   = "https://fcm.googleapis.com/fcm/send/dHJ1ZQ:APA91bExample"
)

func subDoc(endpoint, exp, p256, auth string) string {
	return fmt.Sprintf(`{"endpoint":%q,"expirationTime":%s,"keys":{"p256dh":%q,"auth":%q}}`, endpoint, exp, p256, auth)
}

func TestParseSubscription(t *testing.T) {
	sub, err := webpush.ParseSubscription([]byte(subDoc(fcmURL, "null", goodP256, goodAuth)), webpush.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sub.Endpoint != fcmURL || !sub.Expires.IsZero() || len(sub.P256DH) != 65 || len(sub.Auth) != 16 {
		t.Fatalf("parsed %+v", sub)
	}
	// MarshalJSON writes the browser's form back, byte for byte.
	out, err := json.Marshal(sub)
	if err != nil {
		t.Fatal(err)
	}
	if want := subDoc(fcmURL, "null", goodP256, goodAuth); string(out) != want {
		t.Errorf("MarshalJSON\n got %s\nwant %s", out, want)
	}

	// Firefox and Chrome as JSON.stringify gives them: white space, keys
	// in another order, padded keys, an expirationTime.
	doc := `{
	  "keys": {"auth": "` + goodAuth + `==", "p256dh": "` + goodP256 + `="},
	  "expirationTime": 1767225600000,
	  "endpoint": "https://updates.push.services.mozilla.com/wpush/v2/gAAAAABl"
	}`
	sub, err = webpush.ParseSubscription([]byte(doc), webpush.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !sub.Expires.Equal(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("expires %v", sub.Expires)
	}
	if got := base64.RawURLEncoding.EncodeToString(sub.Auth); got != goodAuth {
		t.Errorf("auth %s", got)
	}
	out, _ = json.Marshal(sub)
	if !strings.Contains(string(out), `"expirationTime":1767225600000`) {
		t.Errorf("expirationTime not written back: %s", out)
	}

	// A fractional DOMHighResTimeStamp of older browsers; extra key
	// entries (the spec's keys is an open record).
	doc = `{"endpoint":"` + fcmURL + `","expirationTime":1767225600000.5,"keys":{"p256dh":"` + goodP256 + `","auth":"` + goodAuth + `","future":"x"}}`
	if _, err := webpush.ParseSubscription([]byte(doc), webpush.ParseOptions{}); err != nil {
		t.Errorf("fractional expiration, extra key: %v", err)
	}

	// The emulator's loopback http endpoint, when allowed.
	for _, ep := range []string{"http://127.0.0.1:8080/webpush/abc", "http://[::1]:9/webpush/x", "http://localhost:8080/webpush/x"} {
		if _, err := webpush.ParseSubscription([]byte(subDoc(ep, "null", goodP256, goodAuth)), webpush.ParseOptions{AllowLoopbackHTTP: true}); err != nil {
			t.Errorf("%s with AllowLoopbackHTTP: %v", ep, err)
		}
	}
}

func TestParseSubscriptionRefusals(t *testing.T) {
	offCurve := mustB64(t, goodP256)
	offCurve[64] ^= 1
	compressed := append([]byte{0x02}, mustB64(t, goodP256)[1:33]...)
	b64 := base64.RawURLEncoding.EncodeToString
	for _, tc := range []struct {
		name, doc, want string
		loopback        bool
	}{
		{"not JSON", `{"endpoint":`, "endpoint: not JSON: unexpected end", false},
		{"array", `[1]`, "subscription: want a JSON object, got an array", false},
		{"trailing data", subDoc(fcmURL, "null", goodP256, goodAuth) + `{}`, "subscription: data after", false},
		{"no endpoint", `{"keys":{"p256dh":"` + goodP256 + `","auth":"` + goodAuth + `"}}`, "endpoint: missing", false},
		{"no keys", `{"endpoint":"` + fcmURL + `"}`, "keys: missing", false},
		{"no p256dh", `{"endpoint":"` + fcmURL + `","keys":{"auth":"` + goodAuth + `"}}`, "keys.p256dh: missing", false},
		{"no auth", `{"endpoint":"` + fcmURL + `","keys":{"p256dh":"` + goodP256 + `"}}`, "keys.auth: missing", false},
		{"case-folded name", `{"Endpoint":"` + fcmURL + `","keys":{"p256dh":"` + goodP256 + `","auth":"` + goodAuth + `"}}`, "Endpoint: unknown field", false},
		{"unknown field", `{"endpoint":"` + fcmURL + `","user":"x","keys":{"p256dh":"` + goodP256 + `","auth":"` + goodAuth + `"}}`, "user: unknown field", false},
		{"duplicate endpoint", `{"endpoint":"https://a.example/x","endpoint":"` + fcmURL + `","keys":{"p256dh":"` + goodP256 + `","auth":"` + goodAuth + `"}}`, "endpoint: appears twice", false},
		{"duplicate auth", `{"endpoint":"` + fcmURL + `","keys":{"p256dh":"` + goodP256 + `","auth":"` + goodAuth + `","auth":"` + goodAuth + `"}}`, "keys.auth: appears twice", false},
		{"endpoint number", `{"endpoint":5,"keys":{}}`, "endpoint: want a string, got a number", false},
		{"keys string", `{"endpoint":"` + fcmURL + `","keys":"x"}`, "keys: want a JSON object, got a string", false},
		{"p256dh null", `{"endpoint":"` + fcmURL + `","keys":{"p256dh":null,"auth":"` + goodAuth + `"}}`, "keys.p256dh: want a string, got null", false},
		{"expiration string", subDoc(fcmURL, `"tomorrow"`, goodP256, goodAuth), "expirationTime: want null or a number", false},
		{"expiration negative", subDoc(fcmURL, `-1`, goodP256, goodAuth), "expirationTime: want null or milliseconds", false},
		{"expiration huge", subDoc(fcmURL, `1e300`, goodP256, goodAuth), "expirationTime: want null or milliseconds", false},
		{"http endpoint", subDoc("http://fcm.googleapis.com/fcm/send/x", "null", goodP256, goodAuth), "endpoint: http is refused", false},
		{"http not loopback", subDoc("http://10.0.0.1/webpush/x", "null", goodP256, goodAuth), "endpoint: http is only accepted on a loopback host", true},
		{"ftp endpoint", subDoc("ftp://fcm.googleapis.com/x", "null", goodP256, goodAuth), `endpoint: scheme "ftp"`, false},
		{"relative endpoint", subDoc("/fcm/send/x", "null", goodP256, goodAuth), "endpoint: want an absolute https URL", false},
		{"empty endpoint", subDoc("", "null", goodP256, goodAuth), "endpoint: empty", false},
		{"userinfo", subDoc("https://u:p@fcm.googleapis.com/x", "null", goodP256, goodAuth), "endpoint: must not contain userinfo", false},
		{"fragment", subDoc(fcmURL+"#x", "null", goodP256, goodAuth), "endpoint: must not contain a fragment", false},
		{"space", subDoc("https://fcm.googleapis.com/a b", "null", goodP256, goodAuth), "endpoint: byte 0x20", false},
		{"long endpoint", subDoc("https://fcm.googleapis.com/"+strings.Repeat("a", 2048), "null", goodP256, goodAuth), "endpoint: 2075 bytes", false},
		{"p256dh off the curve", subDoc(fcmURL, "null", b64(offCurve), goodAuth), "keys.p256dh: not a point on P-256", false},
		{"p256dh compressed", subDoc(fcmURL, "null", b64(compressed), goodAuth), "keys.p256dh: 33 bytes, want 65", false},
		{"p256dh standard base64", subDoc(fcmURL, "null", strings.ReplaceAll(goodP256, "_", "/"), goodAuth), "keys.p256dh: not base64url: '/'", false},
		{"p256dh with newline", subDoc(fcmURL, "null", goodP256[:40]+"\n"+goodP256[40:], goodAuth), "keys.p256dh: not base64url: byte 0x0a", false},
		{"p256dh bad padding", subDoc(fcmURL, "null", goodP256+"==", goodAuth), "keys.p256dh: not base64url", false},
		{"p256dh empty", subDoc(fcmURL, "null", "", goodAuth), "keys.p256dh: empty", false},
		{"auth 15 bytes", subDoc(fcmURL, "null", goodP256, b64(make([]byte, 15))), "keys.auth: 15 bytes, want 16", false},
		{"auth 32 bytes", subDoc(fcmURL, "null", goodP256, b64(make([]byte, 32))), "keys.auth: 32 bytes, want 16", false},
		{"not UTF-8", "{\"endpoint\":\"\xff\"}", "subscription: not UTF-8", false},
		{"too large", `{"endpoint":"` + strings.Repeat(" ", 9000) + `"}`, "subscription: 9015 bytes", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := webpush.ParseSubscription([]byte(tc.doc), webpush.ParseOptions{AllowLoopbackHTTP: tc.loopback})
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("error %v, want one starting %q", err, tc.want)
			}
			var fe *webpush.FieldError
			if !errors.As(err, &fe) {
				t.Errorf("error %T is not a *FieldError", err)
			}
			if strings.Contains(err.Error(), goodAuth) || strings.Contains(err.Error(), goodP256[:20]) {
				t.Errorf("error %q repeats key material", err)
			}
		})
	}
}

// FuzzParseSubscription: nothing a browser (or an attacker posing as one)
// sends makes the parser panic; what it accepts is a valid subscription
// that round-trips through the browser's form unchanged, and what it
// refuses is a *FieldError.
func FuzzParseSubscription(f *testing.F) {
	f.Add([]byte(subDoc(fcmURL, "null", goodP256, goodAuth)), false)
	f.Add([]byte(subDoc("http://127.0.0.1:1/webpush/x", "1700000000000.25", goodP256+"=", goodAuth+"==")), true)
	f.Add([]byte(`{"endpoint":"https://x.example/","keys":{"p256dh":"","auth":"","p256dh":""}}`), false)
	f.Add([]byte(`{"keys":{"a":[1,{"b":null}]},"endpoint":"https://[::1]:0/"}`), true)
	f.Add([]byte(`{"endpoint":"https://a.example/\u0000","expirationTime":-0,"keys":{}}`), false)
	f.Fuzz(func(t *testing.T, data []byte, loopback bool) {
		opts := webpush.ParseOptions{AllowLoopbackHTTP: loopback}
		sub, err := webpush.ParseSubscription(data, opts)
		if err != nil {
			var fe *webpush.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v (%T) is not a *FieldError", err, err)
			}
			return
		}
		if err := sub.Check(opts); err != nil {
			t.Fatalf("accepted a subscription Check refuses: %v", err)
		}
		out, err := json.Marshal(sub)
		if err != nil {
			t.Fatal(err)
		}
		again, err := webpush.ParseSubscription(out, opts)
		if err != nil {
			t.Fatalf("re-parse of %s: %v", out, err)
		}
		if again.Endpoint != sub.Endpoint || !again.Expires.Equal(sub.Expires) ||
			!bytes.Equal(again.P256DH, sub.P256DH) || !bytes.Equal(again.Auth, sub.Auth) {
			t.Fatalf("round trip changed %+v into %+v", sub, again)
		}
	})
}
