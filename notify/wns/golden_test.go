package wns_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/notify"
	"github.com/tilecast/tilecast/notify/wns"
)

var update = flag.Bool("update", false, "rewrite tilecast's own golden files in testdata/golden")

// capture is a golden request file captured from wns 0.5.4 by
// shared/testdata/wns-golden/capture.js.
type capture struct {
	Name     string `json:"name"`
	Requests []struct {
		Method   string         `json:"method"`
		Host     string         `json:"host"`
		Hostname string         `json:"hostname"`
		Port     int            `json:"port"`
		Path     string         `json:"path"`
		Headers  map[string]any `json:"headers"` // Content-Length is a number
		Body     string         `json:"body"`
		Bytes    int            `json:"body_bytes"`
	} `json:"requests"`
}

func loadCapture(t *testing.T, name string) capture {
	t.Helper()
	var c capture
	if err := json.Unmarshal(readGolden(t, name+".json"), &c); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if len(c.Requests) == 0 {
		t.Fatalf("%s: no requests", name)
	}
	return c
}

func readGolden(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "golden", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// stringHeaders turns a capture's headers into name → value strings.
func stringHeaders(h map[string]any) map[string]string {
	out := make(map[string]string, len(h))
	for k, v := range h {
		out[k] = fmt.Sprint(v)
	}
	return out
}

// wire returns req as net/http writes it: the request line, the header set
// (name as sent → value; a name sent twice fails the test) and the body.
func wire(t *testing.T, req *http.Request) (line string, headers map[string]string, body []byte) {
	t.Helper()
	var b bytes.Buffer
	if err := wns.DumpRequest(&b, req); err != nil {
		t.Fatal(err)
	}
	head, body, ok := bytes.Cut(b.Bytes(), []byte("\r\n\r\n"))
	if !ok {
		t.Fatalf("no end of the header block: %q", b.Bytes())
	}
	lines := strings.Split(string(head), "\r\n")
	headers = map[string]string{}
	for _, l := range lines[1:] {
		name, value, ok := strings.Cut(l, ": ")
		if !ok {
			t.Fatalf("header line %q", l)
		}
		if _, dup := headers[name]; dup {
			t.Errorf("header %s sent twice", name)
		}
		headers[name] = value
	}
	return lines[0], headers, body
}

// The channel of every capture.
const goldenChannel = "https://db5.notify.windows.com/?token=AwYAAABq7aDo%2bKx1%2f4Lk2Nw5xyz%3d"

func mustEncoder(t *testing.T, o wns.EncoderOptions) *wns.Encoder {
	t.Helper()
	e, err := wns.NewEncoder(o)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestLegacyGoldenRequests compares each captured notification request
// with what tilecast sends in legacy mode: the body byte for byte, the
// request line, and the headers as a set of names (as spelt) and values.
// Beyond the module's headers tilecast sends Host and User-Agent (node
// sent Host too; the capture lists only the module's own), and the
// documented additions: X-WNS-RequestForStatus, X-WNS-Cache-Policy for
// tiles, badges and raw, and X-WNS-TTL / X-WNS-Tag when given.
func TestLegacyGoldenRequests(t *testing.T) {
	legacy := mustEncoder(t, wns.EncoderOptions{Legacy: true, Duration: wns.DurationLong, Audio: "IM"})
	tests := []struct {
		name  string
		req   int // which of the capture's requests
		kind  tilecast.Kind
		build func() ([]byte, error)
		opts  wns.RequestOptions
		extra map[string]string
	}{
		{"toast-ToastText02-with-token-fetch", 1, tilecast.KindToast, func() ([]byte, error) {
			return notify.Fit(legacy, notify.Toast{Text1: "Hello & <welcome>", Text2: `Ünïcode "quotes"`, Param: `{"id":42,"x":"a&b"}`})
		}, wns.RequestOptions{Token: "EgAcAQMAAAAALYAAY/c+Huwi3Fv4Ck10UrKNmtxRO6Njk2MgA="}, nil},
		{"tile-TileWideText09-cached-token", 0, tilecast.KindTile, func() ([]byte, error) {
			return wns.LegacyTile(wns.LegacyOptions{}, wns.LegacyBinding{Template: "TileWideText09", Texts: []string{"Feed <title>", "New item & more"}})
		}, wns.RequestOptions{Token: "CACHED-TOKEN", Tag: "feed7", TTL: time.Hour}, map[string]string{"X-WNS-Cache-Policy": "cache"}},
		{"tile-multi-binding", 0, tilecast.KindTile, func() ([]byte, error) {
			enc := mustEncoder(t, wns.EncoderOptions{Legacy: true, Lang: "en-US"})
			return notify.Fit(enc, notify.Tile{Template: tilecast.TileFlip, Title: notify.Value("Hello"), BackContent: notify.Value("How are you?"), Count: notify.Value("3")})
		}, wns.RequestOptions{Token: "CACHED-TOKEN"}, map[string]string{"X-WNS-Cache-Policy": "cache"}},
		{"badge-numeric", 0, tilecast.KindBadge, func() ([]byte, error) {
			return notify.Fit(legacy, notify.Badge{Count: 3})
		}, wns.RequestOptions{Token: "CACHED-TOKEN"}, map[string]string{"X-WNS-Cache-Policy": "cache"}},
		{"raw", 0, tilecast.KindRaw, func() ([]byte, error) {
			return notify.Fit(legacy, notify.Raw{Payload: []byte(`{"feed":7,"n":3}`)})
		}, wns.RequestOptions{Token: "CACHED-TOKEN"}, map[string]string{"X-WNS-Cache-Policy": "no-cache"}},
		{"toast-401-then-token-refresh", 0, tilecast.KindToast, func() ([]byte, error) {
			return notify.Fit(mustEncoder(t, wns.EncoderOptions{Legacy: true}), notify.Toast{Text1: "Hi"})
		}, wns.RequestOptions{Token: "STALE"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := loadCapture(t, tt.name)
			want := c.Requests[tt.req]
			payload, err := tt.build()
			if err != nil {
				t.Fatal(err)
			}
			if string(payload) != want.Body || len(payload) != want.Bytes {
				t.Errorf("body\n got %s\nwant %s", payload, want.Body)
			}
			tt.opts.UserAgent = "tilecast-test"
			req, err := wns.NewRequest(goldenChannel, tt.kind, payload, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			line, headers, wireBody := wire(t, req)
			if w := want.Method + " " + want.Path + " HTTP/1.1"; line != w {
				t.Errorf("request line %q, want %q", line, w)
			}
			if !bytes.Equal(wireBody, payload) {
				t.Errorf("body on the wire differs from the payload")
			}
			wh := stringHeaders(want.Headers)
			wh["Host"] = want.Hostname
			wh["User-Agent"] = "tilecast-test"
			wh["X-WNS-RequestForStatus"] = "true"
			maps.Copy(wh, tt.extra)
			if !maps.Equal(headers, wh) {
				t.Errorf("headers\n got %v\nwant %v", headers, wh)
			}
		})
	}
}

// TestPayloadBuilderGolden checks the captured pure builders.
func TestPayloadBuilderGolden(t *testing.T) {
	var pb map[string]string
	if err := json.Unmarshal(readGolden(t, "payload-builder.json"), &pb); err != nil {
		t.Fatal(err)
	}
	build := map[string]func() ([]byte, error){
		"createToastText02": func() ([]byte, error) {
			return wns.LegacyToast(wns.LegacyOptions{Launch: `{"id":42,"x":"a&b"}`, Duration: "long", Audio: "IM"},
				wns.LegacyBinding{Template: "ToastText02", Texts: []string{"Hello & <welcome>", `Ünïcode "quotes"`}})
		},
		"createTileWideText09": func() ([]byte, error) {
			return wns.LegacyTile(wns.LegacyOptions{}, wns.LegacyBinding{Template: "TileWideText09", Texts: []string{"Feed <title>", "New item & more"}})
		},
		"createTile_multi": func() ([]byte, error) {
			return wns.LegacyTile(wns.LegacyOptions{Lang: "en-US"},
				wns.LegacyBinding{Template: "TileSquareText04", Texts: []string{"Hello"}},
				wns.LegacyBinding{Template: "TileWideText09", Texts: []string{"Hello", "How are you?"}})
		},
	}
	if len(pb) != len(build) {
		t.Errorf("payload-builder.json has %d entries, want %d", len(pb), len(build))
	}
	for k, want := range pb {
		f := build[k]
		if f == nil {
			t.Errorf("no builder for %s", k)
			continue
		}
		got, err := f()
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Errorf("%s:\n got %s\nwant %s", k, got, want)
		}
	}
}

// checkOwnGolden compares got with a golden file tilecast owns (the
// modern forms, which wns 0.5.4 never built).
func checkOwnGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if want := readGolden(t, name); !bytes.Equal(got, want) {
		t.Errorf("%s\n got %s\nwant %s", name, got, want)
	}
}

// flipTile is the example config's tile: every key of the flip template.
func flipTile() notify.Tile {
	return notify.Tile{
		Template:                tilecast.TileFlip,
		Title:                   notify.Value("Tilecast <News>"),
		Count:                   notify.Value("7"),
		BackgroundImage:         notify.Value("https://cdn.example.org/news-front.png"),
		BackTitle:               notify.Value("Tilecast <News>"),
		BackContent:             notify.Value(`Item "one" & more`),
		BackBackgroundImage:     notify.Value("https://cdn.example.org/item.png?a=1&b=2"),
		SmallBackgroundImage:    notify.Value("https://cdn.example.org/news-small.png"),
		WideBackgroundImage:     notify.Value("https://cdn.example.org/news-wide.png"),
		WideBackContent:         notify.Value("The summary of the newest item,\r\nover two lines."),
		WideBackBackgroundImage: notify.Value("https://cdn.example.org/item-wide.png"),
	}
}

// TestModernGoldens pins the ToastGeneric toasts, adaptive tiles and
// badges (go test -update rewrites them after a deliberate change).
func TestModernGoldens(t *testing.T) {
	plain := mustEncoder(t, wns.EncoderOptions{})
	extras := mustEncoder(t, wns.EncoderOptions{
		Audio: "Looping.Alarm2", HeroImage: "https://cdn.example.org/hero.png", AppLogoImage: "ms-appx:///Assets/logo.png",
		Scenario: wns.ScenarioReminder, Duration: wns.DurationLong, Lang: "de-DE",
	})
	legacyImg := mustEncoder(t, wns.EncoderOptions{Legacy: true, AppLogoImage: "https://cdn.example.org/logo.png", Audio: wns.AudioSilent})
	iconic := notify.Tile{Template: tilecast.TileIconic, Title: notify.Value("Mentions"), Count: notify.Value("2"),
		IconImage: notify.Value("https://cdn.example.org/icon.png"), WideContent1: notify.Value("@ann: hello"),
		WideContent2: notify.Value("second line")}
	toast := notify.Toast{Text1: "Tilecast <News>", Text2: "Item \"one\" & more", Param: "/Item.xaml?id=1&x=\"y\"\n\tz"}
	tests := []struct {
		name string
		enc  *wns.Encoder
		p    notify.Payload
	}{
		{"toast-generic.tilecast.xml", plain, toast},
		{"toast-generic-text2-only.tilecast.xml", plain, notify.Toast{Text2: "only the body"}},
		{"toast-generic-extras.tilecast.xml", extras, toast},
		{"tile-adaptive-flip.tilecast.xml", plain, flipTile()},
		{"tile-adaptive-iconic.tilecast.xml", extras, iconic},
		{"tile-adaptive-title-only.tilecast.xml", plain, notify.Tile{Template: tilecast.TileFlip, Title: notify.Value("Just a title")}},
		{"tile-adaptive-image-only.tilecast.xml", plain, notify.Tile{Template: tilecast.TileFlip, BackgroundImage: notify.Value("https://cdn.example.org/a.png")}},
		{"badge-7.tilecast.xml", plain, notify.Badge{Count: 7}},
		{"badge-clear.tilecast.xml", plain, notify.Badge{Count: 0}},
		{"badge-clear-legacy.tilecast.xml", legacyImg, notify.Badge{Count: 0}},
		{"toast-legacy-logo.tilecast.xml", legacyImg, toast},
		{"tile-legacy-image.tilecast.xml", legacyImg, flipTile()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			payload, err := notify.Fit(tt.enc, tt.p)
			if err != nil {
				t.Fatal(err)
			}
			wellFormed(t, payload)
			checkOwnGolden(t, tt.name, payload)
		})
	}
}
