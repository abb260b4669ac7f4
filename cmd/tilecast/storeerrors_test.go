package main

import (
	"errors"
	"io"
	"maps"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/config"
	"github.com/tilecast/tilecast/store"
	"github.com/tilecast/tilecast/web"
)

// storeErrors reads tilecast_store_errors_total from reg, by op; an op
// without a series is absent.
func storeErrors(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "tilecast_store_errors_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "op" {
					out[l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}

// The Bot newBot wires counts each write its store refuses under the
// write's op in tilecast_store_errors_total (exported at 0 from the
// start); successful writes and a fan-out page another run took
// (ErrFanOutMoved) are not errors.
func TestStoreErrorsCounted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	rw, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer rw.Close() // a second Close is harmless
	cfg := config.Default()
	cfg.State = path
	reg := prometheus.NewRegistry()
	bot, err := newBot(cfg, rw, newLogger(cfg, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	bot.Observer = web.NewMetrics(reg)
	zero := map[string]float64{"commit": 0, "feed_state": 0, "record": 0, "fan_out": 0, "enqueue": 0}
	if got := storeErrors(t, reg); !maps.Equal(got, zero) {
		t.Fatalf("before any write: %v, want every op at 0: %v", got, zero)
	}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	k := tilecast.FeedKey{Feed: "news"}
	st := tilecast.FeedState{LastFetch: now, LastResult: "ok"}
	job := tilecast.FanOutJob{Feed: "news", Now: now}
	ch, _, err := rw.AddChannel(tilecast.Channel{URI: "http://127.0.0.1/phone", Feeds: []string{"news"}})
	if err != nil {
		t.Fatal(err)
	}
	toast := tilecast.Notification{ChannelID: ch.ID, Feed: "news", ItemID: "a", Kind: tilecast.KindToast, Payload: []byte("toast")}
	writes := func(s tilecast.Store) map[string]error {
		return map[string]error{
			"commit":     s.Commit(tilecast.Commit{Key: k, State: st, Seen: []string{"a"}, Now: now}),
			"feed_state": s.SaveFeedState(k, st),
			"record":     s.Record([]tilecast.Record{{ID: 1, Op: tilecast.OpDone}}),
			"enqueue":    s.Enqueue([]tilecast.Notification{toast}),
		}
	}
	for op, err := range writes(bot.Store) {
		if err != nil {
			t.Errorf("%s on a writable state: %v", op, err)
		}
	}
	if err := bot.Store.FanOutStep(job, "", nil, false); !errors.Is(err, tilecast.ErrFanOutMoved) {
		t.Errorf("FanOutStep of a job that does not exist: %v, want ErrFanOutMoved", err)
	}
	if got := storeErrors(t, reg); !maps.Equal(got, zero) {
		t.Errorf("after writes that worked or were moved on: %v, want %v", got, zero)
	}
	// The state closed under the Bot: every write fails.
	if err := rw.Close(); err != nil {
		t.Fatal(err)
	}
	for op, err := range writes(bot.Store) {
		if err == nil {
			t.Errorf("%s on a closed state did not fail", op)
		}
	}
	if err := bot.Store.FanOutStep(job, "", nil, false); err == nil || errors.Is(err, tilecast.ErrFanOutMoved) {
		t.Errorf("FanOutStep on a closed state: %v, want a write error", err)
	}
	want := map[string]float64{"commit": 1, "feed_state": 1, "record": 1, "fan_out": 1, "enqueue": 1}
	if got := storeErrors(t, reg); !maps.Equal(got, want) {
		t.Errorf("after one failed write of each op: %v, want %v", got, want)
	}
}
