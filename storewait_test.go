package tilecast_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/store"
)

// errStoreDown is what refusingStore answers while it refuses.
var errStoreDown = errors.New("test: the store is down")

// refusingStore is a real bbolt state whose Record fails while refuse is
// set, as on a full disk or with the database unreachable.
type refusingStore struct {
	*store.DB
	refuse atomic.Bool
}

func (s *refusingStore) Record(recs []tilecast.Record) error {
	if s.refuse.Load() {
		return fmt.Errorf("record %d: %w", len(recs), errStoreDown)
	}
	return s.DB.Record(recs)
}

// While the store refuses to record outcomes, Bot.StoreWait says since
// when the deliverer waits, why, and when it tries again, and each retry
// moves the next try on while the start of the wait stays; once the store
// writes again the wait is over and everything is delivered. Health
// checks rely on it: the dispatcher stops once the send window is full of
// unrecorded results, yet the deliverer is working.
func TestStoreWaitWhileRecordsFail(t *testing.T) {
	db, err := store.Open(filepath.Join(t.TempDir(), "state.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const entries = 200
	var ns []tilecast.Notification
	for i := range entries {
		// https: no daily cap to hold entries back.
		ch, _, err := db.AddChannel(tilecast.Channel{URI: fmt.Sprintf("https://push.example.invalid/c%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		ns = append(ns, tilecast.Notification{ChannelID: ch.ID, Feed: "news", ItemID: fmt.Sprint(i), Kind: tilecast.KindToast, Payload: []byte("t")})
	}
	if err := db.Enqueue(ns); err != nil {
		t.Fatal(err)
	}
	st := &refusingStore{DB: db}
	var pushes atomic.Int64
	bot := &tilecast.Bot{Store: st, PushConcurrency: 4, Logger: slog.New(slog.DiscardHandler),
		Pusher: pusherFunc(func(context.Context, *tilecast.Channel, *tilecast.Notification, time.Duration) tilecast.Result {
			pushes.Add(1)
			return tilecast.Result{Status: 200, Verdict: tilecast.VerdictDelivered}
		})}
	if w := bot.StoreWait(); !w.Since.IsZero() {
		t.Fatalf("waiting before anything ran: %+v", w)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- bot.Deliver(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Deliver: %v", err)
		}
	}()
	waitUntil(t, "some sends recorded", func() bool { return pushes.Load() >= 20 })

	st.refuse.Store(true)
	waitUntil(t, "the deliverer to wait for the store", func() bool { return !bot.StoreWait().Since.IsZero() })
	first := bot.StoreWait()
	if !errors.Is(first.Err, errStoreDown) || !first.RetryAt.After(first.Since) {
		t.Fatalf("after a refused record: %+v, want the store's error and a retry after the wait began", first)
	}
	// The first retry comes about a second later, refused too: the wait
	// goes on from the same start.
	waitUntil(t, "a retry", func() bool { return bot.StoreWait().RetryAt.After(first.RetryAt) })
	if second := bot.StoreWait(); !second.Since.Equal(first.Since) || !errors.Is(second.Err, errStoreDown) {
		t.Errorf("after a second refusal: %+v, want the start %s kept", second, first.Since)
	}

	st.refuse.Store(false)
	waitUntil(t, "every entry delivered", func() bool {
		c, err := db.Counts()
		return err == nil && c.OutboxDepth == 0
	})
	if w := bot.StoreWait(); !w.Since.IsZero() {
		t.Errorf("still waiting after the store recorded again: %+v", w)
	}
	if n := pushes.Load(); n != entries {
		t.Errorf("%d pushes for %d entries: an outcome the store refused was sent again", n, entries)
	}
}

// waitUntil polls cond for up to a minute: a bound for a hang, not a
// timing assertion.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
