package tilecast_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/emulator"
	"github.com/tilecast/tilecast/notify/mpns"
)

// Reliability tests of reliability.md §1.6 (S2) and §3.4 (P1–P10), run
// in-process with the real store, renderer and MPNS client and a fake clock.

// crasher plays a process dying at a failpoint. Its hook, on the first
// hit of point, cancels the running work and ends the calling goroutine
// (runtime.Goexit), so nothing after the failpoint runs in it. Every store
// write is a transaction, so closing and reopening the file afterwards
// leaves it exactly as a killed process would.
type crasher struct {
	point  string
	cancel context.CancelFunc
	hit    atomic.Bool
	died   chan struct{}
}

func newCrasher(point string, cancel context.CancelFunc) *crasher {
	return &crasher{point: point, cancel: cancel, died: make(chan struct{})}
}

func (c *crasher) hook(p string) {
	if p == c.point && c.hit.CompareAndSwap(false, true) {
		c.cancel()
		close(c.died)
		runtime.Goexit()
	}
}

// run runs fn and reports whether the failpoint fired. A goroutine that
// waits for the one that died never returns; it is left behind, as the
// process it stands for is gone.
func (c *crasher) run(fn func()) (died bool) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	select {
	case <-done:
		return c.hit.Load()
	case <-c.died:
		// Let the survivors (cancelled) wind down before the file closes.
		select {
		case <-done:
		case <-time.After(2 * time.Second):
		}
		return true
	}
}

// restart closes the state file and opens it again with a fresh Bot.
func (h *harness) restart() {
	h.t.Helper()
	if err := h.db.Close(); err != nil {
		h.t.Fatal(err)
	}
	h.open()
}

// TestS2FailpointOutcomes: a crash at each boundary of the pipeline has
// exactly the outcome reliability.md S2 allows, and the restart's "possible
// duplicates" count equals the duplicates MPNS saw (P12).
func TestS2FailpointOutcomes(t *testing.T) {
	for _, tc := range []struct {
		point string
		// pushes of the new item's toast and tile seen by MPNS in total
		// (before and after the restart): 1 each means no loss, no duplicate.
		wantToasts, wantTiles, maxTiles int
		// the item is marked seen before the restart
		seenBeforeRestart bool
	}{
		// (a) nothing from the tick is visible; the next tick redoes it.
		{tilecast.FailAfterFetch, 1, 1, 1, false},
		// (c) committed, not sent: delivered after the restart, no duplicate.
		{tilecast.FailAfterCommit, 1, 1, 1, true},
		// (d) one push answered, its outcome not recorded: exactly one
		// duplicate (push concurrency 1, so exactly one send was in flight).
		{tilecast.FailAfterSend, 2, 1, 1, true},
		// after the toast's record transaction: the toast is not resent;
		// the tile may already have been sent (one worker, and one result
		// waiting for the recorder) and then goes out once more.
		{tilecast.FailAfterRecord, 1, 1, 2, true},
	} {
		t.Run(tc.point, func(t *testing.T) {
			h := newHarness(t)
			news := h.feed("news", "/news.xml")
			h.feeds.add("/news.xml", rssItem{"n0", "Baseline", ""})
			h.channel("A", "", "news")
			h.run(news)
			h.feeds.add("/news.xml", rssItem{"n1", "Breaking", ""})

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			h.bot.PushConcurrency = 1
			cr := newCrasher(tc.point, cancel)
			h.bot.Failpoint = cr.hook
			died := cr.run(func() {
				if err := h.bot.RunFeed(ctx, news); err != nil {
					t.Error(err)
				}
				if err := h.bot.DeliverDue(ctx); err != nil {
					t.Error(err)
				}
			})
			if !died {
				t.Fatalf("failpoint %s never fired", tc.point)
			}
			before := h.mpns.take()
			unseen, err := h.db.Unseen(tilecast.FeedKey{Feed: "news"}, []string{"n1"})
			if err != nil {
				t.Fatal(err)
			}
			if seen := len(unseen) == 0; seen != tc.seenBeforeRestart {
				t.Errorf("item seen before restart = %v, want %v", seen, tc.seenBeforeRestart)
			}
			if err := h.db.Check(); err != nil {
				t.Fatalf("bbolt check after the crash: %v", err)
			}

			h.restart()
			h.run(news) // the next tick
			after := h.deliver()
			h.run(news)
			if extra := h.deliver(); len(extra) != 0 {
				t.Errorf("a quiet tick after recovery sent %+v", extra)
			}
			all := append(before, after...)
			if got := count(all, "A", "toast"); got != tc.wantToasts {
				t.Errorf("toast pushes %d, want %d (before restart %d)", got, tc.wantToasts, len(before))
			}
			if got := count(all, "A", "token"); got < tc.wantTiles || got > tc.maxTiles {
				t.Errorf("tile pushes %d, want %d..%d", got, tc.wantTiles, tc.maxTiles)
			}
			// P12: in-process nothing is cut mid-request, so the count the
			// restart takes from the send log equals the duplicates exactly.
			dups := count(all, "A", "toast") - 1 + count(all, "A", "token") - 1
			if got := h.observed.possible(); got != dups {
				t.Errorf("P12: %d possible duplicates counted at the restart, MPNS saw %d duplicates", got, dups)
			}
			st, err := h.db.Counts()
			if err != nil {
				t.Fatal(err)
			}
			if st.OutboxDepth != 0 || st.DeadLetters != 0 {
				t.Errorf("after recovery: %+v, want an empty outbox", st)
			}
		})
	}
}

// newItems commits n0 as the baseline and n1..nN as new items for channel tokens.
func (h *harness) newItems(f *tilecast.Feed, n int, tokens ...string) {
	h.t.Helper()
	h.feeds.add("/news.xml", rssItem{"n0", "Baseline", ""})
	for _, tok := range tokens {
		h.channel(tok, "", "news")
	}
	h.run(f)
	for i := 1; i <= n; i++ {
		h.feeds.add("/news.xml", rssItem{fmt.Sprintf("n%d", i), fmt.Sprintf("Story %d", i), ""})
	}
	h.run(f)
}

func (h *harness) stats() (outbox, dead int) {
	h.t.Helper()
	st, err := h.db.Counts()
	if err != nil {
		h.t.Fatal(err)
	}
	return st.OutboxDepth, st.DeadLetters
}

// P1 received, P3 suppressed, P4 expired (404) and 410: one attempt each,
// then the outbox is empty and the 410s are dead letters; an expired channel is gone with its entries and
// its URI can register again.
func TestP1P3P4SingleAttemptOutcomes(t *testing.T) {
	h := newHarness(t)
	news := h.feed("news", "/news.xml")
	h.mpns.script("supp", suppress)
	h.mpns.script("gone", expired)
	h.mpns.script("g410", reply{410, "", "", "", ""})
	h.newItems(news, 1, "ok", "supp", "gone", "g410")
	got := h.deliver()
	for _, tok := range []string{"ok", "supp", "g410"} {
		if n := count(got, tok, ""); n != 2 {
			t.Errorf("%s: %d pushes, want toast + tile", tok, n)
		}
	}
	// 404 on the first push removes the channel and its other (tile) entry
	// in the same transaction; at most the other push already in flight.
	if n := count(got, "gone", ""); n < 1 || n > 2 {
		t.Errorf("expired channel: %d pushes, want 1 (2 if both were in flight)", n)
	}
	h.clock.Add(48 * time.Hour)
	if again := h.deliver(); len(again) != 0 {
		t.Errorf("settled outcomes retried: %+v", again)
	}
	// 410 is a permanent failure: both of g410's notifications are kept
	// as dead letters with the reason, for the operator.
	if ob, dead := h.stats(); ob != 0 || dead != 2 {
		t.Errorf("outbox %d dead %d, want 0 2 (g410's toast and tile)", ob, dead)
	}
	deads, _, err := h.db.DeadLettersPage("", 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range deads {
		if d.Outcome.Action != tilecast.ActionFailed || d.Outcome.Status != 410 || d.Outcome.Error == "" {
			t.Errorf("dead letter %+v: want g410's, failed with status 410 and a reason", d.Outcome)
		}
	}
	if _, err := h.db.ChannelByURI(h.mpns.uri("gone")); err == nil {
		t.Error("expired channel still registered")
	}
	outs, err := h.db.Outcomes("", "news", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	actions := map[tilecast.Action]int{}
	for _, o := range outs {
		actions[o.Action]++
	}
	if actions[tilecast.ActionDropped] != 2 || actions[tilecast.ActionChannelRemoved] < 1 || actions[tilecast.ActionFailed] != 2 {
		t.Errorf("ledger actions %v: want 2 dropped (suppressed), ≥1 channel_removed, 2 failed (410)", actions)
	}
	// The same URI registers again and gets the next item.
	h.mpns.script("gone", received)
	h.channel("gone", "", "news")
	h.feeds.add("/news.xml", rssItem{"n9", "After re-registration", ""})
	h.run(news)
	if n := count(h.deliver(), "gone", "toast"); n != 1 {
		t.Errorf("re-registered URI got %d toasts, want 1", n)
	}
}

// pushTimes steps the clock by step for total (or until it has seen
// enough pushes, when enough > 0) and records the clock time of every push
// to token.
func (h *harness) pushTimes(token string, step, total time.Duration, enough int) []time.Time {
	var at []time.Time
	for el := time.Duration(0); el <= total && (enough <= 0 || len(at) < enough); el += step {
		for range count(h.deliver(), token, "") {
			at = append(at, h.clock.Now())
		}
		h.clock.Add(step)
	}
	return at
}

// P2: QueueFull ×3 then Received: the gaps follow the exponential backoff
// (4, 8, 16 min) within the jitter bounds, and the item is delivered once.
func TestP2QueueFullBackoffWithinJitterBounds(t *testing.T) {
	for _, jitter := range []float64{0.8, 1.2} {
		t.Run(fmt.Sprint(jitter), func(t *testing.T) {
			h := newHarness(t)
			h.bot.Jitter = func() float64 { return jitter }
			h.bot.MaxAttempts = 10
			news := h.feed("news", "/news.xml")
			news.Tile = nil
			h.mpns.script("A", queueFull, queueFull, queueFull, received)
			h.newItems(news, 1, "A")
			if n := count(h.deliver(), "A", ""); n != 1 {
				t.Fatalf("first attempt: %d pushes", n)
			}
			for i, base := range []time.Duration{4 * time.Minute, 8 * time.Minute, 16 * time.Minute} {
				want := time.Duration(float64(base) * jitter)
				h.clock.Add(want - 10*time.Second)
				if n := count(h.deliver(), "A", ""); n != 0 {
					t.Errorf("retry %d sent 10 s before its %v gap", i+1, want)
				}
				h.clock.Add(10 * time.Second)
				if n := count(h.deliver(), "A", ""); n != 1 {
					t.Errorf("retry %d: %d pushes at its %v gap, want 1", i+1, n, want)
				}
			}
			h.clock.Add(24 * time.Hour)
			if n := count(h.deliver(), "A", ""); n != 0 {
				t.Errorf("%d pushes after delivery", n)
			}
			if ob, _ := h.stats(); ob != 0 {
				t.Errorf("outbox %d after delivery", ob)
			}
		})
	}
}

// P5: after a 406 or 412 a channel is retried at most once per hour
// (MPNS may block a sender that re-attempts faster): over 24 h with a
// 5-minute clock step the channel sees ≤ 24 attempts after the first
// contact, even with several notifications waiting for it. (tilecast has
// no item TTL: max_attempts bounds the retries.)
//
// This fails with deliver.go as of this writing: when the channel's 61-min
// rest ends, every waiting entry of the channel is sent in the same pass
// (4 pushes per hour here). See the report for the dispatcher change.
func TestP5ThrottledAndInactiveAtMostHourly(t *testing.T) {
	for _, rep := range []reply{capped, inactive} {
		t.Run(fmt.Sprint(rep.status), func(t *testing.T) {
			h := newHarness(t)
			h.bot.MaxAttempts = 100
			news := h.feed("news", "/news.xml")
			h.mpns.script("A", rep)
			h.newItems(news, 3, "A")  // 3 toasts + 1 tile waiting on one channel
			first := len(h.deliver()) // first contact: all in one pass, before any answer
			h.clock.Add(5 * time.Minute)
			at := h.pushTimes("A", 5*time.Minute, 24*time.Hour, 0)
			if first == 0 || len(at) > 24 {
				t.Errorf("first pass %d pushes, then %d attempts in 24 h, want ≤ 24", first, len(at))
			}
			if len(at) < 20 {
				t.Errorf("%d attempts in 24 h: the channel stopped being retried", len(at))
			}
			for i := 1; i < len(at); i++ {
				if gap := at[i].Sub(at[i-1]); gap < time.Hour {
					t.Errorf("attempts %d and %d only %v apart", i, i+1, gap)
					break
				}
			}
		})
	}
}

// P6: Retry-After on 429 and 503 is honoured when longer than the own
// backoff, clamped to mpns.MaxRetryAfter when huge, and ignored when garbage.
func TestP6RetryAfterHonouredAndCapped(t *testing.T) {
	base := 4 * time.Minute // the Bot's first backoff, jitter 1
	for _, tc := range []struct {
		name   string
		status int
		ra     func(now time.Time) string
		want   time.Duration
	}{
		{"429 seconds", 429, func(time.Time) string { return "600" }, 10 * time.Minute},
		{"503 seconds", 503, func(time.Time) string { return "1200" }, 20 * time.Minute},
		{"short hint: own backoff wins", 503, func(time.Time) string { return "120" }, base},
		{"http-date", 429, func(now time.Time) string { return now.Add(15 * time.Minute).Format(http.TimeFormat) }, 15 * time.Minute},
		{"huge: capped", 429, func(time.Time) string { return "999999999" }, mpns.MaxRetryAfter},
		{"overflowing: capped", 503, func(time.Time) string { return "99999999999999999999999" }, mpns.MaxRetryAfter},
		{"garbage: own backoff", 429, func(time.Time) string { return "soon, please" }, base},
		{"negative: own backoff", 503, func(time.Time) string { return "-5" }, base},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			client, err := mpns.NewClient(mpns.ClientOptions{Timeout: 2 * time.Second, AllowPrivate: true, Now: h.clock.Now})
			if err != nil {
				t.Fatal(err)
			}
			h.bot.Pusher = client
			news := h.feed("news", "/news.xml")
			news.Tile = nil
			h.mpns.script("A", reply{tc.status, "", "", "", tc.ra(h.clock.Now())}, received)
			h.newItems(news, 1, "A")
			if n := count(h.deliver(), "A", ""); n != 1 {
				t.Fatalf("first attempt: %d pushes", n)
			}
			h.clock.Add(tc.want - 30*time.Second)
			if n := count(h.deliver(), "A", ""); n != 0 {
				t.Errorf("retried 30 s before %v", tc.want)
			}
			h.clock.Add(time.Minute)
			if n := count(h.deliver(), "A", ""); n != 1 {
				t.Errorf("not retried 30 s after %v", tc.want)
			}
			h.clock.Add(24 * time.Hour)
			if n := count(h.deliver(), "A", ""); n != 0 {
				t.Errorf("%d pushes after delivery", n)
			}
		})
	}
}

// P7: a push service answering 503 for 10 minutes: exponential backoff,
// and every item reaches every phone exactly once after recovery.
func TestP7OutageThenRecoveryDeliversEverything(t *testing.T) {
	h := newEmuHarness(t)
	h.bot.MaxAttempts = 10
	news := h.feed("news", "/news.xml")
	news.MaxToasts = 20
	a, _ := h.phone(emulator.Flaky, emulator.Params{FlakyP: 1})
	b, _ := h.phone(emulator.Flaky, emulator.Params{FlakyP: 1})
	h.newItems(news, 5)
	for m := range 6 * 60 { // 6 hours in minute steps
		if m == 10 {
			for _, ec := range []emulator.Channel{a, b} {
				if err := h.emu.SetBehaviour(ec.Token, emulator.Healthy); err != nil {
					t.Fatal(err)
				}
			}
		}
		h.deliver()
		h.clock.Add(time.Minute)
	}
	for _, ec := range []emulator.Channel{a, b} {
		st := h.state(ec)
		got := map[string]int{}
		for _, ts := range st.Toasts {
			got[ts.Text2]++
		}
		for i := 1; i <= 5; i++ {
			if n := got[fmt.Sprintf("Story %d", i)]; n != 1 {
				t.Errorf("phone %s: Story %d shown %d times (toasts %v)", ec.Name, i, n, got)
			}
		}
		if st.Counts.Unavailable == 0 || st.Counts.Received != 6 {
			t.Errorf("phone %s counts %+v: want some 503s, then 5 toasts + 1 tile received", ec.Name, st.Counts)
		}
		if st.Tile.View().BackContent != "Story 5" {
			t.Errorf("phone %s tile shows %q, want the newest item", ec.Name, st.Tile.View().BackContent)
		}
	}
	if ob, dead := h.stats(); ob != 0 || dead != 0 {
		t.Errorf("outbox %d dead %d after recovery", ob, dead)
	}
}

// P8: a push host that accepts and never answers, or resets the connection
// mid-response: the request is cancelled at the push timeout, the entry is
// retried and delivered once the host answers. The request had left in
// full, so the host may have shown it: the retry counts as a possible
// duplicate (P12's metric) and the send toward the channel's daily cap.
func TestP8HangAndResetAreRetried(t *testing.T) {
	for _, mode := range []string{"hang", "reset"} {
		t.Run(mode, func(t *testing.T) {
			h := newHarness(t)
			var broken atomic.Bool
			broken.Store(true)
			var hits, okHits atomic.Int32
			release := make(chan struct{})
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				hits.Add(1)
				if broken.Load() {
					if mode == "hang" {
						select {
						case <-r.Context().Done():
						case <-release:
						}
						return
					}
					conn, _, err := http.NewResponseController(w).Hijack()
					if err == nil {
						if tc, ok := conn.(*net.TCPConn); ok {
							_ = tc.SetLinger(0) // RST, not FIN
						}
						_, _ = conn.Write([]byte("HTTP/1.1 200 OK\r\nX-Notif"))
						conn.Close()
					}
					return
				}
				okHits.Add(1)
				w.Header().Set("X-NotificationStatus", "Received")
			}))
			t.Cleanup(srv.Close)
			t.Cleanup(func() { close(release) }) // runs before srv.Close
			client, err := mpns.NewClient(mpns.ClientOptions{Timeout: 200 * time.Millisecond, AllowPrivate: true})
			if err != nil {
				t.Fatal(err)
			}
			h.bot.Pusher = client
			news := h.feed("news", "/news.xml")
			news.Tile = nil
			h.feeds.add("/news.xml", rssItem{"n0", "Baseline", ""})
			if _, _, err := h.db.AddChannel(tilecast.Channel{URI: srv.URL + "/throttledthirdparty/01.00/X", Feeds: []string{"news"}}); err != nil {
				t.Fatal(err)
			}
			h.run(news)
			h.feeds.add("/news.xml", rssItem{"n1", "Breaking", ""})
			h.run(news)
			h.deliver()
			if hits.Load() != 1 {
				t.Fatalf("%d requests, want 1", hits.Load())
			}
			if ob, _ := h.stats(); ob != 1 {
				t.Fatalf("outbox %d after a failed push, want the entry kept for retry", ob)
			}
			outs, err := h.db.Outcomes("", "", time.Time{})
			if err != nil || len(outs) != 1 || outs[0].Action != tilecast.ActionRetry || outs[0].Error == "" {
				t.Fatalf("outcome %+v (%v), want one retry with an error", outs, err)
			}
			if !strings.Contains(outs[0].Error, "may have arrived") {
				t.Errorf("retry error %q: want it to say the push may have arrived", outs[0].Error)
			}
			if p := h.observed.possible(); p != 1 {
				t.Errorf("possible duplicates %d after the unanswered send, want 1", p)
			}
			if ch, err := h.db.Channel(outs[0].ChannelID); err != nil || ch.SendsToday != 1 {
				t.Errorf("sends today %d (%v) after the unanswered send, want 1: the host may have counted it", ch.SendsToday, err)
			}
			broken.Store(false)
			h.clock.Add(5 * time.Minute)
			h.deliver()
			if okHits.Load() != 1 {
				t.Errorf("delivered %d times after the host healed, want 1", okHits.Load())
			}
			if p := h.observed.possible(); p != 1 {
				t.Errorf("possible duplicates %d after the delivery, want still 1", p)
			}
			if ob, _ := h.stats(); ob != 0 {
				t.Errorf("outbox %d after delivery", ob)
			}
		})
	}
}

// P9: with the Breaker in front of the MPNS client, a host that fails every
// push gets ≤ Failures (+ sends already in flight) requests before its
// circuit opens and then ≤ 1 probe per interval, while every push to a
// healthy host is delivered at once.
func TestP9BreakerIsolatesFailingHost(t *testing.T) {
	h := newHarness(t)
	var downHits atomic.Int32
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		downHits.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
	}))
	t.Cleanup(down.Close)
	client, err := mpns.NewClient(mpns.ClientOptions{Timeout: 2 * time.Second, AllowPrivate: true})
	if err != nil {
		t.Fatal(err)
	}
	br := tilecast.NewBreaker(client, tilecast.BreakerOptions{Failures: 5, Interval: 30 * time.Second, Now: h.clock.Now})
	h.bot.Pusher = br
	h.bot.MaxAttempts = 100
	news := h.feed("news", "/news.xml")
	news.Tile = nil
	h.feeds.add("/news.xml", rssItem{"n0", "Baseline", ""})
	for i := range 20 {
		if _, _, err := h.db.AddChannel(tilecast.Channel{URI: fmt.Sprintf("%s/throttledthirdparty/01.00/d%d", down.URL, i), Feeds: []string{"news"}}); err != nil {
			t.Fatal(err)
		}
		h.channel(fmt.Sprintf("up%d", i), "", "news")
	}
	h.run(news)
	h.feeds.add("/news.xml", rssItem{"n1", "Breaking", ""})
	h.run(news)
	got := h.deliver()
	if len(got) != 20 {
		t.Errorf("healthy host got %d pushes, want all 20", len(got))
	}
	maxOpen := int32(5 + h.bot.PushConcurrency - 1)
	if n := downHits.Load(); n > maxOpen {
		t.Errorf("failing host got %d requests before the circuit opened, want ≤ %d", n, maxOpen)
	}
	if !br.Open(strings.TrimPrefix(down.URL, "http://")) {
		t.Fatal("circuit of the failing host is not open")
	}
	// One hour in 10-second steps: ≤ 1 probe per 30 s.
	start := downHits.Load()
	for range 360 {
		h.clock.Add(10 * time.Second)
		h.deliver()
	}
	if probes := downHits.Load() - start; probes > 120 || probes < 1 {
		t.Errorf("%d probes in an hour, want 1..120 (≤ 1 per 30 s)", probes)
	}
}

// P10: an outage with many waiting notifications keeps the heap flat while
// the outbox is paged from bbolt, and everything drains after recovery. The
// live heap while draining must not grow with the outbox: 15k more entries
// may not cost half their payload in peak heap.
func TestP10OutboxDrainKeepsHeapFlat(t *testing.T) {
	// reliability.md P10 names 100k waiting notifications (≈ 1 min, 3 under -race).
	const smallN, largeN = 5000, 100000
	small := drainPeak(t, smallN)
	large := drainPeak(t, largeN)
	t.Logf("P10: live heap growth while draining: %d entries %.1f MB, %d entries %.1f MB (a distinct 1 KB payload each)",
		smallN, float64(small)/(1<<20), largeN, float64(large)/(1<<20))
	// Holding the extra 95k entries would cost ≥ their 95 MB of payload;
	// half of it is the line (GC sampling makes the peaks noisy).
	if extra := int64((largeN - smallN) * 1000 / 2); large-small > extra {
		t.Errorf("heap growth rose from %d to %d bytes with 20× the outbox: entries are held in memory", small, large)
	}
	// Constant costs: a Due page (256 decoded entries), record batches,
	// bbolt's dirty nodes; a loaded outbox would be > 100 MB here.
	if limit := int64(20 << 20); large > limit {
		t.Errorf("heap grew %d bytes draining %d entries, want < %d", large, largeN, limit)
	}
}

func drainPeak(t *testing.T, n int) int64 {
	h := newHarness(t)
	chs := make([]tilecast.Channel, 50)
	for i := range chs {
		// https: authenticated channels have no daily cap to postpone to.
		ch, _, err := h.db.AddChannel(tilecast.Channel{URI: fmt.Sprintf("https://push.example.invalid/c%d", i), Feeds: []string{"news"}})
		if err != nil {
			t.Fatal(err)
		}
		chs[i] = ch
	}
	// Distinct 1 KB bodies: the store keeps each distinct payload once, so
	// shared bodies would hide an outbox held in memory.
	filler := strings.Repeat("x", 1000)
	ns := make([]tilecast.Notification, 0, 1000)
	for i := range n {
		body := []byte(fmt.Sprintf("%08d%s", i, filler[8:]))
		ns = append(ns, tilecast.Notification{ChannelID: chs[i%len(chs)].ID, Feed: "news", ItemID: fmt.Sprint(i),
			Kind: tilecast.KindToast, Payload: body})
		if len(ns) == cap(ns) || i == n-1 {
			if err := h.db.Enqueue(ns); err != nil {
				t.Fatal(err)
			}
			ns = ns[:0]
		}
	}
	var delivered atomic.Int64
	var mu sync.Mutex
	var peak uint64
	h.bot.Logger = slog.New(slog.DiscardHandler) // the harness keeps its log in memory
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	baseline := ms.HeapAlloc
	h.bot.Pusher = pusherFunc(func(context.Context, *tilecast.Channel, *tilecast.Notification, time.Duration) tilecast.Result {
		if delivered.Add(1)%1000 == 0 {
			// The live heap (after a collection), not garbage awaiting one.
			runtime.GC()
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			mu.Lock()
			peak = max(peak, m.HeapAlloc)
			mu.Unlock()
		}
		return tilecast.Result{Status: 200, Verdict: tilecast.VerdictDelivered}
	})
	// Only a hang guard, generous: 100k sends under -race on a loaded
	// 2-core machine take minutes, and a deadline reached would look like
	// lost deliveries.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	if err := h.bot.DeliverDue(ctx); err != nil {
		t.Fatal(err)
	}
	if ctx.Err() != nil {
		t.Fatal("DeliverDue did not finish within 30 minutes")
	}
	if delivered.Load() != int64(n) {
		t.Fatalf("delivered %d of %d", delivered.Load(), n)
	}
	if ob, _ := h.stats(); ob != 0 {
		t.Fatalf("outbox %d after drain", ob)
	}
	return int64(peak) - int64(baseline)
}

type pusherFunc func(ctx context.Context, ch *tilecast.Channel, n *tilecast.Notification, ttl time.Duration) tilecast.Result

func (f pusherFunc) Push(ctx context.Context, ch *tilecast.Channel, n *tilecast.Notification, ttl time.Duration) tilecast.Result {
	return f(ctx, ch, n, ttl)
}
