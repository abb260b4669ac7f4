package tilecast

import (
	"errors"
	"time"
)

// Listings that can grow with the number of channels (channels, the
// delivery ledger, dead letters) are read a page at a time (design.md §11):
// a store reads only the page asked for, from an opaque cursor, so a
// request costs the same memory whether the state holds a hundred channels
// or a hundred thousand.
const (
	// DefaultPageLimit is the page size when none is asked for.
	DefaultPageLimit = 100
	// MaxPageLimit is the largest page a store hands out.
	MaxPageLimit = 1000
)

// ErrBadCursor marks a listing cursor the store did not hand out for that
// listing: garbled, cut short, changed, or taken from another listing.
// The API answers it with 400.
var ErrBadCursor = errors.New("bad cursor")

// ChannelFilter narrows a channel listing.
type ChannelFilter struct {
	User string // "" = every user's channels
}

// OutcomeFilter narrows a delivery ledger listing.
type OutcomeFilter struct {
	Channel string    // "" = every channel's ledger
	Feed    string    // "" = every feed
	Since   time.Time // entries at or after it; zero = all
}

// PageLimit returns limit as a store uses it: DefaultPageLimit for ≤ 0,
// at most MaxPageLimit.
func PageLimit(limit int) int {
	if limit <= 0 {
		return DefaultPageLimit
	}
	return min(limit, MaxPageLimit)
}
