package mpns_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/notify"
	"github.com/tilecast/tilecast/notify/mpns"
	"github.com/tilecast/tilecast/notify/pushhttp"
)

// The request as net/http writes it: its own header order (Host,
// User-Agent, Content-Length, then the rest sorted), the reference's
// header names as spelt, and the body.
func TestDumpRequest(t *testing.T) {
	payload, err := (&mpns.Encoder{}).EncodeToast(notify.Toast{Text1: "Hi"})
	if err != nil {
		t.Fatal(err)
	}
	req, err := mpns.NewRequest("http://db3.notify.live.net/throttledthirdparty/01.00/AAA?x=1", tilecast.KindToast, payload,
		mpns.RequestOptions{Class: mpns.Class450s, UserAgent: "tilecast/1.0"})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := mpns.DumpRequest(&b, req); err != nil {
		t.Fatal(err)
	}
	body := `<?xml version="1.0" encoding="utf-8"?><wp:Notification xmlns:wp="WPNotification"><wp:Toast><wp:Text1>Hi</wp:Text1></wp:Toast></wp:Notification>`
	want := "POST /throttledthirdparty/01.00/AAA?x=1 HTTP/1.1\r\n" +
		"Host: db3.notify.live.net\r\n" +
		"User-Agent: tilecast/1.0\r\n" +
		"Content-Length: 143\r\n" +
		"Accept: application/*\r\n" +
		"Content-Type: text/xml\r\n" +
		"X-NotificationClass: 12\r\n" +
		"X-WindowsPhone-Target: toast\r\n" +
		"\r\n" + body
	if b.String() != want {
		t.Errorf("got\n%q\nwant\n%q", b.String(), want)
	}
	// Dumping does not use up the body.
	b.Reset()
	if err := mpns.DumpRequest(&b, req); err != nil || b.String() != want {
		t.Errorf("second dump differs: %q, %v", b.String(), err)
	}
}

func TestNewRequest(t *testing.T) {
	const uri = "https://db3.notify.live.net/unthrottledthirdparty/01.00/AAA"
	req, err := mpns.NewRequest(uri, tilecast.KindRaw, []byte("<raw & unescaped>"), mpns.RequestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := http.Header{
		"Content-Type":        {"text/xml"},
		"Accept":              {"application/*"},
		"X-NotificationClass": {"3"},
		"User-Agent":          {pushhttp.DefaultUserAgent},
	}
	if len(req.Header) != len(want) {
		t.Errorf("headers %v, want %v", req.Header, want)
	}
	for k, v := range want {
		if got := req.Header[k]; len(got) != 1 || got[0] != v[0] {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if req.Method != http.MethodPost || req.URL.String() != uri || req.ContentLength != 17 {
		t.Errorf("request %s %s, length %d", req.Method, req.URL, req.ContentLength)
	}
	tile, err := mpns.NewRequest(uri, tilecast.KindTile, []byte("<x/>"), mpns.RequestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Set under the reference's spelling, not Header.Set's canonical form.
	//lint:ignore SA1008 the non-canonical key is the point: the reference module's spelling.
	if got := tile.Header["X-WindowsPhone-Target"]; len(got) != 1 || got[0] != "token" {
		t.Errorf("X-WindowsPhone-Target = %q (headers %v)", got, tile.Header)
	}

	for _, tt := range []struct {
		name string
		uri  string
		kind tilecast.Kind
		opts mpns.RequestOptions
	}{
		{"kind with no MPNS form", uri, "sticker", mpns.RequestOptions{}},
		{"empty kind", uri, "", mpns.RequestOptions{}},
		{"unknown class", uri, tilecast.KindToast, mpns.RequestOptions{Class: "soon"}},
		{"relative uri", "/throttledthirdparty/01.00/AAA", tilecast.KindToast, mpns.RequestOptions{}},
		{"ftp uri", "ftp://db3.notify.live.net/x", tilecast.KindToast, mpns.RequestOptions{}},
		{"no host", "http:///x", tilecast.KindToast, mpns.RequestOptions{}},
	} {
		if req, err := mpns.NewRequest(tt.uri, tt.kind, []byte("x"), tt.opts); err == nil {
			t.Errorf("%s: accepted: %s %v", tt.name, req.URL, req.Header)
		}
	}
	// A badge is a kind of its own for WNS and Web Push; MPNS says why it
	// has none rather than an unknown-kind error.
	_, err = mpns.NewRequest(uri, tilecast.KindBadge, []byte("<badge/>"), mpns.RequestOptions{})
	if err == nil || !strings.Contains(err.Error(), "no badge notification") {
		t.Errorf("badge: %v, want a refusal that names badges", err)
	}
}
