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

// TestRendererToastIconAndTag: a rendered toast carries its feed's icon
// (tilecast.Feed.WebPushIcon, which the config fills from [feed.webpush]
// or [push.webpush] icon), else the encoder's, and its item's tag (the
// same on every render, so a resend replaces the first on the device);
// the summary toast the feed's icon and tag, whichever item the template
// data's newest is. Texts too long for a push are cut, never the icon,
// the url or the tag.
func TestRendererToastIconAndTag(t *testing.T) {
	plain := webpush.NewRenderer(nil, notify.RendererOptions{})
	app := webpush.NewRenderer(&webpush.Encoder{Icon: "/icons/app.png"}, notify.RendererOptions{})
	feed := func(icon string) *tilecast.Feed {
		return &tilecast.Feed{Name: "news", WebPushIcon: icon,
			Toast: &tilecast.ToastSpec{Text1: "{{.Feed.Title}}", Text2: "{{.Item.Title}}", Param: "/item/{{.Item.ID}}"}}
	}
	data := func(id, title string) *tilecast.TemplateData {
		d := &tilecast.TemplateData{Feed: tilecast.FeedInfo{Name: "news", Title: "Daily News"}, Item: tilecast.Item{ID: id, Title: title}, NewCount: 1}
		d.Items = []tilecast.Item{d.Item}
		return d
	}
	const (
		tag1    = "tilecast:news:6b86b273ff34fce1" // printf 1 | sha256sum
		tag2    = "tilecast:news:d4735e3a265e16ee" // printf 2 | sha256sum
		feedTag = "tilecast:news"
		cdn     = "https://cdn.example.org/news-192.png"
	)
	long := strings.Repeat("Storm “watch” & more ", 400)
	longIcon := "https://cdn.example.org/" + strings.Repeat("i", 996) + ".png" // the longest the config allows
	for _, tc := range []struct {
		name      string
		render    func() ([]byte, error)
		icon, tag string
		cut       bool // the body is cut to fit
	}{
		{"no icon anywhere", func() ([]byte, error) { return plain.Toast(feed(""), data("1", "Storm watch")) }, "", tag1, false},
		{"feed's icon", func() ([]byte, error) { return plain.Toast(feed(cdn), data("1", "Storm watch")) }, cdn, tag1, false},
		{"encoder's icon", func() ([]byte, error) { return app.Toast(feed(""), data("1", "Storm watch")) }, "/icons/app.png", tag1, false},
		{"feed's icon wins", func() ([]byte, error) { return app.Toast(feed(cdn), data("1", "Storm watch")) }, cdn, tag1, false},
		{"same item again", func() ([]byte, error) { return plain.Toast(feed(cdn), data("1", "Storm watch (updated)")) }, cdn, tag1, false},
		{"another item", func() ([]byte, error) { return plain.Toast(feed(cdn), data("2", "Ferry")) }, cdn, tag2, false},
		{"summary", func() ([]byte, error) { return plain.SummaryToast(feed(cdn), data("1", "Storm watch"), 4) }, cdn, feedTag, false},
		{"summary, encoder's icon", func() ([]byte, error) { return app.SummaryToast(feed(""), data("1", "Storm watch"), 4) }, "/icons/app.png", feedTag, false},
		{"text too long", func() ([]byte, error) { return plain.Toast(feed(longIcon), data("1", long)) }, longIcon, tag1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.render()
			if err != nil {
				t.Fatal(err)
			}
			m := checkPayload(t, b) // at most MaxPlaintext bytes
			if icon, _ := m["icon"].(string); icon != tc.icon {
				t.Errorf("icon %q, want %q", icon, tc.icon)
			}
			if m["tag"] != tc.tag {
				t.Errorf("tag %v, want %s", m["tag"], tc.tag)
			}
			body, _ := m["body"].(string)
			if cut := strings.HasSuffix(body, notify.Ellipsis); cut != tc.cut {
				t.Errorf("body cut %v, want %v: %d bytes", cut, tc.cut, len(b))
			}
			url, _ := m["url"].(string)
			if want := map[string]string{tag1: "/item/1", tag2: "/item/2", feedTag: ""}[tc.tag]; url != want {
				t.Errorf("url %q, want %q", url, want)
			}
		})
	}
}
