package webpush_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/notify"
	"github.com/tilecast/tilecast/notify/webpush"
)

var update = flag.Bool("update", false, "rewrite testdata/golden/*.json from the current output")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name+".json")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, append(got, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got)+"\n" != string(want) {
		t.Errorf("%s differs\n got %s\nwant %s", name, got, want)
	}
}

func intp(n int) *int { return &n }

func TestPayloadGolden(t *testing.T) {
	must := func(b []byte, err error) []byte {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	golden(t, "toast", must(webpush.ToastPayload(webpush.Toast{
		Title: "Daily News", Body: `Storm <warning> & "flood" watch`, URL: "/item?id=42&src=push",
		Icon: "https://cdn.example.org/icon-192.png", Tag: "news-42",
	})))
	golden(t, "toast-title-only", must(webpush.ToastPayload(webpush.Toast{Title: "Ünïcode\ttab\nline"})))
	golden(t, "tile", must(webpush.TilePayload(webpush.Tile{
		Count: intp(7), Title: "Daily News", Body: "Three new items", Image: "https://cdn.example.org/front.png", URL: "/news",
	})))
	golden(t, "tile-count-zero", must(webpush.TilePayload(webpush.Tile{Count: intp(0)})))
	golden(t, "tile-count-clamped", must(webpush.TilePayload(webpush.Tile{Count: intp(250), Title: "Mentions"})))
	golden(t, "badge", webpush.BadgePayload(12))
	golden(t, "badge-negative", webpush.BadgePayload(-3))
}

// TestRendererGolden renders feed templates through notify's Renderer
// with the Web Push encoder: the path the daemon's outbox payloads take.
func TestRendererGolden(t *testing.T) {
	r := notify.NewRenderer(&webpush.Encoder{Icon: "https://cdn.example.org/icon.png"})
	d := &tilecast.TemplateData{
		Feed: tilecast.FeedInfo{Name: "news", Title: "Daily News", Link: "https://example.org/"},
		Item: tilecast.Item{ID: "id 1", Title: "Storm & <flood> watch", Summary: "Rivers rise across the region.",
			Image: "https://example.org/storm.jpg", Published: time.Date(2026, 5, 1, 6, 0, 0, 0, time.UTC)},
		NewCount: 3,
	}
	d.Items = []tilecast.Item{d.Item}
	for _, tc := range []struct {
		name string
		feed tilecast.Feed
	}{
		{"render-flip", tilecast.Feed{Name: "news",
			Toast: &tilecast.ToastSpec{Text1: "{{.Feed.Title}}", Text2: "{{.Item.Title}}", Param: "/item?id={{.Item.ID | urlquery}}"},
			Tile: &tilecast.TileSpec{Template: tilecast.TileFlip, Title: "{{.Feed.Title}}", Count: "{{.NewCount}}",
				BackgroundImage: "https://cdn.example.org/front.png", BackTitle: "{{.Feed.Title}}", BackContent: "{{.Item.Title}}",
				WideBackContent: "{{.Item.Summary}}"}}},
		{"render-iconic", tilecast.Feed{Name: "mentions",
			Tile: &tilecast.TileSpec{Template: tilecast.TileIconic, ID: "/mentions", Title: "Mentions", Count: "{{.NewCount}}",
				IconImage: "https://cdn.example.org/at.png", WideContent1: "{{.Item.Summary}}"}}},
		{"render-cycle", tilecast.Feed{Name: "photos",
			Tile: &tilecast.TileSpec{Template: tilecast.TileCycle, Title: "Photos", CycleImages: []string{"{{.Item.Image}}", "https://x.example/2.jpg"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.feed.Toast != nil {
				b, err := r.Toast(&tc.feed, d)
				if err != nil {
					t.Fatal(err)
				}
				golden(t, tc.name+"-toast", b)
			}
			b, err := r.Tile(&tc.feed, d)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tc.name+"-tile", b)
		})
	}
	// A badge notification through notify.Fit, as the WNS transport's
	// badges go: clamped like a tile count.
	badge, err := notify.Fit(&webpush.Encoder{}, notify.Badge{Count: 120})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "fit-badge", badge)
	summary, err := r.SummaryToast(&tilecast.Feed{Name: "news"}, d, 5)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "render-summary-toast", summary)
}

// checkPayload asserts what every payload must be: valid UTF-8 JSON of at
// most MaxPlaintext bytes with a known kind.
func checkPayload(t *testing.T, b []byte) map[string]any {
	t.Helper()
	if len(b) > webpush.MaxPlaintext {
		t.Fatalf("payload of %d bytes, limit %d", len(b), webpush.MaxPlaintext)
	}
	if !utf8.Valid(b) {
		t.Fatalf("payload is not UTF-8: %q", b)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("payload is not JSON: %v\n%s", err, b)
	}
	if k := m["kind"]; k != "toast" && k != "tile" {
		t.Fatalf("kind %v", k)
	}
	return m
}

func TestPayloadCutToFit(t *testing.T) {
	long := strings.Repeat("Ünïcode “quoted” & \"escaped\" \\ text\n", 400) // far over the limit, escapes and multibyte runes
	b, err := webpush.ToastPayload(webpush.Toast{Title: "Short title", Body: long, URL: "https://example.org/a?b=c&d=e"})
	if err != nil {
		t.Fatal(err)
	}
	m := checkPayload(t, b)
	if m["title"] != "Short title" || m["url"] != "https://example.org/a?b=c&d=e" {
		t.Errorf("title or url altered: %v %v", m["title"], m["url"])
	}
	body := m["body"].(string)
	if !strings.HasSuffix(body, notify.Ellipsis) || !strings.HasPrefix(long, strings.TrimSuffix(body, notify.Ellipsis)) {
		t.Errorf("body not cut from the end with an ellipsis: …%q", body[max(0, len(body)-40):])
	}
	if len(b) < webpush.MaxPlaintext-64 {
		t.Errorf("cut to %d bytes: far more than needed", len(b))
	}

	// Two long texts: both cut, the longer one more.
	b, err = webpush.TilePayload(webpush.Tile{Count: intp(3), Title: strings.Repeat("t", 3000), Body: strings.Repeat("b", 5000)})
	if err != nil {
		t.Fatal(err)
	}
	m = checkPayload(t, b)
	if m["count"] != 3.0 || !strings.HasSuffix(m["title"].(string), notify.Ellipsis) || !strings.HasSuffix(m["body"].(string), notify.Ellipsis) {
		t.Errorf("tile %v", m)
	}

	// URLs are never cut: when they alone are too long, the payload is refused.
	_, err = webpush.ToastPayload(webpush.Toast{Title: "x", URL: "https://example.org/" + strings.Repeat("a", 4000)})
	if !errors.Is(err, tilecast.ErrPayloadTooLarge) {
		t.Errorf("4 KB url: %v, want ErrPayloadTooLarge", err)
	}
	// Nothing to show.
	if _, err := webpush.ToastPayload(webpush.Toast{URL: "/x", Title: "\x00\x01"}); !errors.Is(err, notify.ErrEmpty) {
		t.Errorf("empty toast: %v", err)
	}
	if _, err := webpush.TilePayload(webpush.Tile{}); !errors.Is(err, notify.ErrEmpty) {
		t.Errorf("empty tile: %v", err)
	}
	// Raw data passes unchanged, within the limit.
	enc := &webpush.Encoder{}
	raw, err := enc.EncodeRaw(notify.Raw{Payload: []byte("opaque\x00bytes")})
	if err != nil || string(raw) != "opaque\x00bytes" {
		t.Errorf("raw: %q, %v", raw, err)
	}
	if _, err := enc.EncodeRaw(notify.Raw{Payload: make([]byte, webpush.MaxPlaintext+1)}); !errors.Is(err, tilecast.ErrPayloadTooLarge) {
		t.Errorf("raw over the limit: %v", err)
	}
}

func TestTileFrom(t *testing.T) {
	got := webpush.TileFrom(notify.Tile{
		Template: tilecast.TileFlip, ID: "/feed?name=news",
		Title: notify.Value("News"), Count: notify.Clear(),
		BackTitle: notify.Value("back title"), WideBackContent: notify.Value("wide"),
		SmallBackgroundImage: notify.Value("https://x.example/small.png"),
	})
	if got.Count == nil || *got.Count != 0 || got.Title != "News" || got.Body != "wide" ||
		got.Image != "https://x.example/small.png" || got.URL != "/feed?name=news" {
		t.Errorf("flip: %+v", got)
	}
	got = webpush.TileFrom(notify.Tile{Template: tilecast.TileIconic, Count: notify.Value("12"),
		IconImage: notify.Value("https://x.example/i.png"), WideContent1: notify.Value("line 1")})
	if got.Count == nil || *got.Count != 12 || got.Image != "https://x.example/i.png" || got.Body != "line 1" {
		t.Errorf("iconic: %+v", got)
	}
	if got := webpush.TileFrom(notify.Tile{Title: notify.Value("t")}); got.Count != nil {
		t.Errorf("absent count became %d", *got.Count)
	}
}

// FuzzPayload: whatever the feed's texts, the payload is valid JSON of at
// most MaxPlaintext bytes whose texts are a prefix of the sanitized
// input (plus "…"), or a documented refusal.
func FuzzPayload(f *testing.F) {
	f.Add("Title", "Body", "/url", "https://i.example/i.png", 7, true)
	f.Add(strings.Repeat("\"\\\n", 2000), strings.Repeat("\u2028é", 1500), "", "", -1, false)
	f.Add("\xff\xfe\x00ctl\x1f", strings.Repeat("🎉", 1200), strings.Repeat("u", 3900), "", 200, true)
	f.Add("", "", "", "", 0, false)
	f.Add(strings.Repeat(" ", 5000), strings.Repeat("a ", 3000), "/x", strings.Repeat("i", 100), 5, true)
	f.Fuzz(func(t *testing.T, title, body, url, image string, count int, tile bool) {
		var b []byte
		var err error
		if tile {
			b, err = webpush.TilePayload(webpush.Tile{Count: &count, Title: title, Body: body, URL: url, Image: image})
		} else {
			b, err = webpush.ToastPayload(webpush.Toast{Title: title, Body: body, URL: url, Icon: image})
		}
		if err != nil {
			if !errors.Is(err, tilecast.ErrPayloadTooLarge) && !errors.Is(err, notify.ErrEmpty) {
				t.Fatalf("undocumented error: %v", err)
			}
			return
		}
		m := checkPayload(t, b)
		for key, in := range map[string]string{"title": title, "body": body} {
			got, _ := m[key].(string)
			clean := notify.Sanitize(in)
			if got != clean && !strings.HasPrefix(clean, strings.TrimSuffix(got, notify.Ellipsis)) {
				t.Fatalf("%s %q is not a cut of %q", key, got, clean)
			}
		}
		if got, _ := m["url"].(string); got != notify.Sanitize(url) {
			t.Fatalf("url altered: %q", got)
		}
		if tile {
			if c, _ := m["count"].(float64); c != float64(min(max(count, 0), 99)) {
				t.Fatalf("count %v from %d", m["count"], count)
			}
		}
		if bytes.Contains(b, []byte("\\u003c")) {
			t.Fatalf("HTML-escaped JSON wastes bytes: %s", b)
		}
	})
}

// TestToastTag: a toast's tag names its feed and item, is the same for
// the same item every time and differs between items and feeds, stays
// short whatever the ID, and a summary toast has the feed's own tag.
func TestToastTag(t *testing.T) {
	longFeed := strings.Repeat("f", 65)
	longID := "https://example.org/articles/" + strings.Repeat("very-long-slug-", 200)
	for _, tc := range []struct {
		name, feed, item, want string
	}{
		// The hashes are the first 16 hex digits of `printf %s ID | sha256sum`.
		{"item", "news", "1", "tilecast:news:6b86b273ff34fce1"},
		{"item with a space", "news", "id 1", "tilecast:news:cd3d4eb485fd695f"},
		{"same item, other feed", "sport", "1", "tilecast:sport:6b86b273ff34fce1"},
		{"summary", "news", "", "tilecast:news"},
		{"by hand", "", "1", ""},
		{"by hand, no item", "", "", ""},
		{"long item ID", "news", longID, "tilecast:news:" + sha16(longID)},
		{"feed name over 64", longFeed, "1", "tilecast:" + sha16(longFeed) + ":6b86b273ff34fce1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := webpush.ToastTag(tc.feed, tc.item)
			if got != tc.want {
				t.Errorf("ToastTag(%q, %q) = %q, want %q", tc.feed, tc.item, got, tc.want)
			}
			if len(got) > webpush.MaxTag {
				t.Errorf("tag of %d bytes, MaxTag %d", len(got), webpush.MaxTag)
			}
		})
	}
	if a, b := webpush.ToastTag("news", "a"), webpush.ToastTag("news", "b"); a == b {
		t.Errorf("two items share the tag %q", a)
	}
	if max64 := webpush.ToastTag(strings.Repeat("f", 64), longID); len(max64) != webpush.MaxTag {
		t.Errorf("the longest tag of a configured feed is %d bytes, MaxTag %d", len(max64), webpush.MaxTag)
	}
}

func sha16(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:16]
}
