package webpush_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/notify"
	"github.com/tilecast/tilecast/notify/webpush"
)

// One tile update is one push on Web Push: the tile with its count (no
// badge after it, which would replace the tile at the push service under
// the same Topic); a tile with nothing but a count is that count alone;
// a tile without a count leaves the badge as it is.
func TestRendererTileUpdateIsOnePush(t *testing.T) {
	r := webpush.NewRenderer(nil, notify.RendererOptions{})
	d := &tilecast.TemplateData{Feed: tilecast.FeedInfo{Name: "news", Title: "Daily News"},
		Item: tilecast.Item{ID: "1", Title: "Storm watch"}, NewCount: 4}
	d.Items = []tilecast.Item{d.Item}
	for _, tc := range []struct {
		name string
		tile tilecast.TileSpec
		kind tilecast.Kind
		want string
	}{
		{"tile with count", tilecast.TileSpec{Template: tilecast.TileFlip, Title: "{{.Feed.Title}}", Count: "{{.NewCount}}",
			BackContent: "{{.Item.Title}}"}, tilecast.KindTile, `{"kind":"tile","count":4,"title":"Daily News","body":"Storm watch"}`},
		{"count only", tilecast.TileSpec{Template: tilecast.TileFlip, Count: "{{.NewCount}}"}, tilecast.KindTile,
			`{"kind":"tile","count":4}`},
		{"no count", tilecast.TileSpec{Template: tilecast.TileFlip, Title: "{{.Feed.Title}}"}, tilecast.KindTile,
			`{"kind":"tile","title":"Daily News"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &tilecast.Feed{Name: "news", Tile: &tc.tile}
			parts, err := r.TileUpdate(f, d)
			if err != nil {
				t.Fatal(err)
			}
			if len(parts) != 1 || parts[0].Kind != tc.kind || string(parts[0].Payload) != tc.want {
				t.Fatalf("TileUpdate = %+v; want one %s %s", parts, tc.kind, tc.want)
			}
		})
	}
	// Toasts go through unchanged.
	f := &tilecast.Feed{Name: "news", Toast: &tilecast.ToastSpec{Text1: "{{.Feed.Title}}", Text2: "{{.Item.Title}}"}}
	b, err := r.Toast(f, d)
	if err != nil || string(b) != `{"kind":"toast","title":"Daily News","body":"Storm watch","tag":"tilecast:news:6b86b273ff34fce1"}` {
		t.Errorf("Toast = %s, %v", b, err)
	}
	b, err = r.SummaryToast(f, d, 3)
	if err != nil || len(b) == 0 {
		t.Errorf("SummaryToast = %s, %v", b, err)
	}
}

// A paused push service's answer is "not sent" to the deliverer and the
// Breaker (it matches tilecast.ErrCircuitOpen); a VAPID refusal is a
// credentials error the deliverer logs as a configuration error.
func TestErrorsMatchTheDeliverersSentinels(t *testing.T) {
	pe := &webpush.PausedError{Origin: "https://push.example.org", Refused: 10}
	r := tilecast.Result{Verdict: tilecast.VerdictRetry, Err: pe}
	if !errors.Is(pe, tilecast.ErrCircuitOpen) || !errors.Is(pe, webpush.ErrPaused) || !tilecast.NotSent(r) {
		t.Error("PausedError does not read as not sent")
	}
	if errors.Is(&webpush.StatusError{Status: 500}, tilecast.ErrCircuitOpen) {
		t.Error("a 500 reads as not sent")
	}
	se := &webpush.StatusError{Status: 403}
	if !errors.Is(se, webpush.ErrVAPID) || !errors.Is(se, tilecast.ErrCredentials) {
		t.Error("403 is not a credentials error")
	}
	if errors.Is(&webpush.StatusError{Status: 410}, tilecast.ErrCredentials) {
		t.Error("410 reads as a credentials error")
	}
}

// TestRendererToastTag: the rendered toast of an item carries the item's
// tag (the same on every render, so a resend replaces the first on the
// device), the summary toast the feed's, whichever item the template
// data's newest is; texts too long for a push are cut, the tag never.
func TestRendererToastTag(t *testing.T) {
	r := webpush.NewRenderer(nil, notify.RendererOptions{})
	f := &tilecast.Feed{Name: "news", Toast: &tilecast.ToastSpec{Text1: "{{.Feed.Title}}", Text2: "{{.Item.Title}}", Param: "/item/{{.Item.ID}}"}}
	data := func(id, title string) *tilecast.TemplateData {
		d := &tilecast.TemplateData{Feed: tilecast.FeedInfo{Name: "news", Title: "Daily News"}, Item: tilecast.Item{ID: id, Title: title}, NewCount: 1}
		d.Items = []tilecast.Item{d.Item}
		return d
	}
	long := strings.Repeat("Storm “watch” & more ", 400)
	for _, tc := range []struct {
		name    string
		render  func() ([]byte, error)
		wantTag string
		cut     bool // the body is cut to fit
	}{
		{"item 1", func() ([]byte, error) { return r.Toast(f, data("1", "Storm watch")) }, "tilecast:news:6b86b273ff34fce1", false},
		{"item 1 again", func() ([]byte, error) { return r.Toast(f, data("1", "Storm watch (updated)")) }, "tilecast:news:6b86b273ff34fce1", false},
		{"item 2", func() ([]byte, error) { return r.Toast(f, data("2", "Ferry")) }, "tilecast:news:d4735e3a265e16ee", false},
		{"summary", func() ([]byte, error) { return r.SummaryToast(f, data("1", "Storm watch"), 4) }, "tilecast:news", false},
		{"item too long", func() ([]byte, error) { return r.Toast(f, data("1", long)) }, "tilecast:news:6b86b273ff34fce1", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.render()
			if err != nil {
				t.Fatal(err)
			}
			m := checkPayload(t, b)
			if m["tag"] != tc.wantTag {
				t.Errorf("tag %v, want %s", m["tag"], tc.wantTag)
			}
			body, _ := m["body"].(string)
			if cut := strings.HasSuffix(body, notify.Ellipsis); cut != tc.cut {
				t.Errorf("body cut %v, want %v: %d bytes", cut, tc.cut, len(b))
			}
		})
	}
}
