package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
)

// storedPayloads returns the reference count of every stored payload.
func storedPayloads(tb testing.TB, db *DB) map[payloadKey]uint64 {
	tb.Helper()
	out := map[payloadKey]uint64{}
	err := db.view(func(b *buckets) error {
		if b.bodies == nil {
			return nil
		}
		return b.bodies.ForEach(func(k, v []byte) error {
			var pk payloadKey
			if len(k) != len(pk) {
				return fmt.Errorf("payload key %x", k)
			}
			copy(pk[:], k)
			_, refs, err := splitPayloadValue(v)
			out[pk] = refs
			return err
		})
	})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// outboxRefs counts the payload references of the outbox entries.
func outboxRefs(tb testing.TB, db *DB) map[payloadKey]uint64 {
	tb.Helper()
	out := map[payloadKey]uint64{}
	err := db.view(func(b *buckets) error {
		return b.outbox.ForEach(func(k, v []byte) error {
			e, err := decodeEntry(v)
			if err != nil {
				return fmt.Errorf("entry %x: %w", k, err)
			}
			if e.hasRef {
				out[e.ref]++
			}
			return nil
		})
	})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// checkPayloads fails unless every stored count equals the outbox's
// references: nothing leaks, nothing referenced is missing.
func checkPayloads(tb testing.TB, db *DB, step string) {
	tb.Helper()
	stored, want := storedPayloads(tb, db), outboxRefs(tb, db)
	if !maps.Equal(stored, want) {
		tb.Errorf("%s: stored payload counts %v, outbox references %v", step, stored, want)
	}
}

func addChannels(tb testing.TB, db *DB, n int) []tilecast.Channel {
	tb.Helper()
	chs := make([]tilecast.Channel, n)
	for i := range chs {
		chs[i] = addChannel(tb, db, tilecast.Channel{URI: fmt.Sprintf("http://127.0.0.1/c%d", i)})
	}
	return chs
}

func TestFanOutStoresEachPayloadOnce(t *testing.T) {
	db, clk := mustOpen(t)
	chs := addChannels(t, db, 40)
	hdr := []tilecast.Header{{Name: "Content-Type", Value: "text/xml"}, {Name: "X-NotificationClass", Value: "2"}}
	var ns []tilecast.Notification
	for i, ch := range chs {
		// Every channel gets its own copy of the same bytes, as after a
		// restart; every fourth channel a per-user variant.
		body := []byte("<toast>news</toast>")
		if i%4 == 0 {
			body = []byte(fmt.Sprintf("<toast>user %d</toast>", i%8))
		}
		ns = append(ns,
			tilecast.Notification{ChannelID: ch.ID, Feed: "news", ItemID: "i1", Kind: tilecast.KindToast,
				Request: tilecast.Request{Headers: slices.Clone(hdr), Body: body}},
			tile(ch, "news", "<tile/>"),
			// Same body, other headers: another payload.
			tilecast.Notification{ChannelID: ch.ID, Feed: "news", ItemID: "i1", Kind: tilecast.KindRaw,
				Request: tilecast.Request{Headers: hdr[:1], Body: []byte("<toast>news</toast>")}})
	}
	if err := db.Commit(tilecast.Commit{Key: tilecast.FeedKey{Feed: "news"}, Now: clk.Now(), Notifications: ns}); err != nil {
		t.Fatal(err)
	}
	stored := storedPayloads(t, db)
	counts := slices.Sorted(maps.Values(stored))
	// toast ×30, tile ×40, raw ×40, user 0 ×5, user 4 ×5.
	if want := []uint64{5, 5, 30, 40, 40}; !slices.Equal(counts, want) {
		t.Errorf("payload counts %v, want %v", counts, want)
	}
	checkPayloads(t, db, "after fan-out")
	err := db.view(func(b *buckets) error {
		return b.outbox.ForEach(func(k, v []byte) error {
			if v[0] != recordV2 || len(v) > 120 {
				t.Errorf("entry %x: version %d, %d bytes", k, v[0], len(v))
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	ps, err := db.Due(clk.Now(), len(ns)+1, nil)
	if err != nil || len(ps) != len(ns) {
		t.Fatalf("Due = %d, %v", len(ps), err)
	}
	for i, p := range ps {
		want := ns[i]
		if p.ChannelID != want.ChannelID || p.Kind != want.Kind || !reflect.DeepEqual(p.Request.Headers, want.Request.Headers) ||
			!bytes.Equal(p.Request.Body, want.Request.Body) {
			t.Errorf("pending %d = %s %s %+v, want %s %s %+v", i, p.ChannelID, p.Kind, p.Request, want.ChannelID, want.Kind, want.Request)
		}
	}
}

// allPending returns every outbox entry, due or not, in due order.
func allPending(tb testing.TB, db *DB, now time.Time) []tilecast.Pending {
	tb.Helper()
	ps, err := db.Due(now.Add(1000*time.Hour), 1<<30, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return ps
}

// TestPayloadCountsFollowEveryRemoval runs each way an entry leaves the
// outbox and checks the counts after each, then drains the rest: no
// payload is left behind.
func TestPayloadCountsFollowEveryRemoval(t *testing.T) {
	db, clk := mustOpen(t)
	chs := addChannels(t, db, 4)
	phone := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/phone", Device: "phone"})
	all := append(slices.Clone(chs), phone)
	commit := func(step, item, tileBody string) {
		t.Helper()
		var ns []tilecast.Notification
		for _, ch := range all {
			ns = append(ns, toast(ch, "news", item), tile(ch, "news", tileBody))
		}
		// A second tile in the same commit replaces the first at once.
		ns = append(ns, tile(all[0], "news", tileBody+"'"))
		if err := db.Commit(tilecast.Commit{Key: tilecast.FeedKey{Feed: "news"}, Now: clk.Now(), Notifications: ns}); err != nil {
			t.Fatal(err)
		}
		checkPayloads(t, db, step)
	}
	commit("first fan-out", "1", "T1")
	// Its tiles replace the waiting ones: T1 and T1' lose every reference.
	commit("second fan-out", "2", "T2")
	if got, want := slices.Sorted(maps.Values(storedPayloads(t, db))), []uint64{1, 4, 5, 5}; !slices.Equal(got, want) {
		t.Errorf("payload counts %v, want %v (T2', T2, toast 1, toast 2)", got, want)
	}
	ids := map[string][]uint64{} // channel → entry IDs, due order: toast 1, toast 2, tile
	for _, p := range allPending(t, db, clk.Now()) {
		ids[p.ChannelID] = append(ids[p.ChannelID], p.ID)
	}
	record := func(step string, recs ...tilecast.Record) {
		t.Helper()
		if err := db.Record(recs); err != nil {
			t.Fatal(err)
		}
		checkPayloads(t, db, step)
	}
	out := func(a tilecast.Action) tilecast.Outcome { return tilecast.Outcome{Action: a, Status: 200} }
	later := clk.Now().Add(time.Hour)
	record("retry and postpone",
		tilecast.Record{ID: ids[chs[0].ID][0], Op: tilecast.OpRetry, NextAttempt: later, Sent: true, Outcome: out(tilecast.ActionRetry)},
		tilecast.Record{ID: ids[chs[0].ID][1], Op: tilecast.OpPostpone, NextAttempt: later})
	record("done, dead, removed channel",
		tilecast.Record{ID: ids[chs[1].ID][0], Op: tilecast.OpDone, Sent: true, Outcome: out(tilecast.ActionDelivered)},
		tilecast.Record{ID: ids[chs[1].ID][1], Op: tilecast.OpDone, Sent: true, Outcome: out(tilecast.ActionDelivered)},
		tilecast.Record{ID: ids[chs[2].ID][0], Op: tilecast.OpDead, Sent: true, Outcome: out(tilecast.ActionFailed)},
		tilecast.Record{ID: ids[chs[3].ID][0], Op: tilecast.OpRemoveChannel, Sent: true, Outcome: out(tilecast.ActionChannelRemoved)})
	// The dead letter keeps the whole request.
	dl, err := db.DeadLetters(0)
	if err != nil || len(dl) != 1 || string(dl[0].Notification.Request.Body) != "toast 1" ||
		dl[0].Notification.Request.Header("X-NotificationClass") != "2" {
		t.Errorf("dead letters = %+v, %v", dl, err)
	}
	// A device that re-registers under a new URI takes its entries along.
	nw, _, err := db.AddChannel(tilecast.Channel{URI: "http://127.0.0.1/phone2", Device: "phone"})
	if err != nil {
		t.Fatal(err)
	}
	checkPayloads(t, db, "device replaced")
	if got := len(allPending(t, db, clk.Now())); got != 9 {
		t.Errorf("%d entries left, want 9 (15 - 2 done - 1 dead - 3 of the removed channel)", got)
	}
	var moved []string
	for _, p := range allPending(t, db, clk.Now()) {
		if p.ChannelID == nw.ID {
			moved = append(moved, string(p.Request.Body))
		}
	}
	if !slices.Equal(moved, []string{"toast 1", "toast 2", "T2"}) {
		t.Errorf("moved entries %q", moved)
	}
	drain(t, db, later)
	if s := storedPayloads(t, db); len(s) != 0 {
		t.Errorf("drained outbox leaves payloads %v", s)
	}
	// The delivered tile is known as shown: the same tile is not queued again.
	if err := db.Enqueue([]tilecast.Notification{tile(nw, "news", "T2")}); err != nil {
		t.Fatal(err)
	}
	if s, _ := db.Counts(); s.OutboxDepth != 0 {
		t.Errorf("identical tile queued again: depth %d", s.OutboxDepth)
	}
}

// drain records every entry due by at as delivered, a few per batch.
func drain(tb testing.TB, db *DB, at time.Time) {
	tb.Helper()
	for {
		ps, err := db.Due(at, 4, nil)
		if err != nil {
			tb.Fatal(err)
		}
		if len(ps) == 0 {
			return
		}
		recs := make([]tilecast.Record, len(ps))
		for i, p := range ps {
			recs[i] = tilecast.Record{ID: p.ID, Due: p.NextAttempt, Op: tilecast.OpDone, Sent: true,
				Outcome: tilecast.Outcome{ChannelID: p.ChannelID, Feed: p.Feed, Kind: p.Kind, Status: 200, Action: tilecast.ActionDelivered}}
		}
		if err := db.Record(recs); err != nil {
			tb.Fatal(err)
		}
		checkPayloads(tb, db, "drain")
	}
}

// TestRemoveChannelPayloads: RemoveChannel releases the payloads of the
// channel's entries at once (no recount needed); a recount agrees.
func TestRemoveChannelPayloads(t *testing.T) {
	db, clk := mustOpen(t)
	chs := addChannels(t, db, 3)
	var ns []tilecast.Notification
	for _, ch := range chs {
		ns = append(ns, toast(ch, "news", "1"))
	}
	ns = append(ns, toast(chs[0], "news", "only a"))
	if err := db.Enqueue(ns); err != nil {
		t.Fatal(err)
	}
	if err := db.RemoveChannel(chs[0].ID); err != nil {
		t.Fatal(err)
	}
	checkPayloads(t, db, "right after RemoveChannel")
	if got := slices.Collect(maps.Values(storedPayloads(t, db))); !slices.Equal(got, []uint64{2}) {
		t.Errorf("payload counts after RemoveChannel %v, want [2]", got)
	}
	if _, err := db.PruneLedger(); err != nil {
		t.Fatal(err)
	}
	checkPayloads(t, db, "after recount")
	if got := slices.Collect(maps.Values(storedPayloads(t, db))); !slices.Equal(got, []uint64{2}) {
		t.Errorf("payload counts %v, want [2]", got)
	}
	if err := db.RemoveChannel(chs[1].ID); err != nil {
		t.Fatal(err)
	}
	drain(t, db, clk.Now())
	if s := storedPayloads(t, db); len(s) != 0 {
		t.Errorf("drained outbox leaves payloads %v", s)
	}
}

func TestSweepPayloadsRepairs(t *testing.T) {
	db, clk := mustOpen(t)
	chs := addChannels(t, db, 2)
	if err := db.Enqueue([]tilecast.Notification{toast(chs[0], "news", "1"), toast(chs[1], "news", "1"), toast(chs[1], "news", "2")}); err != nil {
		t.Fatal(err)
	}
	var fixed int
	err := db.update(func(b *buckets) error {
		// One count too high, one too low, an orphan and an unreadable value.
		for _, k := range slices.Collect(maps.Keys(outboxRefs(t, db))) {
			p, refs, err := b.payloadValue(k)
			if err != nil {
				return err
			}
			v := append([]byte{payloadV1}, binary.AppendUvarint(nil, refs*7-6)...) // 1 → 1, 2 → 8
			if refs == 1 {
				v = append([]byte{payloadV1}, 0)
			}
			if err := b.bodies.Put(k[:], append(v, p...)); err != nil {
				return err
			}
		}
		orphan := tilecast.Request{Body: []byte("orphan")}
		p := appendPayload(nil, &orphan)
		k := sha256.Sum256(p)
		if err := b.bodies.Put(k[:], append([]byte{payloadV1, 3}, p...)); err != nil {
			return err
		}
		if err := b.bodies.Put(bytes.Repeat([]byte{0xee}, 32), []byte{9}); err != nil {
			return err
		}
		var err error
		fixed, err = b.sweepPayloads()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if fixed != 4 {
		t.Errorf("sweep fixed %d payloads, want 4", fixed)
	}
	checkPayloads(t, db, "after sweep")
	drain(t, db, clk.Now())
}

// TestMissingPayloadDropsEntry: an entry whose payload is gone cannot be
// sent; Due skips and drops it like an unreadable record.
func TestMissingPayloadDropsEntry(t *testing.T) {
	db, clk := mustOpen(t)
	chs := addChannels(t, db, 2)
	if err := db.Enqueue([]tilecast.Notification{toast(chs[0], "news", "lost"), toast(chs[1], "news", "kept")}); err != nil {
		t.Fatal(err)
	}
	err := db.update(func(b *buckets) error {
		req := toast(chs[0], "news", "lost").Request
		k := sha256.Sum256(appendPayload(nil, &req))
		return b.bodies.Delete(k[:])
	})
	if err != nil {
		t.Fatal(err)
	}
	ps, err := db.Due(clk.Now(), 10, nil)
	if err != nil || len(ps) != 1 || ps[0].ItemID != "kept" {
		t.Fatalf("Due = %+v, %v; want only the kept entry", ps, err)
	}
	if s, _ := db.Counts(); s.OutboxDepth != 1 {
		t.Errorf("outbox depth %d, want 1", s.OutboxDepth)
	}
	checkPayloads(t, db, "after drop")
}

// TestVersion1Entries: entries written before payloads were shared are
// sent, retried, delivered and given up on as before, and stay version 1.
func TestVersion1Entries(t *testing.T) {
	db, clk := mustOpen(t)
	ch := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/a"})
	old := []tilecast.Notification{toast(ch, "news", "1"), tile(ch, "news", "T1"), toast(ch, "news", "2")}
	err := db.update(func(b *buckets) error {
		for i := range old {
			n := &old[i]
			seq, err := b.outbox.NextSequence()
			if err != nil {
				return err
			}
			n.ID, n.NextAttempt, n.Created = seq, clk.Now(), clk.Now()
			key := outboxKey(nil, n.NextAttempt, seq)
			if err := b.outbox.Put(key, encodeEntry(nil, &entry{n: *n})); err != nil {
				return err
			}
			if err := b.outboxChan.Put(join(ch.ID, key), nil); err != nil {
				return err
			}
			if n.Kind == tilecast.KindTile {
				if err := b.tileWaiting.Put(joinStr(ch.ID, n.Feed), key); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	recountAfterRawWrite(t, db)
	ps, err := db.Due(clk.Now(), 10, nil)
	if err != nil || len(ps) != 3 {
		t.Fatalf("Due = %d, %v", len(ps), err)
	}
	for i, p := range ps {
		if !reflect.DeepEqual(p.Notification, old[i]) {
			t.Errorf("pending %d = %+v, want %+v", i, p.Notification, old[i])
		}
	}
	later := clk.Now().Add(time.Minute)
	if err := db.Record([]tilecast.Record{
		{ID: ps[0].ID, Op: tilecast.OpRetry, NextAttempt: later, Sent: true, Outcome: tilecast.Outcome{Action: tilecast.ActionRetry}},
		{ID: ps[1].ID, Op: tilecast.OpDone, Sent: true, Outcome: tilecast.Outcome{Action: tilecast.ActionDelivered}},
		{ID: ps[2].ID, Op: tilecast.OpDead, Sent: true, Outcome: tilecast.Outcome{Action: tilecast.ActionFailed}},
	}); err != nil {
		t.Fatal(err)
	}
	err = db.view(func(b *buckets) error {
		k, v := b.outbox.Cursor().First()
		if k == nil || v[0] != recordV1 {
			t.Errorf("retried entry %x is not version 1: %v", k, v)
		}
		if b.bodies != nil && b.bodies.Stats().KeyN != 0 {
			t.Errorf("version 1 entries stored payloads")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	left := allPending(t, db, clk.Now())
	if len(left) != 1 || left[0].Attempts != 1 || string(left[0].Request.Body) != "toast 1" {
		t.Errorf("retried entry = %+v", left)
	}
	dl, err := db.DeadLetters(0)
	if err != nil || len(dl) != 1 || string(dl[0].Notification.Request.Body) != "toast 2" {
		t.Errorf("dead letters = %+v, %v", dl, err)
	}
	// The delivered version 1 tile counts as shown for a version 2 one.
	if err := db.Enqueue([]tilecast.Notification{tile(ch, "news", "T1"), tile(ch, "other", "T1")}); err != nil {
		t.Fatal(err)
	}
	if s, _ := db.Counts(); s.OutboxDepth != 2 {
		t.Errorf("outbox depth %d, want 2 (the retried toast and the other feed's tile)", s.OutboxDepth)
	}
	checkPayloads(t, db, "mixed versions")
}
