package tilecast

import (
	"cmp"
	"slices"
	"time"
)

// FeedStatus is one configured feed as `tilecast status`, GET /v1/status
// and the dashboard show it. A global feed has State (nil before
// its first run); a per-user feed has one entry in Users per fetched user,
// sorted by user.
type FeedStatus struct {
	Name     string          `json:"name"`
	Schedule string          `json:"schedule"`
	PerUser  bool            `json:"per_user,omitempty"`
	Broken   bool            `json:"broken"` // the feed, or any user's copy of it, is broken
	State    *FeedStateView  `json:"state,omitempty"`
	Users    []FeedStateView `json:"users,omitempty"`
}

// FeedStateView is a FeedState without its validators, seen-set
// bookkeeping and rendered tile data, which are internal and can be large.
type FeedStateView struct {
	User         string    `json:"user,omitempty"`
	Baselined    bool      `json:"baselined"`
	LastFetch    time.Time `json:"last_fetch,omitzero"`
	LastResult   string    `json:"last_result,omitempty"`
	LastSuccess  time.Time `json:"last_success,omitzero"`
	Failures     int       `json:"failures,omitempty"`
	FailingSince time.Time `json:"failing_since,omitzero"`
	Broken       bool      `json:"broken"`
	NextFetch    time.Time `json:"next_fetch,omitzero"`
	Title        string    `json:"title,omitempty"`
}

// FeedStatuses joins the configured feeds, in config order, with their
// stored states, and counts the broken states (one per user for a per-user
// feed). States of feeds no longer configured are left out, and so are
// states from before a feed's url gained or lost {user}: a global state
// for a per-user feed, or a user's state for a global one. A repeated feed
// name counts once, as its first occurrence.
//
// It is the one feed-state view of the daemon: the CLI's status (from the
// state file) and the HTTP API and dashboard (from the running daemon)
// both build on it, so they cannot disagree about what a feed's state is.
func FeedStatuses(feeds []Feed, states map[FeedKey]FeedState) (statuses []FeedStatus, broken int) {
	out := make([]FeedStatus, 0, len(feeds))
	index := make(map[string]int, len(feeds))
	for i := range feeds {
		f := &feeds[i]
		if _, dup := index[f.Name]; dup {
			continue
		}
		index[f.Name] = len(out)
		out = append(out, FeedStatus{Name: f.Name, Schedule: f.Schedule, PerUser: f.PerUser()})
	}
	for k, st := range states {
		i, ok := index[k.Feed]
		if !ok {
			continue
		}
		fs := &out[i]
		if fs.PerUser != (k.User != "") {
			continue
		}
		if st.Broken {
			fs.Broken = true
			broken++
		}
		v := FeedStateView{
			User: k.User, Baselined: st.Baselined, LastFetch: st.LastFetch, LastResult: st.LastResult,
			LastSuccess: st.LastSuccess, Failures: st.Failures, FailingSince: st.FailingSince,
			Broken: st.Broken, NextFetch: st.NextFetch, Title: st.Title,
		}
		if fs.PerUser {
			fs.Users = append(fs.Users, v)
		} else {
			fs.State = &v
		}
	}
	for i := range out {
		slices.SortFunc(out[i].Users, func(a, b FeedStateView) int { return cmp.Compare(a.User, b.User) })
	}
	return out, broken
}
