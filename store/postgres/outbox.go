package postgres

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/store/rules"
)

// copyAbove is the size from which enqueue writes its entries with COPY
// rather than an INSERT of arrays: COPY streams rows without building
// one large parameter per column, which pays off for fan-out pages.
const copyAbove = 64

// outboxCols are the columns enqueue writes; id comes from outbox_ids in
// the order of the rows.
var outboxCols = []string{"channel_id", "feed", "user_name", "item", "kind", "payload_id", "attempts", "next_attempt", "created"}

// enqueue adds notifications inside a transaction, with the bbolt store's
// rules: Created and NextAttempt default to now; a notification for a
// channel that no longer exists is dropped; a tile replaces a tile still
// waiting for the same channel and feed (an earlier one of the same call
// too), and is then skipped when its payload equals the last one
// delivered there; a badge is state too, the same way, apart from the
// tile of its channel and feed. It is set-based whatever the number of entries: one
// read of the channels, of the waiting and last tiles, a write per
// distinct payload, and one INSERT (COPY for many).
func (t *txn) enqueue(ns []tilecast.Notification, now time.Time) error {
	if len(ns) == 0 {
		return nil
	}
	var chIDs []string
	for i := range ns {
		n := &ns[i]
		if n.ChannelID == "" {
			return fmt.Errorf("enqueue %s notification of %s: no channel", n.Kind, n.Feed)
		}
		if !okText(n.Feed) || !okText(n.User) || !okText(string(n.Kind)) {
			return fmt.Errorf("enqueue %s notification of %q: feed, user and kind must be UTF-8 without NUL", n.Kind, n.Feed)
		}
		if okText(n.ChannelID) {
			chIDs = append(chIDs, n.ChannelID)
		}
	}
	chIDs = distinct(chIDs)
	rows, err := t.Query(t.ctx, "SELECT id FROM channels WHERE id = ANY($1)", chIDs)
	if err != nil {
		return fmt.Errorf("enqueue: %w", err)
	}
	existing, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("enqueue: %w", err)
	}
	exists := make(map[string]bool, len(existing))
	for _, id := range existing {
		exists[id] = true
	}
	keep := make([]bool, len(ns))
	lastState := map[stateKey]int{} // the tile or badge of this call that stays
	for i := range ns {
		n := &ns[i]
		if !exists[n.ChannelID] {
			continue
		}
		keep[i] = true
		if isState(n.Kind) {
			k := stateKey{n.ChannelID, n.Feed, string(n.Kind)}
			if j, ok := lastState[k]; ok {
				keep[j] = false // replaced by a newer one of this call
			}
			lastState[k] = i
		}
	}
	if len(lastState) > 0 {
		tc, tf, tk := make([]string, 0, len(lastState)), make([]string, 0, len(lastState)), make([]string, 0, len(lastState))
		for k := range lastState {
			tc, tf, tk = append(tc, k.channel), append(tf, k.feed), append(tk, k.kind)
		}
		var b pgx.Batch
		// A waiting tile (badge) is replaced (even when the new one is
		// then skipped as unchanged: the device shows the new one already).
		b.Queue(`DELETE FROM outbox o USING unnest($1::text[], $2::text[], $3::text[]) AS u(c, f, k)
			WHERE o.kind IN ('tile', 'badge') AND o.channel_id = u.c AND o.feed = u.f AND o.kind = u.k`, tc, tf, tk).Exec(func(tag pgconn.CommandTag) error {
			t.delta.outbox -= tag.RowsAffected()
			if tag.RowsAffected() > 0 {
				t.garbage = true
			}
			return nil
		})
		b.Queue(`SELECT l.channel_id, l.feed, l.kind, l.sum FROM tile_last l JOIN unnest($1::text[], $2::text[], $3::text[]) AS u(c, f, k)
			ON l.channel_id = u.c AND l.feed = u.f AND l.kind = u.k`, tc, tf, tk).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var k stateKey
				var sum []byte
				if err := rows.Scan(&k.channel, &k.feed, &k.kind, &sum); err != nil {
					return err
				}
				i := lastState[k]
				if s := sha256.Sum256(ns[i].Payload); bytes.Equal(s[:], sum) {
					keep[i] = false // the device already shows it
				}
			}
			return rows.Err()
		})
		if err := t.SendBatch(t.ctx, &b).Close(); err != nil {
			return fmt.Errorf("enqueue: %w", err)
		}
	}

	// Each distinct payload of the call is stored once. A fan-out repeats
	// the same few for every channel: comparing with the last ones is
	// cheaper than hashing every one.
	var bodies [][]byte
	ref := make([]int, len(ns)) // index in bodies
	var recent []int
	for i := range ns {
		if !keep[i] {
			continue
		}
		p := ns[i].Payload
		found := -1
		for _, j := range recent {
			if bytes.Equal(bodies[j], p) {
				found = j
				break
			}
		}
		if found < 0 {
			for j := range bodies {
				if bytes.Equal(bodies[j], p) {
					found = j
					break
				}
			}
		}
		if found < 0 {
			found = len(bodies)
			bodies = append(bodies, p)
		}
		ref[i] = found
		if !slices.Contains(recent, found) {
			recent = append(recent, found)
			if len(recent) > 4 {
				recent = recent[1:]
			}
		}
	}
	if len(bodies) == 0 {
		return nil
	}
	pids := make([]int64, len(bodies))
	var b pgx.Batch
	for j, body := range bodies {
		sum := sha256.Sum256(body)
		if body == nil {
			body = []byte{}
		}
		b.Queue("INSERT INTO payloads (sum, body) VALUES ($1, $2) RETURNING id", sum[:], body).QueryRow(func(row pgx.Row) error {
			return row.Scan(&pids[j])
		})
	}
	if err := t.SendBatch(t.ctx, &b).Close(); err != nil {
		return fmt.Errorf("enqueue: store payloads: %w", err)
	}

	// The entries, as columns.
	var r outboxRows
	for i := range ns {
		if !keep[i] {
			continue
		}
		n := &ns[i]
		at, made := n.NextAttempt, n.Created
		if at.IsZero() {
			at = now
		}
		if made.IsZero() {
			made = now
		}
		r.ch, r.feed, r.user = append(r.ch, n.ChannelID), append(r.feed, n.Feed), append(r.user, n.User)
		r.item, r.kind = append(r.item, []byte(n.ItemID)), append(r.kind, string(n.Kind))
		r.payload, r.att = append(r.payload, pids[ref[i]]), append(r.att, int32(n.Attempts))
		r.next, r.made = append(r.next, at), append(r.made, made)
	}
	if len(r.ch) > copyAbove {
		_, err = t.CopyFrom(t.ctx, pgx.Identifier{"outbox"}, outboxCols, pgx.CopyFromSlice(len(r.ch), func(k int) ([]any, error) {
			return []any{r.ch[k], r.feed[k], r.user[k], r.item[k], r.kind[k], r.payload[k], r.att[k], r.next[k], r.made[k]}, nil
		}))
	} else {
		_, err = t.Exec(t.ctx, `INSERT INTO outbox (channel_id, feed, user_name, item, kind, payload_id, attempts, next_attempt, created)
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[], $5::text[], $6::bigint[], $7::int[], $8::timestamptz[], $9::timestamptz[])`,
			r.ch, r.feed, r.user, r.item, r.kind, r.payload, r.att, r.next, r.made)
	}
	if err != nil {
		return fmt.Errorf("enqueue: %w", err)
	}
	t.delta.outbox += int64(len(r.ch))
	t.notify = len(r.ch) > 0
	return nil
}

// stateKey is what a newer tile or badge replaces: at most one waits per
// channel, feed and kind, and the last delivered one is kept per kind.
type stateKey struct{ channel, feed, kind string }

// isState reports whether notifications of kind k are state (a newer one
// replaces a waiting one; an unchanged one is not sent again), not events.
func isState(k tilecast.Kind) bool { return k == tilecast.KindTile || k == tilecast.KindBadge }

// outboxRows are entries to insert, as columns (outboxCols).
type outboxRows struct {
	ch, feed, user, kind []string
	item                 [][]byte
	payload              []int64
	att                  []int32
	next, made           []time.Time
}

// Enqueue adds notifications outside a feed commit (a tile on subscribe),
// with the same rules as Commit, in one transaction.
func (db *DB) Enqueue(ns []tilecast.Notification) error {
	if len(ns) == 0 {
		return nil
	}
	now := db.now()
	if err := db.write("", func(t *txn) error { return t.enqueue(ns, now) }); err != nil {
		return fmt.Errorf("enqueue: %w", err)
	}
	return nil
}

// entryCols are the outbox columns scanEntry reads.
const entryCols = "o.id, o.channel_id, o.feed, o.user_name, o.item, o.kind, o.payload_id, o.attempts, o.next_attempt, o.created"

// entry is an outbox row.
type entry struct {
	n       tilecast.Notification
	payload int64
}

func (e *entry) dest() []any {
	return []any{&e.n.ID, &e.n.ChannelID, &e.n.Feed, &e.n.User, (*itemScan)(&e.n.ItemID), (*kindScan)(&e.n.Kind),
		&e.payload, &e.n.Attempts, &e.n.NextAttempt, &e.n.Created}
}

func (e *entry) fix() {
	e.n.NextAttempt, e.n.Created = e.n.NextAttempt.UTC(), e.n.Created.UTC()
}

// itemScan reads a bytea item column into a string.
type itemScan string

func (s *itemScan) ScanBytes(v []byte) error { *s = itemScan(v); return nil }

// kindScan reads a text column into a tilecast.Kind.
type kindScan tilecast.Kind

func (s *kindScan) ScanText(v pgtype.Text) error { *s = kindScan(v.String); return nil }

// duePage is how many rows Due reads at a time beyond what it still needs:
// the entries busy skips are read and passed over.
const duePage = 64

// Due returns up to limit entries with NextAttempt ≤ now in due order
// (NextAttempt, then ID), skipping the IDs busy reports, each with its
// channel. Entries whose channel is gone are skipped and then deleted in
// a separate write. Entries sharing a payload share its memory: callers
// must not modify it.
func (db *DB) Due(now time.Time, limit int, busy func(id uint64) bool) ([]tilecast.Pending, error) {
	if limit <= 0 {
		return nil, nil
	}
	ctx, cancel := db.opCtx()
	defer cancel()
	var out []tilecast.Pending
	var pids []int64
	var stale []int64
	if db.inst != nil {
		var err error
		if out, pids, stale, err = db.lease(ctx, now, limit, busy); err != nil {
			return nil, fmt.Errorf("due: %w", err)
		}
	}
	afterT, afterID := time.Time{}, int64(-1)
	for db.inst == nil && len(out) < limit {
		want := limit - len(out) + duePage
		// An entry another instance leased is being sent by it.
		rows, err := db.pool.Query(ctx, "SELECT "+entryCols+", c.id IS NOT NULL, "+chanColsOf("c")+`
			FROM outbox o LEFT JOIN channels c ON c.id = o.channel_id
			WHERE o.next_attempt <= $1 AND (o.next_attempt, o.id) > ($2, $3) AND (o.lease_until IS NULL OR o.lease_until <= $1)
			ORDER BY o.next_attempt, o.id LIMIT $4`, now, afterT, afterID, want)
		if err != nil {
			return nil, fmt.Errorf("due: %w", err)
		}
		n := 0
		for rows.Next() {
			n++
			var e entry
			var ok bool
			var s nullChannel
			dest := append(e.dest(), &ok)
			dest = append(dest, s.dest()...)
			if err := rows.Scan(dest...); err != nil {
				rows.Close()
				return nil, fmt.Errorf("due: %w", err)
			}
			e.fix()
			afterT, afterID = e.n.NextAttempt, int64(e.n.ID)
			if !ok {
				stale = append(stale, int64(e.n.ID))
				continue
			}
			if len(out) == limit || (busy != nil && busy(e.n.ID)) {
				continue
			}
			out = append(out, tilecast.Pending{Notification: e.n, Channel: s.channel()})
			pids = append(pids, e.payload)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("due: %w", err)
		}
		if n < want {
			break
		}
	}
	if len(out) > 0 {
		bodies := map[int64][]byte{}
		rows, err := db.pool.Query(ctx, "SELECT id, body FROM payloads WHERE id = ANY($1)", distinctIDs(pids))
		if err != nil {
			return nil, fmt.Errorf("due: payloads: %w", err)
		}
		for rows.Next() {
			var id int64
			var body []byte
			if err := rows.Scan(&id, &body); err != nil {
				rows.Close()
				return nil, fmt.Errorf("due: payloads: %w", err)
			}
			bodies[id] = body
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("due: payloads: %w", err)
		}
		for i := range out {
			out[i].Payload = bodies[pids[i]]
		}
	}
	if len(stale) > 0 {
		err := db.write("", func(t *txn) error {
			tag, err := t.Exec(t.ctx, `DELETE FROM outbox o WHERE o.id = ANY($1)
				AND NOT EXISTS (SELECT 1 FROM channels c WHERE c.id = o.channel_id)`, stale)
			t.delta.outbox -= tag.RowsAffected()
			t.garbage = true
			return err
		})
		if err != nil {
			return out, fmt.Errorf("due: drop stale entries: %w", err)
		}
	}
	return out, nil
}

// lease is Due for an instance: it claims up to limit due entries no
// live lease holds (FOR UPDATE SKIP LOCKED: instances claiming at once
// take different entries, none waits for another) until now + the
// lease, and returns them in due order with their channels and payload
// IDs, and the IDs of entries whose channel is gone. Entries it took over
// from an ended lease are possible duplicates: logged and counted.
func (db *DB) lease(ctx context.Context, now time.Time, limit int, busy func(id uint64) bool) (out []tilecast.Pending, pids, stale []int64, err error) {
	if db.inst.batch > 0 {
		limit = min(limit, db.inst.batch)
	}
	rows, err := db.pool.Query(ctx, `WITH c AS (
			SELECT id, lease_owner FROM outbox
			WHERE next_attempt <= $1 AND (lease_until IS NULL OR lease_until <= $1)
			ORDER BY next_attempt, id LIMIT $2 FOR UPDATE SKIP LOCKED
		), o AS (
			UPDATE outbox o SET lease_owner = $3, lease_until = $4 FROM c WHERE o.id = c.id
			RETURNING o.*, c.lease_owner AS prev
		)
		SELECT `+entryCols+", o.prev IS NOT NULL, c.id IS NOT NULL, "+chanColsOf("c")+`
		FROM o LEFT JOIN channels c ON c.id = o.channel_id
		ORDER BY o.next_attempt, o.id`, now, limit, db.inst.id, now.Add(db.inst.lease))
	if err != nil {
		return nil, nil, nil, err
	}
	defer rows.Close()
	taken := 0
	for rows.Next() {
		var e entry
		var prev, ok bool
		var s nullChannel
		dest := append(e.dest(), &prev, &ok)
		dest = append(dest, s.dest()...)
		if err := rows.Scan(dest...); err != nil {
			return nil, nil, nil, err
		}
		e.fix()
		switch {
		case !ok:
			stale = append(stale, int64(e.n.ID))
		case busy != nil && busy(e.n.ID):
			// In flight here already (its lease ran out while this
			// instance could not reach the database): its send records it.
		default:
			if prev {
				taken++
			}
			out = append(out, tilecast.Pending{Notification: e.n, Channel: s.channel()})
			pids = append(pids, e.payload)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, nil, err
	}
	if taken > 0 {
		db.log.Warn("possible duplicates: took over entries whose lease ended without a recorded outcome; they are sent again",
			"instance", db.inst.id, "count", taken)
		if db.inst.dupFn != nil {
			db.inst.dupFn(taken)
		}
	}
	return out, pids, stale, nil
}

// nullChannel scans the channel columns of an outer join.
type nullChannel struct {
	id, uri, user, device, transport, lastOutcome, sendsDay pgtype.Text
	feeds                                                   []string
	created, expires, lastAt, nextAllowed                   pgtype.Timestamptz
	p256dh, auth                                            []byte
	failureStreak, sendsToday                               pgtype.Int4
}

func (s *nullChannel) dest() []any {
	return []any{&s.id, &s.uri, &s.user, &s.device, &s.feeds, &s.created, &s.transport, &s.p256dh, &s.auth,
		&s.expires, &s.lastOutcome, &s.lastAt, &s.failureStreak, &s.nextAllowed, &s.sendsDay, &s.sendsToday}
}

func (s *nullChannel) channel() tilecast.Channel {
	c := channelScan{
		ch:            tilecast.Channel{ID: s.id.String, URI: s.uri.String, User: s.user.String, Device: s.device.String, Feeds: s.feeds},
		created:       s.created.Time,
		p256dh:        s.p256dh,
		auth:          s.auth,
		expires:       s.expires,
		lastAt:        s.lastAt,
		nextAllowed:   s.nextAllowed,
		transport:     s.transport.String,
		lastOutcome:   s.lastOutcome.String,
		sendsDay:      s.sendsDay.String,
		failureStreak: s.failureStreak.Int32,
		sendsToday:    s.sendsToday.Int32,
	}
	return c.channel()
}

func distinctIDs(ids []int64) []int64 {
	out := slices.Clone(ids)
	slices.Sort(out)
	return slices.Compact(out)
}

// NextDue returns the earliest NextAttempt in the outbox (zero when
// empty); an entry an instance holds counts from when its lease ends,
// not before (Due passes over it until then). An empty outbox is when the payload rows no entry references
// are cleared, if deletes may have left some.
func (db *DB) NextDue() (time.Time, error) {
	ctx, cancel := db.opCtx()
	defer cancel()
	var t pgtype.Timestamptz
	// A leased entry is due to others when its lease ends.
	if err := db.pool.QueryRow(ctx, `SELECT least(
			(SELECT min(next_attempt) FROM outbox WHERE lease_until IS NULL),
			(SELECT min(greatest(next_attempt, lease_until)) FROM outbox WHERE lease_until IS NOT NULL))`).Scan(&t); err != nil {
		return time.Time{}, fmt.Errorf("next due: %w", err)
	}
	if !t.Valid && db.garbage.Swap(false) {
		if err := db.clearPayloads(); err != nil {
			db.garbage.Store(true)
			return time.Time{}, fmt.Errorf("next due: %w", err)
		}
	}
	return tm(t), nil
}

// clearPayloads deletes the payload rows no entry references. A payload
// row is written with, and only referenced by, the entries of one
// transaction, so one this statement cannot see referenced (its
// transaction has not committed) is one it cannot see at all: it is safe
// while others write.
func (db *DB) clearPayloads() error {
	ctx, cancel := db.opCtx()
	defer cancel()
	_, err := db.pool.Exec(ctx, "DELETE FROM payloads p WHERE NOT EXISTS (SELECT 1 FROM outbox o WHERE o.payload_id = p.id)")
	return err
}

// chanState is a channel read once per Record batch.
type chanState struct {
	ch         tilecast.Channel
	exists     bool
	dirty      bool
	ledgerGrew bool
}

// found is an entry a Record batch read, and what the batch did to it.
type found struct {
	e       entry
	gone    bool // deleted (by its record or its channel's removal)
	moved   bool
	deleted bool // deleted by a record of this batch
}

// Record applies a batch of send results in one transaction, with the
// bbolt store's rules (which document them; see tilecast.Op): an entry is
// located by its ID and, when the record has one, its due time; a record
// whose entry is gone changes no entry but its channel effects still
// apply, through Outcome.ChannelID; sent outcomes and expiries go to the
// ledger; the channel's last outcome, failure streak, daily count and
// wait follow. It reads the batch's entries and channels once, decides in
// order, and writes with a statement per kind of change.
func (db *DB) Record(recs []tilecast.Record) error {
	if len(recs) == 0 {
		return nil
	}
	now := db.now()
	err := db.write(tilecast.FailInRecord, func(t *txn) error {
		return t.record(recs, now)
	})
	if err != nil {
		return fmt.Errorf("record: %w", err)
	}
	return nil
}

func (t *txn) record(recs []tilecast.Record, now time.Time) error {
	removing := false
	ids := make([]int64, 0, len(recs))
	for i := range recs {
		ids = append(ids, int64(recs[i].ID))
		removing = removing || recs[i].Op == tilecast.OpRemoveChannel
	}
	if removing {
		if err := t.lockChannels(); err != nil {
			return err
		}
	}
	// The entries, locked: another instance's Record waits for them.
	rows, err := t.Query(t.ctx, "SELECT "+entryCols+" FROM outbox o WHERE o.id = ANY($1) ORDER BY o.id FOR UPDATE", distinctIDs(ids))
	if err != nil {
		return err
	}
	ents := map[uint64]*found{}
	var chIDs []string
	for rows.Next() {
		f := &found{}
		if err := rows.Scan(f.e.dest()...); err != nil {
			rows.Close()
			return err
		}
		f.e.fix()
		ents[f.e.n.ID] = f
		chIDs = append(chIDs, f.e.n.ChannelID)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for i := range recs {
		if id := recs[i].Outcome.ChannelID; id != "" && okText(id) {
			chIDs = append(chIDs, id)
		}
	}
	chIDs = distinct(chIDs)
	slices.Sort(chIDs) // locks in one order: no deadlock between batches
	rows, err = t.Query(t.ctx, "SELECT "+chanCols+" FROM channels WHERE id = ANY($1) ORDER BY id FOR UPDATE", chIDs)
	if err != nil {
		return err
	}
	chs, err := scanChannels(rows, nil)
	if err != nil {
		return err
	}
	chans := map[string]*chanState{}
	for _, ch := range chs {
		chans[ch.ID] = &chanState{ch: ch, exists: true}
	}
	state := func(id string) *chanState {
		cs, ok := chans[id]
		if !ok {
			cs = &chanState{}
			chans[id] = cs
		}
		return cs
	}

	var w recordWrites
	var removed []string
	for i := range recs {
		rec := &recs[i]
		f := ents[rec.ID]
		if f != nil && (f.gone || (!rec.Due.IsZero() && !micro(rec.Due).Equal(f.e.n.NextAttempt))) {
			f = nil // gone, or not where the record says (moved)
		}
		chID := rec.Outcome.ChannelID
		if f != nil {
			n := &f.e.n
			chID = n.ChannelID
			at := rec.NextAttempt
			if at.IsZero() {
				at = now
			}
			switch rec.Op {
			case tilecast.OpDone:
				f.gone, f.deleted = true, true
				if rec.Sent && rec.Outcome.Action == tilecast.ActionDelivered && isState(n.Kind) {
					w.tile(stateKey{n.ChannelID, n.Feed, string(n.Kind)}, f.e.payload)
				}
			case tilecast.OpRetry:
				n.Attempts++
				n.NextAttempt = micro(at)
				f.moved = true
			case tilecast.OpPostpone:
				n.NextAttempt = micro(at)
				f.moved = true
			case tilecast.OpDead:
				f.gone, f.deleted = true, true
				if rec.Sent {
					n.Attempts++
				}
				if err := w.dead(f, rec.Outcome); err != nil {
					return err
				}
			case tilecast.OpExpire, tilecast.OpRemoveChannel:
				// Never sent: only the ledger below hears of it. Or the
				// channel goes below, and this entry now, even if the
				// channel record is already missing.
				f.gone, f.deleted = true, true
			default:
				return fmt.Errorf("record %d: unknown op %d", rec.ID, rec.Op)
			}
		}
		if chID == "" || !okText(chID) {
			continue
		}
		inLedger := rec.Sent || rec.Op == tilecast.OpExpire
		if inLedger {
			if err := w.ledger(chID, rec.Outcome, now); err != nil {
				return err
			}
		}
		cs := state(chID)
		cs.ledgerGrew = cs.ledgerGrew || inLedger
		if rec.Op == tilecast.OpRemoveChannel {
			removed = append(removed, chID)
			for _, g := range ents {
				if g.e.n.ChannelID == chID {
					g.gone = true
				}
			}
			cs.exists, cs.dirty = false, false
			continue
		}
		if !cs.exists {
			continue
		}
		if rec.Sent {
			o := &rec.Outcome
			at := o.Time
			if at.IsZero() {
				at = now
			}
			ch := &cs.ch
			ch.LastOutcome, ch.LastOutcomeAt = string(o.Action), at
			switch o.Action {
			case tilecast.ActionDelivered:
				ch.FailureStreak = 0
			case tilecast.ActionFailed, tilecast.ActionRetry:
				ch.FailureStreak++
			}
			// An unanswered send never reached the push service: not
			// counted (tilecast.Record.Unanswered).
			if !rec.Unanswered {
				if day := at.UTC().Format(time.DateOnly); ch.SendsDay != day {
					ch.SendsDay, ch.SendsToday = day, 0
				}
				ch.SendsToday++
			}
			cs.dirty = true
		}
		if !rec.ChannelWaitUntil.IsZero() {
			cs.ch.NextAllowedAt = rec.ChannelWaitUntil
			cs.dirty = true
		}
	}
	return t.applyRecord(&w, ents, chans, removed, now)
}

// recordWrites collects a Record batch's changes as column arrays.
type recordWrites struct {
	tileCh, tileFeed, tileKind []string
	tilePayload                []int64

	deadID                              []int64
	deadCh, deadFeed, deadUser, deadKnd []string
	deadItem                            [][]byte
	deadPayload                         []int64
	deadAtt                             []int32
	deadNext, deadMade                  []pgtype.Timestamptz
	deadOutcome                         []string

	ledCh, ledFeed, ledOutcome []string
	ledTime                    []time.Time
}

func (w *recordWrites) tile(k stateKey, payload int64) {
	for i := range w.tileCh { // the last delivered tile (badge) of a channel+feed wins
		if w.tileCh[i] == k.channel && w.tileFeed[i] == k.feed && w.tileKind[i] == k.kind {
			w.tilePayload[i] = payload
			return
		}
	}
	w.tileCh, w.tileFeed, w.tileKind = append(w.tileCh, k.channel), append(w.tileFeed, k.feed), append(w.tileKind, k.kind)
	w.tilePayload = append(w.tilePayload, payload)
}

func (w *recordWrites) dead(f *found, o tilecast.Outcome) error {
	n := &f.e.n
	v, err := outcomeJSON(&o)
	if err != nil {
		return err
	}
	w.deadID = append(w.deadID, int64(n.ID))
	w.deadCh, w.deadFeed, w.deadUser = append(w.deadCh, n.ChannelID), append(w.deadFeed, n.Feed), append(w.deadUser, n.User)
	w.deadKnd, w.deadItem = append(w.deadKnd, string(n.Kind)), append(w.deadItem, []byte(n.ItemID))
	w.deadPayload, w.deadAtt = append(w.deadPayload, f.e.payload), append(w.deadAtt, int32(n.Attempts))
	w.deadNext, w.deadMade = append(w.deadNext, ts(n.NextAttempt)), append(w.deadMade, ts(n.Created))
	w.deadOutcome = append(w.deadOutcome, v)
	return nil
}

func (w *recordWrites) ledger(chID string, o tilecast.Outcome, now time.Time) error {
	if o.Time.IsZero() {
		o.Time = now
	}
	if o.ChannelID == "" {
		o.ChannelID = chID
	}
	v, err := outcomeJSON(&o)
	if err != nil {
		return err
	}
	w.ledCh, w.ledFeed, w.ledOutcome = append(w.ledCh, chID), append(w.ledFeed, validText(o.Feed)), append(w.ledOutcome, v)
	w.ledTime = append(w.ledTime, o.Time)
	return nil
}

// validText is s made storable as text (the ledger's feed column, which
// only narrows listings; the outcome keeps the value as sent).
func validText(s string) string {
	if okText(s) {
		return s
	}
	return string(bytes.ReplaceAll(bytes.ToValidUTF8([]byte(s), []byte("\uFFFD")), []byte{0}, nil))
}

// applyRecord writes what record decided, in one round trip.
func (t *txn) applyRecord(w *recordWrites, ents map[uint64]*found, chans map[string]*chanState, removed []string, now time.Time) error {
	var del, movID []int64
	var movAtt []int32
	var movAt []time.Time
	for _, f := range ents {
		switch {
		case f.deleted:
			del = append(del, int64(f.e.n.ID))
		case f.moved && !f.gone:
			movID, movAtt, movAt = append(movID, int64(f.e.n.ID)), append(movAtt, int32(f.e.n.Attempts)), append(movAt, f.e.n.NextAttempt)
		}
	}
	var b pgx.Batch
	if len(w.deadID) > 0 {
		// Before the entries go: a dead letter keeps the payload.
		b.Queue(`INSERT INTO dead_letters (id, channel_id, feed, user_name, item, kind, payload, attempts, next_attempt, created, outcome)
			SELECT u.id, u.c, u.f, u.u, u.i, u.k, coalesce(p.body, ''), u.a, u.n, u.m, u.o
			FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bytea[], $6::text[], $7::bigint[], $8::int[],
				$9::timestamptz[], $10::timestamptz[], $11::json[]) AS u(id, c, f, u, i, k, pid, a, n, m, o)
			LEFT JOIN payloads p ON p.id = u.pid
			ON CONFLICT (id) DO NOTHING`,
			w.deadID, w.deadCh, w.deadFeed, w.deadUser, w.deadItem, w.deadKnd, w.deadPayload, w.deadAtt, w.deadNext, w.deadMade, w.deadOutcome).
			Exec(func(tag pgconn.CommandTag) error { t.delta.dead += tag.RowsAffected(); return nil })
	}
	if len(w.tileCh) > 0 {
		b.Queue(`INSERT INTO tile_last (channel_id, feed, kind, sum)
			SELECT u.c, u.f, u.k, p.sum FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) AS u(c, f, k, pid)
			JOIN payloads p ON p.id = u.pid
			ON CONFLICT (channel_id, feed, kind) DO UPDATE SET sum = EXCLUDED.sum`, w.tileCh, w.tileFeed, w.tileKind, w.tilePayload)
	}
	if len(del) > 0 {
		b.Queue("DELETE FROM outbox WHERE id = ANY($1)", del).Exec(func(tag pgconn.CommandTag) error {
			t.delta.outbox -= tag.RowsAffected()
			return nil
		})
		t.garbage = true
	}
	if len(movID) > 0 {
		b.Queue(`UPDATE outbox o SET attempts = u.a, next_attempt = u.n, lease_owner = NULL, lease_until = NULL
			FROM unnest($1::bigint[], $2::int[], $3::timestamptz[]) AS u(id, a, n) WHERE o.id = u.id`, movID, movAtt, movAt)
	}
	if len(w.ledCh) > 0 {
		// In this order: the ledger's seq keeps the batch's order.
		b.Queue(`INSERT INTO ledger (channel_id, time, feed, outcome)
			SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::json[])`, w.ledCh, w.ledTime, w.ledFeed, w.ledOutcome)
	}
	var upID, upLast, upDay []string
	var upLastAt, upNext []pgtype.Timestamptz
	var upStreak, upSends []int32
	var grew []string
	for id, cs := range chans {
		if cs.dirty && cs.exists {
			c := &cs.ch
			upID, upLast, upDay = append(upID, id), append(upLast, c.LastOutcome), append(upDay, c.SendsDay)
			upLastAt, upNext = append(upLastAt, ts(c.LastOutcomeAt)), append(upNext, ts(c.NextAllowedAt))
			upStreak, upSends = append(upStreak, int32(c.FailureStreak)), append(upSends, int32(c.SendsToday))
		}
		if cs.ledgerGrew {
			grew = append(grew, id)
		}
	}
	if len(upID) > 0 {
		b.Queue(`UPDATE channels c SET last_outcome = u.lo, last_outcome_at = u.la, failure_streak = u.fs,
			next_allowed_at = u.na, sends_day = u.sd, sends_today = u.st
			FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::int[], $5::timestamptz[], $6::text[], $7::int[])
				AS u(id, lo, la, fs, na, sd, st)
			WHERE c.id = u.id`, upID, upLast, upLastAt, upStreak, upNext, upDay, upSends)
	}
	if len(removed) > 0 {
		removed = distinct(removed)
		b.Queue("DELETE FROM outbox WHERE channel_id = ANY($1)", removed).Exec(func(tag pgconn.CommandTag) error {
			t.delta.outbox -= tag.RowsAffected()
			return nil
		})
		b.Queue("DELETE FROM tile_last WHERE channel_id = ANY($1)", removed)
		b.Queue("DELETE FROM channels WHERE id = ANY($1)", removed).Exec(func(tag pgconn.CommandTag) error {
			t.delta.channels -= tag.RowsAffected()
			return nil
		})
		t.garbage = true
	}
	if len(grew) > 0 {
		queuePrune(&b, grew, now)
	}
	if b.Len() == 0 {
		return nil
	}
	return t.SendBatch(t.ctx, &b).Close()
}

// queuePrune queues the statements that keep the ledgers of channels ids
// within rules.LedgerRetention and rules.LedgerPerChannel entries: older
// entries go, and the entries before each one's 100th newest.
func queuePrune(b *pgx.Batch, ids []string, now time.Time) {
	b.Queue("DELETE FROM ledger WHERE channel_id = ANY($1) AND time < $2", ids, now.Add(-rules.LedgerRetention))
	b.Queue(`DELETE FROM ledger l USING (
			SELECT u.c, x.time, x.seq FROM unnest($1::text[]) AS u(c)
			CROSS JOIN LATERAL (SELECT time, seq FROM ledger WHERE channel_id = u.c
				ORDER BY time DESC, seq DESC OFFSET $2 - 1 LIMIT 1) x
		) keep
		WHERE l.channel_id = keep.c AND (l.time, l.seq) < (keep.time, keep.seq)`, ids, rules.LedgerPerChannel)
}

// PruneLedger drops ledger entries older than rules.LedgerRetention
// across all channels, including removed ones (whose ledgers no write
// touches any more), and the payload rows no entry references. It
// returns how many ledger entries it dropped.
func (db *DB) PruneLedger() (int, error) {
	var n int
	err := db.write("", func(t *txn) error {
		tag, err := t.Exec(t.ctx, "DELETE FROM ledger WHERE time < $1", db.now().Add(-rules.LedgerRetention))
		n = int(tag.RowsAffected())
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("prune ledger: %w", err)
	}
	if err := db.clearPayloads(); err != nil {
		return n, fmt.Errorf("prune ledger: payloads: %w", err)
	}
	return n, nil
}

// Outcomes returns the ledger entries of channelID ("" = every channel) at
// or after since, for feed ("" = every feed), oldest first.
func (db *DB) Outcomes(channelID, feed string, since time.Time) ([]tilecast.Outcome, error) {
	if !okText(channelID) || !okText(feed) {
		return nil, nil
	}
	ctx, cancel := db.opCtx()
	defer cancel()
	rows, err := db.pool.Query(ctx, `SELECT outcome FROM ledger
		WHERE ($1 = '' OR channel_id = $1) AND ($2 = '' OR feed = $2) AND time >= $3
		ORDER BY channel_id, time, seq`, channelID, feed, since)
	if err != nil {
		return nil, fmt.Errorf("outcomes: %w", err)
	}
	out, err := collectOutcomes(rows, nil)
	if err != nil {
		return nil, fmt.Errorf("outcomes: %w", err)
	}
	if channelID == "" {
		slices.SortStableFunc(out, func(a, b tilecast.Outcome) int { return a.Time.Compare(b.Time) })
	}
	return out, nil
}

func collectOutcomes(rows pgx.Rows, more func() []any) ([]tilecast.Outcome, error) {
	defer rows.Close()
	var out []tilecast.Outcome
	for rows.Next() {
		var v []byte
		dest := []any{&v}
		if more != nil {
			dest = append(dest, more()...)
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		o, err := parseOutcome(v)
		if err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, rows.Err()
}

// DeadLetters returns up to limit dead letters (≤ 0: all), newest first.
func (db *DB) DeadLetters(limit int) ([]tilecast.DeadLetter, error) {
	ctx, cancel := db.opCtx()
	defer cancel()
	q := "SELECT " + deadCols + " FROM dead_letters ORDER BY id DESC"
	args := []any{}
	if limit > 0 {
		q += " LIMIT $1"
		args = append(args, limit)
	}
	rows, err := db.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("dead letters: %w", err)
	}
	out, err := scanDead(rows)
	if err != nil {
		return nil, fmt.Errorf("dead letters: %w", err)
	}
	return out, nil
}

const deadCols = "id, channel_id, feed, user_name, item, kind, payload, attempts, next_attempt, created, outcome"

func scanDead(rows pgx.Rows) ([]tilecast.DeadLetter, error) {
	defer rows.Close()
	var out []tilecast.DeadLetter
	for rows.Next() {
		d, err := scanDeadRow(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}
