package webpush

import (
	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/notify"
)

// Renderer renders a feed's notifications for Web Push channels: the
// toasts and the tile of notify's Renderer with Encoder, except that one
// tile update is one push.
//
// notify's Renderer sends the count of a transport with badge
// notifications as a badge of its own after the tile (WNS needs that).
// Web Push does not: the worker's tile JSON carries the count, and both
// pushes would have the tile's Topic, so a push service holding them for
// a device that is offline would keep only the badge (the newer message
// of a Topic replaces the older) and the tile's content would be lost.
// So TileUpdate returns the tile alone, count included (a tile whose
// templates give nothing but a count is {"kind":"tile","count":N}, the
// badge's payload). It implements tilecast.Renderer and is safe for
// concurrent use.
type Renderer struct {
	r *notify.Renderer
}

var _ tilecast.Renderer = (*Renderer)(nil)

// NewRenderer returns the renderer of Web Push channels: enc (nil: an
// Encoder with no icon) with opts (image checks). A feed's toasts carry
// its own icon (tilecast.Feed.WebPushIcon, which the config loader fills
// from [feed.webpush] icon, else [push.webpush] icon), else enc's. The
// icon is read from the feed at each render, so a reload, which swaps
// the feeds, applies a new one. An opts.EncoderFor of the caller's own
// replaces that choice.
func NewRenderer(enc *Encoder, opts notify.RendererOptions) *Renderer {
	if enc == nil {
		enc = &Encoder{}
	}
	if opts.EncoderFor == nil {
		opts.EncoderFor = func(f *tilecast.Feed, _ notify.Exec) (notify.Encoder, error) {
			if f.WebPushIcon == "" || f.WebPushIcon == enc.Icon {
				return enc, nil
			}
			return &Encoder{Icon: f.WebPushIcon}, nil
		}
	}
	return &Renderer{r: notify.NewRenderer(enc, opts)}
}

// Toast implements tilecast.Renderer.
func (r *Renderer) Toast(f *tilecast.Feed, d *tilecast.TemplateData) ([]byte, error) {
	return r.r.Toast(f, d)
}

// SummaryToast implements tilecast.Renderer.
func (r *Renderer) SummaryToast(f *tilecast.Feed, d *tilecast.TemplateData, more int) ([]byte, error) {
	return r.r.SummaryToast(f, d, more)
}

// TileUpdate implements tilecast.Renderer: one push, the tile with its
// count (a lone badge only if notify's Renderer made no tile).
func (r *Renderer) TileUpdate(f *tilecast.Feed, d *tilecast.TemplateData) ([]tilecast.Rendered, error) {
	parts, err := r.r.TileUpdate(f, d)
	for i, p := range parts {
		if p.Kind == tilecast.KindTile {
			return parts[i : i+1], err
		}
	}
	return parts, err
}
