package emulator

import (
	"crypto/ecdh"
	"encoding/base64"
	"strings"
	"testing"
)

// TestDecryptRFC8291 opens RFC 8291 §5's example message with the
// emulator's own code and the user agent's keys of Appendix A.
func TestDecryptRFC8291(t *testing.T) {
	dec := func(s string) []byte {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	priv, err := ecdh.P256().NewPrivateKey(dec("q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94"))
	if err != nil {
		t.Fatal(err)
	}
	body := dec("DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN")
	auth := dec("BTBZMqHH6r4Tts7J_aSIgg")
	got, err := decryptWebPush(body, priv, auth)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "When I grow up, I want to be a watermelon" {
		t.Errorf("decrypted %q", got)
	}
	body[30] ^= 1 // the sender's key: another shared secret
	if _, err := decryptWebPush(body, priv, auth); err == nil {
		t.Error("a damaged key id decrypted")
	}
}

func TestParseWebPayload(t *testing.T) {
	for _, tc := range []struct {
		in, kind, err string
	}{
		{`{"kind":"toast","title":"a","body":"b","url":"/x","icon":"i","tag":"t"}`, "toast", ""},
		{`{"kind":"tile","count":0}`, "tile", ""},
		{`{"kind":"tile","title":"t","body":"b","image":"i","url":"u","count":99}`, "tile", ""},
		{`not json`, "data", ""},
		{`{"kind":"raw"}`, "data", ""},
		{`[1,2]`, "data", ""},
		{`{"kind":"tile","count":1.5}`, "", "count"},
		{`{"kind":"tile","count":null}`, "", "count"},
		{`{"kind":"tile","image":["x"]}`, "", "image: want a string"},
		{`{"kind":"toast","body":"b","badge":3}`, "", `no member "badge"`},
	} {
		p, err := parseWebPayload([]byte(tc.in))
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: %v, want an error with %q", tc.in, err, tc.err)
		case tc.err == "" && (err != nil || p.kind != tc.kind):
			t.Errorf("%s: kind %q, %v; want %q", tc.in, p.kind, err, tc.kind)
		}
	}
}
