package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/store/rules"
	bolt "go.etcd.io/bbolt"
)

// Bucket names (see doc.go for the layout of each).
const (
	bucketMeta          = "meta"
	bucketChannels      = "channels"
	bucketChannelURI    = "channel_uri"
	bucketChannelDevice = "channel_device"
	bucketChannelFeed   = "channel_feed"
	bucketChannelUser   = "channel_user"
	bucketFeedState     = "feedstate"
	bucketSeen          = "seen"
	bucketOutbox        = "outbox"
	// bucketOutboxID indexed sequence → outbox key until schema 2, which
	// drops it (Record.Due locates entries instead).
	bucketOutboxID      = "outbox_id"
	bucketOutboxChannel = "outbox_channel"
	bucketTileWaiting   = "tile_waiting"
	bucketTileLast      = "tile_last"
	bucketDead          = "dead"
	bucketLedger        = "ledger"
	// bucketBodies holds the requests outbox entries share (bodies.go).
	// Created by the first write that needs it, so it is not in
	// bucketNames (the first migration's list, which never changes).
	bucketBodies = "bodies"
	// bucketChannelExpiry lists the channels that expire, by expiry
	// (channels.go, expiry.go). Created by the schema 5 migration, so not
	// in bucketNames either.
	bucketChannelExpiry = "channel_expiry"
)

func bucketNames() []string {
	return []string{
		bucketMeta, bucketChannels, bucketChannelURI, bucketChannelDevice, bucketChannelFeed,
		bucketChannelUser, bucketFeedState, bucketSeen, bucketOutbox, bucketOutboxID,
		bucketOutboxChannel, bucketTileWaiting, bucketTileLast, bucketDead, bucketLedger,
	}
}

// buckets are the top-level buckets of one transaction.
type buckets struct {
	tx                                                *bolt.Tx
	meta                                              *bolt.Bucket
	channels, chanURI, chanDevice, chanFeed, chanUser *bolt.Bucket
	feedState, seen                                   *bolt.Bucket
	outbox, outboxChan                                *bolt.Bucket
	tileWaiting, tileLast, dead, ledger               *bolt.Bucket
	bodies                                            *bolt.Bucket // nil until the first payload is stored
	// chanExpiry is nil only while a migration before schema 5 runs (the
	// schema 5 step builds it from the channels, see expiry.go); bucketsOf
	// refuses a file of schema 5 or later without it.
	chanExpiry *bolt.Bucket

	refs *payloadRefs // payload reference changes waiting for applyRefs; nil: apply at once

	delta countDelta // changes to the running counts, saved by update and batch (counts.go)

	rotations []rules.Rotation // device channels rotated in this transaction, logged after it commits
	scratch   []byte           // where putChannel encodes
}

// get is bk.Get(key).
func (b *buckets) get(bk *bolt.Bucket, key []byte) []byte { return bk.Get(key) }

// del is bk.Delete(key); a missing key is no error.
func (b *buckets) del(bk *bolt.Bucket, key []byte) error { return bk.Delete(key) }

func bucketsOf(tx *bolt.Tx) (*buckets, error) {
	b := &buckets{tx: tx}
	for _, x := range []struct {
		name string
		dst  **bolt.Bucket
	}{
		{bucketMeta, &b.meta}, {bucketChannels, &b.channels}, {bucketChannelURI, &b.chanURI},
		{bucketChannelDevice, &b.chanDevice}, {bucketChannelFeed, &b.chanFeed},
		{bucketChannelUser, &b.chanUser}, {bucketFeedState, &b.feedState},
		{bucketSeen, &b.seen}, {bucketOutbox, &b.outbox},
		{bucketOutboxChannel, &b.outboxChan}, {bucketTileWaiting, &b.tileWaiting},
		{bucketTileLast, &b.tileLast}, {bucketDead, &b.dead}, {bucketLedger, &b.ledger},
	} {
		*x.dst = tx.Bucket([]byte(x.name))
		if *x.dst == nil {
			return nil, fmt.Errorf("%w: bucket %s is missing", ErrCorrupt, x.name)
		}
	}
	b.bodies = tx.Bucket([]byte(bucketBodies))
	if b.chanExpiry = tx.Bucket([]byte(bucketChannelExpiry)); b.chanExpiry == nil {
		// Expected only before the schema 5 step ran; after it, a write
		// without the index would leave the sweep blind to a channel.
		if v, err := schemaOf(tx); err != nil || v >= schemaExpiryIndex {
			return nil, fmt.Errorf("%w: bucket %s is missing", ErrCorrupt, bucketChannelExpiry)
		}
	}
	if tx.Writable() {
		// Outbox and ledger keys grow mostly in order (time, then sequence):
		// fuller pages on split mean fewer pages to write.
		b.outbox.FillPercent = 0.9
		b.dead.FillPercent = 0.9
	}
	return b, nil
}

// join returns a + 0x00 + b. The parts that come first (feed names, user
// names, channel IDs) never contain NUL, so the split is unambiguous.
func join(a string, b []byte) []byte {
	k := make([]byte, 0, len(a)+1+len(b))
	k = append(k, a...)
	k = append(k, 0)
	return append(k, b...)
}

func joinStr(a, b string) []byte {
	k := make([]byte, 0, len(a)+1+len(b))
	k = append(k, a...)
	k = append(k, 0)
	return append(k, b...)
}

// stateKey returns the tile_waiting and tile_last key of n — what a newer
// notification of the same state replaces, and what an unchanged one is
// compared with — and false for kinds that are events, not state (toast,
// raw). A tile's key is channel + feed, as it always was; a badge's is
// channel + feed + "badge", beside it (a channel's keys still share the
// channel's prefix, so removing a channel finds both).
func stateKey(n *tilecast.Notification) ([]byte, bool) {
	switch n.Kind {
	case tilecast.KindTile:
		return joinStr(n.ChannelID, n.Feed), true
	case tilecast.KindBadge:
		return join(n.ChannelID, joinStr(n.Feed, string(tilecast.KindBadge))), true
	}
	return nil, false
}

// prefix returns a + 0x00 for prefix scans.
func prefix(a string) []byte { return joinStr(a, "") }

// scanPrefix returns copies of every key starting with p. Keys are collected
// before the caller deletes any, because deleting under a live cursor can
// skip the next key (bbolt PR #611, reliability.md S8).
func scanPrefix(b *bolt.Bucket, p []byte) [][]byte {
	var keys [][]byte
	c := b.Cursor()
	for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
		keys = append(keys, bytes.Clone(k))
	}
	return keys
}

// countKeys counts bk's keys by reading all of them.
func countKeys(bk *bolt.Bucket) int {
	n := 0
	c := bk.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		n++
	}
	return n
}

func deleteKeys(b *bolt.Bucket, keys [][]byte) error {
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// timeNanos is t as unsigned Unix nanoseconds for keys, clamped to what
// UnixNano can represent (1970 … 2262).
func timeNanos(t time.Time) uint64 {
	if t.IsZero() || t.Unix() < 0 {
		return 0
	}
	if t.Unix() >= math.MaxInt64/int64(time.Second) {
		return math.MaxInt64
	}
	return uint64(t.UnixNano())
}

func nanosTime(n uint64) time.Time { return time.Unix(0, int64(n)).UTC() }

const outboxKeyLen = 16

// outboxKey is NextAttempt (8-byte BE Unix nanoseconds) + sequence, so a
// cursor from the start visits entries in due order.
func outboxKey(dst []byte, t time.Time, seq uint64) []byte {
	dst = binary.BigEndian.AppendUint64(dst, timeNanos(t))
	return binary.BigEndian.AppendUint64(dst, seq)
}

func outboxKeySeq(k []byte) uint64  { return binary.BigEndian.Uint64(k[8:16]) }
func outboxKeyTime(k []byte) uint64 { return binary.BigEndian.Uint64(k[:8]) }

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(make([]byte, 0, 8), seq) }

// seenKey is item ID id's key in a seen set (rules.SeenKey).
func seenKey(id string) []byte { return rules.SeenKey(id) }

// feedKey is Feed for a global feed, Feed + 0x00 + User for a per-user copy.
func feedKey(k tilecast.FeedKey) ([]byte, error) {
	if k.Feed == "" {
		return nil, fmt.Errorf("feed key %q: feed name is empty", k.String())
	}
	if k.User == "" {
		return []byte(k.Feed), nil
	}
	return joinStr(k.Feed, k.User), nil
}

func parseFeedKey(k []byte) tilecast.FeedKey {
	if i := bytes.IndexByte(k, 0); i >= 0 {
		return tilecast.FeedKey{Feed: string(k[:i]), User: string(k[i+1:])}
	}
	return tilecast.FeedKey{Feed: string(k)}
}

// arena hands out byte slices carved from larger blocks. bbolt keeps the
// key and value slices given to Put until the transaction ends, so each Put
// needs its own memory; carving it from blocks saves an allocation per entry
// when a fan-out enqueues 100k notifications. Blocks start small and
// double up to arenaMaxBlock: a transaction that records a batch of a few
// dozen outcomes needs a few KiB, and a fixed 64 KiB block per transaction
// was most of what the recorder allocated.
type arena struct {
	buf     []byte
	scratch []byte // where records are encoded before they are copied into buf
}

const (
	arenaMinBlock = 4 << 10
	arenaMaxBlock = 64 << 10
)

func (a *arena) take(n int) []byte {
	if cap(a.buf)-len(a.buf) < n {
		block := min(max(2*cap(a.buf), arenaMinBlock), arenaMaxBlock)
		a.buf = make([]byte, 0, max(n, block))
	}
	l := len(a.buf)
	a.buf = a.buf[:l+n]
	return a.buf[l : l+n : l+n]
}
