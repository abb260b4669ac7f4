package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/tilecast/tilecast"
	bolt "go.etcd.io/bbolt"
)

// Running counts (tilecast.Counts) are records in the meta bucket:
//
//	counts             byte 1 + uvarint channels, outbox entries, dead
//	                   letters: the keys of those three buckets
//	broken 0x00 feed   byte 1 + uvarint broken global state (0 or 1),
//	                   uvarint broken per-user states of that feed name;
//	                   absent when both are 0
//
// A write function notes what it changes in buckets.delta; update and batch
// add it to the records in the same transaction when the function returns
// (saveCounts), so the counts commit, or roll back, with the change. Reading
// them (DB.Counts) is a Get and a short prefix scan of the meta bucket,
// whatever the size of the file: health checks and metrics scrapes never
// count keys. Schema 3 (migrations) counts once a file written without them.
//
// Where each count changes:
//
//	channels   addChannel (new channel: AddChannel, ImportChannels),
//	           removeChannel (RemoveChannel, two channels made one by a
//	           rotation or the schema 4 migration, Record's OpRemoveChannel)
//	outbox     enqueuer.add (Commit, Enqueue, FanOutStep) and the tile it
//	           replaces; removeEntry (Record, Due's stale entries, channel
//	           removal and takeOver via dropEntry); removeChannel's
//	           sweep of index keys left pointing at entries
//	dead       putDead (Record's OpDead)
//	broken     feedStateWritten (SaveFeedState, Commit)
const (
	countsKey    = "counts"
	brokenPrefix = "broken\x00"
	countsV1     = 1
)

// countDelta is what one write function changed in the counts.
type countDelta struct {
	channels, outbox, dead int
	broken                 map[string]tilecast.BrokenStates // by feed name; may be negative
}

// putDead stores a dead letter, counting it when its key is new.
func (b *buckets) putDead(k, v []byte) error {
	if b.dead.Get(k) == nil {
		b.delta.dead++
	}
	return b.dead.Put(k, v)
}

// feedStateWritten notes that the state at feed key fk, stored as old (nil:
// none), is about to be replaced by one whose Broken is broken.
func (b *buckets) feedStateWritten(fk, old []byte, broken bool) {
	was := old != nil && stateBroken(old)
	if was == broken {
		return
	}
	d := 1
	if was {
		d = -1
	}
	k := parseFeedKey(fk)
	if b.delta.broken == nil {
		b.delta.broken = map[string]tilecast.BrokenStates{}
	}
	s := b.delta.broken[k.Feed]
	if k.User == "" {
		s.Global += d
	} else {
		s.Users += d
	}
	b.delta.broken[k.Feed] = s
}

// stateBroken reports whether the feed state record v is broken. A record
// that cannot be decoded counts as not broken, both when it is replaced and
// when the counts are rebuilt, so the counts stay consistent.
func stateBroken(v []byte) bool {
	st, err := decodeFeedState(v)
	return err == nil && st.Broken
}

// saveCounts adds the transaction's delta to the count records. A counts
// record that is missing or unreadable (written by hand) is rebuilt by a
// scan instead, which already includes the delta.
func (b *buckets) saveCounts() error {
	d := &b.delta
	if d.channels == 0 && d.outbox == 0 && d.dead == 0 && len(d.broken) == 0 {
		return nil
	}
	defer func() { *d = countDelta{} }()
	c, err := decodeTotals(b.meta.Get([]byte(countsKey)))
	if err != nil {
		c, err := scanCounts(b)
		if err != nil {
			return err
		}
		return putCounts(b.meta, &c)
	}
	c.Channels = addCount(c.Channels, d.channels)
	c.OutboxDepth = addCount(c.OutboxDepth, d.outbox)
	c.DeadLetters = addCount(c.DeadLetters, d.dead)
	if err := b.meta.Put([]byte(countsKey), encodeTotals(&c)); err != nil {
		return fmt.Errorf("save counts: %w", err)
	}
	for feed, delta := range d.broken {
		k := brokenKey(feed)
		s, _ := decodeBroken(b.meta.Get(k)) // unreadable: start from 0
		s.Global = addCount(s.Global, delta.Global)
		s.Users = addCount(s.Users, delta.Users)
		if err := putBroken(b.meta, k, s); err != nil {
			return err
		}
	}
	return nil
}

// addCount is n + d, never below 0: a count cannot be negative, and a
// write must not fail over one.
func addCount(n, d int) int { return max(n+d, 0) }

// scanCounts counts by reading every channel, outbox entry, dead letter
// and feed state: on the upgrade to schema 3 only (and when the records
// were removed by hand).
func scanCounts(b *buckets) (tilecast.Counts, error) { return scanCountsWith(b, stateBroken) }

func scanCountsWith(b *buckets, broken func([]byte) bool) (tilecast.Counts, error) {
	c := tilecast.Counts{
		Channels:    countKeys(b.channels),
		OutboxDepth: countKeys(b.outbox),
		DeadLetters: countKeys(b.dead),
	}
	err := b.feedState.ForEach(func(k, v []byte) error {
		if !broken(v) {
			return nil
		}
		fk := parseFeedKey(k)
		if c.Broken == nil {
			c.Broken = map[string]tilecast.BrokenStates{}
		}
		s := c.Broken[fk.Feed]
		if fk.User == "" {
			s.Global++
		} else {
			s.Users++
		}
		c.Broken[fk.Feed] = s
		return nil
	})
	return c, err
}

// putCounts replaces every count record with c.
func putCounts(meta *bolt.Bucket, c *tilecast.Counts) error {
	var old [][]byte
	cur := meta.Cursor()
	for k, _ := cur.Seek([]byte(brokenPrefix)); k != nil && bytes.HasPrefix(k, []byte(brokenPrefix)); k, _ = cur.Next() {
		old = append(old, bytes.Clone(k))
	}
	if err := deleteKeys(meta, old); err != nil {
		return fmt.Errorf("save counts: %w", err)
	}
	if err := meta.Put([]byte(countsKey), encodeTotals(c)); err != nil {
		return fmt.Errorf("save counts: %w", err)
	}
	for feed, s := range c.Broken {
		if err := putBroken(meta, brokenKey(feed), s); err != nil {
			return err
		}
	}
	return nil
}

// recount rebuilds the count records from a scan; tx must be writable.
func recount(tx *bolt.Tx) (tilecast.Counts, error) { return recountWith(tx, stateBroken) }

// recountWith is recount with broken telling a broken feed state: the
// migrations count files whose feed states are still in older forms.
func recountWith(tx *bolt.Tx, broken func([]byte) bool) (tilecast.Counts, error) {
	b, err := bucketsOf(tx)
	if err != nil {
		return tilecast.Counts{}, err
	}
	c, err := scanCountsWith(b, broken)
	if err != nil {
		return c, err
	}
	return c, putCounts(b.meta, &c)
}

func brokenKey(feed string) []byte { return []byte(brokenPrefix + feed) }

func putBroken(meta *bolt.Bucket, k []byte, s tilecast.BrokenStates) error {
	var err error
	if s.Global == 0 && s.Users == 0 {
		err = meta.Delete(k)
	} else {
		v := []byte{countsV1}
		v = binary.AppendUvarint(v, uint64(s.Global))
		err = meta.Put(k, binary.AppendUvarint(v, uint64(s.Users)))
	}
	if err != nil {
		return fmt.Errorf("save broken count %q: %w", k[len(brokenPrefix):], err)
	}
	return nil
}

func encodeTotals(c *tilecast.Counts) []byte {
	v := make([]byte, 0, 1+3*binary.MaxVarintLen64)
	v = append(v, countsV1)
	v = binary.AppendUvarint(v, uint64(c.Channels))
	v = binary.AppendUvarint(v, uint64(c.OutboxDepth))
	return binary.AppendUvarint(v, uint64(c.DeadLetters))
}

var errNoCounts = errors.New("no counts record")

// decodeTotals reads the counts record; Broken stays nil.
func decodeTotals(v []byte) (tilecast.Counts, error) {
	if v == nil {
		return tilecast.Counts{}, errNoCounts
	}
	r := countReader{v: v}
	c := tilecast.Counts{Channels: r.next(), OutboxDepth: r.next(), DeadLetters: r.next()}
	if err := r.done(); err != nil {
		return tilecast.Counts{}, fmt.Errorf("counts record: %w", err)
	}
	return c, nil
}

func decodeBroken(v []byte) (tilecast.BrokenStates, error) {
	if v == nil {
		return tilecast.BrokenStates{}, nil
	}
	r := countReader{v: v}
	s := tilecast.BrokenStates{Global: r.next(), Users: r.next()}
	if err := r.done(); err != nil {
		return tilecast.BrokenStates{}, fmt.Errorf("broken count: %w", err)
	}
	return s, nil
}

// countReader reads a count record: version byte, then uvarints.
type countReader struct {
	v   []byte
	off int
	err error
}

func (r *countReader) next() int {
	if r.err != nil {
		return 0
	}
	if r.off == 0 {
		if len(r.v) == 0 || r.v[0] != countsV1 {
			r.err = fmt.Errorf("unknown version in %x", r.v)
			return 0
		}
		r.off = 1
	}
	n, l := binary.Uvarint(r.v[r.off:])
	if l <= 0 || n > 1<<62 {
		r.err = fmt.Errorf("bad count at byte %d of %x", r.off, r.v)
		return 0
	}
	r.off += l
	return int(n)
}

func (r *countReader) done() error {
	if r.err == nil && r.off != len(r.v) {
		r.err = fmt.Errorf("trailing bytes in %x", r.v)
	}
	return r.err
}

// Counts returns the running counts: channels, outbox depth, dead letters
// and broken feed states. It reads the count records, not the data they
// count, so it costs the same for any size of file; /healthz, /metrics,
// the watchdog and status read it.
func (db *DB) Counts() (tilecast.Counts, error) {
	var c tilecast.Counts
	err := db.bolt.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket([]byte(bucketMeta))
		if meta == nil {
			return fmt.Errorf("%w: bucket %s is missing", ErrCorrupt, bucketMeta)
		}
		var err error
		if c, err = readCounts(meta); err != nil {
			// Only a file edited by hand gets here (Open rebuilds a
			// missing record): count instead.
			b, berr := bucketsOf(tx)
			if berr != nil {
				return berr
			}
			c, err = scanCounts(b)
		}
		return err
	})
	if err != nil {
		return tilecast.Counts{}, fmt.Errorf("counts: %w", err)
	}
	return c, nil
}

// readCounts reads every count record.
func readCounts(meta *bolt.Bucket) (tilecast.Counts, error) {
	c, err := decodeTotals(meta.Get([]byte(countsKey)))
	if err != nil {
		return c, err
	}
	cur := meta.Cursor()
	p := []byte(brokenPrefix)
	for k, v := cur.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = cur.Next() {
		s, err := decodeBroken(v)
		if err != nil {
			return tilecast.Counts{}, err
		}
		if c.Broken == nil {
			c.Broken = map[string]tilecast.BrokenStates{}
		}
		c.Broken[string(k[len(p):])] = s
	}
	return c, nil
}
