package config

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Schedule parses a feed schedule the way the daemon runs it: a 5-field cron
// spec (minute hour day-of-month month day-of-week) or a descriptor
// (@yearly, @monthly, @weekly, @daily, @hourly, @every DURATION), optionally
// prefixed with "CRON_TZ=Zone " or "TZ=Zone ".
//
// Schedules run in UTC unless a zone prefix is given: the returned schedule
// carries its zone, so it does not depend on the location the cron runner
// uses. Hand it to (*cron.Cron).Schedule rather than re-parsing the spec with
// AddFunc, so that the daemon runs exactly what `tilecast check` printed.
func Schedule(spec string) (s cron.Schedule, err error) {
	// robfig/cron's parser has panicked on odd input before (a zone prefix
	// without a schedule); a config must fail to load, never crash the daemon.
	defer func() {
		if r := recover(); r != nil {
			s, err = nil, fmt.Errorf("cannot parse: %v", r)
		}
	}()
	// Accept nothing that robfig/cron's own parser (AddFunc with the same
	// options) would reject, so a daemon that re-parses the spec still works.
	if spec != strings.TrimSpace(spec) {
		return nil, errors.New("remove the spaces around the schedule")
	}
	loc := time.UTC
	rest := spec
	if zone, ok := zonePrefix(rest); ok {
		name, after, _ := strings.Cut(rest[len(zone):], " ")
		rest = strings.TrimSpace(after)
		if rest == "" {
			return nil, fmt.Errorf("%s%s must be followed by a schedule", zone, name)
		}
		if _, again := zonePrefix(rest); again {
			return nil, errors.New("more than one time zone prefix")
		}
		if name == "" || name == "Local" {
			return nil, fmt.Errorf("%s needs a zone name such as Europe/Berlin", zone)
		}
		if loc, err = time.LoadLocation(name); err != nil {
			return nil, fmt.Errorf("unknown time zone %q", name)
		}
	}
	if rest == "" {
		return nil, errors.New("empty schedule")
	}
	if d, ok := strings.CutPrefix(rest, "@every "); ok {
		// cron silently turns anything under a second (even negative) into
		// one second; refuse instead of surprising.
		every, err := time.ParseDuration(d)
		if err != nil {
			return nil, fmt.Errorf("bad @every duration %q", d)
		}
		if every < time.Second {
			return nil, fmt.Errorf("@every %s is shorter than one second", every)
		}
		return cron.Every(every), nil
	}
	parser := cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
	sched, err := parser.Parse(rest)
	if err != nil {
		return nil, err
	}
	if spec, ok := sched.(*cron.SpecSchedule); ok {
		spec.Location = loc
	}
	// A spec that cannot fire within cron's five-year search from a fixed
	// instant (fixed so that loading never depends on the clock), such as
	// "0 0 30 2 *", would silently never run.
	if sched.Next(time.Date(2024, time.January, 1, 0, 0, 0, 0, time.UTC)).IsZero() {
		return nil, errors.New("never fires")
	}
	return sched, nil
}

func zonePrefix(s string) (string, bool) {
	for _, p := range []string{"CRON_TZ=", "TZ="} {
		if strings.HasPrefix(s, p) {
			return p, true
		}
	}
	return "", false
}

// NextRuns returns the next n run times of the named feed after from, in
// UTC (a CRON_TZ= schedule still fires at its zone's wall-clock times).
func (c *Config) NextRuns(feed string, from time.Time, n int) ([]time.Time, error) {
	for i := range c.Feeds {
		if c.Feeds[i].Name != feed {
			continue
		}
		sched, err := Schedule(c.Feeds[i].Schedule)
		if err != nil {
			return nil, fmt.Errorf("feed %s: %w", feed, err)
		}
		runs := make([]time.Time, 0, n)
		t := from.UTC()
		for len(runs) < n {
			if t = sched.Next(t); t.IsZero() {
				break
			}
			t = t.UTC()
			runs = append(runs, t)
		}
		return runs, nil
	}
	return nil, fmt.Errorf("feed %s: not in the config", feed)
}
