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
// the daemon's API alike. Its JSON is GET /v1/status's answer (same keys,
// same feed-state view) plus the newest dead letters, from GET
// /v1/deadletters.
type statusReport struct {
	Feeds       []tilecast.FeedStatus `json:"feeds"`
	FeedsBroken int                   `json:"feeds_broken"` // broken feed states (one per user for per-user feeds)
	Channels    int                   `json:"channels"`
	OutboxDepth int                   `json:"outbox_depth"`
	DeadLetters int                   `json:"dead_letters"`
	// RecentDeadLetters are the newest dead letters, newest first (at most
	// statusDeadLetters); not in /v1/status.
	RecentDeadLetters []tilecast.DeadLetter `json:"recent_dead_letters"`
	// Instances are the daemons sharing a PostgreSQL state (none on bbolt).
	Instances []tilecast.Instance `json:"instances,omitempty"`

	noDeadLetterList bool // the daemon's API does not serve them
}

// localStatus reads the report from the state file, with the feed-state
// view the API serves (tilecast.FeedStatuses).
func localStatus(db stateStore, feeds []tilecast.Feed) (statusReport, error) {
	var rep statusReport
	c, err := db.Counts()
	if err != nil {
		return rep, err
	}
	rep.Channels, rep.OutboxDepth, rep.DeadLetters = c.Channels, c.OutboxDepth, c.DeadLetters
	states, err := db.FeedStates()
	if err != nil {
		return rep, err
	}
	rep.Feeds, rep.FeedsBroken = tilecast.FeedStatuses(feeds, states)
	rep.RecentDeadLetters, err = db.DeadLetters(statusDeadLetters)
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
		"admin key of http.api_keys_file).\n\n"+
		"On PostgreSQL (state = a postgres:// URL) they are read from the database,\n"+
		"and status also lists the instances sharing it: each one's last heartbeat,\n"+
		"whether it counts as alive, and the outbox entries it holds leased.\n")
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
	if rep.RecentDeadLetters == nil {
		rep.RecentDeadLetters = []tilecast.DeadLetter{}
	}
	if rep.Feeds == nil {
		rep.Feeds = []tilecast.FeedStatus{}
	}
	if rep.noDeadLetterList {
		fmt.Fprintln(e.stderr, "tilecast: the daemon's API does not list dead letters; only their count is shown")
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	fmt.Fprintf(e.stdout, "channels %d   outbox %d   dead letters %d\n\n", rep.Channels, rep.OutboxDepth, rep.DeadLetters)
	byKey := feedsByKey(rep.Feeds)
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprintln(e.stdout, "feeds:")
	for _, k := range keys {
		st := byKey[k]
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
	if len(rep.RecentDeadLetters) > 0 {
		fmt.Fprintf(e.stdout, "\ndead letters (newest %d):\n", statusDeadLetters)
		for _, d := range rep.RecentDeadLetters {
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
