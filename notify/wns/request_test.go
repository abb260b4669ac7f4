package wns_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/notify"
	"github.com/tilecast/tilecast/notify/wns"
)

func TestNewRequestHeaders(t *testing.T) {
	const uri = "https://am3p.notify.windows.com:8443/?token=AwYAAAB%2bx"
	tests := []struct {
		kind tilecast.Kind
		opts wns.RequestOptions
		want map[string]string // expected value; "" means absent
	}{
		{tilecast.KindToast, wns.RequestOptions{Token: "T", TTL: 90 * time.Second, Tag: "news"}, map[string]string{
			"Content-Type": "text/xml", "X-WNS-Type": "wns/toast", "Authorization": "Bearer T", "X-WNS-RequestForStatus": "true",
			"X-WNS-TTL": "90", "X-WNS-Tag": "", "X-WNS-Cache-Policy": ""}},
		{tilecast.KindTile, wns.RequestOptions{Token: "T", TTL: 1500 * time.Millisecond, Tag: "news"}, map[string]string{
			"Content-Type": "text/xml", "X-WNS-Type": "wns/tile", "X-WNS-TTL": "1", "X-WNS-Tag": "news", "X-WNS-Cache-Policy": "cache"}},
		{tilecast.KindBadge, wns.RequestOptions{Token: "T", TTL: 10 * time.Millisecond, Tag: "news"}, map[string]string{
			"Content-Type": "text/xml", "X-WNS-Type": "wns/badge", "X-WNS-TTL": "1", "X-WNS-Tag": "news", "X-WNS-Cache-Policy": "cache"}},
		{tilecast.KindRaw, wns.RequestOptions{Tag: "news"}, map[string]string{
			"Content-Type": "application/octet-stream", "X-WNS-Type": "wns/raw", "Authorization": "", "X-WNS-TTL": "",
			"X-WNS-Tag": "", "X-WNS-Cache-Policy": "no-cache"}},
	}
	for _, tt := range tests {
		req, err := wns.NewRequest(uri, tt.kind, []byte("<x/>"), tt.opts)
		if err != nil {
			t.Fatalf("%s: %v", tt.kind, err)
		}
		line, h, body := wire(t, req)
		if line != "POST /?token=AwYAAAB%2bx HTTP/1.1" || h["Host"] != "am3p.notify.windows.com:8443" || string(body) != "<x/>" {
			t.Errorf("%s: %q host %q body %q (the port is kept)", tt.kind, line, h["Host"], body)
		}
		for name, want := range tt.want {
			got, ok := h[name]
			if want == "" && ok {
				t.Errorf("%s: %s: %q sent, want none", tt.kind, name, got)
			} else if want != "" && got != want {
				t.Errorf("%s: %s = %q, want %q", tt.kind, name, got, want)
			}
		}
	}
}

func TestNewRequestRefuses(t *testing.T) {
	const uri = "https://db5.notify.windows.com/?token=x"
	tests := []struct {
		name    string
		uri     string
		kind    tilecast.Kind
		payload []byte
		opts    wns.RequestOptions
	}{
		{"unknown kind", uri, "flip", []byte("x"), wns.RequestOptions{}},
		{"over 5000 bytes", uri, tilecast.KindToast, make([]byte, 5001), wns.RequestOptions{}},
		{"long tag", uri, tilecast.KindTile, []byte("x"), wns.RequestOptions{Tag: "abcdefghijklmnopq"}},
		{"tag with a dash", uri, tilecast.KindTile, []byte("x"), wns.RequestOptions{Tag: "my-feed"}},
		{"token with a newline", uri, tilecast.KindTile, []byte("x"), wns.RequestOptions{Token: "a\r\nX-Evil: 1"}},
		{"relative uri", "/x", tilecast.KindToast, []byte("x"), wns.RequestOptions{}},
	}
	for _, tt := range tests {
		if _, err := wns.NewRequest(tt.uri, tt.kind, tt.payload, tt.opts); err == nil {
			t.Errorf("%s: accepted", tt.name)
		}
	}
	_, err := wns.NewRequest(uri, tilecast.KindRaw, make([]byte, 5001), wns.RequestOptions{})
	if !errors.Is(err, tilecast.ErrPayloadTooLarge) {
		t.Errorf("oversized raw: %v, want ErrPayloadTooLarge", err)
	}
	if _, err := wns.NewRequest(uri, tilecast.KindRaw, make([]byte, 5000), wns.RequestOptions{}); err != nil {
		t.Errorf("5000 bytes refused: %v", err)
	}
}

func TestTag(t *testing.T) {
	for in, want := range map[string]string{
		"":                 "",
		"news":             "news",
		"feed7":            "feed7",
		"ABCdef0123456789": "ABCdef0123456789",
	} {
		if got := wns.Tag(in); got != want {
			t.Errorf("Tag(%q) = %q, want %q", in, got, want)
		}
	}
	seen := map[string]string{}
	for _, in := range []string{"my-news", "my_news", "mynews-", "a-very-long-feed-name-indeed", "-", "über", "abcdefghijklmnopq"} {
		got := wns.Tag(in)
		if len(got) == 0 || len(got) > wns.MaxTag || strings.Trim(got, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") != "" {
			t.Errorf("Tag(%q) = %q: not 1-16 alphanumerics", in, got)
		}
		if wns.Tag(in) != got {
			t.Errorf("Tag(%q) not deterministic", in)
		}
		if prev, dup := seen[got]; dup {
			t.Errorf("Tag(%q) = Tag(%q) = %q", in, prev, got)
		}
		seen[got] = in
		if _, err := wns.NewRequest("https://x.notify.windows.com/", tilecast.KindTile, nil, wns.RequestOptions{Tag: got}); err != nil {
			t.Errorf("Tag(%q) = %q refused by NewRequest: %v", in, got, err)
		}
	}
	if got := wns.Tag("my-news"); !strings.HasPrefix(got, "mynews") {
		t.Errorf("Tag(my-news) = %q, want the name's letters first", got)
	}
}

func TestCheckChannelURI(t *testing.T) {
	allowed := []string{"127.0.0.1", "*.emulator.test"}
	tests := []struct {
		uri     string
		ok      bool
		notHost bool // the error wraps ErrHostNotAllowed
	}{
		{"https://db5.notify.windows.com/?token=AwYAAAB", true, false},
		{"https://DB5.Notify.Windows.COM./?token=x", true, false},
		{"https://wns2-by3p.notify.windows.com:443/w/?token=x", true, false},
		{"http://db5.notify.windows.com/?token=x", false, false},
		{"https://notify.windows.com/?token=x", false, true},
		{"https://db5.notify.windows.com.evil.org/?token=x", false, true},
		{"https://evilnotify.windows.com/", false, true},
		{"https://db3.notify.live.net/throttledthirdparty/01.00/x", false, true},
		{"https://user:pw@db5.notify.windows.com/", false, false},
		{"ftp://db5.notify.windows.com/", false, false},
		{"https:///x", false, false},
		{"https://db5.notify.windows.com/#frag", false, false},
		{"https://db5.notify.windows.com/" + strings.Repeat("a", 2048), false, false},
		{"http://127.0.0.1:8461/wns/?token=x", true, false},
		{"http://127.0.0.2:8461/wns/?token=x", false, true},
		{"http://dev.emulator.test/wns/?token=x", true, false},
		{"http://emulator.test/wns/?token=x", false, true},
	}
	for _, tt := range tests {
		err := wns.CheckChannelURI(tt.uri, allowed)
		if (err == nil) != tt.ok {
			t.Errorf("CheckChannelURI(%.60q) = %v, want ok=%v", tt.uri, err, tt.ok)
			continue
		}
		if err != nil && errors.Is(err, tilecast.ErrHostNotAllowed) != tt.notHost {
			t.Errorf("CheckChannelURI(%.60q) = %v: ErrHostNotAllowed=%v, want %v", tt.uri, err, !tt.notHost, tt.notHost)
		}
	}
	if err := wns.CheckChannelURI("http://127.0.0.1/x", nil); err == nil {
		t.Error("loopback accepted without being allowed")
	}
}

func TestEncoderOptions(t *testing.T) {
	good := []wns.EncoderOptions{
		{},
		{Audio: "IM"}, {Audio: "silent"}, {Audio: "Looping.Call10"}, {Audio: "ms-winsoundevent:Notification.Mail"},
		{Audio: "ms-appx:///Assets/ding.wav"}, {Scenario: "incomingCall"}, {Duration: "short"},
		{HeroImage: "https://x.org/h.png", AppLogoImage: "ms-appdata:///local/l.png"},
		{Legacy: true, AppLogoImage: "https://x.org/l.png", Audio: "SMS", Lang: "en-GB"},
	}
	for _, o := range good {
		if err := wns.CheckOptions(o); err != nil {
			t.Errorf("CheckOptions(%+v) = %v", o, err)
		}
	}
	bad := []wns.EncoderOptions{
		{Audio: "Beep"}, {Audio: "Looping.Alarm1"}, {Audio: "Looping.Alarm11"}, {Audio: "Looping.Alarm02"},
		{Audio: "ms-winsoundevent:Notification.Beep"}, {Audio: "http://x.org/a.wav"},
		{Scenario: "party"}, {Duration: "forever"}, {HeroImage: "/relative.png"}, {AppLogoImage: "javascript:alert(1)"},
		{Legacy: true, HeroImage: "https://x.org/h.png"}, {Legacy: true, Scenario: "alarm"}, {Lang: `en"><x`},
	}
	for _, o := range bad {
		if err := wns.CheckOptions(o); err == nil {
			t.Errorf("CheckOptions(%+v) accepted", o)
		}
		if _, err := wns.NewEncoder(o); err == nil {
			t.Errorf("NewEncoder(%+v) accepted", o)
		}
	}
}

func TestEncoderEmptyAndLimits(t *testing.T) {
	for _, legacy := range []bool{false, true} {
		enc := mustEncoder(t, wns.EncoderOptions{Legacy: legacy})
		if _, err := notify.Fit(enc, notify.Tile{Template: tilecast.TileFlip, Count: notify.Value("3")}); !errors.Is(err, notify.ErrEmpty) {
			t.Errorf("legacy=%v: count-only tile: %v, want ErrEmpty (the count is a badge)", legacy, err)
		}
		if _, err := notify.Fit(enc, notify.Toast{Param: "/x"}); !errors.Is(err, notify.ErrEmpty) {
			t.Errorf("legacy=%v: toast without text: %v, want ErrEmpty", legacy, err)
		}
		if _, err := enc.EncodeBadge(notify.Badge{Count: 100}); err == nil {
			t.Errorf("legacy=%v: badge 100 encoded", legacy)
		}
		// A long summary is cut to fit, even though it appears in two
		// bindings; an unused long field is not what gets cut.
		tile := flipTile()
		tile.WideBackContent = notify.Value(strings.Repeat("ü & ", 3000))
		tile.BackTitle = notify.Value(strings.Repeat("x", 20000)) // unused: title is set
		body, err := notify.Fit(enc, tile)
		if err != nil {
			t.Fatalf("legacy=%v: %v", legacy, err)
		}
		if len(body) > wns.MaxPayload {
			t.Errorf("legacy=%v: %d bytes", legacy, len(body))
		}
		wellFormed(t, body)
		if !legacy && !strings.Contains(string(body), notify.Ellipsis+"</text>") {
			t.Errorf("no cut text in %s", body)
		}
	}
	// Raw is opaque: over the limit it is refused, never cut.
	enc := mustEncoder(t, wns.EncoderOptions{})
	if _, err := notify.Fit(enc, notify.Raw{Payload: make([]byte, 5001)}); !errors.Is(err, tilecast.ErrPayloadTooLarge) {
		t.Errorf("raw over 5000: %v", err)
	}
}

func TestLegacyBuilderRefuses(t *testing.T) {
	if _, err := wns.LegacyTile(wns.LegacyOptions{}); err == nil {
		t.Error("tile without bindings built")
	}
	if _, err := wns.LegacyTile(wns.LegacyOptions{}, wns.LegacyBinding{Template: "ToastText01"}); err == nil {
		t.Error("toast template in a tile built")
	}
	if _, err := wns.LegacyTile(wns.LegacyOptions{Launch: "x"}, wns.LegacyBinding{Template: "TileSquareText04"}); err == nil {
		t.Error("tile with launch built")
	}
	if _, err := wns.LegacyToast(wns.LegacyOptions{}, wns.LegacyBinding{Template: "ToastText01", Texts: []string{"a", "b"}}); err == nil {
		t.Error("ToastText01 with two texts built")
	}
	if _, err := wns.LegacyToast(wns.LegacyOptions{Duration: "forever"}, wns.LegacyBinding{Template: "ToastText01"}); err == nil {
		t.Error("bad duration accepted")
	}
	// Slots left out are written empty, as wns 0.5.4 wrote them.
	got, err := wns.LegacyToast(wns.LegacyOptions{}, wns.LegacyBinding{Template: "ToastImageAndText02", Texts: []string{"a"}})
	if err != nil {
		t.Fatal(err)
	}
	want := `<toast><visual><binding template="ToastImageAndText02"><image id="1" src="" alt=""/><text id="1">a</text><text id="2"></text></binding></visual></toast>`
	if string(got) != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
}
