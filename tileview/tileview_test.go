package tileview_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tilecast/tilecast/tileview"
)

var update = flag.Bool("update", false, "rewrite golden files")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden (run with -update to create): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s mismatch\n got: %s\nwant: %s", name, got, want)
	}
}

func hostileFlip() tileview.Tile {
	return tileview.Tile{
		Template:                tileview.TemplateFlip,
		Title:                   `<script>alert("t")</script>`,
		Count:                   3,
		BackgroundImage:         "http://example.com/front.png?a=1&b=2",
		BackTitle:               `Back "title"`,
		BackContent:             "Back content & more",
		BackBackgroundImage:     "javascript:alert(1)",
		SmallBackgroundImage:    "http://example.com/small.png",
		WideBackgroundImage:     "http://example.com/wide.png",
		WideBackContent:         "Wide <b>back</b>",
		WideBackBackgroundImage: "http://example.com/wideback.png",
	}
}

func TestRenderFlipTileGolden(t *testing.T) {
	var buf bytes.Buffer
	if err := tileview.RenderTile(&buf, hostileFlip()); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, bad := range []string{"<script>", "<b>back", "javascript:"} {
		if strings.Contains(out, bad) {
			t.Errorf("output contains unescaped %q", bad)
		}
	}
	for _, want := range []string{"&lt;script&gt;", `<span class="tv-count">3</span>`, "tv-wide tv-back", "tv-small tv-front"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	// WP8 small tiles do not flip: no empty "back" is drawn for them.
	if strings.Contains(out, "tv-small tv-back") {
		t.Error("small tile drawn with a back side")
	}
	golden(t, "fliptile.golden.html", buf.Bytes())
}

// TestIconicWithoutIcon: an iconic tile without an icon marks every size
// tv-noicon, so the style sheet puts the count where the icon would be;
// with an icon the sizes that have one are not marked.
func TestIconicWithoutIcon(t *testing.T) {
	render := func(tl tileview.Tile) string {
		var buf bytes.Buffer
		if err := tileview.RenderTile(&buf, tl); err != nil {
			t.Fatal(err)
		}
		return buf.String()
	}
	out := render(tileview.Tile{Template: tileview.TemplateIconic, Title: "Inbox", Count: 4, WideContent: [3]string{"Message 4 for alice"}})
	if n := strings.Count(out, "tv-iconic tv-noicon"); n != 3 {
		t.Errorf("%d sizes marked tv-noicon, want 3: %s", n, out)
	}
	if n := strings.Count(out, `<span class="tv-count">4</span>`); n != 3 {
		t.Errorf("count shown on %d sizes, want 3", n)
	}
	out = render(tileview.Tile{Template: tileview.TemplateIconic, Title: "Inbox", Count: 4, IconImage: "http://example.com/i.png"})
	if strings.Contains(out, "tv-noicon") {
		t.Errorf("a tile with an icon marked tv-noicon: %s", out)
	}
	if !strings.Contains(tileview.CSS(), ".tv-iconic.tv-noicon .tv-count") {
		t.Error("the style sheet does not place the count of an iconic tile without icon")
	}
}

func TestRenderBadge(t *testing.T) {
	tests := []struct {
		name  string
		tile  tileview.Tile
		badge string // "" = no badge expected
	}{
		{"count zero hides", tileview.Tile{Template: tileview.TemplateFlip, Title: "x", Count: 0}, ""},
		{"no count", tileview.Tile{Title: "x", Count: -1}, ""},
		{"count shown", tileview.Tile{Title: "x", Count: 7}, `<span class="tv-count">7</span>`},
		{"count clamped", tileview.Tile{Title: "x", Count: 150}, `<span class="tv-count">99</span>`},
		{"iconic count", tileview.Tile{Template: tileview.TemplateIconic, Count: 5}, `<span class="tv-count">5</span>`},
		{"cycle zero", tileview.Tile{Template: tileview.TemplateCycle, CycleImages: []string{"/a.png"}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := tileview.RenderTile(&buf, tt.tile); err != nil {
				t.Fatal(err)
			}
			out := buf.String()
			if tt.badge == "" {
				if strings.Contains(out, "tv-count") {
					t.Errorf("badge drawn: %s", out)
				}
				if tt.tile.ShowsBadge() {
					t.Error("ShowsBadge = true")
				}
				return
			}
			if !strings.Contains(out, tt.badge) {
				t.Errorf("want %s in %s", tt.badge, out)
			}
		})
	}
}

func TestIconicColour(t *testing.T) {
	tests := []struct{ in, want string }{
		{"#FF1BA1E2", `style="background-color: #1ba1e2"`},
		{"#801BA1E2", ""}, // translucent: phone uses the accent
		{"red;x:url(javascript:1)", ""},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		if err := tileview.RenderTile(&buf, tileview.Tile{Template: tileview.TemplateIconic, BackgroundColor: tt.in}); err != nil {
			t.Fatal(err)
		}
		has := strings.Contains(buf.String(), "background-color")
		if tt.want == "" && has {
			t.Errorf("%q: colour applied: %s", tt.in, buf.String())
		}
		if tt.want != "" && !strings.Contains(buf.String(), tt.want) {
			t.Errorf("%q: want %s in %s", tt.in, tt.want, buf.String())
		}
	}
}

func TestRenderToast(t *testing.T) {
	var buf bytes.Buffer
	ts := time.Date(2026, 3, 1, 12, 30, 5, 0, time.UTC)
	if err := tileview.RenderToast(&buf, tileview.Toast{Text1: "<img src=x onerror=alert(1)>", Text2: "b & c", Param: "/Item.xaml?id=1&x=2", Time: ts}); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"&lt;img src=x onerror=alert(1)&gt;", "b &amp; c", "12:30:05", "/Item.xaml?id=1&amp;x=2"} {
		if !strings.Contains(out, want) {
			t.Errorf("lacks %q: %s", want, out)
		}
	}
	if strings.Contains(out, "<img") {
		t.Errorf("unescaped markup: %s", out)
	}
	if !strings.Contains(tileview.CSS(), ".tv-count") {
		t.Error("CSS lacks .tv-count")
	}
}

func FuzzRenderTile(f *testing.F) {
	f.Add("FlipTile", "<script>", "#FF000000", "javascript:x", 5)
	f.Add("IconicTile", "a&b", "#zz", "/a.png", 0)
	f.Fuzz(func(t *testing.T, tpl, title, colour, img string, count int) {
		var buf bytes.Buffer
		tile := tileview.Tile{Template: tpl, Title: title, BackgroundColor: colour, BackgroundImage: img, IconImage: img, Count: count, CycleImages: []string{img}}
		if err := tileview.RenderTile(&buf, tile); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(buf.String(), "<script") {
			t.Fatalf("script tag in output: %s", buf.String())
		}
	})
}

// TestOnErrorHash: OnErrorHash must follow the inline handler the fragments
// carry, or pages that allow it by hash show broken images.
func TestOnErrorHash(t *testing.T) {
	var b strings.Builder
	if err := tileview.RenderTile(&b, tileview.Tile{Template: tileview.TemplateFlip, BackgroundImage: "https://e.org/i.png"}); err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`onerror="([^"]*)"`).FindAllStringSubmatch(b.String(), -1)
	if len(m) == 0 {
		t.Fatal("the fragment has no onerror handler any more: drop OnErrorHash from the pages' CSP")
	}
	for _, h := range m {
		sum := sha256.Sum256([]byte(h[1]))
		if want := "sha256-" + base64.StdEncoding.EncodeToString(sum[:]); want != tileview.OnErrorHash {
			t.Errorf("OnErrorHash %s, want %s (handler %q)", tileview.OnErrorHash, want, h[1])
		}
	}
}
