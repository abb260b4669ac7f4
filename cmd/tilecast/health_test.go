package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/config"
	"github.com/tilecast/tilecast/store"
)

// testLimits are health limits a test outlasts in seconds: the deliverer
// may go 2 s without a pass, far more than an idle pass takes (1 s) or a
// store retry is late on a loaded machine.
func testLimits() healthLimits {
	return healthLimits{beat: time.Minute, pass: 2 * time.Second, fetch: time.Minute}
}

var errDiskFull = errors.New("test: no space left on device")

// refusingRecords is a real bbolt state whose Record fails while refuse
// is set, as on a full disk.
type refusingRecords struct {
	*store.DB
	refuse atomic.Bool
}

func (s *refusingRecords) Record(recs []tilecast.Record) error {
	if s.refuse.Load() {
		return fmt.Errorf("record %d: %w", len(recs), errDiskFull)
	}
	return s.DB.Record(recs)
}

// deliveryBot returns a Bot on a bbolt state holding n due entries, each
// to its own https channel (no daily cap), with 2 workers (a send window
// of 4).
func deliveryBot(t *testing.T, n int, push func() tilecast.Result) (*tilecast.Bot, *refusingRecords) {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "state.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	var ns []tilecast.Notification
	for i := range n {
		ch, _, err := db.AddChannel(tilecast.Channel{URI: fmt.Sprintf("https://push.example.invalid/c%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		ns = append(ns, tilecast.Notification{ChannelID: ch.ID, Feed: "news", ItemID: fmt.Sprint(i), Kind: tilecast.KindToast, Payload: []byte("t")})
	}
	if err := db.Enqueue(ns); err != nil {
		t.Fatal(err)
	}
	st := &refusingRecords{DB: db}
	return &tilecast.Bot{Store: st, PushConcurrency: 2, Logger: slog.New(slog.DiscardHandler),
		Pusher: pushFunc(func(context.Context, *tilecast.Channel, *tilecast.Notification, time.Duration) tilecast.Result {
			return push()
		})}, st
}

type pushFunc func(ctx context.Context, ch *tilecast.Channel, n *tilecast.Notification, ttl time.Duration) tilecast.Result

func (f pushFunc) Push(ctx context.Context, ch *tilecast.Channel, n *tilecast.Notification, ttl time.Duration) tilecast.Result {
	return f(ctx, ch, n, ttl)
}

// A bbolt state that refuses to record outcomes (a full disk, S5) fills
// the send window and stops the dispatcher; the deliverer waits for the
// store, working, so the watchdog stays fed long after the dispatcher's
// last pass (a restart would not free the disk), while /healthz says
// why nothing is delivered. Once the store writes, everything goes out
// and /healthz is 200 again.
func TestWatchdogFedWhileTheStoreRefusesOutcomes(t *testing.T) {
	bot, st := deliveryBot(t, 40, func() tilecast.Result { return tilecast.Result{Status: 200, Verdict: tilecast.VerdictDelivered} })
	st.refuse.Store(true)
	cfg := config.Default()
	sched := &fakeBeat{at: time.Now().Add(time.Hour)} // beats throughout
	alive := func() error { return daemonAlive(t.Context(), cfg, sched, bot, st, testLimits()) }
	health := func() error { return daemonHealth(t.Context(), cfg, sched, bot, st, testLimits()) }
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { bot.Deliver(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	// The dispatcher stops: its last pass grows older than the limit.
	waitFor(t, "the dispatcher to stop for longer than the limit", func() bool {
		_, last := bot.Progress()
		return !last.IsZero() && time.Since(last) > 2*testLimits().pass
	})
	if err := alive(); err != nil {
		t.Errorf("the watchdog's condition while the store refuses outcomes: %v, want it fed", err)
	}
	if err := health(); err == nil || !strings.Contains(err.Error(), "send outcomes not recorded") || !errors.Is(err, errDiskFull) {
		t.Errorf("/healthz's condition while the store refuses outcomes: %v, want it to fail with the store's error", err)
	}

	st.refuse.Store(false)
	waitFor(t, "every entry delivered", func() bool {
		c, err := st.Counts()
		return err == nil && c.OutboxDepth == 0
	})
	waitFor(t, "healthy again", func() bool { return health() == nil })
}

// A deliverer whose push never returns (despite the push timeout) is
// stuck, not waiting for the store: the watchdog's condition fails so
// that systemd restarts the process.
func TestWatchdogStopsOnAHungPush(t *testing.T) {
	hang := make(chan struct{})
	bot, st := deliveryBot(t, 40, func() tilecast.Result {
		<-hang
		return tilecast.Result{Status: 200, Verdict: tilecast.VerdictDelivered}
	})
	cfg := config.Default()
	sched := &fakeBeat{at: time.Now().Add(time.Hour)}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { bot.Deliver(ctx); close(done) }()
	defer func() { close(hang); cancel(); <-done }()
	var last error
	waitFor(t, "the watchdog's condition to fail", func() bool {
		last = daemonAlive(t.Context(), cfg, sched, bot, st, testLimits())
		return last != nil
	})
	if !strings.Contains(last.Error(), "the deliverer has not run") {
		t.Errorf("the watchdog's condition with a hung push: %v, want the deliverer stuck", last)
	}
	if w := bot.StoreWait(); !w.Since.IsZero() {
		t.Errorf("a hung push reads as waiting for the store: %+v", w)
	}
}
