package wns

import (
	"fmt"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/notify"
)

// FeedOptions returns the encoder options of feed f's notifications: its
// [feed.wns] keys (audio, scenario, legacy), with the hero and app-logo
// image templates executed by exec for the notification being rendered.
// An image that renders empty, or to something a toast cannot show (see
// CheckImage; an item without an image, a relative link), is left out:
// a bad image costs the image, never the toast. A feed without [feed.wns]
// gets the defaults (ToastGeneric toasts, adaptive tiles, the default
// sound).
func FeedOptions(f *tilecast.Feed, exec notify.Exec) (EncoderOptions, error) {
	var o EncoderOptions
	s := f.WNS
	if s == nil {
		return o, nil
	}
	o.Legacy, o.Audio, o.Scenario = s.Legacy, s.Audio, s.Scenario
	for _, img := range []struct {
		name, src string
		dst       *string
	}{
		{"wns.hero_image", s.HeroImage, &o.HeroImage},
		{"wns.app_logo_image", s.AppLogoImage, &o.AppLogoImage},
	} {
		if img.src == "" {
			continue
		}
		v, err := exec(img.name, img.src)
		if err != nil {
			return o, err
		}
		v = notify.Sanitize(v)
		if v != "" && CheckImage(v) == nil {
			*img.dst = v
		}
	}
	if o.Legacy {
		o.HeroImage = "" // the config refuses it; a Windows 8 toast has none
	}
	return o, nil
}

// NewRenderer returns the Renderer of WNS channels: every feed's
// [feed.toast] and [feed.tile] through the one mapping of the README
// (ToastGeneric toasts, adaptive tiles, the tile's count as a badge
// notification; TileUpdate yields the tile and the badge), with each
// feed's [feed.wns] options (FeedOptions). opts.EncoderFor is set here.
func NewRenderer(opts notify.RendererOptions) *notify.Renderer {
	def := &Encoder{}
	opts.EncoderFor = func(f *tilecast.Feed, exec notify.Exec) (notify.Encoder, error) {
		if f.WNS == nil {
			return def, nil
		}
		o, err := FeedOptions(f, exec)
		if err != nil {
			return nil, err
		}
		enc, err := NewEncoder(o)
		if err != nil {
			return nil, fmt.Errorf("[feed.wns]: %w", err)
		}
		return enc, nil
	}
	return notify.NewRenderer(def, opts)
}
