package notify

import (
	"fmt"
	"strconv"

	"github.com/tilecast/tilecast"
)

// Badge is a badge notification: the number an app's tile (WNS) or icon
// (Web Push) shows, sent on its own. MPNS has no badge notification; its
// tiles carry the count (Tile.Count) instead.
type Badge struct {
	// Count is the number shown, 1–99; 0 clears the badge. Fit clamps
	// anything outside 0–99, as the tile count is clamped.
	Count int
}

// Kind implements Payload.
func (Badge) Kind() tilecast.Kind { return tilecast.KindBadge }

// BadgeEncoder is implemented by the encoders of transports that have badge
// notifications. It is separate from Encoder so that a transport without
// badges (MPNS) need not pretend to have them: Fit refuses a Badge for it.
type BadgeEncoder interface {
	EncodeBadge(Badge) ([]byte, error)
}

// BadgeOf returns the badge a tile's count asks for, for the transports
// that send the count as a badge notification of its own: ok is false when
// the tile leaves the count out (the badge is then left as it is). A
// cleared count, like a count of 0, clears the badge.
func BadgeOf(t *Tile) (b Badge, ok bool) {
	switch t.Count.State {
	case Absent:
		return Badge{}, false
	case Cleared:
		return Badge{}, true
	}
	v, ok := parseCount(t.Count.Value)
	if !ok {
		return Badge{}, false
	}
	n, _ := strconv.Atoi(v) // parseCount yields 0–99
	return Badge{Count: n}, true
}

func fitBadge(enc Encoder, b Badge) ([]byte, error) {
	be, ok := enc.(BadgeEncoder)
	if !ok {
		return nil, fmt.Errorf("badge: the %T transport has no badge notifications", enc)
	}
	b.Count = max(0, min(b.Count, 99))
	body, err := be.EncodeBadge(b)
	if err != nil {
		return nil, err
	}
	if len(body) > enc.MaxTyped() {
		return nil, fmt.Errorf("badge of %d bytes, limit %d: %w", len(body), enc.MaxTyped(), tilecast.ErrPayloadTooLarge)
	}
	return body, nil
}
