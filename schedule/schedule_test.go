package schedule

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/config"
	"github.com/tilecast/tilecast/internal/logtest"
)

// recorder counts runs per feed and can hold them until released.
type recorder struct {
	mu   sync.Mutex
	runs map[string]int
	ctxs []context.Context
	ran  chan string   // receives each run's feed name, if there is room
	hold chan struct{} // when non-nil, runs wait for it to close
}

func newRecorder() *recorder {
	return &recorder{runs: map[string]int{}, ran: make(chan string, 64)}
}

func (r *recorder) RunTick(ctx context.Context, f *tilecast.Feed, _ time.Time) error {
	r.mu.Lock()
	r.runs[f.Name]++
	r.ctxs = append(r.ctxs, ctx)
	hold := r.hold
	r.mu.Unlock()
	select {
	case r.ran <- f.Name:
	default:
	}
	if hold != nil {
		<-hold
	}
	if f.Name == "failing" {
		return errors.New("feed is down")
	}
	return nil
}

func (r *recorder) ranFeeds() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for name := range r.runs {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// within reports whether got is d after a moment in [from, to], to the
// second cron rounds to.
func within(got time.Time, from, to time.Time, d time.Duration) bool {
	return !got.Before(from.Add(d-time.Second)) && !got.After(to.Add(d+time.Second))
}

// Apply registers one entry per feed; a reload adds new feeds, re-registers
// changed ones (schedule or any other field), keeps unchanged ones with
// their entry, and drops removed ones — before and after Start.
func TestApplyAddsChangesRemoves(t *testing.T) {
	var logs logtest.Buffer
	s := New(newRecorder(), slog.New(slog.NewTextHandler(&logs, nil)))
	feeds := []tilecast.Feed{
		{Name: "news", Schedule: "@every 1h"},
		{Name: "sport", Schedule: "@every 2h"},
		{Name: "weather", Schedule: "@every 3h", URL: "https://example.org/w.xml"},
	}
	if err := s.Apply(feeds); err != nil {
		t.Fatal(err)
	}
	if got := s.Next("news"); !got.IsZero() {
		t.Errorf("Next before Start = %v, want zero", got)
	}
	before := time.Now()
	s.Start(t.Context())
	defer s.Stop(5 * time.Second)
	after := time.Now()
	for _, tc := range []struct {
		feed string
		in   time.Duration
	}{{"news", time.Hour}, {"sport", 2 * time.Hour}, {"weather", 3 * time.Hour}} {
		if got := s.Next(tc.feed); !within(got, before, after, tc.in) {
			t.Errorf("Next(%s) = %v, want %v after start (%v)", tc.feed, got, tc.in, before)
		}
	}
	ids := map[string]int{}
	s.mu.Lock()
	for name, e := range s.entries {
		ids[name] = int(e.id)
	}
	s.mu.Unlock()

	// Reload: news unchanged, sport's schedule changes, weather's URL
	// changes, the feed "inbox" is new, and nothing else stays.
	reload := []tilecast.Feed{
		{Name: "news", Schedule: "@every 1h"},
		{Name: "sport", Schedule: "@every 5h"},
		{Name: "weather", Schedule: "@every 3h", URL: "https://example.org/weather.xml"},
		{Name: "inbox", Schedule: "@every 4h"},
	}
	before = time.Now()
	if err := s.Apply(reload); err != nil {
		t.Fatal(err)
	}
	after = time.Now()
	s.mu.Lock()
	got := map[string]int{}
	for name, e := range s.entries {
		got[name] = int(e.id)
	}
	s.mu.Unlock()
	if len(got) != 4 || got["news"] != ids["news"] {
		t.Errorf("entries %v after reload (before: %v): want 4, news kept", got, ids)
	}
	for _, name := range []string{"sport", "weather"} {
		if got[name] == ids[name] {
			t.Errorf("changed feed %s kept its entry %d", name, got[name])
		}
	}
	if n := s.Next("sport"); !within(n, before, after, 5*time.Hour) {
		t.Errorf("Next(sport) after reload = %v, want 5h after %v", n, before)
	}
	if n := s.Next("inbox"); !within(n, before, after, 4*time.Hour) {
		t.Errorf("Next(inbox) = %v, want 4h after %v", n, before)
	}

	// Reload with one feed: the rest are dropped, and logged.
	if err := s.Apply(reload[:1]); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"sport", "weather", "inbox"} {
		if n := s.Next(name); !n.IsZero() {
			t.Errorf("Next(%s) = %v after its removal, want zero", name, n)
		}
		if !strings.Contains(logs.String(), "feed="+name) {
			t.Errorf("removal of %s not logged:\n%s", name, logs.String())
		}
	}
	if n := s.Next("news"); n.IsZero() {
		t.Error("news lost its entry")
	}
	if n := len(s.cron.Entries()); n != 2 { // news and the heartbeat
		t.Errorf("%d cron entries, want 2 (news, heartbeat)", n)
	}
}

// A reload with a bad schedule is refused as a whole: the error names the
// feed, and the running entries stay as they were.
func TestApplyBadScheduleChangesNothing(t *testing.T) {
	s := New(newRecorder(), discard())
	if err := s.Apply([]tilecast.Feed{{Name: "news", Schedule: "@every 1h"}, {Name: "sport", Schedule: "@every 2h"}}); err != nil {
		t.Fatal(err)
	}
	s.Start(t.Context())
	defer s.Stop(5 * time.Second)
	want := map[string]time.Time{"news": s.Next("news"), "sport": s.Next("sport")}
	err := s.Apply([]tilecast.Feed{{Name: "news", Schedule: "@every 9h"}, {Name: "weather", Schedule: "61 * * * *"}})
	if err == nil || !strings.Contains(err.Error(), "feed weather") || !strings.Contains(err.Error(), `"61 * * * *"`) {
		t.Fatalf("Apply = %v, want an error naming feed weather and its schedule", err)
	}
	for name, next := range want {
		if got := s.Next(name); !got.Equal(next) || got.IsZero() {
			t.Errorf("Next(%s) = %v after a refused reload, want %v", name, got, next)
		}
	}
	if got := s.Next("weather"); !got.IsZero() {
		t.Errorf("refused feed weather is scheduled at %v", got)
	}
}

// A scheduled run gets the context given to Start, moves the heartbeat,
// and a failing run is logged without stopping the schedule.
func TestScheduledRunsUseStartContext(t *testing.T) {
	var logs logtest.Buffer
	r := newRecorder()
	s := New(r, slog.New(slog.NewTextHandler(&logs, nil)))
	if !s.LastBeat().IsZero() {
		t.Error("a heartbeat before Start")
	}
	if err := s.Apply([]tilecast.Feed{{Name: "failing", Schedule: "@every 1s"}}); err != nil {
		t.Fatal(err)
	}
	type key struct{}
	ctx := context.WithValue(t.Context(), key{}, "start")
	started := time.Now()
	s.Start(ctx)
	for range 2 {
		select {
		case <-r.ran:
		case <-time.After(10 * time.Second):
			t.Fatal("the feed did not run twice")
		}
	}
	if !s.Stop(5 * time.Second) {
		t.Fatal("Stop timed out with nothing holding the runs")
	}
	r.mu.Lock()
	for _, c := range r.ctxs {
		if c.Value(key{}) != "start" {
			t.Error("a run did not get Start's context")
		}
	}
	r.mu.Unlock()
	if !s.LastBeat().After(started) {
		t.Errorf("LastBeat %v is not after the start %v", s.LastBeat(), started)
	}
	if !strings.Contains(logs.String(), "feed run failed") || !strings.Contains(logs.String(), "feed is down") {
		t.Errorf("the failed run was not logged:\n%s", logs.String())
	}
}

// Once the context given to Start is done, no scheduled run starts.
func TestNoRunAfterContextDone(t *testing.T) {
	r := newRecorder()
	s := New(r, discard())
	if err := s.Apply([]tilecast.Feed{{Name: "news", Schedule: "@every 1s"}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	s.Start(ctx)
	time.Sleep(2500 * time.Millisecond) // two ticks of the schedule
	s.Stop(5 * time.Second)
	if got := r.ranFeeds(); len(got) != 0 {
		t.Errorf("runs %v after the context was done", got)
	}
}

// panicRunner panics on its first run, then counts runs.
type panicRunner struct {
	mu   sync.Mutex
	runs int
	ran  chan struct{}
}

func (p *panicRunner) RunTick(context.Context, *tilecast.Feed, time.Time) error {
	p.mu.Lock()
	p.runs++
	n := p.runs
	p.mu.Unlock()
	if n == 1 {
		panic("feed run blew up")
	}
	select {
	case p.ran <- struct{}{}:
	default:
	}
	return nil
}

// A panicking feed run is recovered by the scheduler (cron.Recover), logged,
// and the feed keeps being scheduled: the daemon lives on.
func TestSchedulerRecoversPanickingJob(t *testing.T) {
	var logs logtest.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	pr := &panicRunner{ran: make(chan struct{}, 1)}
	s := New(pr, log)
	if err := s.Apply([]tilecast.Feed{{Name: "boom", Schedule: "@every 1s"}}); err != nil {
		t.Fatal(err)
	}
	s.Start(context.Background())
	defer s.Stop(5 * time.Second)
	select {
	case <-pr.ran:
	case <-time.After(10 * time.Second):
		t.Fatal("no run after the panicking one: the scheduler died")
	}
	if !strings.Contains(logs.String(), "panic") || !strings.Contains(logs.String(), "feed run blew up") {
		t.Errorf("the recovered panic was not logged:\n%s", logs.String())
	}
}

// fakeStates is a store's feed states by FeedKey; err fails every read.
type fakeStates struct {
	states map[tilecast.FeedKey]tilecast.FeedState
	err    error
}

func (f fakeStates) FeedState(k tilecast.FeedKey) (tilecast.FeedState, bool, error) {
	st, ok := f.states[k]
	return st, ok, f.err
}

// CatchUp runs at once the feeds a down daemon missed: those whose last
// fetch is older than their latest scheduled time, those that never ran,
// and per-user feeds; not those fetched since their latest run time.
func TestCatchUp(t *testing.T) {
	now := time.Now()
	feeds := []tilecast.Feed{
		{Name: "missed", Schedule: "@every 1h"},
		{Name: "fresh", Schedule: "@every 1h"},
		{Name: "never", Schedule: "@every 1h"},
		{Name: "daily-missed", Schedule: "0 0 * * *"},
		{Name: "inbox", Schedule: "@every 1h", URL: "https://example.org/{user}.xml"},
	}
	states := fakeStates{states: map[tilecast.FeedKey]tilecast.FeedState{
		{Feed: "missed"}:       {LastFetch: now.Add(-2 * time.Hour)},
		{Feed: "fresh"}:        {LastFetch: now.Add(-10 * time.Minute)},
		{Feed: "daily-missed"}: {LastFetch: now.Add(-25 * time.Hour)},
	}}
	r := newRecorder()
	s := New(r, discard())
	s.CatchUp(t.Context(), feeds, states)
	if !s.Stop(5 * time.Second) {
		t.Fatal("catch-up runs did not end")
	}
	if got, want := r.ranFeeds(), []string{"daily-missed", "inbox", "missed", "never"}; !slices.Equal(got, want) {
		t.Errorf("caught up %v, want %v", got, want)
	}

	// A store that cannot be read: logged, and only per-user feeds run.
	var logs logtest.Buffer
	r = newRecorder()
	s = New(r, slog.New(slog.NewTextHandler(&logs, nil)))
	s.CatchUp(t.Context(), feeds, fakeStates{err: errors.New("disk on fire")})
	s.Stop(5 * time.Second)
	if got := r.ranFeeds(); !slices.Equal(got, []string{"inbox"}) {
		t.Errorf("with an unreadable store caught up %v, want [inbox]", got)
	}
	if !strings.Contains(logs.String(), "disk on fire") || !strings.Contains(logs.String(), "feed=missed") {
		t.Errorf("the read error was not logged per feed:\n%s", logs.String())
	}
}

// Stop waits up to its grace for runs (here a catch-up run that ignores
// its context) and says whether they ended.
func TestStopWaitsUpToGrace(t *testing.T) {
	r := newRecorder()
	r.hold = make(chan struct{})
	s := New(r, discard())
	if err := s.Apply([]tilecast.Feed{{Name: "news", Schedule: "@every 1h"}}); err != nil {
		t.Fatal(err)
	}
	s.Start(t.Context())
	s.CatchUp(t.Context(), []tilecast.Feed{{Name: "slow", Schedule: "@every 1h"}}, fakeStates{})
	select {
	case <-r.ran:
	case <-time.After(10 * time.Second):
		t.Fatal("the catch-up run did not start")
	}
	if s.Stop(100 * time.Millisecond) {
		t.Fatal("Stop reported done while a run was held")
	}
	close(r.hold)
	if !s.Stop(5 * time.Second) {
		t.Fatal("Stop timed out after the run was released")
	}
}

// CRON_TZ schedules across the DST changes of Europe/Berlin in 2026, as
// robfig/cron v3 (and so `tilecast check` and the daemon) computes them:
// on the spring-forward night (29 March, 02:00 → 03:00) a 02:30 job does
// not run at all; on the fall-back night (25 October, 03:00 → 02:00) it
// runs twice; an hourly job fires every real hour across both. This pins
// the behaviour reliability.md §6 warns about (robfig/cron PR #541), so a
// change of cron library or parser shows up here.
func TestScheduleAcrossDST(t *testing.T) {
	utc := func(mo time.Month, d, h, m int) time.Time { return time.Date(2026, mo, d, h, m, 0, 0, time.UTC) }
	for _, tc := range []struct {
		name, spec string
		from       time.Time
		want       []time.Time
	}{
		{"daily 02:30 skips the spring-forward night", "CRON_TZ=Europe/Berlin 30 2 * * *", utc(3, 27, 12, 0),
			[]time.Time{utc(3, 28, 1, 30), utc(3, 30, 0, 30), utc(3, 31, 0, 30)}},
		{"daily 02:30 runs twice on the fall-back night", "CRON_TZ=Europe/Berlin 30 2 * * *", utc(10, 24, 12, 0),
			[]time.Time{utc(10, 25, 0, 30), utc(10, 25, 1, 30), utc(10, 26, 1, 30)}},
		{"hourly through spring-forward", "CRON_TZ=Europe/Berlin 0 * * * *", utc(3, 29, 0, 30),
			[]time.Time{utc(3, 29, 1, 0), utc(3, 29, 2, 0), utc(3, 29, 3, 0)}},
		{"UTC schedules know no DST", "30 2 * * *", utc(3, 28, 12, 0),
			[]time.Time{utc(3, 29, 2, 30), utc(3, 30, 2, 30), utc(3, 31, 2, 30)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := config.Schedule(tc.spec); err != nil {
				t.Fatal(err)
			}
			got, err := NextRuns(tc.spec, tc.from, len(tc.want))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.EqualFunc(got, tc.want, time.Time.Equal) {
				t.Fatalf("runs %v, want %v", got, tc.want)
			}
		})
	}
}

func TestNextRuns(t *testing.T) {
	from := time.Date(2026, 1, 1, 10, 7, 0, 0, time.UTC)
	for _, tc := range []struct {
		spec    string
		n       int
		want    []time.Time
		wantErr string
	}{
		{"*/15 * * * *", 3, []time.Time{from.Add(8 * time.Minute), from.Add(23 * time.Minute), from.Add(38 * time.Minute)}, ""},
		{"@every 90s", 2, []time.Time{from.Add(90 * time.Second), from.Add(180 * time.Second)}, ""},
		{"@hourly", 1, []time.Time{time.Date(2026, 1, 1, 11, 0, 0, 0, time.UTC)}, ""},
		{"0 9 * * MON", 1, []time.Time{time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)}, ""},
		{"0 9 30 2 *", 1, nil, "never fires"}, // 30 February: config.Schedule refuses it
		{"not a schedule", 1, nil, "not a schedule"},
	} {
		got, err := NextRuns(tc.spec, from, tc.n)
		switch {
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("NextRuns(%q) error %v, want one containing %q", tc.spec, err, tc.wantErr)
		case tc.wantErr == "" && (err != nil || !slices.EqualFunc(got, tc.want, time.Time.Equal)):
			t.Errorf("NextRuns(%q) = %v, %v; want %v", tc.spec, got, err, tc.want)
		}
	}
}

// Tick names the scheduled time a run belongs to, the same for instances
// whose clocks (or cron loops) are a few seconds apart.
func TestTick(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tc := range []struct {
		spec string
		now  []string // runs of several instances
		want string
	}{
		{"*/5 * * * *", []string{"2026-03-01T10:05:00Z", "2026-03-01T10:05:00.2Z", "2026-03-01T10:05:04Z", "2026-03-01T10:09:59Z"}, "2026-03-01T10:05:00Z"},
		{"0 3 * * *", []string{"2026-03-01T03:00:01Z", "2026-03-02T02:59:59Z"}, "2026-03-01T03:00:00Z"},
		{"0 0 1 1 *", []string{"2026-12-31T23:00:00Z"}, "2026-01-01T00:00:00Z"},
		{"CRON_TZ=Europe/Berlin 0 9 * * *", []string{"2026-03-01T08:00:03Z", "2026-03-01T12:00:00Z"}, "2026-03-01T08:00:00Z"},
		// @every counts from registration, which differs per instance:
		// the tick is the multiple of the delay since the epoch.
		{"@every 90s", []string{"2026-03-01T10:00:30Z", "2026-03-01T10:01:29Z"}, "2026-03-01T10:00:00Z"},
		{"@every 1m", []string{"2026-03-01T10:00:17Z", "2026-03-01T10:00:43.5Z"}, "2026-03-01T10:00:00Z"},
	} {
		sched, err := config.Schedule(tc.spec)
		if err != nil {
			t.Fatalf("%s: %v", tc.spec, err)
		}
		for _, now := range tc.now {
			if got := Tick(sched, at(now)); !got.Equal(at(tc.want)) {
				t.Errorf("Tick(%q, %s) = %s, want %s", tc.spec, now, got.Format(time.RFC3339Nano), tc.want)
			}
		}
	}
}
