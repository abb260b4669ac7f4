package main

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

// feedRunner is the part of the Bot the scheduler drives.
type feedRunner interface {
	RunFeed(ctx context.Context, f *tilecast.Feed) error
}

// scheduler keeps one cron entry per feed and re-registers them on reload.
type scheduler struct {
	ctx    context.Context
	cron   *cron.Cron
	runner feedRunner
	log    *slog.Logger

	mu      sync.Mutex
	entries map[string]schedEntry
	beat    time.Time // last time a job started or the loop checked in
}

type schedEntry struct {
	id   cron.EntryID
	feed tilecast.Feed
}

func newScheduler(ctx context.Context, runner feedRunner, log *slog.Logger) *scheduler {
	s := &scheduler{ctx: ctx, runner: runner, log: log, entries: make(map[string]schedEntry)}
	s.cron = cron.New(
		cron.WithLocation(time.UTC),
		// A panicking job is logged and the daemon lives on.
		cron.WithChain(cron.Recover(cronLogger{log})),
		cron.WithLogger(cronLogger{log}),
	)
	return s
}

// apply makes the entries match feeds: new feeds are added, changed ones
// re-registered, removed ones dropped. State in the store is untouched.
func (s *scheduler) apply(feeds []tilecast.Feed) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	want := make(map[string]tilecast.Feed, len(feeds))
	for _, f := range feeds {
		want[f.Name] = f
	}
	for name, e := range s.entries {
		if f, ok := want[name]; !ok || !sameFeed(f, e.feed) {
			s.cron.Remove(e.id)
			delete(s.entries, name)
			if !ok {
				s.log.Info("feed removed", "feed", name)
			}
		}
	}
	for _, f := range feeds {
		if _, ok := s.entries[f.Name]; ok {
			continue
		}
		feed := f
		// config.Schedule is the parser `check` uses too: UTC unless CRON_TZ= is given.
		sched, err := config.Schedule(f.Schedule)
		if err != nil {
			return fmt.Errorf("feed %s: schedule %q: %w", f.Name, f.Schedule, err)
		}
		id := s.cron.Schedule(sched, cron.FuncJob(func() { s.runJob(&feed) }))
		s.entries[f.Name] = schedEntry{id: id, feed: feed}
	}
	return nil
}

func (s *scheduler) runJob(f *tilecast.Feed) {
	if s.ctx.Err() != nil {
		return
	}
	s.heartbeat()
	if err := s.runner.RunFeed(s.ctx, f); err != nil {
		s.log.Error("feed run failed", "feed", f.Name, "error", err.Error())
	}
	s.heartbeat()
}

func (s *scheduler) heartbeat() {
	s.mu.Lock()
	s.beat = time.Now()
	s.mu.Unlock()
}

// next returns the next run time of a feed (zero if unknown).
func (s *scheduler) next(feed string) time.Time {
	s.mu.Lock()
	e, ok := s.entries[feed]
	s.mu.Unlock()
	if !ok {
		return time.Time{}
	}
	return s.cron.Entry(e.id).Next
}

// start runs the cron loop, with a heartbeat entry that proves the loop
// itself is alive (health and the systemd watchdog read it).
func (s *scheduler) start() {
	s.heartbeat()
	s.cron.Schedule(cron.Every(10*time.Second), cron.FuncJob(s.heartbeat))
	s.cron.Start()
}

func (s *scheduler) lastBeat() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.beat
}

// stop stops scheduling and waits up to grace for running jobs.
func (s *scheduler) stop(grace time.Duration) bool {
	done := s.cron.Stop().Done()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// sameFeed compares two feed configs by value (templates included).
func sameFeed(a, b tilecast.Feed) bool { return reflect.DeepEqual(a, b) }

// nextRuns lists the next n run times of a spec after from.
func nextRuns(spec string, from time.Time, n int) ([]time.Time, error) {
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
