package notify

import (
	"errors"
	"fmt"

	"github.com/tilecast/tilecast"
)

// Preview executes f's templates for d into the payload model, the way the
// Renderer does before it encodes: the same template code, the same count
// clamping and the same removal of characters XML cannot carry. It is for
// showing a feed's current toast and tile (the dashboard); the text is not
// cut to a transport's payload limit, since no transport is involved.
//
// toast is nil when f has no toast or its toast failed, tile likewise; err
// joins the failures, each naming the feed and the part ("feed news: toast:
// ..."). A part whose output is empty fails with ErrEmpty, as it would when
// sent.
func Preview(f *tilecast.Feed, d *tilecast.TemplateData) (toast *Toast, tile *Tile, err error) {
	if d == nil {
		return nil, nil, fmt.Errorf("feed %s: preview: %w", f.Name, errNoData)
	}
	if f.Toast == nil && f.Tile == nil {
		return nil, nil, nil
	}
	c, err := compileFeed(f)
	if err != nil {
		return nil, nil, fmt.Errorf("feed %s: %w", f.Name, err)
	}
	var errs []error
	if f.Toast != nil {
		t, err := c.buildToast(d, nil)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("feed %s: %w", f.Name, err))
		case t.sanitize():
			errs = append(errs, fmt.Errorf("feed %s: toast: no text: %w", f.Name, ErrEmpty))
		default:
			toast = &t
		}
	}
	if f.Tile != nil {
		t := new(Tile)
		switch err := c.buildTile(t, d, nil); {
		case err != nil:
			errs = append(errs, fmt.Errorf("feed %s: %w", f.Name, err))
		case t.sanitize():
			errs = append(errs, fmt.Errorf("feed %s: tile: no fields: %w", f.Name, ErrEmpty))
		default:
			tile = t
		}
	}
	return toast, tile, errors.Join(errs...)
}
