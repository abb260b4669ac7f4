package web

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
)

func TestMetrics(t *testing.T) {
	e := newEnv(t, nil)
	e.mustRegister(t, regJSON(goodURI), http.StatusCreated)
	e.mustRegister(t, regJSON(goodURI+"2"), http.StatusCreated)
	e.store.counts = tilecast.Counts{OutboxDepth: 5, DeadLetters: 1}
	e.store.states = map[tilecast.FeedKey]tilecast.FeedState{
		{Feed: "news"}:    {Broken: true},
		{Feed: "weather"}: {},
		// Not counted: a feed no longer configured, and a per-user copy
		// of a feed that is global now.
		{Feed: "removed"}:              {Broken: true},
		{Feed: "news", User: "before"}: {Broken: true},
	}
	m := e.srv.Metrics()
	m.ObserveFetch("news", "ok", 3)
	m.ObserveFetch("news", "ok", 2)
	m.ObserveFetch("weather", "not_modified", 0)
	m.ObservePush(tilecast.Outcome{Kind: tilecast.KindToast, Action: tilecast.ActionDelivered, Duration: 120 * time.Millisecond})
	m.ObservePush(tilecast.Outcome{Kind: tilecast.KindTile, Action: tilecast.ActionRetry, Duration: 3 * time.Second})
	m.ObservePush(tilecast.Outcome{Kind: tilecast.KindTile, Action: tilecast.ActionDropped}) // nothing sent: no latency
	m.ObservePossibleDuplicates(3)
	m.ObservePossibleDuplicates(0)
	m.ObserveStoreError(StoreOpRecord)

	rec := e.do(t, http.MethodGet, "/metrics", "", nil)
	if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain") {
		t.Fatalf("/metrics: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	body := rec.Body.String()
	for _, want := range []string{
		`tilecast_fetch_total{feed="news",result="ok"} 2`,
		`tilecast_fetch_total{feed="weather",result="not_modified"} 1`,
		`tilecast_new_items_total{feed="news"} 5`,
		`tilecast_new_items_total{feed="weather"} 0`,
		`tilecast_push_total{kind="toast",outcome="delivered"} 1`,
		`tilecast_push_total{kind="tile",outcome="retry"} 1`,
		`tilecast_push_total{kind="tile",outcome="dropped"} 1`,
		`tilecast_push_duration_seconds_count 2`,
		`tilecast_possible_duplicates_total 3`,
		`tilecast_store_errors_total{op="record"} 1`,
		`tilecast_store_errors_total{op="commit"} 0`, // every op from the start
		`tilecast_push_duration_seconds_bucket{le="0.25"} 1`,
		`tilecast_push_duration_seconds_bucket{le="5"} 2`,
		"tilecast_channels 2",
		"tilecast_outbox_depth 5",
		"tilecast_dead_letters 1",
		"tilecast_feeds_broken 1",
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	// Gauges follow the store at each scrape.
	e.store.counts.OutboxDepth = 0
	e.store.states[tilecast.FeedKey{Feed: "news"}] = tilecast.FeedState{}
	body = e.do(t, http.MethodGet, "/metrics", "", nil).Body.String()
	for _, want := range []string{"tilecast_outbox_depth 0\n", "tilecast_feeds_broken 0\n"} {
		if !strings.Contains(body, want) {
			t.Errorf("second scrape lacks %q", want)
		}
	}
}

// A store that fails at scrape time costs the gauges, not the counters.
func TestMetricsStoreError(t *testing.T) {
	e := newEnv(t, nil)
	e.srv.Metrics().ObserveFetch("news", "error", 0)
	e.store.err = errBoom
	rec := e.do(t, http.MethodGet, "/metrics", "", nil)
	body := rec.Body.String()
	if rec.Code != 200 || !strings.Contains(body, `tilecast_fetch_total{feed="news",result="error"} 1`) {
		t.Errorf("/metrics with a failing store: %d\n%s", rec.Code, body)
	}
	if strings.Contains(body, "tilecast_channels ") {
		t.Errorf("gauge served despite the store error:\n%s", body)
	}
}

func TestNilMetricsIgnoreObservations(t *testing.T) {
	var m *Metrics
	m.ObserveFetch("news", "ok", 1)
	m.ObservePush(tilecast.Outcome{Duration: time.Second})
	m.ObservePossibleDuplicates(1)
}
