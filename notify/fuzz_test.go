package notify_test

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/notify"
	"github.com/tilecast/tilecast/notify/mpns"
)

// oddChecker accepts image URLs of even length: deterministic, so the
// fuzzer can reach both the kept and the replaced path.
type oddChecker struct{}

func (oddChecker) CheckImage(_ context.Context, url string) (bool, string) {
	return len(url)%2 == 0, "odd"
}

func wellFormed(t *testing.T, body []byte) {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(body))
	d.Strict = true
	for {
		_, err := d.Token()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatalf("payload is not well-formed XML: %v\n%q", err, body)
		}
	}
}

// FuzzRenderTemplates executes the general text/template path (range,
// with, index, truncate, default, urlquery, printf) over hostile feed
// text, with image checking on: every outcome is a payload within the
// limit that parses as strict XML, or a documented error.
func FuzzRenderTemplates(f *testing.F) {
	f.Add("Hello & <welcome>", "Ünïcode \"quotes\" ]]>", "https://example.org/a?b=1&c=2", "https://cdn.example.org/i.png", "id-1", 3)
	f.Add("ctl\x00\x1f\uFFFE\xff", "{{.Feed.Title}}", "javascript:alert(1)", "isostore:/x.png", "", 0)
	f.Add(strings.Repeat("long & <text> ", 300), strings.Repeat("é", 2000), strings.Repeat("l", 1000), "", "x", 150)
	f.Add("", "", "", "http://x/odd", strings.Repeat("i", 3000), -7)
	f.Add("a\r\nb\rc", "\t", "'apos'", "HTTPS://UP.EXAMPLE/X.JPG", "%zz", 99)
	r := notify.NewRenderer(&mpns.Encoder{}, notify.RendererOptions{Images: oddChecker{}})
	feed := &tilecast.Feed{
		Name:          "fz",
		ImageCheck:    true,
		FallbackImage: "appdata:/Assets/Fallback.png",
		Toast: &tilecast.ToastSpec{
			Text1: `{{.Feed.Title}}: {{.Item.Title | truncate 40}}`,
			Text2: `{{range $i, $it := .Items}}{{if $i}} · {{end}}{{$it.Title}}{{end}}`,
			Param: `/Item.xaml?id={{.Item.ID | urlquery}}&l={{.Item.Link | urlquery}}`,
		},
		Tile: &tilecast.TileSpec{
			Template:            tilecast.TileFlip,
			Title:               `{{.Item.Title | default "untitled"}}`,
			Count:               `{{.NewCount}}`,
			BackTitle:           `{{printf "%.20s" .Feed.Title}}`,
			BackContent:         `{{with .Item}}{{.Summary}}{{end}}`,
			WideBackContent:     `{{(index .Items 0).Summary}} {{len .Items}}`,
			BackgroundImage:     `{{.Item.Image}}`,
			BackBackgroundImage: `{{.Item.Link}}`,
		},
	}
	f.Fuzz(func(t *testing.T, title, summary, link, img, id string, n int) {
		it := tilecast.Item{ID: id, Title: title, Summary: summary, Link: link, Image: img}
		d := &tilecast.TemplateData{
			Feed:     tilecast.FeedInfo{Name: "fz", Title: title + summary},
			Item:     it,
			Items:    []tilecast.Item{it, {Title: summary}},
			NewCount: n,
		}
		for _, render := range []func() ([]byte, error){
			func() ([]byte, error) { return r.Toast(feed, d) },
			func() ([]byte, error) { return r.Tile(feed, d) },
			func() ([]byte, error) { return r.SummaryToast(feed, d, n) },
		} {
			req, err := render()
			if err != nil {
				if errors.Is(err, tilecast.ErrPayloadTooLarge) || errors.Is(err, notify.ErrEmpty) {
					continue
				}
				t.Fatalf("unexpected error: %v", err)
			}
			if len(req) > mpns.MaxTyped {
				t.Fatalf("body of %d bytes over %d", len(req), mpns.MaxTyped)
			}
			wellFormed(t, req)
		}
	})
}
