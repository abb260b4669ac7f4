package notify_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/notify"
	"github.com/tilecast/tilecast/notify/mpns"
)

// TestPreviewMatchesRenderer encodes the preview and compares it with what
// the Renderer sends: the two share their template code, so for data that
// needs no cutting the payloads are identical.
func TestPreviewMatchesRenderer(t *testing.T) {
	feeds := map[string]*tilecast.Feed{
		"flip": flipFeed(),
		"classic with id": {Name: "c", Tile: &tilecast.TileSpec{Template: tilecast.TileClassic,
			ID: "/Feed.xaml?user={{.User}}", Title: "{{.Feed.Title}}", Count: "{{.NewCount}}"}},
		"iconic": {Name: "i", Tile: &tilecast.TileSpec{Template: tilecast.TileIconic, Count: "{{.NewCount}}",
			WideContent1: "{{.Item.Title}}", IconImage: "/i.png", BackgroundColor: "#FF1BA1E2"}},
		"cycle": {Name: "y", Tile: &tilecast.TileSpec{Template: tilecast.TileCycle, Title: "{{.Feed.Title}}",
			CycleImages: []string{"{{.Item.Image}}", "https://e.org/2.png"}}},
		"general template path": {Name: "g", Toast: &tilecast.ToastSpec{
			Text1: `{{printf "%s!" .Feed.Title}}`, Text2: "{{range .Items}}{{.Title}};{{end}}"}},
	}
	enc := &mpns.Encoder{}
	r := newRenderer()
	for name, f := range feeds {
		t.Run(name, func(t *testing.T) {
			toast, tile, err := notify.Preview(f, data())
			if err != nil {
				t.Fatal(err)
			}
			if (toast != nil) != (f.Toast != nil) || (tile != nil) != (f.Tile != nil) {
				t.Fatalf("toast %v tile %v for spec toast %v tile %v", toast, tile, f.Toast, f.Tile)
			}
			if toast != nil {
				got, err := notify.Fit(enc, *toast)
				if err != nil {
					t.Fatal(err)
				}
				want, err := r.Toast(f, data())
				if err != nil {
					t.Fatal(err)
				}
				if string(got) != string(want) {
					t.Errorf("toast\npreview  %s\nrenderer %s", got, want)
				}
			}
			if tile != nil {
				got, err := notify.Fit(enc, *tile)
				if err != nil {
					t.Fatal(err)
				}
				want, err := r.Tile(f, data())
				if err != nil {
					t.Fatal(err)
				}
				if string(got) != string(want) {
					t.Errorf("tile\npreview  %s\nrenderer %s", got, want)
				}
			}
		})
	}
}

func TestPreviewFields(t *testing.T) {
	d := data()
	d.Item.Summary = "ctl\x00chars\x1b removed\uFFFE"
	d.NewCount = 150
	f := flipFeed()
	f.Tile.WideBackgroundImage = "{{.Item.Image}}" // the item has none
	toast, tile, err := notify.Preview(f, d)
	if err != nil {
		t.Fatal(err)
	}
	// Text is unescaped model text: escaping is the viewer's business.
	if toast.Text1 != "News" || toast.Text2 != "Go 1.26 <released>" || toast.Param != "/Item.xaml?id=item+1%262" {
		t.Errorf("toast %+v", *toast)
	}
	if tile.Template != tilecast.TileFlip {
		t.Errorf("template %q", tile.Template)
	}
	for name, tc := range map[string]struct {
		got  notify.Field
		want notify.Field
	}{
		"title":           {tile.Title, notify.Value("News")},
		"count clamped":   {tile.Count, notify.Value("99")},
		"back content":    {tile.BackContent, notify.Value("Go 1.26 <released>")},
		"sanitized":       {tile.WideBackContent, notify.Value("ctlchars removed")},
		"image":           {tile.BackgroundImage, notify.Value("https://cdn.example.org/tile.png")},
		"no spec, absent": {tile.SmallBackgroundImage, notify.Field{}},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: %+v, want %+v", name, tc.got, tc.want)
		}
	}
	// Long text is not cut: there is no transport limit in a preview.
	d.Item.Title = strings.Repeat("x", 5000)
	toast, _, err = notify.Preview(flipFeed(), d)
	if err != nil || len(toast.Text2) != 5000 {
		t.Errorf("long text: %d bytes, err %v", len(toast.Text2), err)
	}
}

func TestPreviewFailures(t *testing.T) {
	t.Run("nil data", func(t *testing.T) {
		toast, tile, err := notify.Preview(flipFeed(), nil)
		if err == nil || toast != nil || tile != nil {
			t.Errorf("toast %v tile %v err %v", toast, tile, err)
		}
	})
	t.Run("no specs", func(t *testing.T) {
		toast, tile, err := notify.Preview(&tilecast.Feed{Name: "bare"}, data())
		if err != nil || toast != nil || tile != nil {
			t.Errorf("toast %v tile %v err %v", toast, tile, err)
		}
	})
	t.Run("bad spec", func(t *testing.T) {
		f := &tilecast.Feed{Name: "bad", Tile: &tilecast.TileSpec{Template: "hexagon", Title: "x"}}
		_, _, err := notify.Preview(f, data())
		if err == nil || !strings.Contains(err.Error(), "feed bad: tile.template") {
			t.Errorf("err %v", err)
		}
	})
	t.Run("empty toast keeps the tile", func(t *testing.T) {
		f := flipFeed()
		f.Toast = &tilecast.ToastSpec{Text1: "{{.User}}"}
		d := data()
		d.User = ""
		toast, tile, err := notify.Preview(f, d)
		if !errors.Is(err, notify.ErrEmpty) || toast != nil || tile == nil {
			t.Errorf("toast %v tile %v err %v", toast, tile, err)
		}
		if err != nil && !strings.Contains(err.Error(), "feed news: toast: no text") {
			t.Errorf("err %q does not name the part", err)
		}
	})
	t.Run("execution error keeps the toast", func(t *testing.T) {
		f := flipFeed()
		f.Tile.BackContent = "{{(index .Items 5).Title}}"
		toast, tile, err := notify.Preview(f, data())
		if err == nil || toast == nil || tile != nil {
			t.Fatalf("toast %v tile %v err %v", toast, tile, err)
		}
		if !strings.Contains(err.Error(), "feed news: tile.back_content") {
			t.Errorf("err %q does not name the field", err)
		}
	})
	t.Run("empty tile", func(t *testing.T) {
		f := &tilecast.Feed{Name: "e", Tile: &tilecast.TileSpec{Template: tilecast.TileFlip, Title: "{{.User}}"}}
		d := data()
		d.User = ""
		if _, tile, err := notify.Preview(f, d); !errors.Is(err, notify.ErrEmpty) || tile != nil {
			t.Errorf("tile %v err %v", tile, err)
		}
	})
}
