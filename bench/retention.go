package bench

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/store"
)

// simClock is the injected clock of the retention simulation.
type simClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *simClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *simClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// simFetcher plays feeds that keep a 20-item window and publish a new item
// every period hours (feed i at hours ≡ i mod period), answering 304 in
// between, with the simulated clock.
type simFetcher struct {
	clk    *simClock
	start  time.Time
	period int
}

func (s *simFetcher) Fetch(_ context.Context, url string, v tilecast.Validators) (*tilecast.FeedResult, error) {
	var i int
	if _, err := fmt.Sscanf(url, "sim://%d", &i); err != nil {
		return nil, &tilecast.FetchError{Err: err}
	}
	h := int(s.clk.Now().Sub(s.start) / time.Hour)
	latest := (h + i) / s.period // items published so far
	etag := fmt.Sprintf(`"%d"`, latest)
	if v.ETag == etag {
		return &tilecast.FeedResult{Status: 304, NotModified: true, Validators: v}, nil
	}
	res := &tilecast.FeedResult{Status: 200, Title: fmt.Sprintf("Feed %d", i), Validators: tilecast.Validators{ETag: etag}}
	for n := latest; n > latest-20 && n >= 0; n-- {
		res.Items = append(res.Items, benchItem(fmt.Sprintf("f%d-item-%d", i, n), s.start.Add(time.Duration(n*s.period)*time.Hour)))
	}
	return res, nil
}

// RetentionPoint is the state file size after some simulated days.
type RetentionPoint struct {
	Day   int
	Bytes int64
}

// SimulateRetention runs hourly ticks of feeds feeds for days simulated
// days through the Bot, with the Bot's and the store's clocks injected;
// channels https channels on the default list get every notification
// (delivered at once by a stub pusher) so the outbox, ledger and last-tile
// buckets are exercised too. It returns the file size at every reportEvery
// days.
func SimulateRetention(ctx context.Context, path string, feeds, days, channels, reportEvery int) ([]RetentionPoint, error) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := &simClock{t: start}
	db, err := store.Open(path, store.Options{Now: clk.Now})
	if err != nil {
		return nil, err
	}
	defer db.Close()
	for c := range channels {
		if _, _, err := db.AddChannel(tilecast.Channel{URI: fmt.Sprintf("https://127.0.0.1/sim/%d", c)}); err != nil {
			return nil, err
		}
	}
	bot := &tilecast.Bot{Fetcher: &simFetcher{clk: clk, start: start, period: 6}, Renderer: newRenderer(),
		Pusher: nopPusher{}, Store: db, Now: clk.Now, PushConcurrency: 4}
	fs := make([]tilecast.Feed, feeds)
	for i := range fs {
		fs[i] = BenchFeed(fmt.Sprintf("feed%04d", i), fmt.Sprintf("sim://%d", i))
		fs[i].Schedule = "@hourly"
	}
	var out []RetentionPoint
	for h := 0; h < days*24; h++ {
		clk.Set(start.Add(time.Duration(h) * time.Hour))
		// Feeds run concurrently, as the daemon's scheduler starts them.
		if err := forEach(ctx, len(fs), 8, func(i int) error { return bot.RunFeed(ctx, &fs[i]) }); err != nil {
			return out, err
		}
		if err := bot.DeliverDue(ctx); err != nil {
			return out, err
		}
		if (h+1)%(24*reportEvery) == 0 {
			if _, err := db.PruneLedger(); err != nil {
				return out, err
			}
			fi, err := os.Stat(path)
			if err != nil {
				return out, err
			}
			out = append(out, RetentionPoint{Day: (h + 1) / 24, Bytes: fi.Size()})
		}
	}
	return out, nil
}
