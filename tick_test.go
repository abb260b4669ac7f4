package tilecast_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
)

// fixedFetcher answers every fetch with a copy of its result (a feed
// without conditional GET: always 200).
type fixedFetcher struct {
	mu  sync.Mutex
	res tilecast.FeedResult
}

func (f *fixedFetcher) Fetch(context.Context, string, tilecast.Validators) (*tilecast.FeedResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.res
	r.Items = append([]tilecast.Item(nil), f.res.Items...)
	return &r, nil
}

// writeCounter counts the Bot's write transactions for feed runs.
type writeCounter struct {
	tilecast.Store
	mu     sync.Mutex
	writes int
}

func (w *writeCounter) Commit(c tilecast.Commit) error {
	w.mu.Lock()
	w.writes++
	w.mu.Unlock()
	return w.Store.Commit(c)
}

func (w *writeCounter) SaveFeedState(k tilecast.FeedKey, st tilecast.FeedState) error {
	w.mu.Lock()
	w.writes++
	w.mu.Unlock()
	return w.Store.SaveFeedState(k, st)
}

func (w *writeCounter) take() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := w.writes
	w.writes = 0
	return n
}

// TestUnchanged200WritesNothing: a 200 with nothing new and nothing else
// changed costs no write transaction, like a 304, until the seen set is due
// for its daily refresh; anything that changes is written.
func TestUnchanged200WritesNothing(t *testing.T) {
	h := newHarness(t)
	news := h.feed("news", "/news.xml")
	ff := &fixedFetcher{res: tilecast.FeedResult{Status: 200, Title: "Daily News",
		Items: []tilecast.Item{{ID: "a", Title: "A"}}}}
	wc := &writeCounter{Store: h.db}
	h.bot.Fetcher, h.bot.Store = ff, wc
	h.channel("A", "", "news")
	h.deliver()

	step := func(name string, change func(), advance time.Duration, wantWrites, wantPushes int) {
		t.Helper()
		ff.mu.Lock()
		if change != nil {
			change()
		}
		ff.mu.Unlock()
		h.clock.Add(advance)
		h.run(news)
		if got := wc.take(); got != wantWrites {
			t.Errorf("%s: %d write transactions, want %d", name, got, wantWrites)
		}
		if got := len(h.deliver()); got != wantPushes {
			t.Errorf("%s: %d pushes, want %d", name, got, wantPushes)
		}
	}
	step("first run (baseline)", nil, 0, 1, 0)
	step("unchanged", nil, time.Minute, 0, 0)
	step("unchanged again", nil, time.Hour, 0, 0)
	// Nothing written, yet status pages show the fetch just made.
	states, err := h.db.FeedStates()
	if err != nil {
		t.Fatal(err)
	}
	k := tilecast.FeedKey{Feed: "news"}
	if states[k].LastFetch.Equal(h.clock.Now()) {
		t.Fatal("the unchanged fetch was written after all")
	}
	h.bot.OverlayFetches(states)
	if st := states[k]; !st.LastFetch.Equal(h.clock.Now()) || st.LastResult != "ok" || !st.LastSuccess.Equal(h.clock.Now()) {
		t.Errorf("overlaid state: last fetch %v (%s), success %v; want %v ok", st.LastFetch, st.LastResult, st.LastSuccess, h.clock.Now())
	}
	step("unchanged, seen set due for refresh", nil, tilecast.SeenRefreshInterval, 1, 0)
	step("unchanged after the refresh", nil, time.Minute, 0, 0)
	step("new validators", func() { ff.res.Validators.ETag = `"v2"` }, time.Minute, 1, 0)
	step("new title", func() { ff.res.Title = "News Daily" }, time.Minute, 1, 0)
	step("later not-before", func() { ff.res.NotBefore = h.clock.Now().Add(time.Hour) }, time.Minute, 1, 0)
	step("new item", func() {
		ff.res.Items = append([]tilecast.Item{{ID: "b", Title: "B"}}, ff.res.Items...)
	}, 2*time.Hour, 1, 2)
	step("unchanged after the item", nil, time.Minute, 0, 0)
}
