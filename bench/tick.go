package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mmcdole/gofeed"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/fetch"
	"github.com/tilecast/tilecast/store"
)

// Feed classes of the tick scenario.
const (
	ClassNotModified = iota // answers 304 to a matching If-None-Match (80 %)
	ClassUnchanged          // no validators: the same 200 body every time (15 %)
	ClassNew                // a new item every tick (5 %)
)

// NewFeeds is how many of f feeds gain an item every tick (ClassNew).
func NewFeeds(f int) int {
	n := 0
	for i := range f {
		if classOf(i) == ClassNew {
			n++
		}
	}
	return n
}

// classOf spreads the classes evenly: per 20 feeds, 16 × 304, 3 × 200, 1 × new.
func classOf(i int) int {
	switch r := i % 20; {
	case r < 16:
		return ClassNotModified
	case r < 19:
		return ClassUnchanged
	default:
		return ClassNew
	}
}

// FeedServer serves F generated RSS feeds on several loopback listeners
// (feeds live on many hosts in reality, and one host would make the
// fetcher's per-host idle-connection limit the bottleneck).
type FeedServer struct {
	F     int
	tick  atomic.Int64
	urls  []string
	srvs  []*http.Server
	Count [3]atomic.Int64 // answers per class: 304, unchanged 200, new 200
}

// StartFeedServer serves f feeds on hosts listeners.
func StartFeedServer(f, hosts int) (*FeedServer, error) {
	s := &FeedServer{F: f}
	var bases []string
	for range hosts {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			_ = s.Close()
			return nil, fmt.Errorf("feed server: %w", err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(s.serve), ReadHeaderTimeout: 10 * time.Second}
		s.srvs = append(s.srvs, srv)
		go func() { _ = srv.Serve(ln) }()
		bases = append(bases, "http://"+ln.Addr().String())
	}
	for i := range f {
		s.urls = append(s.urls, fmt.Sprintf("%s/feed/%d.xml", bases[i%len(bases)], i))
	}
	return s, nil
}

// URL returns feed i's URL.
func (s *FeedServer) URL(i int) string { return s.urls[i] }

// Advance starts the next tick: every ClassNew feed gains an item.
func (s *FeedServer) Advance() { s.tick.Add(1) }

// Close stops the listeners.
func (s *FeedServer) Close() error {
	var errs []error
	for _, srv := range s.srvs {
		errs = append(errs, srv.Close())
	}
	return errors.Join(errs...)
}

// Body returns feed i's RSS at tick t: 20 items, the newest first. A
// ClassNew feed's newest item is numbered t, the others stay put.
func Body(i int, t int64) string {
	top := int64(20)
	if classOf(i) == ClassNew {
		top += t
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Feed %d</title><link>https://example.org/%d/</link><description>bench feed</description>
`, i, i)
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for n := top; n > top-20; n-- {
		fmt.Fprintf(&b, `<item><title>Feed %d item %d with a typical headline length</title><link>https://example.org/%d/%d</link><guid>https://example.org/%d/%d</guid><pubDate>%s</pubDate><description>&lt;p&gt;Summary of item %d, a paragraph of text as feeds carry it, with &lt;b&gt;markup&lt;/b&gt; to strip.&lt;/p&gt;</description></item>
`, i, n, i, n, i, n, base.Add(time.Duration(n)*time.Hour).Format(time.RFC1123Z), n)
	}
	b.WriteString("</channel></rss>\n")
	return b.String()
}

func (s *FeedServer) serve(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/feed/"), ".xml")
	i, err := strconv.Atoi(name)
	if err != nil || i < 0 || i >= s.F {
		http.NotFound(w, r)
		return
	}
	t := s.tick.Load()
	c := classOf(i)
	w.Header().Set("Content-Type", "application/rss+xml")
	switch c {
	case ClassNotModified, ClassNew:
		etag := `"v1"`
		if c == ClassNew {
			etag = fmt.Sprintf(`"t%d"`, t)
		}
		w.Header().Set("ETag", etag)
		if r.Header.Get("If-None-Match") == etag {
			s.Count[ClassNotModified].Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	if c == ClassNotModified {
		c = ClassUnchanged // first fetch of a 304 feed: a full body
	}
	s.Count[c].Add(1)
	_, _ = io.WriteString(w, Body(i, t))
}

// TickResult is one tick over all feeds.
type TickResult struct {
	Feeds   int
	Elapsed time.Duration
	Writes  int // write transactions (Commit + SaveFeedState)
	Got200  int // answers with a body
	Got304  int
}

// PerSecond is feeds per second.
func (r TickResult) PerSecond() float64 { return float64(r.Feeds) / r.Elapsed.Seconds() }

// TickBot is a Bot over a real fetch.Client and store, with counters.
type TickBot struct {
	Bot   *tilecast.Bot
	DB    *store.DB
	Feeds []tilecast.Feed
	store *countingStore
	fetch *countingFetcher
	srv   *FeedServer
}

type countingFetcher struct {
	tilecast.Fetcher
	ok, notModified atomic.Int64
}

func (c *countingFetcher) Fetch(ctx context.Context, url string, v tilecast.Validators) (*tilecast.FeedResult, error) {
	r, err := c.Fetcher.Fetch(ctx, url, v)
	if err == nil {
		if r.NotModified {
			c.notModified.Add(1)
		} else {
			c.ok.Add(1)
		}
	}
	return r, err
}

// NewTickBot opens the state at path and builds the Bot for srv's feeds.
func NewTickBot(path string, srv *FeedServer) (*TickBot, error) {
	db, err := store.Open(path, store.Options{})
	if err != nil {
		return nil, err
	}
	tb := &TickBot{DB: db, srv: srv}
	tb.store = newCountingStore(db)
	tb.fetch = &countingFetcher{Fetcher: fetch.New(fetch.Options{AllowPrivate: true})}
	tb.Bot = &tilecast.Bot{Fetcher: tb.fetch, Renderer: newRenderer(), Pusher: nopPusher{}, Store: tb.store}
	for i := range srv.F {
		tb.Feeds = append(tb.Feeds, BenchFeed(fmt.Sprintf("feed%05d", i), srv.URL(i)))
	}
	tb.Bot.SetFeeds(tb.Feeds)
	return tb, nil
}

// Close closes the state file.
func (tb *TickBot) Close() error { return tb.DB.Close() }

// Tick runs every feed once with concurrency feeds in flight.
func (tb *TickBot) Tick(ctx context.Context, concurrency int) (TickResult, error) {
	w0 := tb.writes()
	ok0, nm0 := tb.fetch.ok.Load(), tb.fetch.notModified.Load()
	start := time.Now()
	err := forEach(ctx, len(tb.Feeds), concurrency, func(i int) error {
		return tb.Bot.RunFeed(ctx, &tb.Feeds[i])
	})
	res := TickResult{Feeds: len(tb.Feeds), Elapsed: time.Since(start), Writes: tb.writes() - w0,
		Got200: int(tb.fetch.ok.Load() - ok0), Got304: int(tb.fetch.notModified.Load() - nm0)}
	return res, err
}

func (tb *TickBot) writes() int {
	st := tb.store.Stats()
	return st["Commit"].Calls + st["SaveFeedState"].Calls
}

// forEach runs fn(0..n-1) with concurrency goroutines.
func forEach(ctx context.Context, n, concurrency int, fn func(i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := fn(i); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// RawTicker is the baseline: the same conditional GETs and a gofeed parse
// of every body, nothing persisted.
type RawTicker struct {
	srv   *FeedServer
	hc    *http.Client
	mu    sync.Mutex
	etags map[int]string
	// noImageScan turns off gofeed's content image scan (an HTML parse per
	// item), as tilecast's parse does (it has a cheaper scan of its own).
	noImageScan bool
}

// NewRawTicker returns a baseline client with a pooled transport. With
// imageScan the parse is gofeed's default (the baseline); without,
// it skips what tilecast skips too (the stricter baseline).
func NewRawTicker(srv *FeedServer, imageScan bool) *RawTicker {
	return &RawTicker{srv: srv, etags: map[int]string{}, noImageScan: !imageScan,
		hc: &http.Client{Transport: &http.Transport{MaxIdleConns: 64, MaxIdleConnsPerHost: 4, IdleConnTimeout: 90 * time.Second}}}
}

// Tick fetches every feed once with concurrency in flight.
func (rt *RawTicker) Tick(ctx context.Context, concurrency int) (TickResult, error) {
	var got200, got304 atomic.Int64
	start := time.Now()
	err := forEach(ctx, rt.srv.F, concurrency, func(i int) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, rt.srv.URL(i), nil)
		if err != nil {
			return err
		}
		rt.mu.Lock()
		etag := rt.etags[i]
		rt.mu.Unlock()
		if etag != "" {
			req.Header.Set("If-None-Match", etag)
		}
		resp, err := rt.hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode == http.StatusNotModified {
			got304.Add(1)
			return nil
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		fp := gofeed.NewParser()
		if rt.noImageScan {
			fp.RSSTranslator = &gofeed.DefaultRSSTranslator{DisableContentImageScan: true}
		}
		if _, err := fp.ParseString(string(body)); err != nil {
			return err
		}
		got200.Add(1)
		if e := resp.Header.Get("ETag"); e != "" {
			rt.mu.Lock()
			rt.etags[i] = e
			rt.mu.Unlock()
		}
		return nil
	})
	return TickResult{Feeds: rt.srv.F, Elapsed: time.Since(start), Got200: int(got200.Load()), Got304: int(got304.Load())}, err
}
