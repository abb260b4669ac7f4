package web

import (
	"net/http"

	"github.com/tilecast/tilecast"
)

// statusBody is the GET /v1/status answer; its feeds are the one
// feed-state view, tilecast.FeedStatuses.
type statusBody struct {
	Feeds       []tilecast.FeedStatus `json:"feeds"`
	FeedsBroken int                   `json:"feeds_broken"` // broken feed states (one per user for per-user feeds)
	Channels    int                   `json:"channels"`
	OutboxDepth int                   `json:"outbox_depth"`
	DeadLetters int                   `json:"dead_letters"`
	// Instances are the daemons sharing a PostgreSQL state, with their
	// leases (Options.Instances); absent on bbolt.
	Instances []tilecast.Instance `json:"instances,omitempty"`
}

func (s *Server) feeds() []tilecast.Feed {
	if s.opts.Feeds == nil {
		return nil
	}
	return s.opts.Feeds()
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
	var instances []tilecast.Instance
	if s.opts.Instances != nil {
		if instances, err = s.opts.Instances(); err != nil {
			s.internalError(w, r, err)
			return
		}
	}
	feeds, broken := tilecast.FeedStatuses(s.feeds(), states)
	writeJSON(w, http.StatusOK, statusBody{
		Feeds: feeds, FeedsBroken: broken,
		Channels: st.Channels, OutboxDepth: st.OutboxDepth, DeadLetters: st.DeadLetters,
		Instances: instances,
	})
}
