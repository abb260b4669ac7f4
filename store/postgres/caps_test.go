package postgres

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
)

// reserve is ReserveSends of one channel.
func reserve(t *testing.T, db *DB, day, id string, want int) int {
	t.Helper()
	got, err := db.ReserveSends(day, []string{id}, []int{want}, tilecast.DailyCap)
	if err != nil {
		t.Fatal(err)
	}
	return got[0]
}

// A channel's reservations of a day stop at the limit, whatever was
// asked for; one given back can be taken again; a new day starts from
// what the channel recorded that day (no send counts twice, none is
// forgotten); a day another instance has already moved the row past
// grants nothing and leaves the row alone.
func TestReserveSends(t *testing.T) {
	r := newInstanceRig(t)
	db := r.instance("a", Options{})
	r.enqueue(db, 3)
	chs, err := db.Channels("")
	if err != nil {
		t.Fatal(err)
	}
	a, b, c := chs[0].ID, chs[1].ID, chs[2].ID
	const day, next = "2026-03-01", "2026-03-02"

	steps := []struct {
		name      string
		day, id   string
		want, got int
	}{
		{"first", day, a, 300, 300},
		{"up to the cap", day, a, 300, 200},
		{"at the cap", day, a, 1, 0},
		{"another channel is its own", day, b, 499, 499},
		{"more than the cap at once", day, c, 900, 500},
	}
	for _, s := range steps {
		if got := reserve(t, db, s.day, s.id, s.want); got != s.got {
			t.Errorf("%s: %d of %d granted, want %d", s.name, got, s.want, s.got)
		}
	}
	if err := db.ReleaseSends(day, []string{a, a, a, b}); err != nil {
		t.Fatal(err)
	}
	if got := reserve(t, db, day, a, 10); got != 3 {
		t.Errorf("after 3 given back: %d granted, want 3", got)
	}
	if got := reserve(t, db, day, b, 10); got != 2 {
		t.Errorf("after 1 given back to 499: %d granted, want 2", got)
	}
	// A reservation of another day is not given back to this one.
	if err := db.ReleaseSends("2026-02-28", []string{a}); err != nil {
		t.Fatal(err)
	}
	if n, _ := db.Reserved(a, day); n != tilecast.DailyCap {
		t.Errorf("%d reserved after giving back a day before, want %d", n, tilecast.DailyCap)
	}

	// The next day: a starts from the 7 sends it recorded then (sent
	// the day before, answered after midnight).
	r.clk.Add(12*time.Hour + time.Second) // 2026-03-02 00:00:01
	var recs []tilecast.Record
	for i := range 7 {
		recs = append(recs, tilecast.Record{ID: uint64(1000 + i), Op: tilecast.OpDone, Sent: true,
			Outcome: tilecast.Outcome{ChannelID: a, Action: tilecast.ActionDelivered, Status: 200, Time: r.clk.Now()}})
	}
	if err := db.Record(recs); err != nil {
		t.Fatal(err)
	}
	if got := reserve(t, db, next, a, 1000); got != tilecast.DailyCap-7 {
		t.Errorf("next day: %d granted, want %d (7 recorded that day)", got, tilecast.DailyCap-7)
	}
	if got := reserve(t, db, next, b, 1000); got != tilecast.DailyCap {
		t.Errorf("next day: %d granted to b, want %d", got, tilecast.DailyCap)
	}
	// An instance whose clock still says yesterday gets nothing and
	// does not take the row back.
	if got := reserve(t, db, day, c, 1); got != 0 {
		t.Errorf("c at yesterday (its row is at %s): %d granted", day, got)
	}
	if _, err := db.ReserveSends(next, []string{c}, []int{1}, tilecast.DailyCap); err != nil {
		t.Fatal(err)
	}
	if got := reserve(t, db, day, c, 1); got != 0 {
		t.Errorf("c at yesterday (its row is at %s): %d granted", next, got)
	}
	if n, _ := db.Reserved(c, next); n != 1 {
		t.Errorf("c: %d reserved for %s, want 1", n, next)
	}

	// Bad input is refused, naming it.
	if _, err := db.ReserveSends("tomorrow", []string{a}, []int{1}, tilecast.DailyCap); err == nil {
		t.Error("a day that is no date was accepted")
	}
	if _, err := db.ReserveSends(next, []string{a, a}, []int{1, 1}, tilecast.DailyCap); err == nil {
		t.Error("a channel named twice was accepted")
	}

	// Heartbeats drop the rows of days before yesterday.
	r.clk.Add(60 * time.Hour) // 2026-03-04 12:00:01
	if err := db.beat(false); err != nil {
		t.Fatal(err)
	}
	if n := sql(t, r.url, "SELECT count(*) FROM daily_caps"); n != int64(0) {
		t.Errorf("%v daily cap rows left two days later", n)
	}
}

// Instances reserving and giving back at once, for overlapping channels
// in random orders and amounts, never hold more than the cap of a
// channel's day between them, and reach it exactly: no reservation is
// lost or counted twice, and none waits for another forever (rows are
// locked in one order).
func TestReserveSendsConcurrently(t *testing.T) {
	r := newInstanceRig(t)
	const instances, channels, rounds = 4, 8, 40
	dbs := make([]*DB, instances)
	for i := range dbs {
		dbs[i] = r.instance(fmt.Sprint("i", i), Options{})
	}
	r.enqueue(dbs[0], channels)
	chs, err := dbs[0].Channels("")
	if err != nil {
		t.Fatal(err)
	}
	const day = "2026-03-01"
	var mu sync.Mutex
	held := map[string]int{} // granted minus given back, per channel
	var wg sync.WaitGroup
	for i, db := range dbs {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			for range rounds {
				var ids []string
				var want []int
				for _, j := range rng.Perm(channels)[:1+rng.IntN(channels)] {
					ids, want = append(ids, chs[j].ID), append(want, 1+rng.IntN(40))
				}
				got, err := db.ReserveSends(day, ids, want, tilecast.DailyCap)
				if err != nil {
					t.Error(err)
					return
				}
				var back []string
				mu.Lock()
				for k, id := range ids {
					if got[k] > want[k] || got[k] < 0 {
						t.Errorf("%d granted for %d asked", got[k], want[k])
					}
					held[id] += got[k]
					if got[k] > 0 && rng.IntN(4) == 0 {
						back = append(back, id) // one of them got no answer
						held[id]--
					}
				}
				mu.Unlock()
				if err := db.ReleaseSends(day, back); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	for _, ch := range chs {
		n, err := dbs[0].Reserved(ch.ID, day)
		if err != nil {
			t.Fatal(err)
		}
		if n != held[ch.ID] || n > tilecast.DailyCap {
			t.Errorf("channel %s: %d reserved in the database, %d held by the instances (cap %d)", ch.ID, n, held[ch.ID], tilecast.DailyCap)
		}
	}
	// Demand was far above the cap: every channel reached it, then the
	// last give-backs took a few off. Fill up again: exactly the cap.
	for _, ch := range chs {
		got := reserve(t, dbs[1], day, ch.ID, tilecast.DailyCap)
		if held[ch.ID]+got != tilecast.DailyCap {
			t.Errorf("channel %s: %d held + %d granted, want the cap %d", ch.ID, held[ch.ID], got, tilecast.DailyCap)
		}
	}
}
