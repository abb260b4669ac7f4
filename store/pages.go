package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/store/rules"
	bolt "go.etcd.io/bbolt"
)

// Paged listings (design.md §11). Each page is one read transaction that
// seeks a bbolt cursor to the position after the previous page and reads
// at most limit records plus the key of the next one (to know whether a
// next page exists): memory per call is one page, whatever the size of
// the bucket. The read transaction ends before the caller writes anything
// to a client, so a slow client never holds one open (a long read
// transaction would stall the writer when the file grows).
//
// Order is key order, which is what makes a cursor stable while others
// write: a record inserted behind the cursor is not seen, one inserted
// ahead of it is, and no record that existed when the listing started is
// returned twice or skipped (a deleted one is simply gone).
//
//	ChannelsPage     channels by ID (random hex, so in no meaningful order)
//	OutcomesPage     ledger entries by channel ID, then oldest first
//	DeadLettersPage  dead letters newest first (by sequence, descending)
//
// The cursors are rules.EncodeCursor's, with the keys described there,
// which are these buckets' keys.

// Cursor kinds (rules.CursorChannels …).
const (
	cursorChannels = rules.CursorChannels
	cursorOutcomes = rules.CursorOutcomes
	cursorDead     = rules.CursorDead
)

func encodeCursor(kind byte, key []byte) string { return rules.EncodeCursor(kind, key) }

func decodeCursor(cursor string, kind byte) ([]byte, error) { return rules.DecodeCursor(cursor, kind) }

// ChannelsPage returns up to limit channels (tilecast.PageLimit) in ID
// order after cursor ("" = from the start), and the cursor of the next
// page ("" when this page is the last). f.User narrows it to one user's
// channels through the user index.
func (db *DB) ChannelsPage(f tilecast.ChannelFilter, cursor string, limit int) ([]tilecast.Channel, string, error) {
	limit = tilecast.PageLimit(limit)
	after, err := decodeCursor(cursor, cursorChannels)
	if err != nil {
		return nil, "", err
	}
	if after != nil {
		if err := rules.ChannelPosition(after); err != nil {
			return nil, "", err
		}
	}
	if strings.IndexByte(f.User, 0) >= 0 {
		return nil, "", nil // no such user: index keys end the name with NUL
	}
	var out []tilecast.Channel
	next := ""
	err = db.view(func(b *buckets) error {
		idx, p := b.channels, []byte(nil)
		if f.User != "" {
			idx, p = b.chanUser, prefix(f.User)
		}
		c := idx.Cursor()
		seek := append(bytes.Clone(p), after...)
		k, v := c.Seek(seek)
		if after != nil && bytes.Equal(k, seek) {
			k, v = c.Next()
		}
		var last []byte
		for ; k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
			if len(out) == limit {
				next = encodeCursor(cursorChannels, last)
				return nil
			}
			id := k[len(p):]
			var ch tilecast.Channel
			if f.User == "" {
				var err error
				if ch, err = decodeChannel(v); err != nil {
					return fmt.Errorf("channel %s: %w", id, err)
				}
			} else {
				var ok bool
				var err error
				if ch, ok, err = b.getChannel(string(id)); err != nil {
					return err
				} else if !ok {
					continue // an index entry without its channel
				}
			}
			out = append(out, ch)
			last = id
		}
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("list channels: %w", err)
	}
	return out, next, nil
}

// OutcomesPage returns up to limit ledger entries (tilecast.PageLimit)
// after cursor ("" = from the start) that pass f, ordered by channel ID
// and then oldest first, and the cursor of the next page ("" when this
// page is the last). With f.Channel only that channel's ledger is read,
// and a cursor from another channel's listing is ErrBadCursor; entries
// before f.Since are skipped by seeking past them, channel by channel.
func (db *DB) OutcomesPage(f tilecast.OutcomeFilter, cursor string, limit int) ([]tilecast.Outcome, string, error) {
	limit = tilecast.PageLimit(limit)
	after, err := decodeCursor(cursor, cursorOutcomes)
	if err != nil {
		return nil, "", err
	}
	var p []byte
	if f.Channel != "" {
		if strings.IndexByte(f.Channel, 0) >= 0 {
			return nil, "", nil // no such channel
		}
		p = prefix(f.Channel)
	}
	if after != nil {
		if _, _, _, err := rules.LedgerPosition(after); err != nil {
			return nil, "", err
		}
		if p != nil && !bytes.HasPrefix(after, p) {
			return nil, "", fmt.Errorf("%w: it belongs to another channel's listing", tilecast.ErrBadCursor)
		}
	}
	from := timeNanos(f.Since)
	// sinceKey is where channel key prefix q's entries from f.Since start.
	sinceKey := func(q []byte) []byte {
		return binary.BigEndian.AppendUint64(append(make([]byte, 0, len(q)+16), q...), from)
	}
	var out []tilecast.Outcome
	next := ""
	err = db.view(func(b *buckets) error {
		c := b.ledger.Cursor()
		var k, v []byte
		switch {
		case after != nil:
			if k, v = c.Seek(after); bytes.Equal(k, after) {
				k, v = c.Next()
			}
		case p != nil:
			k, v = c.Seek(sinceKey(p))
		default:
			k, v = c.First()
		}
		var last []byte
		for k != nil && bytes.HasPrefix(k, p) {
			i := bytes.IndexByte(k, 0)
			if i < 0 || len(k) != i+17 {
				k, v = c.Next() // not a ledger key: PruneLedger drops it
				continue
			}
			if binary.BigEndian.Uint64(k[i+1:]) < from {
				// The rest of this channel's entries before Since are
				// older still: jump to its first one at Since.
				k, v = c.Seek(sinceKey(k[:i+1]))
				continue
			}
			o, err := decodeOutcome(v)
			if err != nil {
				return fmt.Errorf("ledger entry: %w", err)
			}
			if f.Feed == "" || o.Feed == f.Feed {
				if len(out) == limit {
					next = encodeCursor(cursorOutcomes, last)
					return nil
				}
				out = append(out, o)
				last = k
			}
			k, v = c.Next()
		}
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("outcomes: %w", err)
	}
	return out, next, nil
}

// DeadLettersPage returns up to limit dead letters (tilecast.PageLimit)
// older than cursor ("" = from the newest), newest first, and the cursor
// of the next page ("" when this page is the last).
func (db *DB) DeadLettersPage(cursor string, limit int) ([]DeadLetter, string, error) {
	limit = tilecast.PageLimit(limit)
	after, err := decodeCursor(cursor, cursorDead)
	if err != nil {
		return nil, "", err
	}
	if after != nil && len(after) != 8 {
		return nil, "", fmt.Errorf("%w: not a dead letter position", tilecast.ErrBadCursor)
	}
	var out []DeadLetter
	next := ""
	err = db.viewBucket(bucketDead, func(bk *bolt.Bucket) error {
		c := bk.Cursor()
		var k, v []byte
		if after == nil {
			k, v = c.Last()
		} else if k, _ = c.Seek(after); k == nil {
			k, v = c.Last() // every key is before the cursor
		} else {
			k, v = c.Prev() // the first key before it (Seek found one at or after it)
		}
		var last []byte
		for ; k != nil; k, v = c.Prev() {
			if len(out) == limit {
				next = encodeCursor(cursorDead, last)
				return nil
			}
			d, err := decodeDeadLetter(v)
			if err != nil {
				return fmt.Errorf("dead letter %x: %w", k, err)
			}
			out = append(out, d)
			last = k
		}
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("dead letters: %w", err)
	}
	return out, next, nil
}
