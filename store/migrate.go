package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/channeluri"
	"github.com/tilecast/tilecast/store/rules"
	bolt "go.etcd.io/bbolt"
)

// The schema 4 migration: every record into the tagged form.
//
// Files written before schema 4 hold records in older forms (migrate_old.go):
// JSON and version 1 channels, feed states and ledger values, outbox
// entries of versions 1 to 3, stored requests (bodies layout 1) and JSON
// dead letters. The migration rewrites each of them in the current form,
// so the live decoders read one form per record type and the old decoders
// are used here only. On the way it puts every stored channel URI in
// canonical form (channeluri.Canonical) and merges the channels that turn
// out to share one.
//
// A large file must not keep the daemon from starting for longer than
// systemd waits, and a kill must not lose the work done, so the rewrite
// runs in batches: each transaction visits at most migrationBatch records,
// records where it got to in the meta bucket (migrateProgressKey) and
// commits; Options.Progress is called after each one (the daemon extends
// systemd's start timeout from it) and the log says how far it is. Killed
// part way, the file stays at schema 3 with its progress record, and the
// next open goes on from there. Every step is also idempotent: a record
// already in the current form is left alone, so a batch that ran twice
// does no harm. The last batch sets schema 4 and removes the progress
// record, in the same transaction.
//
// Phases, in this order (later ones rely on earlier ones):
//
//	outbox    entries → version 4; a version 2 entry's stored request is
//	          read and its body stored as a shared payload (layout 2)
//	bodies    stored requests (layout 1) deleted: no entry names one now
//	channels  records → version 2; URI canonicalised; duplicates merged
//	          (moving waiting notifications needs outbox entries in the
//	          current form, hence after the outbox); each device indexed
//	          under its user (user + 0x00 + device)
//	channel_device  keys of the old form (the device alone) deleted
//	feedstate, ledger, dead → the current form
//
// Merging: when two channels hold one canonical URI, the older one (earlier
// Created; on a tie the smaller ID) is kept. It gets the union of both feed
// lists (a channel listing none gets every global feed, so it stays with
// none), keeps its own user and device (it takes the other's device when
// it has none and their users are the same), and takes over the other's
// waiting notifications that it would get (the rules of moves); the other
// channel is removed with its index entries, its ledger stays. The running
// counts change in the same transactions (buckets.delta). A URI that does
// not canonicalise any more (a rule got stricter) is logged and kept as
// it is, never dropped. A record that cannot be read in any form is
// logged and left as it is: it was unreadable before, too.

// migrationBatch is how many records one transaction of the migration
// visits: large enough that the per-commit fsync does not dominate, small
// enough that a transaction's dirty pages stay a few MiB.
const migrationBatch = 5000

// migrateProgressKey (meta bucket) records where an unfinished schema 4
// migration got to: byte 1, uvarint phase, uvarint records visited, then
// the key of the last record visited in that phase (none: from the start).
const migrateProgressKey = "migrate4"

// migratePhase rewrites the records of one bucket.
type migratePhase struct {
	bucket string
	visit  func(m *migrator, b *buckets, k []byte) error
}

func migratePhases() []migratePhase {
	return []migratePhase{
		{bucketOutbox, (*migrator).outboxEntry},
		{bucketBodies, (*migrator).storedRequest},
		{bucketChannels, (*migrator).channel},
		{bucketChannelDevice, (*migrator).oldDeviceKey},
		{bucketFeedState, (*migrator).feedState},
		{bucketLedger, (*migrator).ledgerValue},
		{bucketDead, (*migrator).deadLetter},
	}
}

// migrator is one run of the schema 4 migration.
type migrator struct {
	db    *DB
	batch int
	// logs are the lines of the current batch, written once it commits.
	logs []func()
	// what the run did, for its last log line
	rewritten, merged, unreadable, kept int
}

type migrateProgress struct {
	phase  int
	done   int
	cursor []byte
}

func readProgress(meta *bolt.Bucket) (migrateProgress, error) {
	var p migrateProgress
	v := meta.Get([]byte(migrateProgressKey))
	if v == nil {
		return p, nil
	}
	if len(v) < 1 || v[0] != 1 {
		return p, fmt.Errorf("%w: migration progress record %x", ErrCorrupt, v)
	}
	phase, n := binary.Uvarint(v[1:])
	if n <= 0 {
		return p, fmt.Errorf("%w: migration progress record %x", ErrCorrupt, v)
	}
	done, m := binary.Uvarint(v[1+n:])
	if m <= 0 || phase > uint64(len(migratePhases())) || done > 1<<62 {
		return p, fmt.Errorf("%w: migration progress record %x", ErrCorrupt, v)
	}
	p.phase, p.done = int(phase), int(done)
	if rest := v[1+n+m:]; len(rest) > 0 {
		p.cursor = bytes.Clone(rest)
	}
	return p, nil
}

func (p *migrateProgress) encode() []byte {
	v := []byte{1}
	v = binary.AppendUvarint(v, uint64(p.phase))
	v = binary.AppendUvarint(v, uint64(p.done))
	return append(v, p.cursor...)
}

// rewriteRecords is the schema 4 migration (see above); schema is the
// version it sets when done.
func (db *DB) rewriteRecords(schema int, quiet bool) error {
	m := &migrator{db: db, batch: db.migrateBatch}
	if m.batch <= 0 {
		m.batch = migrationBatch
	}
	start := time.Now()
	total := 0
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		// The batches keep the counts as they go: they need a counts
		// record to start from.
		if err := db.ensureCounts(tx, anyStateBroken); err != nil {
			return err
		}
		for _, ph := range migratePhases() {
			if bk := tx.Bucket([]byte(ph.bucket)); bk != nil {
				total += countKeys(bk)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	lastLog := time.Time{}
	for batches := 0; ; batches++ {
		var p migrateProgress
		finished := false
		err := db.update(func(b *buckets) error {
			m.logs = m.logs[:0]
			var err error
			if p, err = readProgress(b.meta); err != nil {
				return err
			}
			if finished, err = m.step(b, &p); err != nil {
				return err
			}
			// Payloads the outbox phase stored, and those of entries a
			// merge dropped, are counted once per batch.
			if err := b.applyRefs(); err != nil {
				return err
			}
			db.hit(tilecast.FailInMigrate)
			if finished {
				if err := b.meta.Delete([]byte(migrateProgressKey)); err != nil {
					return err
				}
				return b.meta.Put([]byte(schemaKey), []byte(strconv.Itoa(schema)))
			}
			return b.meta.Put([]byte(migrateProgressKey), p.encode())
		})
		if err != nil {
			return err
		}
		for _, l := range m.logs {
			l()
		}
		done := min(p.done, total)
		if finished {
			done = total
		}
		if db.progress != nil {
			db.progress(done, total)
		}
		if !quiet && (finished || time.Since(lastLog) >= time.Second) {
			db.log.Info("state file migrating", "schema", schema, "done", done, "total", total, "batches", batches+1)
			lastLog = time.Now()
		}
		if finished {
			break
		}
	}
	if !quiet {
		db.log.Info("state file migrated", "schema", schema, "step", "rewrite records", "records", total,
			"rewritten", m.rewritten, "merged", m.merged, "unreadable", m.unreadable, "uris_kept", m.kept,
			"duration", time.Since(start))
	}
	return nil
}

// step visits up to m.batch records from p on, moving p; it reports
// whether every phase is done.
func (m *migrator) step(b *buckets, p *migrateProgress) (bool, error) {
	phases := migratePhases()
	budget := m.batch
	for p.phase < len(phases) {
		ph := phases[p.phase]
		bk := b.tx.Bucket([]byte(ph.bucket))
		var keys [][]byte
		if bk != nil {
			// Keys first: visits delete and rewrite records.
			c := bk.Cursor()
			k, _ := c.First()
			if p.cursor != nil {
				k, _ = c.Seek(p.cursor)
				if bytes.Equal(k, p.cursor) {
					k, _ = c.Next()
				}
			}
			for ; k != nil && len(keys) < budget; k, _ = c.Next() {
				keys = append(keys, bytes.Clone(k))
			}
		}
		for _, k := range keys {
			if err := ph.visit(m, b, k); err != nil {
				return false, fmt.Errorf("%s %q: %w", ph.bucket, k, err)
			}
		}
		p.done += len(keys)
		budget -= len(keys)
		if budget == 0 {
			if len(keys) > 0 {
				p.cursor = keys[len(keys)-1]
			}
			return false, nil
		}
		p.phase++
		p.cursor = nil
	}
	return true, nil
}

// warnUnreadable logs a record no decoder can read; it stays as it is.
func (m *migrator) warnUnreadable(bucket string, k []byte, err error) {
	m.unreadable++
	key := fmt.Sprintf("%q", k)
	msg := err.Error()
	m.logs = append(m.logs, func() {
		m.db.log.Warn("state file migration: record unreadable in any form, left as it is",
			"bucket", bucket, "key", key, "error", msg)
	})
}

// outboxEntry rewrites an outbox entry of version 1 to 3 as version 4.
func (m *migrator) outboxEntry(b *buckets, k []byte) error {
	v := b.outbox.Get(k)
	if v == nil || (len(v) > 0 && v[0] == recordV4) {
		return nil
	}
	o, err := decodeOldEntry(v)
	if err != nil {
		m.warnUnreadable(bucketOutbox, k, err)
		return nil
	}
	e := o.e
	if o.requestRef {
		// The stored request's body is the payload: store it as one
		// (counted here), so the entry reads like any other. The
		// request itself goes in the bodies phase. A request that is
		// missing or damaged leaves the key in place: the entry then
		// cannot be sent and Due drops it, as it did before.
		if rv := b.bodiesGet(e.ref); len(rv) > 0 && rv[0] == oldPayloadV1 {
			if content, ok := oldPayloadContent(rv); ok {
				if p, err := decodeOldRequest(e.ref, content); err == nil {
					nk := payloadKeyOf(p)
					b.addRef(nk, p)
					e.ref = nk
				}
			}
		}
	}
	m.rewritten++
	return b.outbox.Put(k, encodeEntry(nil, &e))
}

// bodiesGet returns the bodies value of key k (nil: none).
func (b *buckets) bodiesGet(k payloadKey) []byte {
	if b.bodies == nil {
		return nil
	}
	return b.bodies.Get(k[:])
}

// oldPayloadContent is the content of a layout 1 bodies value.
func oldPayloadContent(v []byte) ([]byte, bool) {
	_, n := binary.Uvarint(v[1:])
	if n <= 0 {
		return nil, false
	}
	return v[1+n:], true
}

// storedRequest deletes a stored request (bodies layout 1): the outbox
// phase gave every entry that named one a payload of its own.
func (m *migrator) storedRequest(b *buckets, k []byte) error {
	if v := b.bodies.Get(k); len(v) > 0 && v[0] == oldPayloadV1 {
		m.rewritten++
		return b.bodies.Delete(k)
	}
	return nil
}

// feedState rewrites a feed state in the current form.
func (m *migrator) feedState(b *buckets, k []byte) error {
	v := b.feedState.Get(k)
	if v == nil || (len(v) > 0 && v[0] == feedStateV2) {
		return nil
	}
	st, err := decodeOldFeedState(v)
	if err != nil {
		m.warnUnreadable(bucketFeedState, k, err)
		return nil
	}
	m.rewritten++
	return b.feedState.Put(k, encodeFeedState(&st))
}

// ledgerValue rewrites a ledger value in the current form.
func (m *migrator) ledgerValue(b *buckets, k []byte) error {
	v := b.ledger.Get(k)
	if v == nil || (len(v) > 0 && v[0] == outcomeV2) {
		return nil
	}
	o, err := decodeOldOutcome(v)
	if err != nil {
		m.warnUnreadable(bucketLedger, k, err)
		return nil
	}
	m.rewritten++
	return b.ledger.Put(k, encodeOutcome(&o))
}

// deadLetter rewrites a JSON dead letter in the current form.
func (m *migrator) deadLetter(b *buckets, k []byte) error {
	v := b.dead.Get(k)
	if v == nil || (len(v) > 0 && v[0] == deadV1) {
		return nil
	}
	d, err := decodeOldDeadLetter(v)
	if err != nil {
		m.warnUnreadable(bucketDead, k, err)
		return nil
	}
	m.rewritten++
	return b.dead.Put(k, encodeDeadLetter(&d))
}

// channel rewrites a channel in the current form with its URI in canonical
// form, merging it with a channel that holds the same URI.
func (m *migrator) channel(b *buckets, k []byte) error {
	v := b.channels.Get(k)
	if v == nil {
		return nil // merged into another channel in this batch
	}
	current := len(v) > 0 && v[0] == channelV2
	var ch tilecast.Channel
	var err error
	if current {
		ch, err = decodeChannel(v)
	} else {
		ch, err = decodeOldChannel(v)
	}
	if err != nil {
		m.warnUnreadable(bucketChannels, k, err)
		return nil
	}
	if ch.ID != string(k) {
		m.warnUnreadable(bucketChannels, k, fmt.Errorf("record holds channel %q", ch.ID))
		return nil
	}
	if !current {
		m.rewritten++
		if err := b.putChannel(&ch); err != nil {
			return err
		}
	}
	uri := ch.URI
	if c, err := channeluri.Canonical(ch.URI); err != nil || len(c) > rules.MaxURILen {
		if err == nil {
			err = fmt.Errorf("canonical form is longer than %d bytes", rules.MaxURILen)
		}
		m.kept++
		id, reason, host := ch.ID, err.Error(), rules.URIHost(ch.URI)
		m.logs = append(m.logs, func() {
			m.db.log.Warn("state file migration: channel URI does not canonicalise, kept as it is",
				"channel", id, "host", host, "reason", reason)
		})
	} else {
		uri = c
	}
	owner := b.chanURI.Get([]byte(uri))
	if uri == ch.URI && bytes.Equal(owner, k) {
		return b.reindexDevice(&ch) // canonical and indexed: the common case
	}
	if owner != nil && !bytes.Equal(owner, k) {
		other, ok, err := b.anyChannel(string(owner))
		if err != nil {
			return err
		}
		if ok && other.URI != uri {
			// The index entry is stale unless other's URI canonicalises
			// to uri too (then other is a duplicate).
			if c, err := channeluri.Canonical(other.URI); err != nil || c != uri {
				ok = false
			}
		}
		if ok {
			return m.merge(b, ch, other, uri)
		}
	}
	// The URI is this channel's alone: re-key it.
	if err := b.unindex(&ch); err != nil {
		return err
	}
	ch.URI = uri
	if err := b.putChannel(&ch); err != nil {
		return err
	}
	return b.index(&ch)
}

// reindexDevice puts ch's device in the index as schema 4 keys it, scoped
// to ch's user (deviceKey): before, the device alone was the key. When
// two channels claim one key, the one the old index named keeps it.
func (b *buckets) reindexDevice(ch *tilecast.Channel) error {
	if ch.Device == "" {
		return nil
	}
	k := deviceKey(ch.User, ch.Device)
	owner := b.chanDevice.Get(k)
	if string(owner) == ch.ID {
		return nil
	}
	if owner == nil || string(b.chanDevice.Get([]byte(ch.Device))) == ch.ID {
		return b.chanDevice.Put(k, []byte(ch.ID))
	}
	return nil
}

// oldDeviceKey deletes a device index key of the old form (the device
// alone, no NUL): the channels phase put every device under its user.
func (m *migrator) oldDeviceKey(b *buckets, k []byte) error {
	if bytes.IndexByte(k, 0) >= 0 {
		return nil
	}
	m.rewritten++
	return b.chanDevice.Delete(k)
}

// anyChannel reads a channel record of any form, rewriting an old one in
// the current form (the channel functions read only that).
func (b *buckets) anyChannel(id string) (tilecast.Channel, bool, error) {
	v := b.channels.Get([]byte(id))
	if v == nil {
		return tilecast.Channel{}, false, nil
	}
	if v[0] == channelV2 {
		ch, err := decodeChannel(v)
		return ch, err == nil, nil
	}
	ch, err := decodeOldChannel(v)
	if err != nil || ch.ID != id {
		return ch, false, nil // unreadable: left to its own visit
	}
	return ch, true, b.putChannel(&ch)
}

// merge makes channels a and c, which share canonical URI uri, one (see
// the merging rules above). Both are stored in the current form.
func (m *migrator) merge(b *buckets, a, c tilecast.Channel, uri string) error {
	keep, gone := a, c
	if rules.Older(&c, &a) {
		keep, gone = c, a
	}
	if err := b.unindex(&keep); err != nil {
		return err
	}
	keep.URI = uri
	keep.Feeds = unionFeeds(keep.Feeds, gone.Feeds)
	if keep.Device == "" && gone.User == keep.User {
		keep.Device = gone.Device
	}
	if err := b.takeOver(gone.ID, &keep); err != nil {
		return err
	}
	if err := b.putChannel(&keep); err != nil {
		return err
	}
	if err := b.index(&keep); err != nil {
		return err
	}
	m.merged++
	id, other, host := keep.ID, gone.ID, rules.URIHost(uri)
	m.logs = append(m.logs, func() {
		m.db.log.Info("state file migration: merged channels with one URI", "channel", id, "merged", other, "host", host)
	})
	return nil
}

// unionFeeds is the feed list of a merged channel: both lists, in order,
// without duplicates; a channel listing no feeds gets every global feed,
// which the union keeps by listing none.
func unionFeeds(a, c []string) []string {
	if len(a) == 0 || len(c) == 0 {
		return nil
	}
	return rules.NormFeeds(append(append([]string(nil), a...), c...))
}

// anyStateBroken is stateBroken for a feed state record of any form, for
// counting a file before the migration rewrote it.
func anyStateBroken(v []byte) bool {
	st, err := decodeFeedState(v)
	if err != nil {
		st, err = decodeOldFeedState(v)
	}
	return err == nil && st.Broken
}

// ensureCounts counts the records once when the counts record is missing
// or damaged (removed by hand), with a warning.
func (db *DB) ensureCounts(tx *bolt.Tx, broken func([]byte) bool) error {
	meta := tx.Bucket([]byte(bucketMeta))
	if _, err := decodeTotals(meta.Get([]byte(countsKey))); err == nil {
		return nil
	} else if !errors.Is(err, errNoCounts) {
		db.log.Warn("state file counts record damaged: counting again", "error", err.Error())
	}
	start := time.Now()
	c, err := recountWith(tx, broken)
	if err != nil {
		return fmt.Errorf("recount: %w", err)
	}
	db.log.Warn("state file had no counts: counted its records", "channels", c.Channels,
		"outbox", c.OutboxDepth, "dead_letters", c.DeadLetters, "duration", time.Since(start))
	return nil
}
