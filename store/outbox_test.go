package store

import (
	"fmt"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
)

// S8: draining 10k entries with Due + Record processes each exactly once.
func TestDrainExactlyOnce(t *testing.T) {
	db, clk := mustOpen(t)
	var chs []tilecast.Channel
	for i := range 10 {
		chs = append(chs, addChannel(t, db, tilecast.Channel{URI: fmt.Sprintf("http://127.0.0.1/%d", i)}))
	}
	const total = 10000
	var ns []tilecast.Notification
	for i := range total {
		n := toast(chs[i%len(chs)], "news", fmt.Sprint(i))
		n.NextAttempt = clk.Now().Add(time.Duration(i%7) * time.Millisecond)
		ns = append(ns, n)
	}
	if err := db.Enqueue(ns); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	var rounds int
	for ; rounds < 1000; rounds++ {
		ps, err := db.Due(clk.Now().Add(time.Second), 256, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(ps) == 0 {
			break
		}
		var recs []tilecast.Record
		for _, p := range ps {
			seen[p.ItemID]++
			recs = append(recs, tilecast.Record{ID: p.ID, Due: p.NextAttempt, Op: tilecast.OpDone})
		}
		if err := db.Record(recs); err != nil {
			t.Fatal(err)
		}
	}
	if len(seen) != total {
		t.Errorf("processed %d distinct entries, want %d", len(seen), total)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("entry %s processed %d times", id, n)
		}
	}
	if s, _ := db.Counts(); s.OutboxDepth != 0 {
		t.Errorf("outbox depth %d after drain", s.OutboxDepth)
	}
	err := db.view(func(b *buckets) error {
		if n := b.outboxChan.Stats().KeyN; n != 0 {
			t.Errorf("%d index entries left", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Removing a channel with thousands of entries removes all of them.
	if err := db.Enqueue(ns); err != nil {
		t.Fatal(err)
	}
	for _, ch := range chs {
		if err := db.RemoveChannel(ch.ID); err != nil {
			t.Fatal(err)
		}
	}
	if s, _ := db.Counts(); s.OutboxDepth != 0 {
		t.Errorf("outbox depth %d after removing every channel", s.OutboxDepth)
	}
}

// Entries whose channel vanished outside the store's indexes are skipped by
// Due and deleted afterwards.
func TestDueDropsOrphans(t *testing.T) {
	db, clk := mustOpen(t)
	a := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/a"})
	b := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/b"})
	if err := db.Enqueue([]tilecast.Notification{toast(a, "news", "1"), toast(b, "news", "2"), tile(a, "news", "T")}); err != nil {
		t.Fatal(err)
	}
	// Delete the channel record behind the indexes' back, and put an
	// unreadable record in the outbox.
	err := db.update(func(bk *buckets) error {
		if err := bk.channels.Delete([]byte(a.ID)); err != nil {
			return err
		}
		return bk.outbox.Put(outboxKey(nil, clk.Now(), 77), []byte{9, 9, 9})
	})
	if err != nil {
		t.Fatal(err)
	}
	recountAfterRawWrite(t, db)
	ps, err := db.Due(clk.Now(), 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 1 || ps[0].ItemID != "2" {
		t.Errorf("Due = %v, want only b's entry", ps)
	}
	if s, _ := db.Counts(); s.OutboxDepth != 1 {
		t.Errorf("outbox depth %d, want 1: orphans and garbage dropped", s.OutboxDepth)
	}
	// The dropped entries released their payloads.
	checkPayloads(t, db, "orphans dropped")
}
