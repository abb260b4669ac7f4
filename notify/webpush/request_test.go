package webpush_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/notify/pushhttp"
	"github.com/tilecast/tilecast/notify/webpush"
)

func TestNewRequestHeaders(t *testing.T) {
	b := newBrowser(t, "https://fcm.googleapis.com/fcm/send/abc?x=1")
	signer := keysSigner(t, nil)
	tile, _ := webpush.TilePayload(webpush.Tile{Count: intp(4), Title: "News"})
	for _, tc := range []struct {
		name  string
		kind  tilecast.Kind
		ttl   time.Duration
		opts  webpush.RequestOptions
		plain []byte
		want  map[string]string // "" = header absent
	}{
		{"toast", tilecast.KindToast, 3600 * time.Second, webpush.RequestOptions{}, []byte(`{"kind":"toast","title":"x"}`),
			map[string]string{"TTL": "3600", "Urgency": "normal", "Topic": ""}},
		{"tile with topic", tilecast.KindTile, 90*time.Second + 999*time.Millisecond, webpush.RequestOptions{Topic: webpush.TopicFor("news")}, tile,
			map[string]string{"TTL": "90", "Urgency": "low", "Topic": "news"}},
		{"badge", tilecast.KindBadge, time.Hour, webpush.RequestOptions{Topic: "feed-7"}, webpush.BadgePayload(2),
			map[string]string{"TTL": "3600", "Urgency": "low", "Topic": "feed-7"}},
		{"raw", tilecast.KindRaw, time.Minute, webpush.RequestOptions{}, []byte("data"),
			map[string]string{"TTL": "60", "Urgency": "normal"}},
		{"configured urgency", tilecast.KindToast, time.Minute, webpush.RequestOptions{Urgency: webpush.UrgencyHigh}, []byte("{}"),
			map[string]string{"Urgency": "high"}},
		{"ttl zero", tilecast.KindToast, 0, webpush.RequestOptions{}, []byte("{}"), map[string]string{"TTL": "0"}},
		{"ttl negative", tilecast.KindToast, -5 * time.Second, webpush.RequestOptions{}, []byte("{}"), map[string]string{"TTL": "0"}},
		{"ttl below a second", tilecast.KindToast, 999 * time.Millisecond, webpush.RequestOptions{}, []byte("{}"), map[string]string{"TTL": "0"}},
		{"four weeks", tilecast.KindToast, 28 * 24 * time.Hour, webpush.RequestOptions{}, []byte("{}"), map[string]string{"TTL": "2419200"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.VAPID = signer
			req, err := webpush.NewRequest(b.sub, tc.kind, tc.plain, tc.ttl, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if req.Method != "POST" || req.URL.String() != b.sub.Endpoint {
				t.Errorf("%s %s", req.Method, req.URL)
			}
			want := map[string]string{
				"Content-Encoding": "aes128gcm",
				"Content-Type":     "application/octet-stream",
				"User-Agent":       pushhttp.DefaultUserAgent,
			}
			for k, v := range tc.want {
				want[k] = v
			}
			for name, v := range want {
				got := req.Header.Values(name)
				if v == "" {
					if len(got) != 0 {
						t.Errorf("%s: %q, want none", name, got)
					}
					continue
				}
				if len(got) != 1 || got[0] != v {
					t.Errorf("%s: %q, want %q", name, got, v)
				}
			}
			k, claims := vapidClaims(t, req.Header.Get("Authorization"))
			if k != loadKeys(t).VAPID.PublicKey || claims["aud"] != "https://fcm.googleapis.com" {
				t.Errorf("k %s, aud %v", k, claims["aud"])
			}
			body := readBody(t, req)
			if req.ContentLength != int64(len(body)) {
				t.Errorf("Content-Length %d, body %d", req.ContentLength, len(body))
			}
			if got := b.decrypt(t, body); !bytes.Equal(got, tc.plain) {
				t.Errorf("decrypted %q", got)
			}
		})
	}
}

func TestNewRequestRefusals(t *testing.T) {
	b := newBrowser(t, "https://fcm.googleapis.com/fcm/send/abc")
	signer := keysSigner(t, nil)
	for name, tc := range map[string]struct {
		kind tilecast.Kind
		opts webpush.RequestOptions
		size int
		want string
	}{
		"no signer":      {tilecast.KindToast, webpush.RequestOptions{}, 2, "no VAPID signer"},
		"unknown kind":   {"flip", webpush.RequestOptions{VAPID: signer}, 2, `kind "flip"`},
		"bad urgency":    {tilecast.KindToast, webpush.RequestOptions{VAPID: signer, Urgency: "urgent"}, 2, `urgency "urgent"`},
		"topic too long": {tilecast.KindTile, webpush.RequestOptions{VAPID: signer, Topic: strings.Repeat("t", 33)}, 2, "topic"},
		"topic alphabet": {tilecast.KindTile, webpush.RequestOptions{VAPID: signer, Topic: "a/b"}, 2, "topic"},
		"too large":      {tilecast.KindToast, webpush.RequestOptions{VAPID: signer}, webpush.MaxPlaintext + 1, "payload too large"},
	} {
		_, err := webpush.NewRequest(b.sub, tc.kind, make([]byte, tc.size), time.Minute, tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", name, err, tc.want)
		}
	}
	_, err := webpush.NewRequest(b.sub, tilecast.KindToast, make([]byte, webpush.MaxPlaintext+1), time.Minute, webpush.RequestOptions{VAPID: signer})
	if !errors.Is(err, tilecast.ErrPayloadTooLarge) {
		t.Errorf("too large: %v does not match ErrPayloadTooLarge", err)
	}
}

func TestTopicFor(t *testing.T) {
	for in, want := range map[string]string{
		"":                      "",
		"news":                  "news",
		"feed_7-x":              "feed_7-x",
		strings.Repeat("a", 32): strings.Repeat("a", 32),
		strings.Repeat("a", 33): "hSeFyAXHfnGiI0ClTp2Vkz7UkSHn0r88", // SHA-256, base64url, 32 chars (Python hashlib)
		"per user/feed":         "dqNuBYjdRKWP3KrUargSEbvpC_-ETl53",
	} {
		got := webpush.TopicFor(in)
		if got != want {
			t.Errorf("TopicFor(%q) = %q, want %q", in, got, want)
		}
		if got != "" && !webpush.ValidTopic(got) {
			t.Errorf("TopicFor(%q) = %q is not a valid topic", in, got)
		}
	}
}

func TestDumpRequest(t *testing.T) {
	b := newBrowser(t, "https://web.push.apple.com/QGuQyavXutnMei")
	plain := []byte(`{"kind":"toast","title":"Hello"}`)
	req, err := webpush.NewRequest(b.sub, tilecast.KindToast, plain, time.Hour, webpush.RequestOptions{VAPID: keysSigner(t, nil)})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := webpush.DumpRequest(&out, req, plain); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	for _, want := range []string{
		"POST /QGuQyavXutnMei HTTP/1.1\r\n", "Host: web.push.apple.com\r\n", "Ttl: 3600\r\n", "Urgency: normal\r\n",
		"Content-Encoding: aes128gcm\r\n", "Authorization: vapid t=", "Content-Length: 135\r\n",
		"[135 bytes aes128gcm: salt ", "record size 4096, one record of 49 bytes]",
		"plaintext (32 bytes):\n" + string(plain) + "\n",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("dump lacks %q:\n%s", want, s)
		}
	}
	// The request can still be sent: its body was rewound.
	if got := b.decrypt(t, readBody(t, req)); !bytes.Equal(got, plain) {
		t.Errorf("after the dump the body decrypts to %q", got)
	}
}
