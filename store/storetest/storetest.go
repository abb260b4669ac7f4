// Package storetest is the conformance suite of tilecast's state stores:
// the behaviour the daemon and the operator commands rely on, specified
// once and run against every backend (store: bbolt, store/postgres). A
// behaviour tested for one backend only is a gap: a test of public
// behaviour belongs here, and a backend's own tests keep only what is its
// own (record codecs, migrations of its files, its locks).
//
// A backend's test calls Run with a function that makes a new, empty
// state and returns how to open it. Every test of the suite runs in
// parallel with the others, on a state of its own, with an injected
// clock; when it ends, the running counts (Counts) are checked against
// the listings, so every test also checks that the counts follow what it
// did.
package storetest

import (
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/internal/logtest"
)

// Backend is a state store as the daemon and the operator commands use it.
type Backend interface {
	tilecast.Store
	FeedStates() (map[tilecast.FeedKey]tilecast.FeedState, error)

	AddChannel(ch tilecast.Channel) (tilecast.Channel, bool, error)
	ImportChannels(chs []tilecast.Channel) (added, updated int, err error)
	ChannelByURI(uri string) (tilecast.Channel, error)
	RemoveChannel(id string) error
	Channels(user string) ([]tilecast.Channel, error)
	ChannelsPage(f tilecast.ChannelFilter, cursor string, limit int) ([]tilecast.Channel, string, error)
	ExpiredChannels(now time.Time, limit int) ([]tilecast.Channel, error)
	RemoveExpiredChannel(id string, now time.Time) (bool, error)

	Outcomes(channelID, feed string, since time.Time) ([]tilecast.Outcome, error)
	OutcomesPage(f tilecast.OutcomeFilter, cursor string, limit int) ([]tilecast.Outcome, string, error)
	DeadLetters(limit int) ([]tilecast.DeadLetter, error)
	DeadLettersPage(cursor string, limit int) ([]tilecast.DeadLetter, string, error)
	PruneLedger() (int, error)
	Counts() (tilecast.Counts, error)
	Close() error
}

// Options are what the suite sets when it opens a backend.
type Options struct {
	Now       func() time.Time
	Logger    *slog.Logger
	Failpoint func(point string)
}

// Opener opens one state; it is called again, after Close, to reopen it.
type Opener func(t testing.TB, o Options) Backend

// NewState makes a new, empty state for t (a file in t.TempDir(), a
// database schema) and returns its Opener. The state goes when t ends.
type NewState func(t testing.TB) Opener

// Run runs the suite against the backend newState makes.
func Run(t *testing.T, newState NewState) {
	for _, tc := range tests() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, newState)
		})
	}
}

type test struct {
	name string
	run  func(t *testing.T, newState NewState)
}

func tests() []test {
	var all []test
	for _, group := range [][]test{channelTests(), expiryTests(), feedTests(), outboxTests(), pageTests(), countTests()} {
		all = append(all, group...)
	}
	return all
}

// Clock is an injectable, settable time source: a whole second in 2026.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock at 2026-03-01 12:00:00 UTC.
func NewClock() *Clock { return &Clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Add moves the clock by d and returns the new time.
func (c *Clock) Add(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

// harness is one test's state: the open backend, its clock and log, and
// a failpoint the test may set.
type harness struct {
	t    testing.TB
	db   Backend
	clk  *Clock
	logs *logtest.Buffer
	open Opener

	mu   sync.Mutex
	fail func(point string)
}

// newHarness opens a new state with a fresh clock; when the test ends the
// counts are checked and the backend is closed.
func newHarness(t testing.TB, newState NewState) *harness {
	t.Helper()
	h := &harness{t: t, clk: NewClock(), logs: &logtest.Buffer{}, open: newState(t)}
	h.db = h.open(t, h.options())
	t.Cleanup(func() {
		if h.db != nil {
			checkCounts(t, h.db, "at the end")
			if err := h.db.Close(); err != nil {
				t.Error(err)
			}
		}
	})
	return h
}

func (h *harness) options() Options {
	return Options{
		Now:    h.clk.Now,
		Logger: slog.New(slog.NewTextHandler(h.logs, nil)),
		Failpoint: func(point string) {
			h.mu.Lock()
			f := h.fail
			h.mu.Unlock()
			if f != nil {
				f(point)
			}
		},
	}
}

// setFailpoint makes f the failpoint until the returned func is called.
func (h *harness) setFailpoint(f func(point string)) func() {
	h.mu.Lock()
	h.fail = f
	h.mu.Unlock()
	return func() { h.setFailpoint(nil) }
}

// reopen closes the backend and opens the same state again.
func (h *harness) reopen() {
	h.t.Helper()
	if err := h.db.Close(); err != nil {
		h.t.Fatal(err)
	}
	h.db = h.open(h.t, h.options())
}

// panics runs f and reports whether it panicked.
func panics(f func()) (did bool) {
	defer func() {
		if recover() != nil {
			did = true
		}
	}()
	f()
	return false
}

func must(tb testing.TB, errs ...error) {
	tb.Helper()
	for _, err := range errs {
		if err != nil {
			tb.Fatal(err)
		}
	}
}

func addChannel(tb testing.TB, db Backend, ch tilecast.Channel) tilecast.Channel {
	tb.Helper()
	got, _, err := db.AddChannel(ch)
	if err != nil {
		tb.Fatal(err)
	}
	return got
}

// addChannels registers n channels without feeds (every global feed).
func addChannels(tb testing.TB, db Backend, n int) []tilecast.Channel {
	tb.Helper()
	out := make([]tilecast.Channel, n)
	for i := range out {
		out[i] = addChannel(tb, db, tilecast.Channel{URI: fmt.Sprintf("http://127.0.0.1/ch/%d", i)})
	}
	return out
}

func toast(ch tilecast.Channel, feed, item string) tilecast.Notification {
	return tilecast.Notification{ChannelID: ch.ID, Feed: feed, ItemID: item, Kind: tilecast.KindToast,
		Payload: []byte("toast " + item)}
}

func tile(ch tilecast.Channel, feed, body string) tilecast.Notification {
	return tilecast.Notification{ChannelID: ch.ID, Feed: feed, Kind: tilecast.KindTile, Payload: []byte(body)}
}

func badge(ch tilecast.Channel, feed, body string) tilecast.Notification {
	return tilecast.Notification{ChannelID: ch.ID, Feed: feed, Kind: tilecast.KindBadge, Payload: []byte(body)}
}

// farFuture is after every entry's next attempt in any test.
var farFuture = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)

// everything is a time after every entry's next attempt in the tests.
const everything = 1000 * time.Hour

// outboxOf returns every outbox entry of a channel, in due order.
// outboxBodies is what waits for chID, as kind:payload, in due order.
func outboxBodies(tb testing.TB, db Backend, chID string, now time.Time) []string {
	tb.Helper()
	var out []string
	for _, p := range outboxOf(tb, db, chID, now) {
		out = append(out, string(p.Kind)+":"+string(p.Payload))
	}
	return out
}

func outboxOf(tb testing.TB, db Backend, chID string, now time.Time) []tilecast.Pending {
	tb.Helper()
	ps, err := db.Due(now.Add(everything), 1<<30, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return slices.DeleteFunc(ps, func(p tilecast.Pending) bool { return p.ChannelID != chID })
}

// pendingSummary lists a channel's waiting entries as kind:item:payload.
func pendingSummary(tb testing.TB, db Backend, chID string, now time.Time) []string {
	tb.Helper()
	var out []string
	for _, p := range outboxOf(tb, db, chID, now) {
		if p.Channel.ID != chID {
			tb.Errorf("entry %d of %s carries channel %s", p.ID, chID, p.Channel.ID)
		}
		out = append(out, string(p.Kind)+":"+p.ItemID+":"+string(p.Payload))
	}
	return out
}

// ScannedCounts counts what Counts reports from the listings: every
// channel, every waiting entry (Due far ahead), every dead letter and
// every broken feed state.
func ScannedCounts(tb testing.TB, db Backend) tilecast.Counts {
	tb.Helper()
	var c tilecast.Counts
	chs, err := db.Channels("")
	if err != nil {
		tb.Fatal(err)
	}
	c.Channels = len(chs)
	due, err := db.Due(farFuture, 1<<30, nil)
	if err != nil {
		tb.Fatal(err)
	}
	c.OutboxDepth = len(due)
	dead, err := db.DeadLetters(0)
	if err != nil {
		tb.Fatal(err)
	}
	c.DeadLetters = len(dead)
	states, err := db.FeedStates()
	if err != nil {
		tb.Fatal(err)
	}
	for k, st := range states {
		if !st.Broken {
			continue
		}
		if c.Broken == nil {
			c.Broken = map[string]tilecast.BrokenStates{}
		}
		s := c.Broken[k.Feed]
		if k.User == "" {
			s.Global++
		} else {
			s.Users++
		}
		c.Broken[k.Feed] = s
	}
	return c
}

// SameCounts reports whether two counts are equal.
func SameCounts(a, b tilecast.Counts) bool {
	return a.Channels == b.Channels && a.OutboxDepth == b.OutboxDepth && a.DeadLetters == b.DeadLetters &&
		maps.Equal(a.Broken, b.Broken)
}

// checkCounts fails the test when Counts disagrees with the listings.
func checkCounts(tb testing.TB, db Backend, step string) {
	tb.Helper()
	got, err := db.Counts()
	if err != nil {
		tb.Fatalf("%s: Counts: %v", step, err)
	}
	if want := ScannedCounts(tb, db); !SameCounts(got, want) {
		tb.Fatalf("%s: Counts = %+v, the listings hold %+v", step, got, want)
	}
}

// pageAll walks a listing page by page, checking the cursor contract on
// the way: a full page hands out a cursor, a last page does not, no page
// is larger than limit. It returns the items in the order received.
func pageAll[T any](tb testing.TB, limit int, page func(cursor string) ([]T, string, error), between func()) []T {
	tb.Helper()
	var all []T
	cursor := ""
	for i := 0; ; i++ {
		items, next, err := page(cursor)
		if err != nil {
			tb.Fatalf("page %d: %v", i, err)
		}
		if len(items) > tilecast.PageLimit(limit) {
			tb.Fatalf("page %d has %d items, limit %d", i, len(items), limit)
		}
		all = append(all, items...)
		if next == "" {
			return all
		}
		if len(items) == 0 {
			tb.Fatalf("page %d is empty but announces a next page", i)
		}
		if i > 100_000 {
			tb.Fatal("paging does not end")
		}
		cursor = next
		if between != nil {
			between()
		}
	}
}
