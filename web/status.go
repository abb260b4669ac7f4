package web

import (
	"cmp"
	"net/http"
	"slices"
	"time"

	"github.com/tilecast/tilecast"
)

// statusBody is the GET /v1/status answer.
type statusBody struct {
	Feeds       []feedStatus `json:"feeds"`
	FeedsBroken int          `json:"feeds_broken"` // broken feed states (one per user for per-user feeds)
	Channels    int          `json:"channels"`
	OutboxDepth int          `json:"outbox_depth"`
	DeadLetters int          `json:"dead_letters"`
}

// feedStatus is one configured feed. A global feed has State (absent before
// its first run); a per-user feed has one entry in Users per fetched user.
type feedStatus struct {
	Name     string      `json:"name"`
	Schedule string      `json:"schedule"`
	PerUser  bool        `json:"per_user,omitempty"`
	Broken   bool        `json:"broken"` // the feed, or any user's copy of it, is broken
	State    *stateView  `json:"state,omitempty"`
	Users    []stateView `json:"users,omitempty"`
}

// stateView is a FeedState without its validators and rendered tile data,
// which are internal and can be large.
type stateView struct {
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

func viewOf(user string, st *tilecast.FeedState) stateView {
	return stateView{
		User: user, Baselined: st.Baselined, LastFetch: st.LastFetch, LastResult: st.LastResult,
		LastSuccess: st.LastSuccess, Failures: st.Failures, FailingSince: st.FailingSince,
		Broken: st.Broken, NextFetch: st.NextFetch, Title: st.Title,
	}
}

func (s *Server) feeds() []tilecast.Feed {
	if s.opts.Feeds == nil {
		return nil
	}
	return s.opts.Feeds()
}

// feedStatuses joins the configured feeds with their stored states. States
// of feeds no longer in the config are left out.
func feedStatuses(feeds []tilecast.Feed, states map[tilecast.FeedKey]tilecast.FeedState) ([]feedStatus, int) {
	out := make([]feedStatus, 0, len(feeds))
	index := make(map[string]int, len(feeds))
	for i := range feeds {
		f := &feeds[i]
		if _, dup := index[f.Name]; dup {
			continue
		}
		index[f.Name] = len(out)
		out = append(out, feedStatus{Name: f.Name, Schedule: f.Schedule, PerUser: f.PerUser()})
	}
	broken := 0
	for k, st := range states {
		i, ok := index[k.Feed]
		if !ok {
			continue
		}
		fs := &out[i]
		if fs.PerUser != (k.User != "") {
			continue // state from before the feed's url gained or lost {user}
		}
		if st.Broken {
			fs.Broken = true
			broken++
		}
		v := viewOf(k.User, &st)
		if fs.PerUser {
			fs.Users = append(fs.Users, v)
		} else {
			fs.State = &v
		}
	}
	for i := range out {
		slices.SortFunc(out[i].Users, func(a, b stateView) int { return cmp.Compare(a.User, b.User) })
	}
	return out, broken
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	states, err := s.opts.Store.FeedStates()
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	st, err := s.opts.Counts()
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	feeds, broken := feedStatuses(s.feeds(), states)
	writeJSON(w, http.StatusOK, statusBody{
		Feeds: feeds, FeedsBroken: broken,
		Channels: st.Channels, OutboxDepth: st.OutboxDepth, DeadLetters: st.DeadLetters,
	})
}
