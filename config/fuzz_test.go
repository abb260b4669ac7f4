package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "time/tzdata" // CRON_TZ= schedules in tests do not depend on the host's zoneinfo

	"github.com/robfig/cron/v3"

	"github.com/tilecast/tilecast/config"
)

// FuzzConfig: Parse never panics; what it rejects is reported only as
// *config.Error values naming the file; what it accepts has schedules that
// parse and fire, so nothing fails later at tick time.
func FuzzConfig(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/bad/*.toml")
	seeds = append(seeds, "../config.example.toml")
	for _, s := range seeds {
		data, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("[[feed]]\nname='a'\nurl='https://x/'\nschedule='TZ=UTC'\ntile={}\n"))
	f.Add([]byte("feed=[{name='a',url='http://h/{user}',schedule='@every 1h',toast={text1='{{.User}}'}}]"))

	from := time.Date(2025, time.January, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := config.Parse("fuzz.toml", data)
		if err != nil {
			if cfg != nil {
				t.Fatalf("config and error together")
			}
			leaves := []error{err}
			if j, ok := err.(interface{ Unwrap() []error }); ok {
				leaves = j.Unwrap()
			}
			for _, leaf := range leaves {
				var ce *config.Error
				if !errors.As(leaf, &ce) || !strings.HasPrefix(leaf.Error(), "fuzz.toml") {
					t.Fatalf("error %q (%T) is not a *config.Error for fuzz.toml", leaf, leaf)
				}
			}
			return
		}
		names := map[string]bool{}
		for _, feed := range cfg.Feeds {
			if names[feed.Name] {
				t.Fatalf("duplicate feed %q accepted", feed.Name)
			}
			names[feed.Name] = true
			if feed.Toast == nil && feed.Tile == nil {
				t.Fatalf("feed %q sends nothing", feed.Name)
			}
			runs, err := cfg.NextRuns(feed.Name, from, 2)
			if err != nil || len(runs) != 2 || !runs[0].After(from) || !runs[1].After(runs[0]) {
				t.Fatalf("feed %q schedule %q: runs %v, err %v", feed.Name, feed.Schedule, runs, err)
			}
		}
	})
}

// FuzzSchedule: an accepted spec fires after any instant, and robfig/cron's
// own parser (what AddFunc uses) accepts it too, so the daemon cannot fail
// on a schedule that `tilecast check` passed.
func FuzzSchedule(f *testing.F) {
	for _, s := range []string{"*/15 * * * *", "@every 10m", "@hourly", "CRON_TZ=Europe/Berlin 0 9 * * 1-5",
		"TZ=UTC", "0 0 30 2 *", "@every 0s", "1-5/2 */3 1,15 JAN-MAR MON", "CRON_TZ=UTC TZ=UTC * * * * *"} {
		f.Add(s, int64(1735689600))
	}
	parser := cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
	f.Fuzz(func(t *testing.T, spec string, unix int64) {
		s, err := config.Schedule(spec)
		if err != nil {
			return
		}
		from := time.Unix(unix%(1<<33), 0).UTC() // years 1970..2242
		if next := s.Next(from); !next.After(from) {
			t.Errorf("Schedule(%q).Next(%v) = %v", spec, from, next)
		}
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("cron's parser panics on accepted spec %q: %v", spec, r)
				}
			}()
			if _, err := parser.Parse(spec); err != nil {
				t.Errorf("cron's parser rejects accepted spec %q: %v", spec, err)
			}
		}()
	})
}
