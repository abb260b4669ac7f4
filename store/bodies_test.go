package store

import (
	"bytes"
	"fmt"
	"maps"
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
			_, _, refs, err := splitPayloadValue(v)
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
	var ns []tilecast.Notification
	for i, ch := range chs {
		// Every channel gets its own copy of the same bytes, as after a
		// restart; every fourth channel a per-user variant.
		body := []byte("<toast>news</toast>")
		if i%4 == 0 {
			body = []byte(fmt.Sprintf("<toast>user %d</toast>", i%8))
		}
		ns = append(ns,
			tilecast.Notification{ChannelID: ch.ID, Feed: "news", ItemID: "i1", Kind: tilecast.KindToast, Payload: body},
			tile(ch, "news", "<tile/>"),
			// Same bytes, other kind: the same payload (the kind is the
			// entry's, the headers the transport's).
			tilecast.Notification{ChannelID: ch.ID, Feed: "news", ItemID: "i1", Kind: tilecast.KindRaw, Payload: []byte("<toast>news</toast>")})
	}
	if err := db.Commit(tilecast.Commit{Key: tilecast.FeedKey{Feed: "news"}, Now: clk.Now(), Notifications: ns}); err != nil {
		t.Fatal(err)
	}
	stored := storedPayloads(t, db)
	counts := slices.Sorted(maps.Values(stored))
	// toast ×30 + raw ×40, tile ×40, user 0 ×5, user 4 ×5.
	if want := []uint64{5, 5, 40, 70}; !slices.Equal(counts, want) {
		t.Errorf("payload counts %v, want %v", counts, want)
	}
	checkPayloads(t, db, "after fan-out")
	err := db.view(func(b *buckets) error {
		if err := b.outbox.ForEach(func(k, v []byte) error {
			if v[0] != recordV4 || len(v) > 100 {
				t.Errorf("entry %x: version %d, %d bytes", k, v[0], len(v))
			}
			return nil
		}); err != nil {
			return err
		}
		return b.bodies.ForEach(func(k, v []byte) error {
			if v[0] != payloadV2 {
				t.Errorf("payload %x: layout %d, want 2", k, v[0])
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
		if p.ChannelID != want.ChannelID || p.Kind != want.Kind || !bytes.Equal(p.Payload, want.Payload) ||
			!p.Created.Equal(clk.Now()) {
			t.Errorf("pending %d = %s %s %q %v, want %s %s %q", i, p.ChannelID, p.Kind, p.Payload, p.Created, want.ChannelID, want.Kind, want.Payload)
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
	// The dead letter keeps its payload and kind.
	dl, err := db.DeadLetters(0)
	if err != nil || len(dl) != 1 || string(dl[0].Notification.Payload) != "toast 1" ||
		dl[0].Notification.Kind != tilecast.KindToast {
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
			moved = append(moved, string(p.Payload))
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
			layout, p, refs, err := b.payloadValue(k)
			if err != nil {
				return err
			}
			bad := refs*7 - 6 // 2 → 8
			if refs == 1 {
				bad = 0
			}
			if err := b.bodies.Put(k[:], payloadValue(layout, bad, p)); err != nil {
				return err
			}
		}
		orphan := []byte("orphan")
		k := payloadKeyOf(orphan)
		if err := b.bodies.Put(k[:], payloadValue(payloadV2, 3, orphan)); err != nil {
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
		k := payloadKeyOf(toast(chs[0], "news", "lost").Payload)
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
