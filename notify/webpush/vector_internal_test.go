package webpush

import (
	"bytes"
	"crypto/ecdh"
	"encoding/base64"
	"testing"
)

// RFC 8291 §5 and Appendix A: every input of the worked example, and the
// body it must encrypt to, byte for byte.
const (
	rfcPlaintext = "When I grow up, I want to be a watermelon"
	rfcUAPublic  = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
	rfcUAPrivate = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94"
	rfcASPublic  = "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8"
	rfcASPrivate = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw"
	rfcAuth      = "BTBZMqHH6r4Tts7J_aSIgg"
	rfcSalt      = "DGv6ra1nlYgDCS1FRnbzlw"
	rfcBody      = "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN"
)

func b64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("decode %q: %v", s, err)
	}
	return b
}

func TestRFC8291Vector(t *testing.T) {
	eph, err := ecdh.P256().NewPrivateKey(b64(t, rfcASPrivate))
	if err != nil {
		t.Fatal(err)
	}
	if got := base64.RawURLEncoding.EncodeToString(eph.PublicKey().Bytes()); got != rfcASPublic {
		t.Fatalf("as_public = %s, want %s", got, rfcASPublic)
	}
	sub := Subscription{Endpoint: "https://push.example.net/push/JzLQ3raZJfFBR0aqvOMsLrt54w4rJUsV", P256DH: b64(t, rfcUAPublic), Auth: b64(t, rfcAuth)}
	plain := []byte(rfcPlaintext)
	body, err := Encrypt(sub, plain, EncryptOptions{salt: b64(t, rfcSalt), ephemeral: eph})
	if err != nil {
		t.Fatal(err)
	}
	want := b64(t, rfcBody)
	if !bytes.Equal(body, want) {
		t.Fatalf("body differs from RFC 8291 §5\n got %s\nwant %s", base64.RawURLEncoding.EncodeToString(body), rfcBody)
	}
	if string(plain) != rfcPlaintext {
		t.Errorf("Encrypt changed the caller's plaintext to %q", plain)
	}

	// The receiving side of the same example.
	ua, err := ecdh.P256().NewPrivateKey(b64(t, rfcUAPrivate))
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decrypt(want, ua, b64(t, rfcAuth))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != rfcPlaintext {
		t.Errorf("Decrypt = %q, want %q", got, rfcPlaintext)
	}
}

// TestEncryptDoesNotWriteCallerBuffer: webpush-go appended into the
// caller's spare capacity (protocols.md §4.5 bug 4); here the plaintext
// and the bytes after it stay as they were.
func TestEncryptDoesNotWriteCallerBuffer(t *testing.T) {
	buf := []byte("HELLO|spare-capacity-that-must-stay")
	msg := buf[:5]
	sub := Subscription{Endpoint: "https://push.example.net/x", P256DH: b64(t, rfcUAPublic), Auth: b64(t, rfcAuth)}
	if _, err := Encrypt(sub, msg, EncryptOptions{Pad: 64}); err != nil {
		t.Fatal(err)
	}
	if string(buf) != "HELLO|spare-capacity-that-must-stay" {
		t.Errorf("caller's buffer became %q", buf)
	}
}
