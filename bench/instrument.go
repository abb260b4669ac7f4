package bench

import (
	"sync"
	"time"

	"github.com/tilecast/tilecast"
)

// OpStat is the count and total time of one store method.
type OpStat struct {
	Calls int
	Items int // records (Record), entries returned (Due), notifications (Commit)
	Time  time.Duration
}

// countingStore wraps a tilecast.Store and times its write paths; the
// feed-tick check "a 304 costs no write transaction" reads its counters.
type countingStore struct {
	tilecast.Store
	mu    sync.Mutex
	stats map[string]*OpStat
}

func newCountingStore(s tilecast.Store) *countingStore {
	return &countingStore{Store: s, stats: map[string]*OpStat{}}
}

func (c *countingStore) add(name string, items int, start time.Time) {
	d := time.Since(start)
	c.mu.Lock()
	st := c.stats[name]
	if st == nil {
		st = &OpStat{}
		c.stats[name] = st
	}
	st.Calls++
	st.Items += items
	st.Time += d
	c.mu.Unlock()
}

// Stats returns a copy of the counters.
func (c *countingStore) Stats() map[string]OpStat {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]OpStat, len(c.stats))
	for k, v := range c.stats {
		out[k] = *v
	}
	return out
}

func (c *countingStore) SaveFeedState(k tilecast.FeedKey, st tilecast.FeedState) error {
	defer c.add("SaveFeedState", 1, time.Now())
	return c.Store.SaveFeedState(k, st)
}

func (c *countingStore) Commit(cm tilecast.Commit) error {
	defer c.add("Commit", len(cm.Notifications), time.Now())
	return c.Store.Commit(cm)
}

func (c *countingStore) Subscribers(f *tilecast.Feed, user string) ([]tilecast.Channel, error) {
	start := time.Now()
	chs, err := c.Store.Subscribers(f, user)
	c.add("Subscribers", len(chs), start)
	return chs, err
}

func (c *countingStore) Due(now time.Time, limit int, busy func(id uint64) bool) ([]tilecast.Pending, error) {
	start := time.Now()
	ps, err := c.Store.Due(now, limit, busy)
	c.add("Due", len(ps), start)
	return ps, err
}

func (c *countingStore) Record(recs []tilecast.Record) error {
	defer c.add("Record", len(recs), time.Now())
	return c.Store.Record(recs)
}

func (c *countingStore) Enqueue(ns []tilecast.Notification) error {
	defer c.add("Enqueue", len(ns), time.Now())
	return c.Store.Enqueue(ns)
}
