// Package schedule runs each configured feed on its cron schedule: one cron
// entry per feed, re-registered when a reload changes the feed, a
// catch-up run at start for feeds whose last fetch is older than their
// schedule (cron does not run what was missed while the daemon was down),
// and a heartbeat that health checks and the systemd watchdog read to see
// that the loop itself is alive.
//
// Schedules are parsed by config.Schedule, the parser `tilecast check`
// uses, so a schedule the check accepts is the one that runs: UTC unless
// the spec starts with CRON_TZ=.
package schedule

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/config"
)

// heartbeatEvery is how often the cron loop checks in when no feed runs;
// well inside the minute after which the daemon reports itself stuck.
const heartbeatEvery = 10 * time.Second

// feedRunner is the part of the Bot the scheduler drives: a run of f for
// the tick of its schedule at time at (Tick).
type feedRunner interface {
	RunTick(ctx context.Context, f *tilecast.Feed, at time.Time) error
}

// stateReader is the part of the store CatchUp reads.
type stateReader interface {
	FeedState(k tilecast.FeedKey) (tilecast.FeedState, bool, error)
}

// Scheduler keeps one cron entry per feed. Its methods are safe for
// concurrent use.
type Scheduler struct {
	cron   *cron.Cron
	runner feedRunner
	log    *slog.Logger
	runs   sync.WaitGroup // catch-up runs; cron waits for its own jobs

	mu      sync.Mutex
	ctx     context.Context // given to Start; the feed runs' context
	entries map[string]entry
	beat    time.Time // last time a job started or the loop checked in
}

type entry struct {
	id   cron.EntryID
	feed tilecast.Feed
}

// New returns a Scheduler that runs feeds with runner once started. A
// panicking run is recovered and logged: the daemon lives on and the feed
// keeps its schedule.
func New(runner feedRunner, log *slog.Logger) *Scheduler {
	s := &Scheduler{runner: runner, log: log, entries: make(map[string]entry), ctx: context.Background()}
	s.cron = cron.New(
		cron.WithLocation(time.UTC),
		cron.WithChain(cron.Recover(cronLogger{log})),
		cron.WithLogger(cronLogger{log}),
	)
	return s
}

// Apply makes the entries match feeds: new feeds are added, changed ones
// (any field, templates included) re-registered, removed ones dropped;
// unchanged feeds keep their entry and so their next run. State in the
// store is untouched. Every schedule is parsed before anything changes,
// so a feed with a bad schedule leaves the running entries as they were.
func (s *Scheduler) Apply(feeds []tilecast.Feed) error {
	scheds := make(map[string]cron.Schedule, len(feeds))
	for _, f := range feeds {
		sched, err := config.Schedule(f.Schedule)
		if err != nil {
			return fmt.Errorf("feed %s: schedule %q: %w", f.Name, f.Schedule, err)
		}
		scheds[f.Name] = sched
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	want := make(map[string]tilecast.Feed, len(feeds))
	for _, f := range feeds {
		want[f.Name] = f
	}
	for name, e := range s.entries {
		if f, ok := want[name]; !ok || !reflect.DeepEqual(f, e.feed) {
			s.cron.Remove(e.id)
			delete(s.entries, name)
			if !ok {
				s.log.Info("feed removed", "feed", name)
			}
		}
	}
	for _, f := range feeds {
		if _, ok := s.entries[f.Name]; ok {
			continue // unchanged, or a repeated name (config refuses those)
		}
		feed, sched := f, scheds[f.Name]
		id := s.cron.Schedule(sched, cron.FuncJob(func() { s.runJob(&feed, sched) }))
		s.entries[f.Name] = entry{id: id, feed: feed}
	}
	return nil
}

// Start runs the cron loop; feed runs get ctx, and none starts once it is
// done. A heartbeat entry proves the loop itself is alive (LastBeat).
func (s *Scheduler) Start(ctx context.Context) {
	s.mu.Lock()
	s.ctx = ctx
	s.mu.Unlock()
	s.heartbeat()
	s.cron.Schedule(cron.Every(heartbeatEvery), cron.FuncJob(s.heartbeat))
	s.cron.Start()
}

// CatchUp runs at once, in the background, every feed of feeds whose last
// fetch is older than its schedule's latest run time: cron does not make
// up for runs missed while the daemon was down. A feed that never ran and
// a per-user feed (whose users each have their own state) always run. Stop
// waits for these runs as for scheduled ones.
func (s *Scheduler) CatchUp(ctx context.Context, feeds []tilecast.Feed, states stateReader) {
	now := time.Now()
	for i := range feeds {
		f := &feeds[i]
		sched, err := config.Schedule(f.Schedule)
		if err != nil {
			s.log.Error("catch up: bad schedule", "feed", f.Name, "error", err.Error())
			continue
		}
		if !f.PerUser() {
			st, ok, err := states.FeedState(tilecast.FeedKey{Feed: f.Name})
			if err != nil {
				s.log.Error("read feed state", "feed", f.Name, "error", err.Error())
				continue
			}
			if ok {
				runs, err := NextRuns(f.Schedule, st.LastFetch, 1)
				if err != nil || len(runs) == 0 || runs[0].After(now) {
					continue
				}
			}
		}
		at := Tick(sched, now)
		s.runs.Go(func() {
			if err := s.runner.RunTick(ctx, f, at); err != nil {
				s.log.Error("feed run failed", "feed", f.Name, "error", err.Error())
			}
		})
	}
}

func (s *Scheduler) runJob(f *tilecast.Feed, sched cron.Schedule) {
	s.mu.Lock()
	ctx := s.ctx
	s.mu.Unlock()
	if ctx.Err() != nil {
		return
	}
	s.heartbeat()
	if err := s.runner.RunTick(ctx, f, Tick(sched, time.Now())); err != nil {
		s.log.Error("feed run failed", "feed", f.Name, "error", err.Error())
	}
	s.heartbeat()
}

func (s *Scheduler) heartbeat() {
	s.mu.Lock()
	s.beat = time.Now()
	s.mu.Unlock()
}

// LastBeat is when the loop last checked in or a feed run started or
// ended; zero before Start.
func (s *Scheduler) LastBeat() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.beat
}

// Next returns the next run time of a feed: zero for a feed it does not
// schedule, or before Start.
func (s *Scheduler) Next(feed string) time.Time {
	s.mu.Lock()
	e, ok := s.entries[feed]
	s.mu.Unlock()
	if !ok {
		return time.Time{}
	}
	return s.cron.Entry(e.id).Next
}

// Stop stops scheduling and waits up to grace for running feed runs
// (scheduled and catch-up); it reports whether they all ended in time.
// Runs end sooner when the context given to Start and CatchUp is done.
func (s *Scheduler) Stop(grace time.Duration) bool {
	cronDone := s.cron.Stop().Done()
	done := make(chan struct{})
	go func() {
		<-cronDone
		s.runs.Wait()
		close(done)
	}()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// Tick returns the scheduled time of the tick of sched that a run at now
// belongs to: the latest time the schedule names at or before now, so
// that instances sharing a state, each running the schedule on its own
// clock, name the same tick (tilecast.TickClaimer). An "@every D"
// schedule counts from when it was registered, which differs between
// instances: its ticks are taken as the multiples of D since the Unix
// epoch. A schedule with no time before now (or none in four years) gives
// now to the second.
func Tick(sched cron.Schedule, now time.Time) time.Time {
	if cd, ok := sched.(cron.ConstantDelaySchedule); ok && cd.Delay > 0 {
		return now.Truncate(cd.Delay).UTC()
	}
	// A widening look back finds the latest time at or before now in a
	// few steps whether the schedule fires every minute or once a year.
	for back := time.Minute; back <= 4*366*24*time.Hour; back *= 4 {
		t := sched.Next(now.Add(-back))
		if t.IsZero() || t.After(now) {
			continue
		}
		for {
			next := sched.Next(t)
			if next.IsZero() || next.After(now) {
				return t.UTC()
			}
			t = next
		}
	}
	return now.Truncate(time.Second).UTC()
}

// NextRuns lists the next n run times of a schedule spec after from (fewer
// if the schedule ends), as the daemon computes them.
func NextRuns(spec string, from time.Time, n int) ([]time.Time, error) {
	sched, err := config.Schedule(spec)
	if err != nil {
		return nil, err
	}
	out := make([]time.Time, 0, n)
	t := from
	for range n {
		t = sched.Next(t)
		if t.IsZero() {
			break
		}
		out = append(out, t)
	}
	return out, nil
}

// cronLogger adapts slog to cron's logger interface.
type cronLogger struct{ log *slog.Logger }

func (l cronLogger) Info(msg string, kv ...any) { l.log.Debug("cron: "+msg, kv...) }
func (l cronLogger) Error(err error, msg string, kv ...any) {
	l.log.Error("cron: "+msg, append(kv, "error", err)...)
}
