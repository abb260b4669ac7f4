package notify

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/tilecast/tilecast"
)

// Renderer executes a feed's templates and encodes the result within the
// transport's limits. It implements tilecast.Renderer and is safe for
// concurrent use: compiled templates are cached per feed and replaced when
// the feed's specs change (a config reload).
type Renderer struct {
	enc    Encoder
	encFor func(f *tilecast.Feed, exec Exec) (Encoder, error) // nil: enc for every feed
	bufs   bufPool
	images ImageChecker // nil: images are not checked

	mu    sync.RWMutex
	feeds map[string]*compiledFeed
}

var _ tilecast.Renderer = (*Renderer)(nil)

// ImageChecker vets a remote tile image (fetch.Client implements it): ok
// when the image may be sent, else reason says why not. Implementations
// cache their verdicts, because the Renderer asks on every tile it renders.
type ImageChecker interface {
	CheckImage(ctx context.Context, url string) (ok bool, reason string)
}

// RendererOptions configure a Renderer.
type RendererOptions struct {
	// Images checks the remote (http, https) image fields of tiles of
	// feeds with ImageCheck set (design.md §3 "Images"); a refused image is
	// replaced by the feed's FallbackImage, or left out when it has none.
	// nil sends image URLs unchecked.
	Images ImageChecker
	// EncoderFor, when set, returns the encoder of feed f's payloads in
	// place of the Renderer's own, for one render: a transport whose
	// payloads have per-feed options builds it from f (WNS: [feed.wns],
	// whose image fields are templates it executes with exec). An error
	// fails that render.
	EncoderFor func(f *tilecast.Feed, exec Exec) (Encoder, error)
}

// Exec executes a template source of the feed being rendered with the
// render's data; name labels it in errors ("wns.hero_image"). Sources are
// compiled once per feed. It is how a per-feed encoder (EncoderFor)
// renders a transport's own template fields.
type Exec func(name, src string) (string, error)

// NewRenderer returns a Renderer that encodes with enc. At most one
// RendererOptions may be given.
func NewRenderer(enc Encoder, opts ...RendererOptions) *Renderer {
	r := &Renderer{enc: enc, feeds: make(map[string]*compiledFeed)}
	for _, o := range opts {
		r.images = o.Images
		r.encFor = o.EncoderFor
	}
	return r
}

// encoder returns the encoder of f's payloads for d.
func (r *Renderer) encoder(f *tilecast.Feed, c *compiledFeed, d *tilecast.TemplateData) (Encoder, error) {
	if r.encFor == nil {
		return r.enc, nil
	}
	if d == nil {
		d = &tilecast.TemplateData{}
	}
	exec := func(name, src string) (string, error) {
		ft, err := c.extraField(name, src)
		if err != nil {
			return "", err
		}
		return ft.execWith(d, &r.bufs)
	}
	enc, err := r.encFor(f, exec)
	if err != nil {
		return nil, err
	}
	return enc, nil
}

// compiled returns f's compiled templates, compiling them on first use or
// when the specs differ from the cached ones. Lookups hold only a read lock
// and allocate nothing.
func (r *Renderer) compiled(f *tilecast.Feed) (*compiledFeed, error) {
	r.mu.RLock()
	c := r.feeds[f.Name]
	r.mu.RUnlock()
	if c != nil && c.matches(f) {
		return c, nil
	}
	c, err := compileFeed(f)
	if err != nil {
		return nil, fmt.Errorf("feed %s: %w", f.Name, err)
	}
	r.mu.Lock()
	r.feeds[f.Name] = c
	r.mu.Unlock()
	return c, nil
}

// Toast renders f's toast for d.
func (r *Renderer) Toast(f *tilecast.Feed, d *tilecast.TemplateData) ([]byte, error) {
	if f.Toast == nil {
		return nil, fmt.Errorf("feed %s: toast: %w", f.Name, errNoSpec)
	}
	if d == nil {
		return nil, fmt.Errorf("feed %s: toast: %w", f.Name, errNoData)
	}
	c, err := r.compiled(f)
	if err != nil {
		return nil, err
	}
	t, err := c.buildToast(d, &r.bufs)
	if err != nil {
		return nil, fmt.Errorf("feed %s: %w", f.Name, err)
	}
	t.Feed, t.ItemID = f.Name, d.Item.ID
	enc, err := r.encoder(f, c, d)
	if err != nil {
		return nil, fmt.Errorf("feed %s: %w", f.Name, err)
	}
	payload, err := fitToast(enc, t)
	if err != nil {
		return nil, fmt.Errorf("feed %s: %w", f.Name, err)
	}
	return payload, nil
}

// SummaryToast renders the "N more in <feed>" toast: Text1 is the feed's
// title (its name when it has none), Text2 the count, and there is no Param,
// so a tap opens the app's start page. It is about the feed, not an item
// (ItemID ""): d.Item is only the newest of the items it counts.
func (r *Renderer) SummaryToast(f *tilecast.Feed, d *tilecast.TemplateData, more int) ([]byte, error) {
	title := f.Name
	if d != nil && d.Feed.Title != "" {
		title = d.Feed.Title
	}
	t := Toast{Text1: title, Text2: strconv.Itoa(more) + " more in " + title, Feed: f.Name}
	enc := r.enc
	if r.encFor != nil {
		c, err := r.compiled(f)
		if err != nil {
			return nil, err
		}
		if enc, err = r.encoder(f, c, d); err != nil {
			return nil, fmt.Errorf("feed %s: summary toast: %w", f.Name, err)
		}
	}
	payload, err := fitToast(enc, t)
	if err != nil {
		return nil, fmt.Errorf("feed %s: summary toast: %w", f.Name, err)
	}
	return payload, nil
}

// Tile renders f's tile for d. Empty template output leaves an element out;
// the count is trimmed, clamped to 0–99 and left out when not an integer;
// remote images are checked when f.ImageCheck is set and the Renderer has
// an ImageChecker.
func (r *Renderer) Tile(f *tilecast.Feed, d *tilecast.TemplateData) ([]byte, error) {
	enc, t, err := r.tileModel(f, d)
	if err != nil {
		return nil, err
	}
	payload, err := fitTile(enc, &t)
	if err != nil {
		return nil, fmt.Errorf("feed %s: %w", f.Name, err)
	}
	return payload, nil
}

// tileModel executes f's tile templates for d and checks its images; it
// returns the model and the encoder to encode it with.
func (r *Renderer) tileModel(f *tilecast.Feed, d *tilecast.TemplateData) (Encoder, Tile, error) {
	var t Tile
	if f.Tile == nil {
		return nil, t, fmt.Errorf("feed %s: tile: %w", f.Name, errNoSpec)
	}
	if d == nil {
		return nil, t, fmt.Errorf("feed %s: tile: %w", f.Name, errNoData)
	}
	c, err := r.compiled(f)
	if err != nil {
		return nil, t, err
	}
	if err := c.buildTile(&t, d, &r.bufs); err != nil {
		return nil, t, fmt.Errorf("feed %s: %w", f.Name, err)
	}
	if r.images != nil && f.ImageCheck {
		r.checkImages(f, &t)
	}
	enc, err := r.encoder(f, c, d)
	if err != nil {
		return nil, t, fmt.Errorf("feed %s: %w", f.Name, err)
	}
	return enc, t, nil
}

// TileUpdate implements tilecast.Renderer: f's tile for d as the
// notifications it is on the encoder's transport. With an encoder that
// has badge notifications (BadgeEncoder: WNS, Web Push) the tile's count
// goes out as a badge of its own after the tile (BadgeOf; none when the
// count is left out), and a tile with nothing but a count is the badge
// alone; otherwise (MPNS) it is the one tile, count included.
func (r *Renderer) TileUpdate(f *tilecast.Feed, d *tilecast.TemplateData) ([]tilecast.Rendered, error) {
	enc, t, err := r.tileModel(f, d)
	if err != nil {
		return nil, err
	}
	var badge Badge
	hasBadge := false
	if _, ok := enc.(BadgeEncoder); ok {
		badge, hasBadge = BadgeOf(&t)
	}
	out := make([]tilecast.Rendered, 0, 2)
	body, err := fitTile(enc, &t)
	switch {
	case err == nil:
		out = append(out, tilecast.Rendered{Kind: tilecast.KindTile, Payload: body})
	case hasBadge && errors.Is(err, ErrEmpty):
		// Only a count: the badge says it all.
	default:
		return nil, fmt.Errorf("feed %s: %w", f.Name, err)
	}
	if hasBadge {
		b, err := fitBadge(enc, badge)
		if err != nil {
			return out, fmt.Errorf("feed %s: badge: %w", f.Name, err)
		}
		out = append(out, tilecast.Rendered{Kind: tilecast.KindBadge, Payload: b})
	}
	return out, nil
}

// buildToast executes the toast templates for d (the Renderer and Preview
// share it). pool may be nil.
func (c *compiledFeed) buildToast(d *tilecast.TemplateData, pool *bufPool) (Toast, error) {
	var t Toast
	var err error
	if t.Text1, err = c.text1.execWith(d, pool); err != nil {
		return Toast{}, err
	}
	if t.Text2, err = c.text2.execWith(d, pool); err != nil {
		return Toast{}, err
	}
	if t.Param, err = c.param.execWith(d, pool); err != nil {
		return Toast{}, err
	}
	return t, nil
}

// buildTile executes the tile templates for d into t (the Renderer and
// Preview share it). Empty output leaves an element out; the count is
// trimmed, clamped to 0–99 and left out when not an integer. pool may be nil.
func (c *compiledFeed) buildTile(t *Tile, d *tilecast.TemplateData, pool *bufPool) error {
	*t = Tile{Template: c.tileSpec.Template}
	var err error
	if t.ID, err = c.id.execWith(d, pool); err != nil {
		return err
	}
	for i, ft := range c.tile {
		if ft == nil {
			continue
		}
		v, err := ft.execWith(d, pool)
		if err != nil {
			return err
		}
		if i == countIndex {
			var ok bool
			if v, ok = parseCount(v); !ok {
				continue
			}
		}
		if v != "" {
			*t.field(i) = Field{Value: v, State: Present}
		}
	}
	// Images that render empty are skipped and the rest move up, so the
	// phone cycles through CycleImage1..n without gaps.
	n := 0
	for _, ft := range c.cycle {
		v, err := ft.execWith(d, pool)
		if err != nil {
			return err
		}
		if v != "" {
			t.CycleImages[n] = Field{Value: v, State: Present}
			n++
		}
	}
	return nil
}

// checkImages replaces every remote image of t that the checker refuses
// with f's fallback image, or leaves it out; refused cycle images close
// ranks so the phone cycles without gaps. The Renderer interface carries no
// context: the checker bounds each fetch with its own timeout.
func (r *Renderer) checkImages(f *tilecast.Feed, t *Tile) {
	check := func(fl *Field) {
		if fl.State != Present || !remoteURL(fl.Value) {
			return
		}
		if ok, _ := r.images.CheckImage(context.Background(), fl.Value); ok {
			return
		}
		if f.FallbackImage == "" {
			*fl = Field{}
			return
		}
		fl.Value = f.FallbackImage
	}
	for i := range tileFields {
		if strings.HasSuffix(tileFields[i].key, "_image") {
			check(t.field(i))
		}
	}
	n := 0
	for i := range t.CycleImages {
		check(&t.CycleImages[i])
		if t.CycleImages[i].State != Absent {
			t.CycleImages[n] = t.CycleImages[i]
			n++
		}
	}
	for ; n < len(t.CycleImages); n++ {
		t.CycleImages[n] = Field{}
	}
}

// remoteURL reports whether an image URL would be fetched by the phone from
// the network; isostore:, appdata: and relative URLs are local to the app.
func remoteURL(v string) bool {
	v = strings.ToLower(strings.TrimSpace(v))
	return strings.HasPrefix(v, "http://") || strings.HasPrefix(v, "https://")
}
