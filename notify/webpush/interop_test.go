package webpush_test

import (
	"crypto/ecdh"
	"encoding/base64"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/notify/webpush"
)

// scripts/webpush-interop.sh drives these two flags: -interop-out writes
// the requests tilecast makes for the Node checker; -node-request names
// requests npm web-push made just now, which Go must decrypt.
var (
	interopOut  = flag.String("interop-out", "", "write tilecast's interop requests to this JSON file")
	nodeRequest = flag.String("node-request", "", "also decrypt these web-push request files (comma-separated)")
)

// capturedRequest is the shape of the shared interop folder's captures.
type capturedRequest struct {
	Method     string            `json:"method"`
	URL        string            `json:"url"`
	Headers    map[string]string `json:"headers"`
	BodyBase64 string            `json:"body_base64"`
	BodyBytes  int               `json:"body_bytes"`
	Plaintext  string            `json:"plaintext"`
}

func readCapture(t *testing.T, path string) capturedRequest {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var c capturedRequest
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return c
}

func header(h map[string]string, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

// TestDecryptOtherImplementations decrypts requests made by npm web-push
// 3.6.7 (no padding) and webpush-go 1.4.0 (padded to 4096) for the
// subscription of keys.json, with the browser's private key.
func TestDecryptOtherImplementations(t *testing.T) {
	keys := loadKeys(t)
	sub, err := webpush.ParseSubscription(keys.Subscription, webpush.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ua, err := ecdh.P256().NewPrivateKey(mustB64(t, keys.UAPrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	files := []string{"testdata/interop/node-request-web-push-3.6.7.json", "testdata/interop/go-request-v1.4.0.json"}
	if *nodeRequest != "" {
		files = append(files, strings.Split(*nodeRequest, ",")...)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			c := readCapture(t, f)
			body, err := base64.StdEncoding.DecodeString(c.BodyBase64)
			if err != nil {
				t.Fatal(err)
			}
			if len(body) != c.BodyBytes {
				t.Errorf("body is %d bytes, capture says %d", len(body), c.BodyBytes)
			}
			plain, err := webpush.Decrypt(body, ua, sub.Auth)
			if err != nil {
				t.Fatal(err)
			}
			if string(plain) != c.Plaintext {
				t.Errorf("plaintext %q, want %q", plain, c.Plaintext)
			}
			if c.URL != sub.Endpoint || header(c.Headers, "Content-Encoding") != "aes128gcm" {
				t.Errorf("capture for %s with Content-Encoding %q", c.URL, header(c.Headers, "Content-Encoding"))
			}
			// Their VAPID tokens verify with the same (independent) check
			// tilecast's own are held to; exp is in the capture's past or
			// future, so only its presence is checked.
			k, claims := vapidClaims(t, header(c.Headers, "Authorization"))
			if k != keys.VAPID.PublicKey {
				t.Errorf("k = %s, want keys.json's VAPID key", k)
			}
			if claims["aud"] != "https://push.example.net:8443" || claims["sub"] != testSubject || claims["exp"] == nil {
				t.Errorf("claims %v", claims)
			}
		})
	}
}

// TestInteropRequests builds requests with tilecast's code for the
// subscription and VAPID key of keys.json (the key in npm web-push's
// base64url form) and checks them here; with -interop-out it also writes
// them for the Node checker (scripts/webpush-interop/check.js), which
// decrypts them with http_ece and verifies the tokens with node:crypto.
func TestInteropRequests(t *testing.T) {
	keys := loadKeys(t)
	sub, err := webpush.ParseSubscription(keys.Subscription, webpush.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ua, err := ecdh.P256().NewPrivateKey(mustB64(t, keys.UAPrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	signer := keysSigner(t, nil)
	toast, err := webpush.ToastPayload(webpush.Toast{Title: "Ünïcode & <xml>", Body: `"quotes" \ and a line` + "\nbreak", URL: "/item?id=1&x=2"})
	if err != nil {
		t.Fatal(err)
	}
	seven := 7
	tile, err := webpush.TilePayload(webpush.Tile{Count: &seven, Title: "News", Body: strings.Repeat("長い", 2000), Image: "https://cdn.example.org/t.png"})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		kind  tilecast.Kind
		plain []byte
		ttl   time.Duration
		opts  webpush.RequestOptions
	}{
		{tilecast.KindToast, toast, time.Hour, webpush.RequestOptions{}},
		{tilecast.KindTile, tile, 90 * time.Second, webpush.RequestOptions{Topic: webpush.TopicFor("news")}},
		{tilecast.KindBadge, webpush.BadgePayload(3), 0, webpush.RequestOptions{Topic: webpush.TopicFor("news"), Urgency: webpush.UrgencyVeryLow}},
		{tilecast.KindToast, []byte(`{"kind":"toast","title":"padded"}`), time.Minute, webpush.RequestOptions{Pad: 512, Urgency: webpush.UrgencyHigh}},
	}
	var out []capturedRequest
	for _, tc := range cases {
		tc.opts.VAPID = signer
		req, err := webpush.NewRequest(sub, tc.kind, tc.plain, tc.ttl, tc.opts)
		if err != nil {
			t.Fatal(err)
		}
		body := readBody(t, req)
		if got, err := webpush.Decrypt(body, ua, sub.Auth); err != nil || string(got) != string(tc.plain) {
			t.Fatalf("%s: decrypt: %q, %v", tc.kind, got, err)
		}
		hdr := map[string]string{}
		for k, v := range req.Header {
			hdr[k] = v[0]
		}
		out = append(out, capturedRequest{Method: req.Method, URL: req.URL.String(), Headers: hdr,
			BodyBase64: base64.StdEncoding.EncodeToString(body), BodyBytes: len(body), Plaintext: string(tc.plain)})
	}
	if *interopOut != "" {
		data, err := json.MarshalIndent(out, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(*interopOut, data, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %d requests to %s", len(out), *interopOut)
	}
}
