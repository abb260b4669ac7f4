package multitest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/internal/logtest"
	"github.com/tilecast/tilecast/internal/pgtest"
	"github.com/tilecast/tilecast/store/postgres"
)

// mpnsSink is a push service answering every request 200 Received and
// counting, per channel path, the requests that reached it.
type mpnsSink struct {
	*httptest.Server
	mu  sync.Mutex
	got map[string]int
}

func newMPNSSink(t *testing.T) *mpnsSink {
	s := &mpnsSink{got: map[string]int{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.got[r.URL.Path]++
		s.mu.Unlock()
		w.Header().Set("X-NotificationStatus", "Received")
		w.Header().Set("X-SubscriptionStatus", "Active")
		w.Header().Set("X-DeviceConnectionStatus", "Connected")
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *mpnsSink) received(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.got[path]
}

// fakeClock runs at the real rate from 2026-03-01 12:00 UTC, far from
// midnight, and jumps when the test says.
type fakeClock struct {
	start  time.Time
	offset atomic.Int64
}

func newFakeClock() *fakeClock { return &fakeClock{start: time.Now()} }

var clockBase = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func (c *fakeClock) now() time.Time {
	return clockBase.Add(time.Duration(c.offset.Load()) + time.Since(c.start))
}

func (c *fakeClock) add(d time.Duration) { c.offset.Add(int64(d)) }

// unanswering makes every nth push (over all instances) end without an
// answer, as a refused connection does, without sending it: it never
// reached the push service, and its reservation goes back.
type unanswering struct {
	tilecast.Pusher
	n     int64
	calls *atomic.Int64
	on    *atomic.Bool
}

func (p unanswering) Push(ctx context.Context, ch *tilecast.Channel, n *tilecast.Notification, ttl time.Duration) tilecast.Result {
	if p.on.Load() && p.calls.Add(1)%p.n == 0 {
		return tilecast.Result{Verdict: tilecast.VerdictRetry, Err: errors.New("connection refused (test)")}
	}
	return p.Pusher.Push(ctx, ch, n, ttl)
}

// The daily cap of an unauthenticated channel is the channel's, exactly,
// however many instances send to it: instances draining 700 toasts to one
// http channel at once get exactly 500 to the push service that UTC day
// (the sink's count, not the ledger's), whatever the interleaving — more
// instances, wider send windows, sends that got no answer and gave their
// reservation back. The rest is postponed to midnight, not dropped, and
// goes out the next day; a second channel is not held back by the first.
func TestDailyCapExactAcrossInstances(t *testing.T) {
	cases := []struct {
		instances, conc int
	}{
		{2, 1},
		{3, 4},
		{5, 8},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%d instances × %d", c.instances, c.conc), func(t *testing.T) {
			const over = 200
			url := pgtest.New(t)
			sink := newMPNSSink(t)
			clk := newFakeClock()
			dbs := make([]*postgres.DB, c.instances)
			for i := range dbs {
				dbs[i] = openInstance(t, url, fmt.Sprint("i", i), postgres.Options{LeaseBatch: 2 * c.conc, Now: clk.now})
			}
			// What the test reads through takes no leases.
			look, err := postgres.Open(context.Background(), url, postgres.Options{Now: clk.now})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { look.Close() })
			capped, other := addSinkChannel(t, dbs[0], sink, "/capped"), addSinkChannel(t, dbs[0], sink, "/other")
			enqueueAt(t, dbs[0], capped, tilecast.DailyCap+over, clk.now())
			enqueueAt(t, dbs[0], other, 50, clk.now())

			var calls atomic.Int64
			var flaky atomic.Bool
			flaky.Store(true)
			bots := make([]*tilecast.Bot, len(dbs))
			for i, db := range dbs {
				bots[i] = newBot(t, db, c.conc, &logtest.Buffer{})
				bots[i].Now = clk.now
				bots[i].Pusher = unanswering{bots[i].Pusher, 7, &calls, &flaky}
				bots[i].SetDefaultTTL(tilecast.TTL{tilecast.KindToast: 7 * 24 * time.Hour})
			}
			drainAll := func() {
				t.Helper()
				var wg sync.WaitGroup
				for _, bot := range bots {
					wg.Go(func() {
						if err := bot.DeliverDue(t.Context()); err != nil {
							t.Error(err)
						}
					})
				}
				wg.Wait()
			}
			drainAll()
			// The unanswered ones retry later that day: refused then
			// (answered, this time, for the other channel's).
			flaky.Store(false)
			clk.add(time.Hour)
			drainAll()
			if got := sink.received("/capped"); got != tilecast.DailyCap {
				t.Fatalf("%d pushes reached the push service on day 1, want exactly %d (%d sends got no answer)",
					got, tilecast.DailyCap, calls.Load()/7)
			}
			if got := sink.received("/other"); got != 50 {
				t.Errorf("the other channel got %d of its 50", got)
			}
			day := clk.now().UTC().Format(time.DateOnly)
			if n, err := dbs[1].Reserved(capped, day); err != nil || n != tilecast.DailyCap {
				t.Errorf("%d reserved for %s (%v), want %d", n, day, err, tilecast.DailyCap)
			}
			ch, err := look.Channel(capped)
			if err != nil {
				t.Fatal(err)
			}
			if ch.SendsToday != tilecast.DailyCap || ch.SendsDay != day {
				t.Errorf("recorded %d sends on %s, want %d on %s", ch.SendsToday, ch.SendsDay, tilecast.DailyCap, day)
			}
			// Not dropped: every one over the cap waits for midnight.
			midnight := clockBase.Truncate(24 * time.Hour).Add(24 * time.Hour)
			if n := waitingUntil(t, look, capped, midnight); n != over {
				t.Errorf("%d entries wait for midnight, want the %d over the cap", n, over)
			}
			if c, _ := dbs[0].Counts(); c.OutboxDepth != over || c.DeadLetters != 0 {
				t.Errorf("outbox %d, dead letters %d: want %d waiting, none dead", c.OutboxDepth, c.DeadLetters, over)
			}

			// The next day they go out.
			clk.add(midnight.Sub(clk.now()) + time.Minute)
			drainAll()
			if got := sink.received("/capped"); got != tilecast.DailyCap+over {
				t.Errorf("%d pushes in all after the next day, want %d", got, tilecast.DailyCap+over)
			}
			if c, _ := dbs[0].Counts(); c.OutboxDepth != 0 {
				t.Errorf("outbox %d after the next day, want empty", c.OutboxDepth)
			}
		})
	}
}

// addSinkChannel registers the http channel sink.URL+path and returns its ID.
func addSinkChannel(t *testing.T, db *postgres.DB, sink *mpnsSink, path string) string {
	t.Helper()
	ch, _, err := db.AddChannel(tilecast.Channel{URI: sink.URL + path})
	if err != nil {
		t.Fatal(err)
	}
	return ch.ID
}

// enqueueAt enqueues n toasts for channel id, made and due at at.
func enqueueAt(t *testing.T, db *postgres.DB, id string, n int, at time.Time) {
	t.Helper()
	ns := make([]tilecast.Notification, n)
	for i := range ns {
		ns[i] = tilecast.Notification{ChannelID: id, Feed: "news", ItemID: fmt.Sprint(i), Kind: tilecast.KindToast,
			Payload: []byte(`<?xml version="1.0" encoding="utf-8"?><wp:Notification xmlns:wp="WPNotification"><wp:Toast><wp:Text1>` +
				strings.Repeat("x", 1+i%5) + `</wp:Text1></wp:Toast></wp:Notification>`),
			Created: at, NextAttempt: at}
	}
	if err := db.Enqueue(ns); err != nil {
		t.Fatal(err)
	}
}

// waitingUntil counts channel id's entries due exactly at t.
func waitingUntil(t *testing.T, db *postgres.DB, id string, at time.Time) int {
	t.Helper()
	ps, err := db.Due(at, 10*tilecast.DailyCap, nil)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, p := range ps {
		if p.ChannelID == id && p.NextAttempt.Equal(at) {
			n++
		}
	}
	return n
}
