package multitest

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/internal/logtest"
	"github.com/tilecast/tilecast/internal/pgtest"
	"github.com/tilecast/tilecast/store/postgres"
)

// pageBarrier holds each instance's first page read until every instance
// has read its first page, so all of them read the same page of the job
// before any steps past it: the interleaving two daemons starting at once
// may have, made certain instead of left to timing.
type pageBarrier struct {
	n       int
	arrived atomic.Int64
	all     chan struct{}
}

// barrierStore is one instance's store with its first SubscribersAfter
// held at the barrier.
type barrierStore struct {
	*postgres.DB
	b     *pageBarrier
	first sync.Once
}

func (s *barrierStore) SubscribersAfter(f *tilecast.Feed, cursor string, limit int) ([]tilecast.Channel, string, error) {
	page, next, err := s.DB.SubscribersAfter(f, cursor, limit)
	s.first.Do(func() {
		if s.b.arrived.Add(1) == int64(s.b.n) {
			close(s.b.all)
		}
		select {
		case <-s.b.all:
		case <-time.After(10 * time.Second): // the other never came: go on alone
		}
	})
	return page, next, err
}

// TestResumeFanOutOnce: two instances that start together both resume
// the same interrupted paged delivery (Bot.ResumeFanOuts runs on every
// instance), reading its first page at the same cursor. Each subscriber
// gets the item once: the instance that steps second finds the job's
// cursor moved, enqueues nothing and leaves the job to the other.
func TestResumeFanOutOnce(t *testing.T) {
	url := pgtest.New(t)
	emu := newEmulator(t)
	logs := &logtest.Buffer{}
	a := openInstance(t, url, "a", postgres.Options{})
	b := openInstance(t, url, "b", postgres.Options{})
	ps := phones(t, emu, a, 23)
	feed := &tilecast.Feed{Name: "news", URL: "http://127.0.0.1:1/news.xml", Schedule: "*/5 * * * *",
		FirstRun: tilecast.FirstRunBaseline, MaxToasts: 5, FloodLimit: 50,
		Toast: &tilecast.ToastSpec{Text1: "{{.Feed.Title}}", Text2: "{{.Item.Title}}"}}

	// The job a run left after committing it, before its first page.
	now := time.Now()
	job := tilecast.FanOutJob{Feed: "news", Info: tilecast.FeedInfo{Name: "news", Title: "News"},
		Fresh: []tilecast.Item{{ID: "n1", Title: "Breaking", Published: now}}, Now: now}
	if err := a.Commit(tilecast.Commit{Key: tilecast.FeedKey{Feed: "news"}, State: tilecast.FeedState{Baselined: true},
		Seen: []string{"n1"}, Now: now, FanOut: &job}); err != nil {
		t.Fatal(err)
	}

	barrier := &pageBarrier{n: 2, all: make(chan struct{})}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, db := range []*postgres.DB{a, b} {
		bot := newBot(t, db, 4, logs)
		bot.Store = &barrierStore{DB: db, b: barrier}
		bot.SetFeeds([]tilecast.Feed{*feed})
		bot.FanOutPage = 5
		wg.Go(func() { errs[i] = bot.ResumeFanOuts(context.Background()) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("instance %d: ResumeFanOuts: %v", i, err)
		}
	}
	if barrier.arrived.Load() != 2 {
		t.Fatalf("%d instances read the job's first page, want both", barrier.arrived.Load())
	}
	if jobs, err := a.FanOutJobs(); err != nil || len(jobs) != 0 {
		t.Errorf("jobs left = %+v, %v; want the delivery finished", jobs, err)
	}

	toasts := map[string]int{}
	due, err := a.Due(now.Add(time.Hour), 10_000, func(uint64) bool { return false })
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range due {
		if p.Kind == tilecast.KindToast && p.ItemID == "n1" {
			toasts[p.ChannelID]++
		}
	}
	chs, err := a.Channels("")
	if err != nil || len(chs) != len(ps) {
		t.Fatalf("channels = %d, %v; want %d", len(chs), err, len(ps))
	}
	for _, ch := range chs {
		if n := toasts[ch.ID]; n != 1 {
			t.Errorf("channel %s: %d toasts of n1 enqueued, want 1", ch.ID, n)
		}
	}
	if !strings.Contains(logs.String(), "taken over by another run") {
		t.Errorf("no instance logged stepping aside; log:\n%s", logs.String())
	}
}
