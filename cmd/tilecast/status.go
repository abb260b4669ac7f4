package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/store/postgres"
)

// statusDeadLetters is how many of the newest dead letters status lists.
const statusDeadLetters = 20

// statusReport is what status prints, read from the state file or from
// the daemon's API (GET /v1/status and /v1/deadletters) alike.
type statusReport struct {
	Stats statusCounts `json:"stats"`
	// Feeds are the states of the configured feeds by FeedKey.String()
	// ("feed" or "feed/user"); a feed that never ran has none.
	Feeds       map[string]tilecast.FeedStateView `json:"feeds"`
	DeadLetters []tilecast.DeadLetter             `json:"dead_letters"` // newest first
	// Instances are the daemons sharing a PostgreSQL state (none on bbolt).
	Instances []tilecast.Instance `json:"instances,omitempty"`

	noDeadLetterList bool // the daemon's API does not serve them
}

// statusCounts are the counts status shows (tilecast.Counts without the
// broken states by feed, which the feeds list shows).
type statusCounts struct {
	Channels    int
	OutboxDepth int
	DeadLetters int
}

// localStatus reads the report from the state file, with the feed-state
// view the API serves (tilecast.FeedStatuses).
func localStatus(db stateStore, feeds []tilecast.Feed) (statusReport, error) {
	var rep statusReport
	c, err := db.Counts()
	if err != nil {
		return rep, err
	}
	rep.Stats = statusCounts{Channels: c.Channels, OutboxDepth: c.OutboxDepth, DeadLetters: c.DeadLetters}
	states, err := db.FeedStates()
	if err != nil {
		return rep, err
	}
	statuses, _ := tilecast.FeedStatuses(feeds, states)
	rep.Feeds = feedsByKey(statuses)
	rep.DeadLetters, err = db.DeadLetters(statusDeadLetters)
	if err != nil {
		return rep, err
	}
	if pg, ok := db.(*postgres.DB); ok {
		rep.Instances, err = pg.Instances()
	}
	return rep, err
}

// feedsByKey lists the states of statuses by FeedKey.String(), as status
// prints them, whether they came from the state file or the API.
func feedsByKey(statuses []tilecast.FeedStatus) map[string]tilecast.FeedStateView {
	out := make(map[string]tilecast.FeedStateView)
	for _, f := range statuses {
		if f.State != nil {
			out[f.Name] = *f.State
		}
		for _, u := range f.Users {
			out[tilecast.FeedKey{Feed: f.Name, User: u.User}.String()] = u
		}
	}
	return out
}

func cmdStatus(ctx context.Context, e env) error {
	fs := newFlags(e, "status", "status --config FILE [--json]\n\n"+
		"Feeds, channels, outbox and the newest dead letters. While the daemon runs\n"+
		"(it holds the state file) they are read through its API (http.listen, first\n"+
		"admin key of http.api_keys_file).\n")
	cfgPath := fs.String("config", "", "config file (TOML)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, e, e.args); err != nil {
		return err
	}
	_, o, err := loadAndConnect(*cfgPath, e, true)
	if err != nil {
		return err
	}
	defer o.Close()
	rep, err := o.Status(ctx)
	if err != nil {
		return err
	}
	if rep.DeadLetters == nil {
		rep.DeadLetters = []tilecast.DeadLetter{}
	}
	if rep.noDeadLetterList {
		fmt.Fprintln(e.stderr, "tilecast: the daemon's API does not list dead letters; only their count is shown")
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	fmt.Fprintf(e.stdout, "channels %d   outbox %d   dead letters %d\n\n", rep.Stats.Channels, rep.Stats.OutboxDepth, rep.Stats.DeadLetters)
	keys := make([]string, 0, len(rep.Feeds))
	for k := range rep.Feeds {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprintln(e.stdout, "feeds:")
	for _, k := range keys {
		st := rep.Feeds[k]
		flag := ""
		if st.Broken {
			flag = "  BROKEN since " + fmtTime(st.FailingSince)
		}
		fmt.Fprintf(e.stdout, "  %-24s last fetch %s  %s%s\n", k, fmtTime(st.LastFetch), st.LastResult, flag)
	}
	if len(rep.Instances) > 0 {
		fmt.Fprintln(e.stdout, "\ninstances:")
		for _, in := range rep.Instances {
			state := "alive"
			if !in.Alive {
				state = "GONE"
			}
			fmt.Fprintf(e.stdout, "  %-24s %-5s heartbeat %s  leases %d  %s pid %d  %s\n", in.ID, state, fmtTime(in.Heartbeat),
				in.Leases, in.Host, in.PID, in.Version)
		}
	}
	if len(rep.DeadLetters) > 0 {
		fmt.Fprintf(e.stdout, "\ndead letters (newest %d):\n", statusDeadLetters)
		for _, d := range rep.DeadLetters {
			fmt.Fprintf(e.stdout, "  %s channel %s feed %s %s: %s %s\n", fmtTime(d.Outcome.Time), d.Notification.ChannelID,
				d.Notification.Feed, d.Notification.Kind, d.Outcome.Action, d.Outcome.Error)
		}
	}
	return nil
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}
