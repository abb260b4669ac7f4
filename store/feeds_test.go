package store

import (
	"errors"
	"strings"
	"testing"

	"github.com/tilecast/tilecast"
)

// A commit that fails leaves nothing behind: not the seen IDs, not the
// state, not the outbox entries.
func TestCommitAtomic(t *testing.T) {
	tests := []struct {
		name   string
		key    tilecast.FeedKey
		inject error
	}{
		{"hook fails at the end", tilecast.FeedKey{Feed: "news"}, errors.New("injected")},
		// The seen bucket name is over bbolt's 32 KiB key limit: the first
		// write fails ("late put fails" below covers a failure mid-way).
		{"feed key too large", tilecast.FeedKey{Feed: "news", User: strings.Repeat("u", 40000)}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, clk := mustOpen(t)
			ch := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/a"})
			db.beforeCommit = func() error { return tt.inject }
			err := db.Commit(tilecast.Commit{Key: tt.key, State: tilecast.FeedState{Baselined: true}, Seen: []string{"1", "2"}, Now: clk.Now(),
				Notifications: []tilecast.Notification{toast(ch, "news", "1"), tile(ch, "news", "T")}})
			if err == nil {
				t.Fatal("Commit succeeded")
			}
			if tt.inject != nil && !errors.Is(err, tt.inject) {
				t.Errorf("err = %v, want the injected error", err)
			}
			assertNothingCommitted(t, db, tt.key)
		})
	}
	t.Run("late put fails", func(t *testing.T) {
		// A tile whose feed name makes its tile_waiting key too large fails
		// after the seen IDs, the state and one outbox entry were put.
		db, clk := mustOpen(t)
		ch := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/a"})
		k := tilecast.FeedKey{Feed: "news"}
		bad := tile(ch, "news", "T")
		bad.Feed = strings.Repeat("f", 40000) // tile_waiting key too large
		err := db.Commit(tilecast.Commit{Key: k, State: tilecast.FeedState{Baselined: true}, Seen: []string{"1", "2"}, Now: clk.Now(),
			Notifications: []tilecast.Notification{toast(ch, "news", "1"), bad}})
		if err == nil {
			t.Fatal("Commit succeeded")
		}
		assertNothingCommitted(t, db, k)
	})
}

func assertNothingCommitted(t *testing.T, db *DB, k tilecast.FeedKey) {
	t.Helper()
	if k.User == "" {
		if _, ok, _ := db.FeedState(k); ok {
			t.Error("feed state was saved")
		}
		if u, _ := db.Unseen(k, []string{"1", "2"}); len(u) != 2 {
			t.Errorf("seen IDs were saved: Unseen = %v", u)
		}
	}
	if s, _ := db.Counts(); s.OutboxDepth != 0 {
		t.Errorf("outbox has %d entries", s.OutboxDepth)
	}
	err := db.view(func(b *buckets) error {
		if n := b.seen.Stats().KeyN; n != 0 {
			t.Errorf("seen holds %d keys", n)
		}
		if n := b.feedState.Stats().KeyN; n != 0 {
			t.Errorf("feedstate holds %d keys", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
