package store

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
)

// TestFailpointInsideTransactions checks where Options.Failpoint fires: once
// per Commit and once per Record, inside the write transaction, when its
// writes are complete but not yet visible to a reader. The crash tests rely
// on that to kill the daemon "inside the diff tx" and "inside the mark-sent
// tx" (reliability.md S2 b, e).
func TestFailpointInsideTransactions(t *testing.T) {
	c := newClock()
	var db *DB
	type hit struct {
		point   string
		visible int // outbox entries a concurrent reader sees at the hit
	}
	var hits []hit
	db, err := Open(filepath.Join(t.TempDir(), "state.db"), Options{
		Timeout: 200 * time.Millisecond,
		Now:     c.Now,
		Failpoint: func(point string) {
			if point == tilecast.FailInMigrate {
				return // a new file's (empty) migration batch, in Open
			}
			// A reader in another goroutine sees the last committed state.
			seen := make(chan int, 1)
			go func() {
				due, err := db.Due(c.Now().Add(time.Hour), 100, func(uint64) bool { return false })
				if err != nil {
					t.Error(err)
				}
				seen <- len(due)
			}()
			hits = append(hits, hit{point, <-seen})
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })

	ch := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/a"})
	k := tilecast.FeedKey{Feed: "news"}
	if err := db.Commit(tilecast.Commit{Key: k, State: tilecast.FeedState{Baselined: true}, Seen: []string{"1"}, Now: c.Now(),
		Notifications: []tilecast.Notification{toast(ch, "news", "1")}}); err != nil {
		t.Fatal(err)
	}
	due, err := db.Due(c.Now(), 10, func(uint64) bool { return false })
	if err != nil || len(due) != 1 {
		t.Fatalf("after Commit: %d due, %v; want 1", len(due), err)
	}
	if err := db.Record([]tilecast.Record{{ID: due[0].ID, Due: due[0].NextAttempt, Op: tilecast.OpDone, Sent: true,
		Outcome: tilecast.Outcome{ChannelID: ch.ID, Action: tilecast.ActionDelivered, Time: c.Now()}}}); err != nil {
		t.Fatal(err)
	}
	want := []hit{
		{tilecast.FailInCommit, 0}, // the new entry is not visible yet
		{tilecast.FailInRecord, 1}, // the entry is still there for readers
	}
	if len(hits) != len(want) {
		t.Fatalf("hits = %+v, want %+v", hits, want)
	}
	for i := range want {
		if hits[i] != want[i] {
			t.Errorf("hit %d = %+v, want %+v", i, hits[i], want[i])
		}
	}
	if due, _ := db.Due(c.Now().Add(time.Hour), 10, func(uint64) bool { return false }); len(due) != 0 {
		t.Errorf("after Record: %d entries left, want 0", len(due))
	}
}
