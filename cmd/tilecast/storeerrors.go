package main

import (
	"errors"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/web"
)

// storeErrorObserver is the part of the Bot's observer (web.Metrics) that
// counts failed writes of the state.
type storeErrorObserver interface {
	ObserveStoreError(op string)
}

// errorCountingStore is the Bot's store with its failed writes counted
// (tilecast_store_errors_total{op}). The Bot logs each failure (a feed
// run's commit as an ERROR "fetch" line, a batch of outcomes as "record
// outcomes; retrying") and tries again later, but a state that cannot be
// written (a full disk, a database that does not answer) needs a metric
// an operator can alert on; tilecast_fetch_total{result="error"} mixes
// these with feeds that do not answer.
//
// The observer is the Bot's, read at each failure: the daemon sets it
// once its HTTP API exists, before the scheduler and the deliverer start.
type errorCountingStore struct {
	tilecast.Store
	bot *tilecast.Bot
}

func (s *errorCountingStore) count(op string, err error) error {
	if err == nil || s.bot == nil {
		return err
	}
	if o, ok := s.bot.Observer.(storeErrorObserver); ok {
		o.ObserveStoreError(op)
	}
	return err
}

func (s *errorCountingStore) Commit(c tilecast.Commit) error {
	return s.count(web.StoreOpCommit, s.Store.Commit(c))
}

func (s *errorCountingStore) SaveFeedState(k tilecast.FeedKey, st tilecast.FeedState) error {
	return s.count(web.StoreOpFeedState, s.Store.SaveFeedState(k, st))
}

func (s *errorCountingStore) Record(recs []tilecast.Record) error {
	return s.count(web.StoreOpRecord, s.Store.Record(recs))
}

// FanOutStep does not count ErrFanOutMoved: another run stepped past the
// page, which is how concurrent runs of one job are told apart.
func (s *errorCountingStore) FanOutStep(job tilecast.FanOutJob, from string, ns []tilecast.Notification, done bool) error {
	err := s.Store.FanOutStep(job, from, ns, done)
	if errors.Is(err, tilecast.ErrFanOutMoved) {
		return err
	}
	return s.count(web.StoreOpFanOut, err)
}

func (s *errorCountingStore) Enqueue(ns []tilecast.Notification) error {
	return s.count(web.StoreOpEnqueue, s.Store.Enqueue(ns))
}
