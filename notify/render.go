package notify

import (
	"fmt"
	"strconv"
	"sync"

	"github.com/tilecast/tilecast"
)

// Renderer executes a feed's templates and encodes the result within the
// transport's limits. It implements tilecast.Renderer and is safe for
// concurrent use: compiled templates are cached per feed and replaced when
// the feed's specs change (a config reload).
type Renderer struct {
	enc  Encoder
	bufs bufPool

	mu    sync.RWMutex
	feeds map[string]*compiledFeed
}

var _ tilecast.Renderer = (*Renderer)(nil)

// NewRenderer returns a Renderer that encodes with enc.
func NewRenderer(enc Encoder) *Renderer {
	return &Renderer{enc: enc, feeds: make(map[string]*compiledFeed)}
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
func (r *Renderer) Toast(f *tilecast.Feed, d *tilecast.TemplateData) (tilecast.Request, error) {
	if f.Toast == nil {
		return tilecast.Request{}, fmt.Errorf("feed %s: toast: %w", f.Name, errNoSpec)
	}
	if d == nil {
		return tilecast.Request{}, fmt.Errorf("feed %s: toast: %w", f.Name, errNoData)
	}
	c, err := r.compiled(f)
	if err != nil {
		return tilecast.Request{}, err
	}
	var t Toast
	if t.Text1, err = c.text1.execWith(d, &r.bufs); err != nil {
		return tilecast.Request{}, fmt.Errorf("feed %s: %w", f.Name, err)
	}
	if t.Text2, err = c.text2.execWith(d, &r.bufs); err != nil {
		return tilecast.Request{}, fmt.Errorf("feed %s: %w", f.Name, err)
	}
	if t.Param, err = c.param.execWith(d, &r.bufs); err != nil {
		return tilecast.Request{}, fmt.Errorf("feed %s: %w", f.Name, err)
	}
	req, err := fitToast(r.enc, t)
	if err != nil {
		return req, fmt.Errorf("feed %s: %w", f.Name, err)
	}
	return req, nil
}

// SummaryToast renders the "N more in <feed>" toast: Text1 is the feed's
// title (its name when it has none), Text2 the count, and there is no Param,
// so a tap opens the app's start page.
func (r *Renderer) SummaryToast(f *tilecast.Feed, d *tilecast.TemplateData, more int) (tilecast.Request, error) {
	title := f.Name
	if d != nil && d.Feed.Title != "" {
		title = d.Feed.Title
	}
	t := Toast{Text1: title, Text2: strconv.Itoa(more) + " more in " + title}
	req, err := fitToast(r.enc, t)
	if err != nil {
		return req, fmt.Errorf("feed %s: summary toast: %w", f.Name, err)
	}
	return req, nil
}

// Tile renders f's tile for d. Empty template output leaves an element out;
// the count is trimmed, clamped to 0–99 and left out when not an integer.
func (r *Renderer) Tile(f *tilecast.Feed, d *tilecast.TemplateData) (tilecast.Request, error) {
	if f.Tile == nil {
		return tilecast.Request{}, fmt.Errorf("feed %s: tile: %w", f.Name, errNoSpec)
	}
	if d == nil {
		return tilecast.Request{}, fmt.Errorf("feed %s: tile: %w", f.Name, errNoData)
	}
	c, err := r.compiled(f)
	if err != nil {
		return tilecast.Request{}, err
	}
	t := Tile{Template: f.Tile.Template}
	if t.ID, err = c.id.execWith(d, &r.bufs); err != nil {
		return tilecast.Request{}, fmt.Errorf("feed %s: %w", f.Name, err)
	}
	for i, ft := range c.tile {
		if ft == nil {
			continue
		}
		v, err := ft.execWith(d, &r.bufs)
		if err != nil {
			return tilecast.Request{}, fmt.Errorf("feed %s: %w", f.Name, err)
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
		v, err := ft.execWith(d, &r.bufs)
		if err != nil {
			return tilecast.Request{}, fmt.Errorf("feed %s: %w", f.Name, err)
		}
		if v != "" {
			t.CycleImages[n] = Field{Value: v, State: Present}
			n++
		}
	}
	req, err := fitTile(r.enc, &t)
	if err != nil {
		return req, fmt.Errorf("feed %s: %w", f.Name, err)
	}
	return req, nil
}
