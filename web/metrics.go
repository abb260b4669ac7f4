package web

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tilecast/tilecast"
)

const namespace = "tilecast"

// Metrics are the counters and the latency histogram of design.md §7 that
// the daemon feeds as it fetches and sends. The gauges (channels,
// outbox_depth, dead_letters, feeds_broken) are read from the store at
// scrape time by the Server, so nothing has to keep them up to date.
// A nil *Metrics ignores every observation.
type Metrics struct {
	fetch        *prometheus.CounterVec
	newItems     *prometheus.CounterVec
	push         *prometheus.CounterVec
	pushDuration prometheus.Histogram
	possibleDups prometheus.Counter
	storeErrors  *prometheus.CounterVec
	// history keeps the last 24 hours for the dashboard's chart.
	history *history
}

// NewMetrics registers the counters on reg. It panics if they are already
// registered there (a wiring bug, like prometheus.MustRegister).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m, err := newMetrics(reg)
	if err != nil {
		panic(err)
	}
	return m
}

func newMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		history: newHistory(),
		fetch: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "fetch_total",
			Help: "Feed fetches by feed and result (ok, not_modified, error).",
		}, []string{"feed", "result"}),
		newItems: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "new_items_total",
			Help: "Items seen for the first time, by feed.",
		}, []string{"feed"}),
		push: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "push_total",
			Help: "Push outcomes by notification kind: sends (delivered, retry, dropped, channel_removed, failed) and entries dropped unsent past their time to live (expired).",
		}, []string{"kind", "outcome"}),
		pushDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "push_duration_seconds",
			Help: "Time from sending a push request to its response.",
			// Up to the 15 s default push timeout.
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 15},
		}),
		possibleDups: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "possible_duplicates_total",
			Help: "Notifications sent again after a crash because the previous run handed them out without recording an outcome; each may have reached its device twice.",
		}),
		storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "store_errors_total",
			Help: "Writes of the state that failed (a full disk, a database that does not answer), by operation: commit (a feed run's new items), feed_state, record (send outcomes), fan_out, enqueue.",
		}, []string{"op"}),
	}
	for _, c := range []prometheus.Collector{m.fetch, m.newItems, m.push, m.pushDuration, m.possibleDups, m.storeErrors} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	// Every op is exported from the start, at 0: an alert on
	// increase(tilecast_store_errors_total[…]) then sees the first error,
	// which a series born at 1 would hide.
	for _, op := range StoreOps {
		m.storeErrors.WithLabelValues(op)
	}
	return m, nil
}

// The op label values of tilecast_store_errors_total: the writes the Bot
// makes to the state.
const (
	StoreOpCommit    = "commit"     // a feed run's seen items, feed state and notifications
	StoreOpFeedState = "feed_state" // a feed state alone (a failed or unchanged fetch)
	StoreOpRecord    = "record"     // a batch of send outcomes
	StoreOpFanOut    = "fan_out"    // a page of a paged delivery
	StoreOpEnqueue   = "enqueue"    // notifications outside a feed run (tile on subscribe)
)

// StoreOps lists every op value.
var StoreOps = []string{StoreOpCommit, StoreOpFeedState, StoreOpRecord, StoreOpFanOut, StoreOpEnqueue}

// ObserveFetch counts one fetch of feed and the new items it produced.
// result is "ok", "not_modified" or "error" (keep it to a few values: each
// one is a time series).
func (m *Metrics) ObserveFetch(feed, result string, newItems int) {
	if m == nil {
		return
	}
	m.fetch.WithLabelValues(feed, result).Inc()
	m.history.fetch(feed, result)
	// Touch the series even for 0 so rate() sees it from the first fetch.
	c := m.newItems.WithLabelValues(feed)
	if newItems > 0 {
		c.Add(float64(newItems))
	}
}

// ObservePush counts one send outcome and, when a request was made, its latency.
func (m *Metrics) ObservePush(o tilecast.Outcome) {
	if m == nil {
		return
	}
	m.push.WithLabelValues(string(o.Kind), string(o.Action)).Inc()
	m.history.push(o.Action)
	if o.Duration > 0 {
		m.pushDuration.Observe(o.Duration.Seconds())
	}
}

// ObservePossibleDuplicates adds the entries a crashed run left unrecorded.
func (m *Metrics) ObservePossibleDuplicates(n int) {
	if m == nil || n <= 0 {
		return
	}
	m.possibleDups.Add(float64(n))
}

// ObserveStoreError counts one failed write of the state; op is one of
// StoreOps.
func (m *Metrics) ObserveStoreError(op string) {
	if m == nil {
		return
	}
	m.storeErrors.WithLabelValues(op).Inc()
}

// gauges reads the store's counts at scrape time.
type gauges struct {
	s                              *Server
	channels, outbox, dead, broken *prometheus.Desc
}

func newGauges(s *Server) *gauges {
	return &gauges{
		s: s,
		channels: prometheus.NewDesc(namespace+"_channels",
			"Registered push channels.", nil, nil),
		outbox: prometheus.NewDesc(namespace+"_outbox_depth",
			"Notifications waiting in the outbox.", nil, nil),
		dead: prometheus.NewDesc(namespace+"_dead_letters",
			"Notifications given up on after max_attempts.", nil, nil),
		broken: prometheus.NewDesc(namespace+"_feeds_broken",
			"Configured feeds (one per user for per-user feeds) failing for longer than broken_after.", nil, nil),
	}
}

func (g *gauges) Describe(ch chan<- *prometheus.Desc) {
	ch <- g.channels
	ch <- g.outbox
	ch <- g.dead
	ch <- g.broken
}

func (g *gauges) Collect(ch chan<- prometheus.Metric) {
	st, err := g.s.opts.Counts()
	if err != nil {
		err = fmt.Errorf("store counts: %w", err)
		ch <- prometheus.NewInvalidMetric(g.channels, err)
		ch <- prometheus.NewInvalidMetric(g.outbox, err)
		ch <- prometheus.NewInvalidMetric(g.dead, err)
		ch <- prometheus.NewInvalidMetric(g.broken, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(g.channels, prometheus.GaugeValue, float64(st.Channels))
	ch <- prometheus.MustNewConstMetric(g.outbox, prometheus.GaugeValue, float64(st.OutboxDepth))
	ch <- prometheus.MustNewConstMetric(g.dead, prometheus.GaugeValue, float64(st.DeadLetters))
	ch <- prometheus.MustNewConstMetric(g.broken, prometheus.GaugeValue, float64(st.FeedsBroken(g.s.feeds())))
}
