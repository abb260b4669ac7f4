package main

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/config"
)

func TestParseFailpoint(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    failpointSpec
		wantErr string
	}{
		{in: "after-send:panic", want: failpointSpec{"after-send", failPanic, 1}},
		{in: "after-fetch:exit@3", want: failpointSpec{"after-fetch", failExit, 3}},
		{in: "after-commit:kill@1", want: failpointSpec{"after-commit", failKill, 1}},
		{in: "after-record:exit", want: failpointSpec{"after-record", failExit, 1}},
		{in: "in-commit:exit", want: failpointSpec{"in-commit", failExit, 1}},
		{in: "in-record:kill@2", want: failpointSpec{"in-record", failKill, 2}},
		{in: "after-send", wantErr: "POINT:ACTION"},
		{in: "inside-tx:panic", wantErr: "unknown point"},
		{in: "after-send:explode", wantErr: "unknown action"},
		{in: "after-send:exit@0", wantErr: "hit count"},
		{in: "after-send:exit@x", wantErr: "hit count"},
		{in: "after-send:exit@", wantErr: "hit count"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseFailpoint(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func FuzzParseFailpoint(f *testing.F) {
	for _, s := range []string{"after-send:panic", "after-fetch:exit@3", "x:y@z", ":@", "after-record:kill@9223372036854775807"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sp, err := parseFailpoint(s)
		if err == nil && (sp.nth < 1 || sp.point == "" || sp.action == "") {
			t.Errorf("%q parsed to an unusable %+v", s, sp)
		}
	})
}

func TestFailpointFiresOnNthHitOnly(t *testing.T) {
	for _, action := range []failpointAction{failExit, failKill, failPanic} {
		t.Run(string(action), func(t *testing.T) {
			var out bytes.Buffer
			var exits, kills int
			sp := failpointSpec{point: tilecast.FailAfterSend, action: action, nth: 3}
			hook := sp.hook(&out, func(code int) {
				if code != exitFailpoint {
					t.Errorf("exit code %d, want %d", code, exitFailpoint)
				}
				exits++
			}, func() { kills++ })
			panics := 0
			call := func(p string) {
				defer func() {
					if recover() != nil {
						panics++
					}
				}()
				hook(p)
			}
			for range 5 {
				call(tilecast.FailAfterFetch) // other points never count
				call(tilecast.FailAfterSend)
			}
			fired := map[failpointAction]int{failExit: exits, failKill: kills, failPanic: panics}
			for a, n := range fired {
				want := 0
				if a == action {
					want = 1
				}
				if n != want {
					t.Errorf("%s fired %d times, want %d", a, n, want)
				}
			}
			if !strings.Contains(out.String(), "failpoint after-send hit 3: "+string(action)) {
				t.Errorf("message %q", out.String())
			}
		})
	}
}

// panicRunner panics on its first run, then counts runs.
type panicRunner struct {
	mu   sync.Mutex
	runs int
	ran  chan struct{}
}

func (p *panicRunner) RunFeed(context.Context, *tilecast.Feed) error {
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
	var logs lockedBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	pr := &panicRunner{ran: make(chan struct{}, 1)}
	s := newScheduler(context.Background(), pr, log)
	if err := s.apply([]tilecast.Feed{{Name: "boom", Schedule: "@every 1s"}}); err != nil {
		t.Fatal(err)
	}
	s.start()
	defer s.stop(5 * time.Second)
	select {
	case <-pr.ran:
	case <-time.After(10 * time.Second):
		t.Fatal("no run after the panicking one: the scheduler died")
	}
	if !strings.Contains(logs.String(), "panic") || !strings.Contains(logs.String(), "feed run blew up") {
		t.Errorf("the recovered panic was not logged:\n%s", logs.String())
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
			got, err := nextRuns(tc.spec, tc.from, len(tc.want))
			if err != nil {
				t.Fatal(err)
			}
			for i := range tc.want {
				if i >= len(got) || !got[i].Equal(tc.want[i]) {
					t.Fatalf("runs %v, want %v", got, tc.want)
				}
			}
		})
	}
}
