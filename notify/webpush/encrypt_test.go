package webpush_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/notify/webpush"
)

func TestEncryptRoundTrip(t *testing.T) {
	b := newBrowser(t, "https://fcm.googleapis.com/fcm/send/abc")
	for _, tt := range []struct {
		name     string
		size     int
		pad      int
		wantBody int
	}{
		{"empty", 0, 0, webpush.HeaderLen + 1 + webpush.TagLen},
		{"one byte", 1, 0, webpush.HeaderLen + 2 + webpush.TagLen},
		{"a toast", 135, 0, webpush.HeaderLen + 136 + webpush.TagLen},
		{"the largest", webpush.MaxPlaintext, 0, webpush.MaxBody},
		{"padded to 256", 135, 256, webpush.HeaderLen + 257 + webpush.TagLen},
		{"already a multiple", 256, 256, webpush.HeaderLen + 257 + webpush.TagLen},
		{"pad capped at the limit", 3900, 1000, webpush.MaxBody},
	} {
		t.Run(tt.name, func(t *testing.T) {
			plain := bytes.Repeat([]byte("é!"), tt.size/3+1)[:tt.size]
			body, err := webpush.Encrypt(b.sub, plain, webpush.EncryptOptions{Pad: tt.pad})
			if err != nil {
				t.Fatal(err)
			}
			if len(body) != tt.wantBody {
				t.Errorf("body is %d bytes, want %d", len(body), tt.wantBody)
			}
			if rs := binary.BigEndian.Uint32(body[16:20]); rs != webpush.RecordSize {
				t.Errorf("record size %d, want %d", rs, webpush.RecordSize)
			}
			if body[20] != 65 || body[21] != 0x04 {
				t.Errorf("key id length %d, first byte 0x%02x: want 65 and an uncompressed point", body[20], body[21])
			}
			if got := b.decrypt(t, body); !bytes.Equal(got, plain) {
				t.Errorf("round trip changed the plaintext")
			}
		})
	}
}

func TestEncryptFreshPerMessage(t *testing.T) {
	b := newBrowser(t, "https://fcm.googleapis.com/fcm/send/abc")
	one, err := webpush.Encrypt(b.sub, []byte("same"), webpush.EncryptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	two, err := webpush.Encrypt(b.sub, []byte("same"), webpush.EncryptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(one[:16], two[:16]) {
		t.Error("two messages share a salt")
	}
	if bytes.Equal(one[21:86], two[21:86]) {
		t.Error("two messages share an ephemeral key")
	}
}

func TestEncryptRefusals(t *testing.T) {
	b := newBrowser(t, "https://fcm.googleapis.com/fcm/send/abc")
	_, err := webpush.Encrypt(b.sub, make([]byte, webpush.MaxPlaintext+1), webpush.EncryptOptions{})
	if !errors.Is(err, tilecast.ErrPayloadTooLarge) {
		t.Errorf("3994 bytes: %v, want ErrPayloadTooLarge", err)
	}
	bad := b.sub
	bad.P256DH = append([]byte{}, b.sub.P256DH...)
	bad.P256DH[64] ^= 1 // off the curve
	if _, err := webpush.Encrypt(bad, []byte("x"), webpush.EncryptOptions{}); err == nil || !strings.Contains(err.Error(), "keys.p256dh") {
		t.Errorf("point off the curve: %v", err)
	}
	bad = b.sub
	bad.Auth = bad.Auth[:15]
	if _, err := webpush.Encrypt(bad, []byte("x"), webpush.EncryptOptions{}); err == nil || !strings.Contains(err.Error(), "keys.auth") {
		t.Errorf("short auth: %v", err)
	}
	if _, err := webpush.Encrypt(b.sub, []byte("x"), webpush.EncryptOptions{Pad: -1}); err == nil {
		t.Error("negative pad accepted")
	}
}

func TestDecryptRefusals(t *testing.T) {
	b := newBrowser(t, "https://fcm.googleapis.com/fcm/send/abc")
	body, err := webpush.Encrypt(b.sub, []byte("secret"), webpush.EncryptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	other := newBrowser(t, "https://fcm.googleapis.com/fcm/send/def")
	flip := func(i int) []byte {
		c := bytes.Clone(body)
		c[i] ^= 0x80
		return c
	}
	rs := func(v uint32) []byte {
		c := bytes.Clone(body)
		binary.BigEndian.PutUint32(c[16:20], v)
		return c
	}
	for name, tc := range map[string]struct {
		body []byte
		b    *browser
	}{
		"other browser's keys": {body, other},
		"damaged ciphertext":   {flip(len(body) - 1), b},
		"damaged salt":         {flip(3), b},
		"truncated":            {body[:webpush.HeaderLen+10], b},
		"key id length":        {append(append([]byte{}, body[:20]...), append([]byte{64}, body[21:]...)...), b},
		"two records":          {rs(20), b},
		"record size below 18": {rs(17), b},
	} {
		if _, err := webpush.Decrypt(tc.body, tc.b.priv, tc.b.auth); !errors.Is(err, webpush.ErrDecrypt) {
			t.Errorf("%s: %v, want ErrDecrypt", name, err)
		}
	}
}
