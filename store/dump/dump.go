// Package dump is the form in which `tilecast state copy` moves a whole
// state between stores (bbolt ↔ PostgreSQL): each store writes every
// record it keeps as an Item (its Export method), and reads Items back
// into an empty state (its Import method), so neither needs to know the
// other. An Item carries what the store keeps, not what its listings
// show: channels with their IDs, creation times, keys and counters; seen
// items by their stored key with their last-listed time; outbox entries
// with their IDs, payloads, attempts and times; the last tile of each
// channel and feed; jobs, dead letters and the ledger.
package dump

import (
	"fmt"
	"time"

	"github.com/tilecast/tilecast"
)

// Item is one record of a state: exactly one field is set. Export writes
// them kind by kind in Kinds' order (channels first: the others name
// them), the ledger in each channel's order.
type Item struct {
	Channel   *tilecast.Channel
	FeedState *FeedState
	Seen      *Seen
	Job       *tilecast.FanOutJob
	Entry     *tilecast.Notification // ID, Payload and every time as stored
	LastTile  *LastTile
	Dead      *tilecast.DeadLetter
	Outcome   *tilecast.Outcome // ChannelID set
}

// FeedState is a saved feed state.
type FeedState struct {
	Key   tilecast.FeedKey
	State tilecast.FeedState
}

// Seen is one item of a feed's seen set.
type Seen struct {
	Key    tilecast.FeedKey
	Item   []byte    // as stored: the ID, or the hash of a long one (rules.SeenKey)
	Listed time.Time // when the feed last listed it (whole seconds)
}

// LastTile is the SHA-256 of the last tile (or badge: Kind) delivered to a
// channel for a feed.
type LastTile struct {
	Channel string
	Feed    string
	Kind    tilecast.Kind // tilecast.KindTile or tilecast.KindBadge
	Sum     []byte
}

// Kinds of items, in the order Export writes them.
const (
	KindChannel   = "channels"
	KindFeedState = "feed states"
	KindSeen      = "seen items"
	KindJob       = "fan-out jobs"
	KindEntry     = "outbox entries"
	KindLastTile  = "last tiles"
	KindDead      = "dead letters"
	KindOutcome   = "ledger entries"
)

// Kinds lists the kinds in Export's order.
func Kinds() []string {
	return []string{KindChannel, KindFeedState, KindSeen, KindJob, KindEntry, KindLastTile, KindDead, KindOutcome}
}

// Kind names what it holds.
func (it *Item) Kind() string {
	switch {
	case it.Channel != nil:
		return KindChannel
	case it.FeedState != nil:
		return KindFeedState
	case it.Seen != nil:
		return KindSeen
	case it.Job != nil:
		return KindJob
	case it.Entry != nil:
		return KindEntry
	case it.LastTile != nil:
		return KindLastTile
	case it.Dead != nil:
		return KindDead
	case it.Outcome != nil:
		return KindOutcome
	}
	return ""
}

// Writer takes the items of a state, in Export's order, into an empty
// store; Close writes what it still holds. After an error the target is
// partly written: it is to be emptied before another copy.
type Writer interface {
	Write(it Item) error
	Close() error
}

// Tally counts items by kind.
type Tally map[string]int

// Add counts it.
func (t Tally) Add(it *Item) { t[it.Kind()]++ }

// Total is the number of items counted.
func (t Tally) Total() int {
	n := 0
	for _, c := range t {
		n += c
	}
	return n
}

// String lists the counts in Kinds' order ("channels 3, feed states 1, …").
func (t Tally) String() string {
	s := ""
	for _, k := range Kinds() {
		if s != "" {
			s += ", "
		}
		s += fmt.Sprintf("%s %d", k, t[k])
	}
	return s
}

// Diff lists the kinds whose counts differ ("" when none).
func (t Tally) Diff(o Tally) string {
	s := ""
	for _, k := range Kinds() {
		if t[k] != o[k] {
			if s != "" {
				s += ", "
			}
			s += fmt.Sprintf("%s %d ≠ %d", k, t[k], o[k])
		}
	}
	return s
}
