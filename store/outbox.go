package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/store/rules"
)

// Ledger limits (design.md §7, rules.LedgerRetention).
const (
	LedgerRetention  = rules.LedgerRetention
	LedgerPerChannel = rules.LedgerPerChannel
)

// enqueuer adds notifications inside one write transaction.
//
// bbolt splits nodes only when the transaction commits, so many puts at
// random positions of one node cost a memmove each, quadratic in the batch:
// a 100k fan-out into a fresh index took minutes. The outbox and outbox_id
// keys grow in order anyway; the by-channel and waiting-tile index entries
// are collected and put sorted by flush.
//
// Entries reference their payload by key (bodies.go); flush stores each
// distinct payload of the transaction once, with its reference count.
type enqueuer struct {
	b      *buckets
	now    time.Time
	a      arena
	exists map[string]bool // channel ID → the channel exists (one Get per channel per tx)

	chanKeys [][]byte             // outbox_channel keys to put
	dropped  map[string]bool      // chanKeys whose entry a newer tile or badge replaced in this tx
	tiles    map[string]tileAdded // tile_waiting key → tile or badge entry added in this tx

	// recent are the last distinct payloads added: a fan-out repeats the
	// same few (toast, tile) for every channel, so comparing bytes saves
	// hashing ~1 KB per entry.
	recent [4]recentPayload
	next   int // slot of recent to overwrite
}

// tileAdded is a tile (or badge) entry added in the current transaction.
type tileAdded struct {
	key []byte // outbox key
	ref payloadKey
}

type recentPayload struct {
	ok  bool
	p   []byte // the payload, kept until the transaction ends (arena)
	key payloadKey
}

func (b *buckets) enqueuer(now time.Time) *enqueuer {
	return &enqueuer{b: b, now: now, exists: map[string]bool{}, dropped: map[string]bool{}, tiles: map[string]tileAdded{}}
}

// payloadRef returns the key of payload and counts one more reference.
func (e *enqueuer) payloadRef(payload []byte) payloadKey {
	for i := range e.recent {
		c := &e.recent[i]
		if c.ok && bytes.Equal(c.p, payload) {
			e.b.addRef(c.key, c.p)
			return c.key
		}
	}
	k := payloadKeyOf(payload)
	p := e.a.take(len(payload))
	copy(p, payload)
	e.b.addRef(k, p)
	e.recent[e.next] = recentPayload{ok: true, p: p, key: k}
	e.next = (e.next + 1) % len(e.recent)
	return k
}

// add enqueues n: it gets the next outbox sequence as ID, and Created and
// NextAttempt = now when zero (the caller's Created is kept: it is when the
// notification was made, which its time to live counts from). A notification for a channel that no longer
// exists is dropped (it was removed after the run read its subscribers).
// A tile first removes a tile still waiting for the same channel+feed, then
// is skipped when its payload equals the last one delivered there: the
// device already shows it. A badge is state too, and is treated the same
// way, apart from the tile of its channel+feed (stateKey).
func (e *enqueuer) add(n tilecast.Notification) error {
	b := e.b
	if n.ChannelID == "" {
		return fmt.Errorf("enqueue %s notification of %s: no channel", n.Kind, n.Feed)
	}
	// Entries this add drops release their payloads in flush, with the rest.
	b.collectRefs()
	ok, seen := e.exists[n.ChannelID]
	if !seen {
		ok = b.get(b.channels, []byte(n.ChannelID)) != nil
		e.exists[n.ChannelID] = ok
	}
	if !ok {
		return nil
	}
	if n.NextAttempt.IsZero() {
		n.NextAttempt = e.now
	}
	if n.Created.IsZero() {
		n.Created = e.now
	}
	var tk string
	if sk, ok := stateKey(&n); ok {
		tk = string(sk)
		if w, ok := e.tiles[tk]; ok {
			// Replaces a tile enqueued earlier in this transaction.
			if err := b.del(b.outbox, w.key); err != nil {
				return err
			}
			b.delta.outbox--
			if err := b.unref(w.ref); err != nil {
				return err
			}
			e.dropped[string(join(n.ChannelID, w.key))] = true
			delete(e.tiles, tk)
		} else if w := b.get(b.tileWaiting, []byte(tk)); w != nil {
			if err := b.dropEntry(bytes.Clone(w)); err != nil {
				return err
			}
		}
		sum := sha256.Sum256(n.Payload)
		if bytes.Equal(b.get(b.tileLast, []byte(tk)), sum[:]) {
			return nil
		}
	}
	seq, err := b.outbox.NextSequence()
	if err != nil {
		return err
	}
	n.ID = seq
	ent := entry{n: n, ref: e.payloadRef(n.Payload), hasRef: true}
	ent.n.Payload = nil
	key := outboxKey(e.a.take(outboxKeyLen)[:0], n.NextAttempt, seq)
	if err := b.outbox.Put(key, encodeEntryInto(&e.a, &ent)); err != nil {
		return fmt.Errorf("enqueue: %w", err)
	}
	b.delta.outbox++
	e.chanKeys = append(e.chanKeys, join(n.ChannelID, key))
	if tk != "" {
		e.tiles[tk] = tileAdded{key: key, ref: ent.ref}
	}
	return nil
}

// flush puts the collected index entries in key order and stores the
// payloads with their reference counts.
func (e *enqueuer) flush() error {
	slices.SortFunc(e.chanKeys, bytes.Compare)
	for _, k := range e.chanKeys {
		if e.dropped[string(k)] {
			continue
		}
		if err := e.b.outboxChan.Put(k, nil); err != nil {
			return err
		}
	}
	tks := make([]string, 0, len(e.tiles))
	for tk := range e.tiles {
		tks = append(tks, tk)
	}
	slices.Sort(tks)
	for _, tk := range tks {
		if err := e.b.tileWaiting.Put([]byte(tk), e.tiles[tk].key); err != nil {
			return fmt.Errorf("enqueue: %w", err)
		}
	}
	if err := e.b.applyRefs(); err != nil {
		return fmt.Errorf("enqueue: %w", err)
	}
	e.chanKeys, e.dropped, e.tiles = nil, map[string]bool{}, map[string]tileAdded{}
	return nil
}

// dropEntry deletes the outbox entry at key, its index entries and its
// reference to its payload.
func (b *buckets) dropEntry(key []byte) error {
	v := b.get(b.outbox, key)
	if v == nil {
		return nil
	}
	e, err := decodeEntry(v)
	if err != nil {
		// Without the channel the by-channel index entry cannot be found;
		// it is harmless (removeChannel skips keys with no entry). Without
		// the payload key its count stays high until sweepPayloads.
		e = entry{}
	}
	return b.removeEntry(key, &e)
}

// dropChannelEntries drops the outbox entries of channel id, releasing
// their payloads. removeChannel deletes entries without reading them, so
// callers that remove a channel run this first.
func (b *buckets) dropChannelEntries(id string) error {
	p := prefix(id)
	for _, k := range scanPrefix(b.outboxChan, p) {
		if err := b.dropEntry(k[len(p):]); err != nil {
			return err
		}
	}
	return nil
}

// removeEntry deletes the entry at key, which exists, whose decoded
// record is e.
func (b *buckets) removeEntry(key []byte, e *entry) error {
	n := &e.n
	if err := b.del(b.outbox, key); err != nil {
		return err
	}
	b.delta.outbox--
	if e.hasRef {
		if err := b.unref(e.ref); err != nil {
			return err
		}
	}
	if n.ChannelID == "" {
		return nil
	}
	// A tile's tile_waiting key is left in place: it names an entry that
	// is gone now, which every reader checks (an outbox key is never used
	// again), and the next tile of the channel and feed overwrites it.
	// Deleting it cost every commit that records delivered tiles the
	// bucket's dirty pages (~2.6 of ~24 per batch of 32 outcomes,
	// BenchmarkRecordPages10k); the bucket keeps at most one key per
	// channel and feed either way.
	return b.del(b.outboxChan, join(n.ChannelID, key))
}

// moveEntry re-keys the entry at key to e.n.NextAttempt and rewrites it,
// with the same payload (no reference changes).
func (b *buckets) moveEntry(a *arena, key []byte, e *entry) error {
	n := &e.n
	nk := outboxKey(a.take(outboxKeyLen)[:0], n.NextAttempt, n.ID)
	if !bytes.Equal(nk, key) {
		if err := b.del(b.outbox, key); err != nil {
			return err
		}
		if err := b.del(b.outboxChan, join(n.ChannelID, key)); err != nil {
			return err
		}
		if err := b.outboxChan.Put(join(n.ChannelID, nk), nil); err != nil {
			return err
		}
		if tk, ok := stateKey(n); ok {
			if bytes.Equal(b.get(b.tileWaiting, tk), key) {
				if err := b.tileWaiting.Put(tk, nk); err != nil {
					return err
				}
			}
		}
	}
	return b.outbox.Put(nk, encodeEntryInto(a, e))
}

// Enqueue adds notifications outside a feed commit (a tile on subscribe),
// with the same rules as Commit, in one transaction.
func (db *DB) Enqueue(ns []tilecast.Notification) error {
	if len(ns) == 0 {
		return nil
	}
	now := db.now()
	err := db.update(func(b *buckets) error {
		q := b.enqueuer(now)
		for i := range ns {
			if err := q.add(ns[i]); err != nil {
				return err
			}
		}
		return q.flush()
	})
	if err != nil {
		return fmt.Errorf("enqueue: %w", err)
	}
	return nil
}

// Due returns up to limit entries with NextAttempt ≤ now in due order,
// skipping the IDs busy reports, each with its channel. Entries whose
// channel is gone (or whose record cannot be read) are skipped and then
// deleted in a separate write. Entries sharing a payload share its memory:
// callers must not modify it.
func (db *DB) Due(now time.Time, limit int, busy func(id uint64) bool) ([]tilecast.Pending, error) {
	if limit <= 0 {
		return nil, nil
	}
	var out []tilecast.Pending
	var stale [][]byte
	until := timeNanos(now)
	err := db.view(func(b *buckets) error {
		chans := map[string]*tilecast.Channel{}
		pl := newPayloads(b)
		c := b.outbox.Cursor()
		for k, v := c.First(); k != nil && len(out) < limit; k, v = c.Next() {
			if len(k) != outboxKeyLen {
				stale = append(stale, bytes.Clone(k))
				continue
			}
			if outboxKeyTime(k) > until {
				break
			}
			if busy != nil && busy(outboxKeySeq(k)) {
				continue
			}
			e, err := decodeEntry(v)
			if err == nil {
				e.n.Payload, err = pl.payload(&e)
			}
			if err != nil {
				stale = append(stale, bytes.Clone(k))
				continue
			}
			n := e.n
			if t := outboxKeyTime(k); timeNanos(n.NextAttempt) != t {
				// Where the entry is wins: Record finds it by this time.
				n.NextAttempt = nanosTime(t)
			}
			ch, seen := chans[n.ChannelID]
			if !seen {
				c, ok, err := b.getChannel(n.ChannelID)
				if err != nil {
					return err
				}
				if ok {
					ch = &c
				}
				chans[n.ChannelID] = ch
			}
			if ch == nil {
				stale = append(stale, bytes.Clone(k))
				continue
			}
			out = append(out, tilecast.Pending{Notification: n, Channel: *ch})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("due: %w", err)
	}
	if len(stale) > 0 {
		if err := db.dropStale(stale); err != nil {
			return out, fmt.Errorf("due: drop stale entries: %w", err)
		}
	}
	return out, nil
}

// dropStale deletes outbox entries that Due found orphaned or unreadable
// (including a payload that is missing or damaged), checking again in the
// write transaction.
func (db *DB) dropStale(keys [][]byte) error {
	return db.update(func(b *buckets) error {
		b.collectRefs()
		pl := newPayloads(b)
		for _, k := range keys {
			v := b.get(b.outbox, k)
			if v == nil {
				continue
			}
			e, err := decodeEntry(v)
			if err == nil {
				_, err = pl.payload(&e)
				if err == nil && len(k) == outboxKeyLen && b.get(b.channels, []byte(e.n.ChannelID)) != nil {
					continue
				}
			} else {
				e = entry{}
			}
			if err := b.removeEntry(k, &e); err != nil {
				return err
			}
		}
		if err := b.applyRefs(); err != nil {
			return err
		}
		return b.clearIdlePayloads()
	})
}

// NextDue returns the earliest NextAttempt in the outbox (zero when empty).
func (db *DB) NextDue() (time.Time, error) {
	var t time.Time
	err := db.view(func(b *buckets) error {
		if k, _ := b.outbox.Cursor().First(); len(k) == outboxKeyLen {
			t = nanosTime(outboxKeyTime(k))
		}
		return nil
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("next due: %w", err)
	}
	return t, nil
}

// chanState is a channel read once per Record batch.
type chanState struct {
	ch         tilecast.Channel
	exists     bool
	dirty      bool
	ledgerGrew bool // an outcome was appended: prune the ledger in finish
}

// recorder applies one Record batch inside a write transaction.
type recorder struct {
	b     *buckets
	now   time.Time
	a     arena
	pl    *payloads // the payloads of dead letters and delivered tiles
	chans map[string]*chanState
}

func (r *recorder) channel(id string) (*chanState, error) {
	if cs, ok := r.chans[id]; ok {
		return cs, nil
	}
	ch, ok, err := r.b.getChannel(id)
	if err != nil {
		return nil, err
	}
	cs := &chanState{ch: ch, exists: ok}
	r.chans[id] = cs
	return cs, nil
}

// Record applies a batch of send results in one transaction (see
// tilecast.Op). A record whose entry is already gone (coalesced, or its
// channel removed) changes no entry, but its channel effects still apply,
// found through Outcome.ChannelID: a send that happened counts toward the
// ledger and the daily cap, and a 404 still removes the channel.
//
// For Sent records the outcome is appended to the channel's ledger and
// becomes its LastOutcome; an OpExpire record's outcome is appended to the
// ledger and changes nothing else of the channel; FailureStreak resets on delivered and grows on
// failed or retry; SendsToday counts sends per UTC day of the outcome time,
// but not those marked Unanswered.
// A delivered tile's payload hash becomes the channel+feed's last tile.
func (db *DB) Record(recs []tilecast.Record) error {
	if len(recs) == 0 {
		return nil
	}
	now := db.now()
	err := db.update(func(b *buckets) error {
		r := &recorder{b: b, now: now, chans: map[string]*chanState{}, pl: newPayloads(b)}
		// Released payloads are counted down once per batch (finish).
		b.collectRefs()
		for i := range recs {
			if err := r.record(&recs[i]); err != nil {
				return fmt.Errorf("record %d: %w", recs[i].ID, err)
			}
		}
		if err := r.finish(); err != nil {
			return err
		}
		db.hit(tilecast.FailInRecord)
		return nil
	})
	if err != nil {
		return fmt.Errorf("record: %w", err)
	}
	return nil
}

func (r *recorder) record(rec *tilecast.Record) error {
	b := r.b
	var e entry
	n := &e.n
	var key []byte
	if k, v := r.find(rec); v != nil {
		key = k
		var err error
		if e, err = decodeEntry(v); err != nil {
			// An unreadable entry can never be sent: drop it.
			if err := b.dropEntry(key); err != nil {
				return err
			}
			key = nil
		}
	}
	chID := rec.Outcome.ChannelID
	if key != nil {
		chID = n.ChannelID
		at := rec.NextAttempt
		if at.IsZero() {
			at = r.now
		}
		switch rec.Op {
		case tilecast.OpDone:
			if err := b.removeEntry(key, &e); err != nil {
				return err
			}
			if tk, ok := stateKey(n); ok && rec.Sent && rec.Outcome.Action == tilecast.ActionDelivered {
				// The payload is still there: releases apply in finish.
				// Without it the tile (or badge) is simply not known as shown.
				if sum, err := r.pl.sum(&e); err == nil {
					if err := b.tileLast.Put(tk, sum[:]); err != nil {
						return err
					}
				}
			}
		case tilecast.OpRetry:
			n.Attempts++
			n.NextAttempt = at
			if err := b.moveEntry(&r.a, key, &e); err != nil {
				return err
			}
		case tilecast.OpPostpone:
			n.NextAttempt = at
			if err := b.moveEntry(&r.a, key, &e); err != nil {
				return err
			}
		case tilecast.OpDead:
			if err := b.removeEntry(key, &e); err != nil {
				return err
			}
			if rec.Sent {
				n.Attempts++
			}
			// A dead letter keeps its payload; one whose payload is
			// unreadable keeps the rest.
			n.Payload, _ = r.pl.payload(&e)
			v := encodeDeadLetter(&DeadLetter{Notification: *n, Outcome: rec.Outcome})
			if err := b.putDead(seqKey(n.ID), v); err != nil {
				return err
			}
		case tilecast.OpExpire:
			// Never sent: only the ledger below hears of it.
			if err := b.removeEntry(key, &e); err != nil {
				return err
			}
		case tilecast.OpRemoveChannel:
			// The channel goes below; this entry goes now even if the
			// channel record is already missing.
			if err := b.removeEntry(key, &e); err != nil {
				return err
			}
		default:
			return fmt.Errorf("unknown op %d", rec.Op)
		}
	}
	if chID == "" {
		return nil
	}
	// A send, or an expiry (no send, but the ledger says why the
	// notification never came).
	inLedger := rec.Sent || rec.Op == tilecast.OpExpire
	if inLedger {
		if err := r.ledger(chID, rec.Outcome); err != nil {
			return err
		}
	}
	cs, err := r.channel(chID)
	if err != nil {
		return err
	}
	cs.ledgerGrew = cs.ledgerGrew || inLedger
	if rec.Op == tilecast.OpRemoveChannel {
		if err := b.dropChannelEntries(chID); err != nil {
			return err
		}
		if _, err := b.removeChannel(chID); err != nil {
			return err
		}
		cs.exists, cs.dirty = false, false
		return nil
	}
	if !cs.exists {
		return nil
	}
	if rec.Sent {
		o := &rec.Outcome
		t := o.Time
		if t.IsZero() {
			t = r.now
		}
		ch := &cs.ch
		ch.LastOutcome, ch.LastOutcomeAt = string(o.Action), t
		switch o.Action {
		case tilecast.ActionDelivered:
			ch.FailureStreak = 0
		case tilecast.ActionFailed, tilecast.ActionRetry:
			ch.FailureStreak++
		}
		// An unanswered send never reached the push service: not counted
		// (tilecast.Record.Unanswered).
		if !rec.Unanswered {
			var buf [len(time.DateOnly)]byte // no string per outcome: the day rarely changes
			if day := t.UTC().AppendFormat(buf[:0], time.DateOnly); ch.SendsDay != string(day) {
				ch.SendsDay, ch.SendsToday = string(day), 0
			}
			ch.SendsToday++
		}
		cs.dirty = true
	}
	if !rec.ChannelWaitUntil.IsZero() {
		cs.ch.NextAllowedAt = rec.ChannelWaitUntil
		cs.dirty = true
	}
	return nil
}

// find returns the outbox key and value of rec's entry (nil: gone). With
// rec.Due the key is known: due time and sequence. Without it the outbox
// is searched, which reads every entry.
func (r *recorder) find(rec *tilecast.Record) ([]byte, []byte) {
	if !rec.Due.IsZero() {
		k := outboxKey(r.a.take(outboxKeyLen)[:0], rec.Due, rec.ID)
		return k, r.b.get(r.b.outbox, k)
	}
	c := r.b.outbox.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if len(k) == outboxKeyLen && outboxKeySeq(k) == rec.ID {
			return bytes.Clone(k), v
		}
	}
	return nil, nil
}

// ledger appends o to channel chID's ledger.
func (r *recorder) ledger(chID string, o tilecast.Outcome) error {
	if o.Time.IsZero() {
		o.Time = r.now
	}
	if o.ChannelID == "" {
		o.ChannelID = chID
	}
	seq, err := r.b.ledger.NextSequence()
	if err != nil {
		return err
	}
	v := encodeOutcomeInto(&r.a, &o)
	k := r.a.take(len(chID) + 17)[:0] // bbolt keeps it until the commit
	k = append(k, chID...)
	k = append(k, 0)
	k = binary.BigEndian.AppendUint64(k, timeNanos(o.Time))
	k = binary.BigEndian.AppendUint64(k, seq)
	return r.b.ledger.Put(k, v)
}

// finish writes the channels the batch changed, releases the payloads of
// the entries it deleted and prunes the ledgers it grew.
func (r *recorder) finish() error {
	if err := r.b.applyRefs(); err != nil {
		return err
	}
	if err := r.b.clearIdlePayloads(); err != nil {
		return err
	}
	for _, cs := range r.chans {
		if cs.dirty && cs.exists {
			if err := r.b.putChannel(&cs.ch); err != nil {
				return err
			}
		}
	}
	cutoff := timeNanos(r.now.Add(-LedgerRetention))
	for id, cs := range r.chans {
		if !cs.ledgerGrew {
			continue
		}
		if err := r.b.pruneLedger(id, cutoff); err != nil {
			return fmt.Errorf("prune ledger: %w", err)
		}
	}
	return nil
}

// pruneLedger keeps a channel's ledger entries newer than cutoff, at most
// LedgerPerChannel of them. Keys sort by time, so the old ones come first.
func (b *buckets) pruneLedger(chID string, cutoff uint64) error {
	p := prefix(chID)
	total, old := 0, 0
	c := b.ledger.Cursor()
	for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
		total++
		if len(k) != len(p)+16 || binary.BigEndian.Uint64(k[len(p):]) < cutoff {
			old = total
		}
	}
	del := max(old, total-LedgerPerChannel)
	if del <= 0 {
		return nil
	}
	keys := make([][]byte, 0, del)
	for k, _ := c.Seek(p); k != nil && len(keys) < del; k, _ = c.Next() {
		keys = append(keys, bytes.Clone(k))
	}
	return deleteKeys(b.ledger, keys)
}

// PruneLedger drops ledger entries older than LedgerRetention across all
// channels, including removed ones (whose ledgers no write touches any
// more). The daemon runs it about daily. It returns how many it dropped.
//
// The same transaction recounts the references of the shared payloads
// (sweepPayloads), so a count left too high by a removal that did not read
// its entries costs space for a day at most.
func (db *DB) PruneLedger() (int, error) {
	cutoff := timeNanos(db.now().Add(-LedgerRetention))
	var n int
	err := db.update(func(b *buckets) error {
		var keys [][]byte
		c := b.ledger.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			i := bytes.IndexByte(k, 0)
			if i < 0 || len(k) != i+17 || binary.BigEndian.Uint64(k[i+1:]) < cutoff {
				keys = append(keys, bytes.Clone(k))
			}
		}
		n = len(keys)
		if err := deleteKeys(b.ledger, keys); err != nil {
			return err
		}
		_, err := b.sweepPayloads()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("prune ledger: %w", err)
	}
	return n, nil
}

// Outcomes returns the ledger entries of channelID ("" = every channel) at
// or after since, for feed ("" = every feed), oldest first.
func (db *DB) Outcomes(channelID, feed string, since time.Time) ([]tilecast.Outcome, error) {
	var out []tilecast.Outcome
	from := timeNanos(since)
	err := db.view(func(b *buckets) error {
		c := b.ledger.Cursor()
		var p []byte
		var k, v []byte
		if channelID != "" {
			p = prefix(channelID)
			k, v = c.Seek(binary.BigEndian.AppendUint64(bytes.Clone(p), from))
		} else {
			k, v = c.First()
		}
		for ; k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
			i := bytes.IndexByte(k, 0)
			if i < 0 || len(k) != i+17 || binary.BigEndian.Uint64(k[i+1:]) < from {
				continue
			}
			o, err := decodeOutcome(v)
			if err != nil {
				return fmt.Errorf("ledger entry: %w", err)
			}
			if feed == "" || o.Feed == feed {
				out = append(out, o)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("outcomes: %w", err)
	}
	if channelID == "" {
		slices.SortStableFunc(out, func(a, b tilecast.Outcome) int { return a.Time.Compare(b.Time) })
	}
	return out, nil
}

// DeadLetters returns up to limit dead letters (≤ 0: all), newest first.
func (db *DB) DeadLetters(limit int) ([]DeadLetter, error) {
	var out []DeadLetter
	err := db.view(func(b *buckets) error {
		c := b.dead.Cursor()
		for k, v := c.Last(); k != nil && (limit <= 0 || len(out) < limit); k, v = c.Prev() {
			d, err := decodeDeadLetter(v)
			if err != nil {
				return fmt.Errorf("dead letter %x: %w", k, err)
			}
			out = append(out, d)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("dead letters: %w", err)
	}
	return out, nil
}
