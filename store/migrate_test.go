package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/internal/logtest"
	bolt "go.etcd.io/bbolt"
)

// oldFile is a state file as tilecast wrote it before schema 4, with every
// old record form in it (oldFixture), and what the migration must make of it.
type oldFile struct {
	path string
	clk  *clock
	// channels by role
	a, b, d1, d2, t1, t2, k tilecast.Channel
	// outbox entries: sequence → expected channel and payload after the migration
	entries map[uint64]struct{ ch, payload string }
}

// putOldChannel stores ch in an old form (json or version 1) with the index
// entries the old code wrote: uri, device (device → id), feed and user.
func putOldChannel(t testing.TB, b *buckets, ch tilecast.Channel, asJSON bool) {
	t.Helper()
	v := oldChannelRecord(&ch)
	if asJSON {
		var err error
		if v, err = json.Marshal(&ch); err != nil {
			t.Fatal(err)
		}
	}
	must(t, b.channels.Put([]byte(ch.ID), v),
		b.chanURI.Put([]byte(ch.URI), []byte(ch.ID)))
	if ch.Device != "" {
		must(t, b.chanDevice.Put([]byte(ch.Device), []byte(ch.ID)))
	}
	feeds := ch.Feeds
	if len(feeds) == 0 {
		feeds = []string{""}
	}
	for _, f := range feeds {
		must(t, b.chanFeed.Put(joinStr(f, ch.ID), []byte(ch.User)))
	}
	if ch.User != "" {
		must(t, b.chanUser.Put(joinStr(ch.User, ch.ID), nil))
	}
}

// putOldChannels stores channels from to to (exclusive) in one
// transaction, every other one as JSON and the rest in version 1, each
// with one ledger entry in the old form.
func putOldChannels(tb testing.TB, db *DB, clk *clock, from, to int) {
	tb.Helper()
	must(tb, db.update(func(b *buckets) error {
		for i := from; i < to; i++ {
			ch := tilecast.Channel{ID: fmt.Sprintf("%016x", i), URI: fmt.Sprintf("http://127.0.0.1/c%d", i), Created: clk.Now()}
			putOldChannel(tb, b, ch, i%2 == 0)
			k := append(prefix(ch.ID), outboxKey(nil, clk.Now(), uint64(i))...)
			if err := b.ledger.Put(k, oldOutcomeRecord(&tilecast.Outcome{ChannelID: ch.ID, Status: 200})); err != nil {
				return err
			}
		}
		return nil
	}))
}

// writeOldFile builds the file at schema (1, 2 or 3), each with the counts
// (or none) and indexes that schema had.
func writeOldFile(t *testing.T, schema int) *oldFile {
	t.Helper()
	f := &oldFile{path: filepath.Join(t.TempDir(), "state.db"), clk: newClock(), entries: map[uint64]struct{ ch, payload string }{}}
	c0 := f.clk.Now()
	f.a = tilecast.Channel{ID: "a000000000000001", URI: "http://127.0.0.1/a", User: "ana", Feeds: []string{"news", "inbox"},
		Device: "pa", Created: c0.Add(-10 * time.Hour), LastOutcome: "delivered", LastOutcomeAt: c0.Add(-time.Hour),
		SendsDay: "2026-03-01", SendsToday: 3}
	f.b = tilecast.Channel{ID: "b000000000000002", URI: "HTTP://127.0.0.1:80/b", Device: "pz", Created: c0.Add(-9 * time.Hour), FailureStreak: 2}
	// d1 and d2 hold one URI in two spellings: d2 is older and stays.
	f.d1 = tilecast.Channel{ID: "d100000000000001", URI: "http://127.0.0.1/dup", User: "bo", Feeds: []string{"news"},
		Device: "pb", Created: c0.Add(-5 * time.Hour)}
	f.d2 = tilecast.Channel{ID: "d200000000000002", URI: "http://127.0.0.1:80/dup", User: "bo", Feeds: []string{"mail"},
		Created: c0.Add(-8 * time.Hour)}
	// t1 and t2 too, created at the same time: the smaller ID stays.
	f.t1 = tilecast.Channel{ID: "t100000000000001", URI: "http://Example.ORG/tie", Created: c0.Add(-7 * time.Hour)}
	f.t2 = tilecast.Channel{ID: "t200000000000002", URI: "http://example.org/tie", Created: c0.Add(-7 * time.Hour)}
	// k's URI has userinfo, which canonicalisation refuses now.
	f.k = tilecast.Channel{ID: "k000000000000001", URI: "http://user@127.0.0.1/k", Created: c0.Add(-6 * time.Hour)}

	db, err := Open(f.path, Options{Now: f.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	err = db.update(func(b *buckets) error {
		putOldChannel(t, b, f.a, true)
		putOldChannel(t, b, f.b, false)
		putOldChannel(t, b, f.d1, false)
		putOldChannel(t, b, f.d2, true)
		putOldChannel(t, b, f.t1, true)
		putOldChannel(t, b, f.t2, false)
		putOldChannel(t, b, f.k, false)

		bodies, err := b.tx.CreateBucketIfNotExists([]byte(bucketBodies))
		if err != nil {
			return err
		}
		req := legacyRequest(legacyHeaders, []byte("toast 2"))
		reqKey := payloadKey(sha256.Sum256(req))
		must(t, bodies.Put(reqKey[:], payloadValue(oldPayloadV1, 2, req)))
		p5 := []byte("toast 5")
		p5Key := payloadKeyOf(p5)
		must(t, bodies.Put(p5Key[:], payloadValue(payloadV2, 1, p5)))

		add := func(ch tilecast.Channel, kind tilecast.Kind, payload string, rec func(n tilecast.Notification) []byte, after tilecast.Channel) {
			seq, err := b.outbox.NextSequence()
			must(t, err)
			n := tilecast.Notification{ID: seq, ChannelID: ch.ID, Feed: "news", ItemID: strconv.Itoa(int(seq)), Kind: kind,
				Payload: []byte(payload), Attempts: 1, NextAttempt: c0, Created: c0.Add(-time.Minute)}
			if kind == tilecast.KindTile {
				n.Feed = "mail"
			}
			key := outboxKey(nil, n.NextAttempt, seq)
			must(t, b.outbox.Put(key, rec(n)), b.outboxChan.Put(join(ch.ID, key), nil))
			if kind == tilecast.KindTile {
				must(t, b.tileWaiting.Put(joinStr(ch.ID, n.Feed), key))
			}
			f.entries[seq] = struct{ ch, payload string }{after.ID, payload}
		}
		v1 := func(n tilecast.Notification) []byte { return legacyV1Record(n, legacyHeaders) }
		v2 := func(n tilecast.Notification) []byte { return legacyV2Record(n, reqKey) }
		v3 := func(n tilecast.Notification) []byte { return legacyV3Record(n, nil) }
		v3s := func(n tilecast.Notification) []byte { return legacyV3Record(n, &p5Key) }
		add(f.a, tilecast.KindToast, "toast 1", v1, f.a)
		add(f.b, tilecast.KindToast, "toast 2", v2, f.b)
		add(f.d1, tilecast.KindToast, "toast 2", v2, f.d2) // moves to the channel that stays
		add(f.d2, tilecast.KindTile, "T1", v3, f.d2)
		add(f.t2, tilecast.KindToast, "toast 5", v3s, f.t1)

		news, _ := json.Marshal(tilecast.FeedState{Baselined: true, Broken: true, Title: "News"})
		must(t, b.feedState.Put([]byte("news"), news),
			b.feedState.Put(joinStr("inbox", "ana"), oldFeedStateRecord(&tilecast.FeedState{Baselined: true, Validators: tilecast.Validators{ETag: `"x"`}})),
			b.feedState.Put([]byte("mail"), oldFeedStateRecord(&tilecast.FeedState{Broken: true,
				Latest: &tilecast.TemplateData{Feed: tilecast.FeedInfo{Name: "mail"}, NewCount: 2}})))

		ledger := func(chID string, v []byte, at time.Time, seq uint64) {
			k := append(prefix(chID), outboxKey(nil, at, seq)...)
			must(t, b.ledger.Put(k, v))
		}
		oa, _ := json.Marshal(tilecast.Outcome{Time: c0.Add(-time.Hour), ChannelID: f.a.ID, Feed: "news", Status: 200,
			Action: tilecast.ActionDelivered, Attempt: 1})
		ledger(f.a.ID, oa, c0.Add(-time.Hour), 1)
		ledger(f.d1.ID, oldOutcomeRecord(&tilecast.Outcome{Time: c0.Add(-2 * time.Hour), ChannelID: f.d1.ID, Feed: "news",
			Status: 503, Action: tilecast.ActionRetry, Attempt: 1}), c0.Add(-2*time.Hour), 2)

		oldDead := `{"notification":{"id":100,"channel":"gone","feed":"news","kind":"toast",` +
			`"request":{"headers":[{"name":"Content-Type","value":"text/xml"}],"body":"PGE+"},"attempts":3,` +
			`"next_attempt":"2026-03-01T12:00:00Z","created":"2026-03-01T11:00:00Z"},` +
			`"outcome":{"time":"2026-03-01T12:00:00Z","channel":"gone","feed":"news","kind":"toast","status":503,"outcome":"failed","attempt":3,"duration":0}}`
		newerDead, _ := json.Marshal(DeadLetter{Notification: tilecast.Notification{ID: 101, ChannelID: "gone", Kind: tilecast.KindRaw,
			Payload: []byte("raw")}, Outcome: tilecast.Outcome{Status: 400, Action: tilecast.ActionFailed}})
		must(t, b.dead.Put(seqKey(100), []byte(oldDead)), b.dead.Put(seqKey(101), newerDead))
		return nil
	})
	must(t, err)
	// The file as the old schema left it: counts (schema 3) or none, the
	// outbox_id index (schema 1).
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket([]byte(bucketMeta))
		if schema >= 3 {
			if _, err := recountWith(tx, anyStateBroken); err != nil {
				return err
			}
		} else {
			var keys [][]byte
			_ = meta.ForEach(func(k, _ []byte) error {
				if string(k) != schemaKey {
					keys = append(keys, bytes.Clone(k))
				}
				return nil
			})
			if err := deleteKeys(meta, keys); err != nil {
				return err
			}
		}
		if schema == 1 {
			idx, err := tx.CreateBucket([]byte(bucketOutboxID))
			if err != nil {
				return err
			}
			c := tx.Bucket([]byte(bucketOutbox)).Cursor()
			for k, _ := c.First(); k != nil; k, _ = c.Next() {
				if err := idx.Put(seqKey(outboxKeySeq(k)), bytes.Clone(k)); err != nil {
					return err
				}
			}
		}
		return meta.Put([]byte(schemaKey), []byte(strconv.Itoa(schema)))
	})
	must(t, err, db.Close())
	return f
}

// checkCurrentForms fails the test for any record not in the current
// form or not readable by the live decoders.
func checkCurrentForms(t *testing.T, db *DB) {
	t.Helper()
	err := db.view(func(b *buckets) error {
		for _, x := range []struct {
			name    string
			bk      *bolt.Bucket
			version byte
			dec     func([]byte) error
		}{
			{"channels", b.channels, channelV2, func(v []byte) error { _, err := decodeChannel(v); return err }},
			{"outbox", b.outbox, recordV4, func(v []byte) error { _, err := decodeEntry(v); return err }},
			{"feedstate", b.feedState, feedStateV2, func(v []byte) error { _, err := decodeFeedState(v); return err }},
			{"ledger", b.ledger, outcomeV2, func(v []byte) error { _, err := decodeOutcome(v); return err }},
			{"dead", b.dead, deadV1, func(v []byte) error { _, err := decodeDeadLetter(v); return err }},
		} {
			err := x.bk.ForEach(func(k, v []byte) error {
				if len(v) == 0 || v[0] != x.version {
					t.Errorf("%s %q: version % x, want %d", x.name, k, v[:min(len(v), 1)], x.version)
				}
				if err := x.dec(v); err != nil {
					t.Errorf("%s %q: %v", x.name, k, err)
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		if b.bodies != nil {
			return b.bodies.ForEach(func(k, v []byte) error {
				if _, _, _, err := splitPayloadValue(v); err != nil {
					t.Errorf("bodies %x: %v", k[:4], err)
				}
				return nil
			})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// textLogger logs as the daemon does (text lines) to w.
func textLogger(w *logtest.Buffer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

// TestMigrateRewritesOldForms: a file of schema 1, 2 or 3 with every old
// record form is rewritten on a read-write open: every record decodes with
// the live decoders, URIs are canonical, duplicates are merged (the older
// channel stays and takes over the other's waiting notifications, its
// ledger is kept), a URI that no longer canonicalises is kept and logged,
// and the counts are exact.
func TestMigrateRewritesOldForms(t *testing.T) {
	for _, schema := range []int{1, 2, 3} {
		t.Run(fmt.Sprintf("schema %d", schema), func(t *testing.T) {
			f := writeOldFile(t, schema)
			if _, err := Open(f.path, Options{ReadOnly: true}); err == nil || !strings.Contains(err.Error(), "needs migrating") {
				t.Fatalf("read-only open of schema %d: %v, want a request to migrate", schema, err)
			}
			var logs logtest.Buffer
			var calls [][2]int
			db, err := Open(f.path, Options{Now: f.clk.Now, Logger: textLogger(&logs),
				Progress: func(done, total int) { calls = append(calls, [2]int{done, total}) }})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				checkCounts(t, db, "after the migration")
				must(t, db.Check(), db.Close())
			})
			checkCurrentForms(t, db)
			checkPayloads(t, db, "after the migration")

			// Progress: the records of the rewritten buckets, all done.
			if len(calls) == 0 || calls[len(calls)-1][0] != calls[len(calls)-1][1] || calls[0][1] < 20 {
				t.Errorf("progress calls %v, want the last one done = total ≥ 20", calls)
			}
			err = db.bolt.View(func(tx *bolt.Tx) error {
				meta := tx.Bucket([]byte(bucketMeta))
				if got := string(meta.Get([]byte(schemaKey))); got != strconv.Itoa(SchemaVersion()) {
					t.Errorf("schema %q after the migration", got)
				}
				if meta.Get([]byte(migrateProgressKey)) != nil {
					t.Error("progress record left behind")
				}
				if tx.Bucket([]byte(bucketOutboxID)) != nil {
					t.Error("outbox_id left behind")
				}
				return nil
			})
			must(t, err)

			chs, err := db.Channels("")
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, ch := range chs {
				ids = append(ids, ch.ID)
			}
			want := []string{f.a.ID, f.b.ID, f.d2.ID, f.t1.ID, f.k.ID} // by Created
			if !slices.Equal(ids, want) {
				t.Fatalf("channels %v, want %v", ids, want)
			}
			got := map[string]tilecast.Channel{}
			for _, ch := range chs {
				got[ch.ID] = ch
			}
			if a := got[f.a.ID]; !codecSame(a, f.a) {
				t.Errorf("JSON channel rewritten as %+v, want %+v", a, f.a)
			}
			wantB := f.b
			wantB.URI = "http://127.0.0.1/b"
			if b := got[f.b.ID]; !codecSame(b, wantB) {
				t.Errorf("version 1 channel rewritten as %+v, want %+v", b, wantB)
			}
			wantD := f.d2
			wantD.URI, wantD.Feeds, wantD.Device = "http://127.0.0.1/dup", []string{"mail", "news"}, "pb"
			if d := got[f.d2.ID]; !codecSame(d, wantD) {
				t.Errorf("merged channel %+v, want %+v", d, wantD)
			}
			if tc := got[f.t1.ID]; tc.URI != "http://example.org/tie" {
				t.Errorf("tie winner %+v, want the canonical URI", tc)
			}
			if k := got[f.k.ID]; k.URI != f.k.URI {
				t.Errorf("non-canonical URI changed to %q", k.URI)
			}
			for uri, id := range map[string]string{
				"http://127.0.0.1/b": f.b.ID, "HTTP://127.0.0.1:80/b": f.b.ID, "http://127.0.0.1:80/dup": f.d2.ID,
				"http://EXAMPLE.org/tie": f.t1.ID, f.k.URI: f.k.ID,
			} {
				if ch, err := db.ChannelByURI(uri); err != nil || ch.ID != id {
					t.Errorf("ChannelByURI(%s) = %s, %v; want %s", uri, ch.ID, err, id)
				}
			}
			// Indexes follow: the merged channel gets news and mail.
			news := &tilecast.Feed{Name: "news", URL: "http://127.0.0.1/news"}
			subs, err := db.Subscribers(news, "")
			if err != nil {
				t.Fatal(err)
			}
			var subIDs []string
			for _, s := range subs {
				subIDs = append(subIDs, s.ID)
			}
			slices.Sort(subIDs)
			if want := []string{f.a.ID, f.b.ID, f.d2.ID, f.k.ID, f.t1.ID}; !slices.Equal(subIDs, want) {
				t.Errorf("subscribers of news %v, want %v", subIDs, want)
			}
			if chs, _ := db.Channels("bo"); len(chs) != 1 || chs[0].ID != f.d2.ID {
				t.Errorf("Channels(bo) = %+v", chs)
			}

			// Devices are indexed under their users; the old keys are gone.
			devices := map[string]string{}
			must(t, db.view(func(b *buckets) error {
				return b.chanDevice.ForEach(func(k, v []byte) error { devices[string(k)] = string(v); return nil })
			}))
			wantDevices := map[string]string{"ana\x00pa": f.a.ID, "bo\x00pb": f.d2.ID, "\x00pz": f.b.ID}
			if fmt.Sprint(devices) != fmt.Sprint(wantDevices) {
				t.Errorf("device index %q, want %q", devices, wantDevices)
			}

			// Every entry is there, on the channel that stays, with its payload.
			ps := allPending(t, db, f.clk.Now())
			if len(ps) != len(f.entries) {
				t.Fatalf("%d pending, want %d", len(ps), len(f.entries))
			}
			for _, p := range ps {
				w := f.entries[p.ID]
				if p.ChannelID != w.ch || p.Channel.ID != w.ch || string(p.Payload) != w.payload {
					t.Errorf("entry %d: channel %s, payload %q; want %s, %q", p.ID, p.ChannelID, p.Payload, w.ch, w.payload)
				}
			}
			// "toast 2" is one shared payload for its two entries now.
			if refs := storedPayloads(t, db)[payloadKeyOf([]byte("toast 2"))]; refs != 2 {
				t.Errorf("toast 2 has %d references, want 2", refs)
			}
			// The moved tile is the merged channel's waiting tile.
			if err := db.Enqueue([]tilecast.Notification{{ChannelID: f.d2.ID, Feed: "mail", Kind: tilecast.KindTile, Payload: []byte("T2")}}); err != nil {
				t.Fatal(err)
			}
			var tiles []string
			for _, p := range outboxOf(t, db, f.d2.ID, f.clk.Now()) {
				if p.Kind == tilecast.KindTile {
					tiles = append(tiles, string(p.Payload))
				}
			}
			if !slices.Equal(tiles, []string{"T2"}) {
				t.Errorf("tiles of the merged channel %v, want [T2]", tiles)
			}

			// Ledgers: the merged-away channel's stays.
			if o, err := db.Outcomes(f.d1.ID, "", time.Time{}); err != nil || len(o) != 1 || o[0].Status != 503 {
				t.Errorf("ledger of the merged-away channel = %+v, %v", o, err)
			}
			if o, err := db.Outcomes(f.a.ID, "", time.Time{}); err != nil || len(o) != 1 || o[0].Status != 200 {
				t.Errorf("ledger of a = %+v, %v", o, err)
			}
			dl, err := db.DeadLetters(0)
			if err != nil || len(dl) != 2 || string(dl[0].Notification.Payload) != "raw" || string(dl[1].Notification.Payload) != "<a>" ||
				dl[1].Outcome.Status != 503 || dl[1].Notification.Attempts != 3 {
				t.Errorf("dead letters = %+v, %v", dl, err)
			}
			states, err := db.FeedStates()
			if err != nil || len(states) != 3 || !states[tilecast.FeedKey{Feed: "news"}].Broken ||
				states[tilecast.FeedKey{Feed: "inbox", User: "ana"}].ETag != `"x"` ||
				states[tilecast.FeedKey{Feed: "mail"}].Latest.NewCount != 2 {
				t.Errorf("feed states = %+v, %v", states, err)
			}
			if c, _ := db.Counts(); c.Channels != 5 || c.OutboxDepth != 5 || c.DeadLetters != 2 ||
				c.Broken["news"].Global != 1 || c.Broken["mail"].Global != 1 {
				t.Errorf("counts %+v", c)
			}

			// After the upgrade a device rotates its channel, found under its user.
			rot, created, err := db.AddChannel(tilecast.Channel{URI: "http://127.0.0.1/a2", User: "ana", Device: "pa", Feeds: f.a.Feeds})
			if err != nil || created || rot.ID != f.a.ID {
				t.Errorf("rotation after the upgrade = %+v, %v, %v; want %s", rot, created, err, f.a.ID)
			}
			if other, created, err := db.AddChannel(tilecast.Channel{URI: "http://127.0.0.1/z2", User: "someone", Device: "pz"}); err != nil ||
				!created || other.ID == f.b.ID {
				t.Errorf("another user's registration of device pz = %+v, %v, %v; want a new channel", other, created, err)
			}

			out := logs.String()
			for _, want := range []string{
				`msg="state file migrating" schema=4 done=`,
				`msg="state file migrated" schema=4 step="rewrite records"`,
				`msg="state file migration: merged channels with one URI" channel=` + f.d2.ID + ` merged=` + f.d1.ID + ` host=127.0.0.1`,
				`channel=` + f.t1.ID + ` merged=` + f.t2.ID,
				`level=WARN msg="state file migration: channel URI does not canonicalise, kept as it is" channel=` + f.k.ID,
			} {
				if !strings.Contains(out, want) {
					t.Errorf("log lacks %q:\n%s", want, out)
				}
			}
			if schema < 3 && !strings.Contains(out, `step="count records"`) {
				t.Errorf("log lacks the count step:\n%s", out)
			}
			for _, secret := range []string{"/dup", "user@", "/tie", "/a ", "/a2", "/z2"} {
				if strings.Contains(out, secret) {
					t.Errorf("log shows a URI (%q):\n%s", secret, out)
				}
			}
		})
	}
}

// TestMigrateResumes: a migration killed after k batches (the failpoint
// panics inside batch k+1) leaves the file at schema 3 with the first k
// batches committed; the next open finishes it, with the same result as
// an uninterrupted run.
func TestMigrateResumes(t *testing.T) {
	for _, k := range []int{1, 3, 5} {
		t.Run(fmt.Sprintf("killed after %d", k), func(t *testing.T) {
			f := writeOldFile(t, 3)
			hits := 0
			var calls []int
			_, err := Open(f.path, Options{Now: f.clk.Now, migrateBatch: 4,
				Progress: func(done, _ int) { calls = append(calls, done) },
				Failpoint: func(point string) {
					if point == tilecast.FailInMigrate {
						if hits++; hits == k+1 {
							panic("killed")
						}
					}
				}})
			if err == nil || !strings.Contains(err.Error(), "killed") {
				t.Fatalf("Open = %v, want the failpoint's panic", err)
			}
			if len(calls) != k || calls[k-1] != 4*k {
				t.Fatalf("progress before the kill %v, want %d batches of 4", calls, k)
			}
			// Schema 3, the progress record of k batches, as many records
			// in the current form as those batches reached.
			bdb, err := bolt.Open(f.path, 0o600, &bolt.Options{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			err = bdb.View(func(tx *bolt.Tx) error {
				meta := tx.Bucket([]byte(bucketMeta))
				if s := string(meta.Get([]byte(schemaKey))); s != "3" {
					t.Errorf("schema %q after the kill, want 3", s)
				}
				p, err := readProgress(meta)
				if err != nil || p.done != 4*k {
					t.Errorf("progress %+v, %v; want %d done", p, err, 4*k)
				}
				current := 0
				_ = tx.Bucket([]byte(bucketOutbox)).ForEach(func(_, v []byte) error {
					if v[0] == recordV4 {
						current++
					}
					return nil
				})
				if want := min(4*k, 5); current != want {
					t.Errorf("%d outbox entries rewritten, want %d", current, want)
				}
				return nil
			})
			must(t, err, bdb.Close())

			calls = nil
			total := 0
			db, err := Open(f.path, Options{Now: f.clk.Now, migrateBatch: 4, Progress: func(done, all int) {
				calls, total = append(calls, done), all
			}})
			if err != nil {
				t.Fatal(err)
			}
			defer func() { must(t, db.Close()) }()
			if len(calls) == 0 || calls[0] != min(4*(k+1), total) || calls[len(calls)-1] != total {
				t.Errorf("resumed progress %v, want it to start after %d", calls, 4*k)
			}
			checkCurrentForms(t, db)
			checkCounts(t, db, "after resuming")
			checkPayloads(t, db, "after resuming")
			if chs, err := db.Channels(""); err != nil || len(chs) != 5 {
				t.Errorf("Channels = %d, %v; want 5", len(chs), err)
			}
			ps := allPending(t, db, f.clk.Now())
			if len(ps) != len(f.entries) {
				t.Fatalf("%d pending, want %d", len(ps), len(f.entries))
			}
			for _, p := range ps {
				if w := f.entries[p.ID]; p.ChannelID != w.ch || string(p.Payload) != w.payload {
					t.Errorf("entry %d: %s %q, want %s %q", p.ID, p.ChannelID, p.Payload, w.ch, w.payload)
				}
			}
		})
	}
}

// TestMigrateLargeFileInBatches: a file of more records than a batch takes
// is rewritten in several transactions (the failpoint runs once inside
// each), each visiting at most migrationBatch records, with progress after
// every one.
func TestMigrateLargeFileInBatches(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 12,000 records")
	}
	path := filepath.Join(t.TempDir(), "state.db")
	clk := newClock()
	db, err := Open(path, Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	const n = 6000
	putOldChannels(t, db, clk, 0, n)
	must(t, db.bolt.Update(func(tx *bolt.Tx) error {
		if _, err := recount(tx); err != nil {
			return err
		}
		return tx.Bucket([]byte(bucketMeta)).Put([]byte(schemaKey), []byte("3"))
	}), db.Close())

	txs := 0
	var calls [][2]int
	var logs logtest.Buffer
	db, err = Open(path, Options{Now: clk.Now, Logger: textLogger(&logs),
		Failpoint: func(point string) {
			if point == tilecast.FailInMigrate {
				txs++
			}
		},
		Progress: func(done, total int) { calls = append(calls, [2]int{done, total}) }})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { must(t, db.Close()) }()
	if want := (2*n + migrationBatch - 1) / migrationBatch; txs != want || len(calls) != want {
		t.Errorf("%d transactions, %d progress calls; want %d of each", txs, len(calls), want)
	}
	prev := 0
	for _, c := range calls {
		if c[1] != 2*n || c[0]-prev > migrationBatch || c[0] <= prev {
			t.Errorf("progress %v: each batch ≤ %d records of %d", calls, migrationBatch, 2*n)
			break
		}
		prev = c[0]
	}
	if prev != 2*n {
		t.Errorf("progress ends at %d, want %d", prev, 2*n)
	}
	if !strings.Contains(logs.String(), fmt.Sprintf(`msg="state file migrating" schema=4 done=%d total=%d`, 2*n, 2*n)) {
		t.Errorf("log lacks the last progress line:\n%s", logs.String())
	}
	checkCurrentForms(t, db)
	checkCounts(t, db, "after the migration")
}

// A record no decoder can read is logged and left as it is; the migration
// still finishes.
func TestMigrateLeavesUnreadable(t *testing.T) {
	f := writeOldFile(t, 3)
	bdb, err := bolt.Open(f.path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	must(t, bdb.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bucketLedger)).Put(append(prefix("zz"), outboxKey(nil, f.clk.Now(), 1)...), []byte{9, 9})
	}), bdb.Close())
	var logs logtest.Buffer
	db, err := Open(f.path, Options{Now: f.clk.Now, Logger: textLogger(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if !strings.Contains(logs.String(), `level=WARN msg="state file migration: record unreadable in any form, left as it is" bucket=ledger`) {
		t.Errorf("unreadable record not logged:\n%s", logs.String())
	}
	if _, err := db.Outcomes("zz", "", time.Time{}); err == nil {
		t.Error("the unreadable ledger value reads")
	}
}

// BenchmarkMigrateOldFile1M: how long start-up takes to migrate a
// schema 2 file of 1,000,000 channels (half JSON, half version 1) and as
// many ledger entries in the old form, ~600 MB: the rewrite runs in
// batches that each extend systemd's start timeout (Options.Progress),
// while "count records" and "index channel expiry" each read the whole
// file in one transaction with no progress between, so their time must
// stay far below a start timeout (TimeoutStartSec=60s in the shipped
// unit). Reported per step, from the migration's own log lines:
//
//	go test -run '^$' -bench MigrateOldFile1M -benchtime 1x ./store/
func BenchmarkMigrateOldFile1M(b *testing.B) {
	const n = 1_000_000
	clk := newClock()
	steps := regexp.MustCompile(`step="([^"]+)".* duration=(\S+)`)
	for range b.N {
		b.StopTimer()
		path := filepath.Join(b.TempDir(), "state.db")
		db, err := Open(path, Options{Now: clk.Now})
		if err != nil {
			b.Fatal(err)
		}
		const per = 50_000 // channels per transaction while building
		for start := 0; start < n; start += per {
			putOldChannels(b, db, clk, start, min(n, start+per))
		}
		must(b, db.bolt.Update(func(tx *bolt.Tx) error {
			// Schema 2: the counts, the rewrite and the expiry index to come.
			return tx.Bucket([]byte(bucketMeta)).Put([]byte(schemaKey), []byte("2"))
		}), db.Close())
		var logs logtest.Buffer
		b.StartTimer()
		db, err = Open(path, Options{Now: clk.Now, Logger: textLogger(&logs)})
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		must(b, db.Close())
		got := map[string]bool{}
		for _, m := range steps.FindAllStringSubmatch(logs.String(), -1) {
			d, err := time.ParseDuration(m[2])
			if err != nil {
				b.Fatalf("step %q: duration %q: %v", m[1], m[2], err)
			}
			got[m[1]] = true
			b.ReportMetric(d.Seconds()*1000, "ms/"+strings.ReplaceAll(m[1], " ", "-"))
		}
		for _, want := range []string{"count records", "rewrite records", "index channel expiry"} {
			if !got[want] {
				b.Fatalf("no %q step in the migration's log:\n%s", want, logs.String())
			}
		}
	}
}
