package tilecast_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
)

// A reload's max_attempts applies to the sends of a running Bot: the
// harness's Bot has MaxAttempts 4, SetMaxAttempts lowers it to 2.
func TestSetMaxAttemptsAppliesToRunningBot(t *testing.T) {
	for _, tc := range []struct {
		set, want int
	}{
		{0, 4}, // not set: the field's value
		{2, 2},
		{6, 6},
	} {
		h := newHarness(t)
		news := h.feed("news", "/news.xml")
		news.Tile = nil
		h.feeds.add("/news.xml", rssItem{"n0", "Baseline", ""})
		h.channel("down", "", "news")
		h.mpns.script("down", unavail)
		h.run(news)
		h.feeds.add("/news.xml", rssItem{"n1", "Breaking", ""})
		h.run(news)
		if tc.set != 0 {
			h.bot.SetMaxAttempts(tc.set)
		}
		sends := 0
		for range 10 {
			sends += len(h.deliver())
			h.clock.Add(2 * time.Hour)
		}
		if sends != tc.want {
			t.Errorf("SetMaxAttempts(%d): %d sends, want %d", tc.set, sends, tc.want)
		}
	}
}

// concurrencyFetcher counts the fetches running at once. Each fetch waits
// until target fetches run (or 5 s pass): a Bot that lets target run at
// once gets a peak of exactly target, without relying on timing.
type concurrencyFetcher struct {
	inner             tilecast.Fetcher
	mu                sync.Mutex
	now, peak, target int
}

func (c *concurrencyFetcher) Fetch(ctx context.Context, url string, v tilecast.Validators) (*tilecast.FeedResult, error) {
	c.mu.Lock()
	c.now++
	c.peak = max(c.peak, c.now)
	c.mu.Unlock()
	defer func() { c.mu.Lock(); c.now--; c.mu.Unlock() }()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		c.mu.Lock()
		reached := c.peak >= c.target
		c.mu.Unlock()
		if reached {
			break
		}
	}
	return c.inner.Fetch(ctx, url, v)
}

// A reload's fetch.concurrency applies to the next per-user run.
func TestSetFetchConcurrencyAppliesToNextRun(t *testing.T) {
	h := newHarness(t)
	inbox := h.feed("inbox", "/users/{user}.xml")
	for _, u := range []string{"ana", "bob", "cy", "dee", "eve", "fay"} {
		h.feeds.add("/users/"+u+".xml", rssItem{"m0", "Hello " + u, ""})
		h.channel(u, u, "inbox")
	}
	cf := &concurrencyFetcher{inner: h.bot.Fetcher}
	h.bot.Fetcher = cf
	h.bot.FetchConcurrency = 4
	for _, tc := range []struct{ set, want int }{{0, 4}, {1, 1}, {3, 3}} {
		if tc.set != 0 {
			h.bot.SetFetchConcurrency(tc.set)
		}
		cf.peak, cf.target = 0, tc.want
		if err := h.bot.RunFeedNow(t.Context(), inbox); err != nil {
			t.Fatal(err)
		}
		if cf.peak != tc.want {
			t.Errorf("SetFetchConcurrency(%d): %d fetches at once, want %d", tc.set, cf.peak, tc.want)
		}
	}
}
