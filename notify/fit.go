package notify

import (
	"fmt"

	"github.com/tilecast/tilecast"
)

// TileTextEncoder is implemented by an encoder that writes only some of a
// tile's text fields (WNS maps the MPNS-shaped model onto adaptive tiles):
// TileTexts returns pointers to the present text fields of t that its
// EncodeTile writes, so that Fit cuts those and not fields that never
// reach the body (cutting those would not shrink it). Without it, Fit cuts
// every present text field.
type TileTextEncoder interface {
	TileTexts(t *Tile) []*string
}

// maxFitRounds bounds the truncate-and-re-encode loop. One round suffices
// when the encoder escapes as xmlLen assumes; the rest are a safety margin.
const maxFitRounds = 8

// Fit applies the text limits to p and encodes it with enc into the
// payload bytes (tilecast.Notification.Payload): characters XML
// forbids are removed from every field, and while the body is over the
// encoder's limit the longest text fields are cut (on a rune boundary, with
// "…"). URLs, the tile id, the count and colours are never altered; a
// payload that cannot fit is an error wrapping tilecast.ErrPayloadTooLarge.
// Raw payloads are opaque: they are sent unchanged or refused. A Badge
// needs an encoder that is also a BadgeEncoder; its count is clamped to
// 0–99.
func Fit(enc Encoder, p Payload) ([]byte, error) {
	switch p := p.(type) {
	case Toast:
		return fitToast(enc, p)
	case *Toast:
		return fitToast(enc, *p)
	case Tile:
		return fitTile(enc, &p)
	case *Tile:
		t := *p
		return fitTile(enc, &t)
	case Raw:
		return fitRaw(enc, p)
	case *Raw:
		return fitRaw(enc, *p)
	case Badge:
		return fitBadge(enc, p)
	case *Badge:
		return fitBadge(enc, *p)
	}
	return nil, fmt.Errorf("fit: unknown payload type %T", p)
}

func fitRaw(enc Encoder, r Raw) ([]byte, error) {
	if len(r.Payload) > enc.MaxRaw() {
		return nil, fmt.Errorf("raw payload of %d bytes, limit %d: %w",
			len(r.Payload), enc.MaxRaw(), tilecast.ErrPayloadTooLarge)
	}
	return enc.EncodeRaw(r)
}

// sanitize removes what XML cannot carry from every field and reports
// whether no text is left (the toast would be ErrEmpty).
func (t *Toast) sanitize() (empty bool) {
	t.Text1 = Sanitize(t.Text1)
	t.Text2 = Sanitize(t.Text2)
	t.Param = Sanitize(t.Param)
	return t.Text1 == "" && t.Text2 == ""
}

func fitToast(enc Encoder, t Toast) ([]byte, error) {
	if t.sanitize() {
		return nil, fmt.Errorf("toast: no text: %w", ErrEmpty)
	}
	limit := enc.MaxTyped()
	for round := 0; ; round++ {
		body, err := enc.EncodeToast(t)
		if err != nil {
			return nil, err
		}
		if len(body) <= limit {
			return body, nil
		}
		texts := [...]*string{&t.Text1, &t.Text2}
		if round == maxFitRounds || !shrink(texts[:], len(body)-limit) {
			return nil, fmt.Errorf("toast of %d bytes, limit %d: %w",
				len(body), limit, tilecast.ErrPayloadTooLarge)
		}
	}
}

// sanitize removes what XML cannot carry from every field and reports
// whether nothing is left to send (the tile would be ErrEmpty).
func (t *Tile) sanitize() (empty bool) {
	t.ID = Sanitize(t.ID)
	empty = t.ID == ""
	for i := range tileFields {
		f := t.field(i)
		f.Value = Sanitize(f.Value)
		empty = empty && f.State == Absent
	}
	for i := range t.CycleImages {
		f := &t.CycleImages[i]
		f.Value = Sanitize(f.Value)
		empty = empty && f.State == Absent
	}
	return empty
}

func fitTile(enc Encoder, t *Tile) ([]byte, error) {
	if t.sanitize() {
		return nil, fmt.Errorf("tile: no fields: %w", ErrEmpty)
	}
	limit := enc.MaxTyped()
	for round := 0; ; round++ {
		body, err := enc.EncodeTile(*t)
		if err != nil {
			return nil, err
		}
		if len(body) <= limit {
			return body, nil
		}
		var texts []*string
		if te, ok := enc.(TileTextEncoder); ok {
			texts = te.TileTexts(t)
		} else {
			for i := range tileFields {
				if f := t.field(i); tileFields[i].text && f.State == Present {
					texts = append(texts, &f.Value)
				}
			}
		}
		if round == maxFitRounds || !shrink(texts, len(body)-limit) {
			return nil, fmt.Errorf("tile of %d bytes, limit %d: %w",
				len(body), limit, tilecast.ErrPayloadTooLarge)
		}
	}
}

// shrink cuts the longest of the text fields so that their escaped length
// drops by at least excess bytes: it finds the highest cap C such that
// cutting every field longer than C down to C (ellipsis included) saves
// enough — the longest fields lose the most and short ones are untouched.
// It reports false when even cutting every field to a bare ellipsis would
// not save enough.
func shrink(texts []*string, excess int) bool {
	lens := make([]int, len(texts))
	max := 0
	for i, s := range texts {
		lens[i] = xmlLen(*s)
		if lens[i] > max {
			max = lens[i]
		}
	}
	saved := func(c int) int {
		n := 0
		for _, l := range lens {
			if l > c {
				n += l - c
			}
		}
		return n
	}
	minCap := len(Ellipsis)
	if saved(minCap) < excess {
		return false
	}
	// Highest C in [minCap, max] with saved(C) >= excess; saved falls as C grows.
	lo, hi := minCap, max
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if saved(mid) >= excess {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	for i, s := range texts {
		if lens[i] > lo {
			*s = cutEscaped(*s, lo)
		}
	}
	return true
}
