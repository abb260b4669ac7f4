package storetest

import (
	"context"
	"fmt"
	"testing"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/store/dump"
)

// Copier is a store that can write and read its whole state (dump).
type Copier interface {
	Backend
	Export(ctx context.Context, fn func(dump.Item) error) error
	Importer() dump.Writer
}

// Copy writes every item of src into dst and returns how many of each
// kind it copied.
func Copy(t testing.TB, src, dst Copier) dump.Tally {
	t.Helper()
	n := dump.Tally{}
	w := dst.Importer()
	if err := src.Export(context.Background(), func(it dump.Item) error { n.Add(&it); return w.Write(it) }); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return n
}

// CheckCopy checks that dst, a copy of src (Copy), is the same state:
// every listing equal, every kind of record there as many times, and
// the copy behaves as the original: a delivered tile is still known (an
// equal one is not queued again) and a new entry's ID follows the
// copied ones.
func CheckCopy(t testing.TB, src, dst Copier) {
	t.Helper()
	a, b := Take(t, src), Take(t, dst)
	if d := a.Diff(b); d != "" {
		t.Fatalf("the copy differs from the original:\n%s", d)
	}
	ta, tb := dump.Tally{}, dump.Tally{}
	for _, x := range []struct {
		db Copier
		n  dump.Tally
	}{{src, ta}, {dst, tb}} {
		if err := x.db.Export(context.Background(), func(it dump.Item) error { x.n.Add(&it); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if d := ta.Diff(tb); d != "" {
		t.Errorf("records by kind differ: %s", d)
	}
	for _, k := range dump.Kinds() {
		if ta[k] == 0 {
			t.Errorf("the state has no %s: Populate should make some", k)
		}
	}
	// Behaviour that rests on records no listing shows: last tiles,
	// the outbox sequence.
	var maxID uint64
	for _, p := range a.Outbox {
		maxID = max(maxID, p.ID)
	}
	for _, d := range a.Dead {
		maxID = max(maxID, d.Notification.ID)
	}
	// A channel whose news tile was delivered (the ledger says), and that
	// tile: Populate gives channel p/NN the tile "tile NN%3".
	var target tilecast.Channel
	var shown string
	for _, o := range a.Ledger {
		if o.Kind != tilecast.KindTile || o.Action != tilecast.ActionDelivered {
			continue
		}
		for _, ch := range a.Channels {
			var n int
			if _, err := fmt.Sscanf(ch.URI, "http://127.0.0.1/p/%d", &n); err == nil && ch.ID == o.ChannelID && ch.Device == "" {
				target, shown = ch, fmt.Sprint("tile ", n%3)
			}
		}
	}
	if target.ID == "" {
		t.Fatal("no channel with a delivered tile: Populate should make some")
	}
	// The WNS channel's delivered badge is "badge 2"; "badge 3" waits.
	var wns tilecast.Channel
	for _, ch := range a.Channels {
		if ch.Transport == tilecast.TransportWNS {
			wns = ch
		}
	}
	for _, db := range []Copier{src, dst} {
		must(t, db.Enqueue([]tilecast.Notification{badge(wns, "news", "badge 2")}))
		var got []string
		for _, p := range outboxOf(t, db, wns.ID, farFuture) {
			if p.Kind == tilecast.KindBadge {
				got = append(got, string(p.Payload))
			}
		}
		if len(got) != 0 {
			t.Errorf("badges waiting for %s after enqueueing the delivered one = %q: want the waiting one replaced and "+
				"the delivered one skipped", wns.ID, got)
		}
		before := len(mustDue(t, db, farFuture))
		must(t, db.Enqueue([]tilecast.Notification{tile(target, "news", shown), toast(target, "news", "after copy")}))
		ps := mustDue(t, db, farFuture)
		if len(ps) != before+1 {
			t.Errorf("after enqueueing the delivered tile and a toast: %d entries, was %d: want only the toast added", len(ps), before)
		}
		for _, p := range ps {
			if p.ItemID == "after copy" && p.ID <= maxID {
				t.Errorf("a new entry got ID %d, not after the copied ones (≤ %d)", p.ID, maxID)
			}
		}
	}
}
