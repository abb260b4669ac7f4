package notify_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/notify"
	"github.com/tilecast/tilecast/notify/mpns"
)

const prefix = `<?xml version="1.0" encoding="utf-8"?><wp:Notification xmlns:wp="WPNotification">`

func data() *tilecast.TemplateData {
	item := tilecast.Item{
		ID: "item 1&2", Title: "Go 1.26 <released>", Link: "https://example.org/go",
		Summary: "Lots of \"new\" things", Published: time.Date(2026, 2, 10, 0, 0, 0, 0, time.UTC),
	}
	return &tilecast.TemplateData{
		Feed:     tilecast.FeedInfo{Name: "news", Title: "News", Link: "https://example.org/"},
		Item:     item,
		Items:    []tilecast.Item{item},
		NewCount: 3,
		User:     "ann",
	}
}

func flipFeed() *tilecast.Feed {
	return &tilecast.Feed{
		Name: "news",
		Toast: &tilecast.ToastSpec{
			Text1: "{{.Feed.Title}}",
			Text2: "{{.Item.Title}}",
			Param: "/Item.xaml?id={{.Item.ID | urlquery}}",
		},
		Tile: &tilecast.TileSpec{
			Template:        tilecast.TileFlip,
			Title:           "{{.Feed.Title}}",
			Count:           "{{.NewCount}}",
			BackTitle:       "{{.Feed.Title}}",
			BackContent:     "{{.Item.Title}}",
			WideBackContent: "{{.Item.Summary}}",
			BackgroundImage: "https://cdn.example.org/tile.png",
		},
	}
}

func newRenderer() *notify.Renderer { return notify.NewRenderer(&mpns.Encoder{}) }

func TestRendererToast(t *testing.T) {
	req, err := newRenderer().Toast(flipFeed(), data())
	if err != nil {
		t.Fatal(err)
	}
	want := prefix + `<wp:Toast><wp:Text1>News</wp:Text1><wp:Text2>Go 1.26 &lt;released&gt;</wp:Text2>` +
		`<wp:Param>/Item.xaml?id=item+1%262</wp:Param></wp:Toast></wp:Notification>`
	if got := string(req); got != want {
		t.Errorf("body\n got %s\nwant %s", got, want)
	}
}

func TestRendererTile(t *testing.T) {
	tests := []struct {
		name  string
		count string
		data  func(*tilecast.TemplateData)
		want  string // the tile element's content
	}{
		{"typical", "{{.NewCount}}", nil,
			`<wp:BackgroundImage>https://cdn.example.org/tile.png</wp:BackgroundImage><wp:Count>3</wp:Count><wp:Title>News</wp:Title>` +
				`<wp:BackTitle>News</wp:BackTitle><wp:BackContent>Go 1.26 &lt;released&gt;</wp:BackContent>` +
				`<wp:WideBackContent>Lots of &quot;new&quot; things</wp:WideBackContent>`},
		{"count zero is sent", "{{.NewCount}}", func(d *tilecast.TemplateData) { d.NewCount = 0 },
			`<wp:BackgroundImage>https://cdn.example.org/tile.png</wp:BackgroundImage><wp:Count>0</wp:Count><wp:Title>News</wp:Title>` +
				`<wp:BackTitle>News</wp:BackTitle><wp:BackContent>Go 1.26 &lt;released&gt;</wp:BackContent>` +
				`<wp:WideBackContent>Lots of &quot;new&quot; things</wp:WideBackContent>`},
		{"count clamps to 99", "{{.NewCount}}", func(d *tilecast.TemplateData) { d.NewCount = 250 },
			`<wp:BackgroundImage>https://cdn.example.org/tile.png</wp:BackgroundImage><wp:Count>99</wp:Count><wp:Title>News</wp:Title>` +
				`<wp:BackTitle>News</wp:BackTitle><wp:BackContent>Go 1.26 &lt;released&gt;</wp:BackContent>` +
				`<wp:WideBackContent>Lots of &quot;new&quot; things</wp:WideBackContent>`},
		{"non-integer count left out", "{{.Item.Title}}", nil,
			`<wp:BackgroundImage>https://cdn.example.org/tile.png</wp:BackgroundImage><wp:Title>News</wp:Title>` +
				`<wp:BackTitle>News</wp:BackTitle><wp:BackContent>Go 1.26 &lt;released&gt;</wp:BackContent>` +
				`<wp:WideBackContent>Lots of &quot;new&quot; things</wp:WideBackContent>`},
		{"empty output is absent", "{{if false}}1{{end}}", func(d *tilecast.TemplateData) { d.Item.Summary = "" },
			`<wp:BackgroundImage>https://cdn.example.org/tile.png</wp:BackgroundImage><wp:Title>News</wp:Title>` +
				`<wp:BackTitle>News</wp:BackTitle><wp:BackContent>Go 1.26 &lt;released&gt;</wp:BackContent>`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := flipFeed()
			f.Tile.Count = tt.count
			d := data()
			if tt.data != nil {
				tt.data(d)
			}
			req, err := newRenderer().Tile(f, d)
			if err != nil {
				t.Fatal(err)
			}
			want := prefix + `<wp:Tile Template="FlipTile">` + tt.want + `</wp:Tile></wp:Notification>`
			if got := string(req); got != want {
				t.Errorf("body\n got %s\nwant %s", got, want)
			}
		})
	}
}

func TestRendererTileKinds(t *testing.T) {
	tests := []struct {
		name string
		spec tilecast.TileSpec
		want string
	}{
		{"classic with id", tilecast.TileSpec{Template: tilecast.TileClassic, ID: "/Feed.xaml?user={{.User}}&x=1", Title: "{{.Feed.Title}}"},
			`<wp:Tile Id="/Feed.xaml?user=ann&amp;x=1"><wp:Title>News</wp:Title></wp:Tile>`},
		{"iconic", tilecast.TileSpec{Template: tilecast.TileIconic, Count: "{{.NewCount}}", WideContent1: "{{.Item.Title}}", IconImage: "/i.png", BackgroundColor: "#FF1BA1E2"},
			`<wp:Tile Template="IconicTile"><wp:Count>3</wp:Count><wp:BackgroundColor>#FF1BA1E2</wp:BackgroundColor><wp:IconImage>/i.png</wp:IconImage><wp:WideContent1>Go 1.26 &lt;released&gt;</wp:WideContent1></wp:Tile>`},
		{"cycle compacts empty images", tilecast.TileSpec{Template: tilecast.TileCycle, Title: "{{.Feed.Title}}",
			CycleImages: []string{"{{.Item.Image}}", "https://e.org/2.png", "https://e.org/3.png"}},
			`<wp:Tile Template="CycleTile"><wp:CycleImage1>https://e.org/2.png</wp:CycleImage1><wp:CycleImage2>https://e.org/3.png</wp:CycleImage2><wp:Title>News</wp:Title></wp:Tile>`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := tt.spec
			f := &tilecast.Feed{Name: "n", Tile: &spec}
			if err := notify.CheckFeed(f); err != nil {
				t.Fatal(err)
			}
			req, err := newRenderer().Tile(f, data())
			if err != nil {
				t.Fatal(err)
			}
			if got, want := string(req), prefix+tt.want+`</wp:Notification>`; got != want {
				t.Errorf("body\n got %s\nwant %s", got, want)
			}
		})
	}
}

func TestRendererGeneralPathMatchesFastPath(t *testing.T) {
	// The same text through the fast path and through text/template.
	fast := &tilecast.Feed{Name: "a", Toast: &tilecast.ToastSpec{
		Text1: "[{{.Feed.Title}}] {{.Item.Title}} ({{.NewCount}})",
		Text2: "{{.User}}",
		Param: `{{.Item.ID | urlquery}}|{{.Item.Title | truncate 5}}|{{.Item.Image | default "d"}}|{{.Item.Link | default "d" | urlquery}}`,
	}}
	slow := &tilecast.Feed{Name: "b", Toast: &tilecast.ToastSpec{
		Text1: `[{{printf "%s" .Feed.Title}}] {{.Item.Title | print}} ({{print .NewCount}})`,
		Text2: "{{with .User}}{{.}}{{end}}",
		Param: `{{urlquery .Item.ID}}|{{truncate 5 .Item.Title}}|{{default "d" .Item.Image}}|{{urlquery (default "d" .Item.Link)}}`,
	}}
	r := newRenderer()
	a, err := r.Toast(fast, data())
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.Toast(slow, data())
	if err != nil {
		t.Fatal(err)
	}
	if string(a) != string(b) {
		t.Errorf("fast %s\nslow %s", a, b)
	}
}

func TestRendererSummaryToast(t *testing.T) {
	r := newRenderer()
	req, err := r.SummaryToast(flipFeed(), data(), 17)
	if err != nil {
		t.Fatal(err)
	}
	want := prefix + `<wp:Toast><wp:Text1>News</wp:Text1><wp:Text2>17 more in News</wp:Text2></wp:Toast></wp:Notification>`
	if string(req) != want {
		t.Errorf("got %s\nwant %s", req, want)
	}
	d := data()
	d.Feed.Title = ""
	req, err = r.SummaryToast(flipFeed(), d, 2)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(req), "<wp:Text2>2 more in news</wp:Text2>") {
		t.Errorf("no fallback to the feed name: %s", req)
	}
}

func TestRendererLimits(t *testing.T) {
	r := newRenderer()
	d := data()
	d.Item.Title = strings.Repeat("long & <title> ", 400) // ~6 KB escaped
	d.Item.Summary = "ctl\x00chars\x1b removed\uFFFE"
	f := flipFeed()
	req, err := r.Toast(f, d)
	if err != nil {
		t.Fatal(err)
	}
	if len(req) > mpns.MaxTyped {
		t.Errorf("toast body %d bytes > %d", len(req), mpns.MaxTyped)
	}
	if !strings.Contains(string(req), "…</wp:Text2>") {
		t.Errorf("Text2 not cut with an ellipsis")
	}
	if !strings.Contains(string(req), "<wp:Param>/Item.xaml?id=item+1%262</wp:Param>") {
		t.Errorf("Param altered")
	}
	tile, err := r.Tile(f, d)
	if err != nil {
		t.Fatal(err)
	}
	if len(tile) > mpns.MaxTyped {
		t.Errorf("tile body %d bytes > %d", len(tile), mpns.MaxTyped)
	}
	if !strings.Contains(string(tile), "<wp:WideBackContent>ctlchars removed</wp:WideBackContent>") {
		t.Errorf("control characters not removed: %s", tile)
	}

	// A URL alone over the limit cannot be fixed by cutting text.
	f.Toast.Param = "/Item.xaml?id=" + strings.Repeat("a", 4000)
	if _, err := r.Toast(f, data()); !errors.Is(err, tilecast.ErrPayloadTooLarge) {
		t.Errorf("err = %v, want ErrPayloadTooLarge", err)
	}
	if _, err := notify.Fit(&mpns.Encoder{}, notify.Raw{Payload: make([]byte, mpns.MaxRaw+1)}); !errors.Is(err, tilecast.ErrPayloadTooLarge) {
		t.Errorf("raw: err = %v, want ErrPayloadTooLarge", err)
	}
	if _, err := notify.Fit(&mpns.Encoder{}, notify.Raw{Payload: make([]byte, mpns.MaxRaw)}); err != nil {
		t.Errorf("raw at the limit: %v", err)
	}
}

func TestRendererEmpty(t *testing.T) {
	f := &tilecast.Feed{Name: "e", Toast: &tilecast.ToastSpec{Text1: "{{.User}}"}, Tile: &tilecast.TileSpec{Template: tilecast.TileFlip, Title: "{{.User}}"}}
	d := data()
	d.User = ""
	r := newRenderer()
	if _, err := r.Toast(f, d); !errors.Is(err, notify.ErrEmpty) {
		t.Errorf("toast err = %v, want ErrEmpty", err)
	}
	if _, err := r.Tile(f, d); !errors.Is(err, notify.ErrEmpty) {
		t.Errorf("tile err = %v, want ErrEmpty", err)
	}
	if _, err := r.Toast(&tilecast.Feed{Name: "none"}, d); err == nil {
		t.Error("toast of a feed without a toast spec succeeded")
	}
}

func TestRendererReload(t *testing.T) {
	r := newRenderer()
	f := flipFeed()
	a, err := r.Toast(f, data())
	if err != nil {
		t.Fatal(err)
	}
	g := flipFeed() // same name, changed template: must not be served from the cache
	g.Toast.Text1 = "Changed {{.Feed.Title}}"
	b, err := r.Toast(g, data())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "<wp:Text1>Changed News</wp:Text1>") || string(a) == string(b) {
		t.Errorf("stale template after reload: %s", b)
	}
	h := flipFeed()
	h.Tile.Template = tilecast.TileIconic // background_image is not iconic
	if _, err := r.Tile(h, data()); err == nil || !strings.Contains(err.Error(), "tile.background_image: not part of iconic tiles") {
		t.Errorf("err = %v, want a tile.background_image error", err)
	}
}

func TestRendererConcurrent(t *testing.T) {
	r := newRenderer()
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f := flipFeed()
			f.Name = fmt.Sprintf("feed%d", i%4)
			for range 50 {
				if _, err := r.Tile(f, data()); err != nil {
					t.Error(err)
					return
				}
				if _, err := r.Toast(f, data()); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestCheckFeed(t *testing.T) {
	tests := []struct {
		name string
		feed func(*tilecast.Feed)
		want string // substring of the error; "" = ok
	}{
		{"ok", func(*tilecast.Feed) {}, ""},
		{"no specs", func(f *tilecast.Feed) { f.Toast, f.Tile = nil, nil }, ""},
		{"syntax", func(f *tilecast.Feed) { f.Tile.BackContent = "{{.Item.Title" }, "tile.back_content: template: tile.back_content:1"},
		{"unknown func", func(f *tilecast.Feed) { f.Toast.Text2 = "{{.Item.Title | shout}}" }, `toast.text2: template: toast.text2:1: function "shout" not defined`},
		{"unknown field", func(f *tilecast.Feed) { f.Toast.Text1 = "{{.Item.Titel}}" }, "toast.text1: template: toast.text1:1:7: executing"},
		{"funcs", func(f *tilecast.Feed) {
			f.Toast.Text1 = `{{.Item.Title | truncate 10}} {{.Item.Image | default "x.png"}} {{urlquery .Item.Link}}`
		}, ""},
		{"range and index", func(f *tilecast.Feed) {
			f.Tile.WideBackContent = `{{range .Items}}{{.Title}} {{end}}{{(index .Items 2).Title}}`
		}, ""},
		{"field of another kind", func(f *tilecast.Feed) { f.Tile.IconImage = "/i.png" }, "tile.icon_image: not part of flip tiles"},
		{"unknown kind", func(f *tilecast.Feed) { f.Tile.Template = "square" }, `tile.template: unknown tile template "square"`},
		{"cycle images on flip", func(f *tilecast.Feed) { f.Tile.CycleImages = []string{"a"} }, "tile.cycle_images"},
		{"too many cycle images", func(f *tilecast.Feed) {
			f.Tile = &tilecast.TileSpec{Template: tilecast.TileCycle, CycleImages: make([]string, 10)}
		}, "tile.cycle_images: 10 images, at most 9"},
		{"bad cycle image", func(f *tilecast.Feed) {
			f.Tile = &tilecast.TileSpec{Template: tilecast.TileCycle, CycleImages: []string{"a", "{{"}}
		}, "tile.cycle_images[1]: template"},
		{"bad id", func(f *tilecast.Feed) { f.Tile.ID = "{{end}}" }, "tile.id: template"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := flipFeed()
			tt.feed(f)
			err := notify.CheckFeed(f)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestFuncs(t *testing.T) {
	f := &tilecast.Feed{Name: "f", Toast: &tilecast.ToastSpec{
		Text1: `{{.Item.Title | truncate 6}}|{{.Item.Image | default "fallback.png"}}|{{.Item.Link | default "x"}}`,
		Text2: `{{urlquery "a b&c"}}|{{.NewCount | default 5}}`,
	}}
	d := data()
	d.NewCount = 0
	req, err := newRenderer().Toast(f, d)
	if err != nil {
		t.Fatal(err)
	}
	want := `<wp:Text1>Go 1.…|fallback.png|https://example.org/go</wp:Text1><wp:Text2>a+b%26c|5</wp:Text2>`
	if !strings.Contains(string(req), want) {
		t.Errorf("got %s\nwant it to contain %s", req, want)
	}
}

func BenchmarkToast(b *testing.B) {
	r := newRenderer()
	f, d := flipFeed(), data()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Toast(f, d); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTile(b *testing.B) {
	r := newRenderer()
	f, d := flipFeed(), data()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Tile(f, d); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTileTruncated(b *testing.B) {
	r := newRenderer()
	f, d := flipFeed(), data()
	d.Item.Title = strings.Repeat("long title ", 400)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Tile(f, d); err != nil {
			b.Fatal(err)
		}
	}
}
