package tilecast_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/fetch"
	"github.com/tilecast/tilecast/notify"
	"github.com/tilecast/tilecast/notify/mpns"
	"github.com/tilecast/tilecast/store"
)

// These end-to-end tests run the Bot with its real parts: a bbolt file in a
// temp dir, the real fetcher against an httptest feed server, the real
// renderer and MPNS client against an httptest server playing MPNS. Only
// the clock is fake, so that retry and wait rules are tested in milliseconds.

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// feedServer serves an RSS feed per path whose items the test changes.
type feedServer struct {
	*httptest.Server
	mu    sync.Mutex
	items map[string][]rssItem // path → items, newest first
	gets  int
}

type rssItem struct{ guid, title, desc string }

func newFeedServer(t *testing.T) *feedServer {
	fs := &feedServer{items: map[string][]rssItem{}}
	fs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fs.mu.Lock()
		defer fs.mu.Unlock()
		fs.gets++
		items := fs.items[r.URL.Path]
		var b strings.Builder
		b.WriteString(`<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Daily News</title><link>http://example.org/</link>`)
		for _, it := range items {
			fmt.Fprintf(&b, `<item><guid>%s</guid><title>%s</title><description>%s</description></item>`, it.guid, it.title, it.desc)
		}
		b.WriteString(`</channel></rss>`)
		etag := fmt.Sprintf(`"%x"`, len(b.String())*31+len(items))
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("ETag", etag)
		w.Header().Set("Content-Type", "application/rss+xml")
		io.WriteString(w, b.String())
	}))
	t.Cleanup(fs.Close)
	return fs
}

func (fs *feedServer) add(path string, items ...rssItem) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.items[path] = append(append([]rssItem(nil), items...), fs.items[path]...)
}

// push is one request received by the fake MPNS.
type push struct {
	token, target, class, body string
}

// mpnsServer answers per channel token with a scripted list of replies; the
// last reply repeats. The default is 200 Received.
type mpnsServer struct {
	*httptest.Server
	mu      sync.Mutex
	replies map[string][]reply
	got     []push
}

type reply struct {
	status                    int
	notif, subscr, device, ra string
}

var (
	received  = reply{200, "Received", "Active", "Connected", ""}
	queueFull = reply{200, "QueueFull", "Active", "TempDisconnected", ""}
	suppress  = reply{200, "Suppressed", "Active", "Connected", ""}
	expired   = reply{404, "Dropped", "Expired", "Disconnected", ""}
	capped    = reply{406, "Dropped", "Active", "Connected", ""}
	inactive  = reply{412, "Dropped", "", "InActive", ""}
	unavail   = reply{503, "", "", "", ""}
	badReq    = reply{400, "", "", "", ""}
)

func newMPNS(t *testing.T) *mpnsServer {
	m := &mpnsServer{replies: map[string][]reply{}}
	m.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		token := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
		m.mu.Lock()
		m.got = append(m.got, push{token, r.Header.Get("X-WindowsPhone-Target"), r.Header.Get("X-NotificationClass"), string(body)})
		rep := received
		if rs := m.replies[token]; len(rs) > 0 {
			rep = rs[0]
			if len(rs) > 1 {
				m.replies[token] = rs[1:]
			}
		}
		m.mu.Unlock()
		for k, v := range map[string]string{"X-NotificationStatus": rep.notif, "X-SubscriptionStatus": rep.subscr,
			"X-DeviceConnectionStatus": rep.device, "Retry-After": rep.ra} {
			if v != "" {
				w.Header().Set(k, v)
			}
		}
		w.WriteHeader(rep.status)
	}))
	t.Cleanup(m.Close)
	return m
}

func (m *mpnsServer) script(token string, rs ...reply) {
	m.mu.Lock()
	m.replies[token] = rs
	m.mu.Unlock()
}

func (m *mpnsServer) uri(token string) string {
	return m.URL + "/throttledthirdparty/01.00/" + token
}

// take returns and forgets the pushes received so far.
func (m *mpnsServer) take() []push {
	m.mu.Lock()
	defer m.mu.Unlock()
	got := m.got
	m.got = nil
	return got
}

func count(ps []push, token, target string) int {
	n := 0
	for _, p := range ps {
		if p.token == token && (target == "" || p.target == target) {
			n++
		}
	}
	return n
}

type harness struct {
	t     *testing.T
	path  string
	db    *store.DB
	bot   *tilecast.Bot
	clock *clock
	feeds *feedServer
	mpns  *mpnsServer
	logs  *bytes.Buffer
	// observed outlives restarts: P12 compares its count with MPNS's.
	observed observer
}

func newHarness(t *testing.T) *harness {
	h := &harness{
		t:     t,
		path:  filepath.Join(t.TempDir(), "state.db"),
		clock: &clock{t: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)},
		feeds: newFeedServer(t),
		mpns:  newMPNS(t),
		logs:  &bytes.Buffer{},
	}
	h.open()
	t.Cleanup(func() { h.db.Close() })
	return h
}

// open (re)opens the store and builds a fresh Bot, as a restarted daemon would.
func (h *harness) open() {
	h.t.Helper()
	db, err := store.Open(h.path, store.Options{Timeout: time.Second, Now: h.clock.Now})
	if err != nil {
		h.t.Fatal(err)
	}
	h.db = db
	// A generous timeout: a loaded CI machine must not turn slow answers into retries.
	client, err := mpns.NewClient(mpns.ClientOptions{Timeout: 15 * time.Second, AllowPrivate: true})
	if err != nil {
		h.t.Fatal(err)
	}
	h.bot = &tilecast.Bot{
		Fetcher:         fetch.New(fetch.Options{AllowPrivate: true, Timeout: 5 * time.Second}),
		Renderer:        notify.NewRenderer(mpns.NewEncoder(mpns.EncoderOptions{})),
		Pusher:          client,
		Store:           db,
		Logger:          slog.New(slog.NewTextHandler(syncWriter{h.logs, &sync.Mutex{}}, nil)),
		PushConcurrency: 4,
		MaxAttempts:     4,
		Now:             h.clock.Now,
		Jitter:          func() float64 { return 1 },
		Observer:        &h.observed,
	}
	sl, err := db.SendLog()
	if err != nil {
		h.t.Fatal(err)
	}
	h.bot.SendLog = sl
}

// observer keeps what the Bot reports to its Observer that tests check.
type observer struct {
	mu                 sync.Mutex
	possibleDuplicates int
}

func (o *observer) ObserveFetch(string, string, int) {}
func (o *observer) ObservePush(tilecast.Outcome)     {}
func (o *observer) ObservePossibleDuplicates(n int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.possibleDuplicates += n
}

func (o *observer) possible() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.possibleDuplicates
}

type syncWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (s syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (h *harness) feed(name, path string) *tilecast.Feed {
	return &tilecast.Feed{
		Name: name, URL: h.feeds.URL + path, Schedule: "@every 1m",
		FirstRun: tilecast.FirstRunBaseline, MaxToasts: 3, FloodLimit: 20, TileOnSubscribe: true,
		Toast: &tilecast.ToastSpec{Text1: "{{.Feed.Title}}", Text2: "{{.Item.Title}}", Param: "/Item.xaml?id={{.Item.ID | urlquery}}"},
		Tile: &tilecast.TileSpec{Template: tilecast.TileFlip, Title: "{{.Feed.Title}}", Count: "{{.NewCount}}",
			BackTitle: "{{.Feed.Title}}", BackContent: "{{.Item.Title}}"},
	}
}

func (h *harness) channel(token, user string, feeds ...string) tilecast.Channel {
	h.t.Helper()
	ch, _, err := h.db.AddChannel(tilecast.Channel{URI: h.mpns.uri(token), User: user, Feeds: feeds})
	if err != nil {
		h.t.Fatal(err)
	}
	return ch
}

func (h *harness) run(f *tilecast.Feed) {
	h.t.Helper()
	if err := h.bot.RunFeed(context.Background(), f); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) deliver() []push {
	h.t.Helper()
	// Only a guard against a hang: DeliverDue stops quietly when its context
	// ends, so a deadline a loaded machine can reach would look like lost
	// deliveries.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := h.bot.DeliverDue(ctx); err != nil {
		h.t.Fatal(err)
	}
	if ctx.Err() != nil {
		h.t.Fatal("DeliverDue did not finish within 5 minutes")
	}
	return h.mpns.take()
}

func TestFirstRunIsBaselineThenNewItemReachesSubscribers(t *testing.T) {
	h := newHarness(t)
	news := h.feed("news", "/news.xml")
	other := h.feed("other", "/other.xml")
	h.bot.SetFeeds([]tilecast.Feed{*news, *other})
	h.feeds.add("/news.xml", rssItem{"n1", "Old story", "old"})
	h.feeds.add("/other.xml", rssItem{"o1", "Other old", ""})
	h.channel("A", "", "news")
	h.channel("B", "", "other")
	h.channel("C", "") // no feeds listed: every global feed

	h.run(news)
	h.run(other)
	if got := h.deliver(); len(got) != 0 {
		t.Fatalf("first run sent %d pushes, want 0 (baseline): %+v", len(got), got)
	}

	h.feeds.add("/news.xml", rssItem{"n2", "Fresh & new", "<p>Body</p>"})
	h.run(news)
	h.run(other) // unchanged: nothing new
	got := h.deliver()
	for _, tc := range []struct {
		token, target string
		want          int
	}{{"A", "toast", 1}, {"A", "token", 1}, {"C", "toast", 1}, {"C", "token", 1}, {"B", "", 0}} {
		if n := count(got, tc.token, tc.target); n != tc.want {
			t.Errorf("channel %s target %q: %d pushes, want %d (all: %+v)", tc.token, tc.target, n, tc.want, got)
		}
	}
	for _, p := range got {
		switch p.target {
		case "toast":
			if !strings.Contains(p.body, "<wp:Text2>Fresh &amp; new</wp:Text2>") || p.class != "2" {
				t.Errorf("toast body/class wrong: class %s body %s", p.class, p.body)
			}
		case "token":
			if !strings.Contains(p.body, `Template="FlipTile"`) || !strings.Contains(p.body, "<wp:Count>1</wp:Count>") ||
				!strings.Contains(p.body, "<wp:BackContent>Fresh &amp; new</wp:BackContent>") || p.class != "1" {
				t.Errorf("tile body/class wrong: class %s body %s", p.class, p.body)
			}
		}
	}
	if !strings.Contains(h.logs.String(), "msg=push") || !strings.Contains(h.logs.String(), "outcome=delivered") {
		t.Errorf("no push outcome lines logged:\n%s", h.logs)
	}
	// Nothing new: nothing sent, and the unchanged tile is not re-sent.
	h.run(news)
	if got := h.deliver(); len(got) != 0 {
		t.Errorf("an unchanged feed sent %d pushes", len(got))
	}
}

func TestMaxToastsSummaryAndFloodGuard(t *testing.T) {
	h := newHarness(t)
	news := h.feed("news", "/news.xml")
	h.feeds.add("/news.xml", rssItem{"n0", "Baseline", ""})
	h.channel("A", "", "news")
	h.run(news)

	for i := 1; i <= 5; i++ {
		h.feeds.add("/news.xml", rssItem{fmt.Sprintf("n%d", i), fmt.Sprintf("Story %d", i), ""})
	}
	h.run(news)
	got := h.deliver()
	if n := count(got, "A", "toast"); n != 4 {
		t.Fatalf("5 new items with max_toasts 3: %d toasts, want 3 + 1 summary", n)
	}
	summary := 0
	for _, p := range got {
		if strings.Contains(p.body, "2 more in") {
			summary++
		}
	}
	if summary != 1 {
		t.Errorf("want one summary toast \"2 more in …\", got %d: %+v", summary, got)
	}
	if n := count(got, "A", "token"); n != 1 {
		t.Errorf("%d tiles, want 1", n)
	}

	for i := 100; i < 125; i++ { // 25 new > flood_limit 20
		h.feeds.add("/news.xml", rssItem{fmt.Sprintf("n%d", i), fmt.Sprintf("Flood %d", i), ""})
	}
	h.run(news)
	got = h.deliver()
	if n, tiles := count(got, "A", "toast"), count(got, "A", "token"); n != 1 || tiles != 1 {
		t.Errorf("flood: %d toasts and %d tiles, want 1 summary toast and 1 tile", n, tiles)
	}
	if !strings.Contains(h.logs.String(), "flood guard") {
		t.Error("flood guard did not log a warning")
	}
}

func TestPerUserFeedReachesOnlyItsUser(t *testing.T) {
	h := newHarness(t)
	inbox := h.feed("inbox", "/users/{user}/feed.xml")
	h.feeds.add("/users/alice/feed.xml", rssItem{"a1", "Alice old", ""})
	h.feeds.add("/users/bob/feed.xml", rssItem{"b1", "Bob old", ""})
	h.channel("alice1", "alice", "inbox")
	h.channel("alice2", "alice", "inbox")
	h.channel("bob1", "bob", "inbox")
	h.channel("nouser", "") // not subscribed: per-user feeds must be named
	h.run(inbox)
	if got := h.deliver(); len(got) != 0 {
		t.Fatalf("baseline sent %d", len(got))
	}
	h.feeds.add("/users/alice/feed.xml", rssItem{"a2", "For Alice only", ""})
	h.run(inbox)
	got := h.deliver()
	if count(got, "alice1", "toast") != 1 || count(got, "alice2", "toast") != 1 {
		t.Errorf("alice's channels did not each get one toast: %+v", got)
	}
	if n := count(got, "bob1", "") + count(got, "nouser", ""); n != 0 {
		t.Errorf("other users got %d pushes of alice's feed", n)
	}
	for _, p := range got {
		if !strings.Contains(p.body, "Alice") {
			t.Errorf("push body without alice's item: %s", p.body)
		}
	}
}

func TestResponsesDriveChannelAndOutboxState(t *testing.T) {
	h := newHarness(t)
	news := h.feed("news", "/news.xml")
	news.Tile = nil // toasts only: one push per channel per item
	h.feeds.add("/news.xml", rssItem{"n0", "Baseline", ""})
	gone := h.channel("gone", "", "news")
	retry := h.channel("retry", "", "news")
	full := h.channel("full", "", "news")
	supp := h.channel("supp", "", "news")
	cap406 := h.channel("cap", "", "news")
	inact := h.channel("inact", "", "news")
	bad := h.channel("bad", "", "news")
	h.mpns.script("gone", expired)
	h.mpns.script("retry", unavail, received)
	h.mpns.script("full", queueFull, received)
	h.mpns.script("supp", suppress)
	h.mpns.script("cap", capped, received)
	h.mpns.script("inact", inactive, received)
	h.mpns.script("bad", badReq)
	h.run(news)
	h.feeds.add("/news.xml", rssItem{"n1", "Breaking", ""})
	h.run(news)
	if got := h.deliver(); len(got) != 7 {
		t.Fatalf("first delivery: %d pushes, want 7", len(got))
	}
	if _, err := h.db.Channel(gone.ID); !errors.Is(err, tilecast.ErrNotFound) {
		t.Errorf("expired channel still present (err %v)", err)
	}
	logs := h.logs.String()
	for _, want := range []string{"outcome=channel_removed", "outcome=retry", "outcome=dropped", "outcome=failed"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %s", want)
		}
	}
	for _, ch := range []tilecast.Channel{cap406, inact} {
		c, err := h.db.Channel(ch.ID)
		if err != nil {
			t.Fatal(err)
		}
		if want := h.clock.Now().Add(61 * time.Minute); c.NextAllowedAt.Before(want) {
			t.Errorf("channel %s next_allowed_at %v, want ≥ %v", ch.URI, c.NextAllowedAt, want)
		}
	}

	// Nothing is due now: the retries wait.
	if got := h.deliver(); len(got) != 0 {
		t.Fatalf("retries sent before their time: %+v", got)
	}
	// After the first backoff (4 min) the 503 and QueueFull entries go out;
	// the 406/412 channels still rest.
	h.clock.Add(5 * time.Minute)
	got := h.deliver()
	if count(got, "retry", "") != 1 || count(got, "full", "") != 1 || count(got, "cap", "")+count(got, "inact", "") != 0 {
		t.Fatalf("after 5 min: %+v", got)
	}
	h.clock.Add(60 * time.Minute)
	got = h.deliver()
	if count(got, "cap", "") != 1 || count(got, "inact", "") != 1 || len(got) != 2 {
		t.Fatalf("after 65 min: %+v", got)
	}
	// Everything settled: nothing more to send, ever.
	h.clock.Add(24 * time.Hour)
	if got := h.deliver(); len(got) != 0 {
		t.Errorf("settled outbox still sent %+v", got)
	}
	_ = retry
	_ = full
	_ = supp
	_ = bad
}

func TestDeadLetterAfterMaxAttempts(t *testing.T) {
	h := newHarness(t)
	news := h.feed("news", "/news.xml")
	news.Tile = nil
	h.feeds.add("/news.xml", rssItem{"n0", "Baseline", ""})
	h.channel("down", "", "news")
	h.mpns.script("down", unavail)
	h.run(news)
	h.feeds.add("/news.xml", rssItem{"n1", "Breaking", ""})
	h.run(news)
	sends := 0
	for range 10 {
		sends += len(h.deliver())
		h.clock.Add(2 * time.Hour)
	}
	if sends != 4 {
		t.Errorf("%d sends, want max_attempts = 4", sends)
	}
	stats, err := h.db.Counts()
	if err != nil {
		t.Fatal(err)
	}
	if stats.DeadLetters != 1 || stats.OutboxDepth != 0 {
		t.Errorf("stats %+v, want 1 dead letter and an empty outbox", stats)
	}
}

func TestRestartLosesNothing(t *testing.T) {
	h := newHarness(t)
	news := h.feed("news", "/news.xml")
	h.feeds.add("/news.xml", rssItem{"n0", "Baseline", ""})
	h.channel("A", "", "news")
	h.run(news)
	h.feeds.add("/news.xml", rssItem{"n1", "Committed before the crash", ""})
	h.run(news) // committed to the outbox, not yet delivered
	if err := h.db.Close(); err != nil {
		t.Fatal(err)
	}
	h.open() // a new process
	// The feed is unchanged: the item is seen, so only the outbox delivers it.
	h.run(news)
	got := h.deliver()
	if count(got, "A", "toast") != 1 || count(got, "A", "token") != 1 {
		t.Fatalf("after restart: %+v", got)
	}
}

func TestTileCoalescedInOutbox(t *testing.T) {
	h := newHarness(t)
	news := h.feed("news", "/news.xml")
	news.Toast = nil
	h.feeds.add("/news.xml", rssItem{"n0", "Baseline", ""})
	h.channel("A", "", "news")
	h.run(news)
	h.feeds.add("/news.xml", rssItem{"n1", "First", ""})
	h.run(news)
	h.feeds.add("/news.xml", rssItem{"n2", "Second", ""})
	h.run(news)
	got := h.deliver()
	if len(got) != 1 || !strings.Contains(got[0].body, "Second") {
		t.Fatalf("want exactly the newest tile, got %+v", got)
	}
}

func TestTileOnSubscribe(t *testing.T) {
	h := newHarness(t)
	news := h.feed("news", "/news.xml")
	h.bot.SetFeeds([]tilecast.Feed{*news})
	h.feeds.add("/news.xml", rssItem{"n0", "Current headline", ""})
	h.run(news)
	ch := h.channel("late", "", "news")
	if err := h.bot.Subscribe(ch); err != nil {
		t.Fatal(err)
	}
	got := h.deliver()
	if len(got) != 1 || got[0].target != "token" || !strings.Contains(got[0].body, "Current headline") {
		t.Fatalf("late subscriber: %+v", got)
	}
}

// flakyFeed serves a one-item RSS feed, or answers status while it is
// set to fail (as it is at first); closed at the test's end.
func flakyFeed(t *testing.T, status int) (*httptest.Server, func(fail bool)) {
	t.Helper()
	var mu sync.Mutex
	failing := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if failing {
			http.Error(w, "down", status)
			return
		}
		io.WriteString(w, `<rss version="2.0"><channel><title>T</title><item><guid>x</guid><title>X</title></item></channel></rss>`)
	}))
	t.Cleanup(srv.Close)
	return srv, func(fail bool) {
		mu.Lock()
		defer mu.Unlock()
		failing = fail
	}
}

func TestFeedFailureBacksOffAndMarksBroken(t *testing.T) {
	h := newHarness(t)
	srv, setFail := flakyFeed(t, http.StatusInternalServerError)
	f := h.feed("flaky", "")
	f.URL = srv.URL + "/feed.xml"
	f.BrokenAfter = time.Hour
	k := tilecast.FeedKey{Feed: "flaky"}

	h.run(f)
	st, _, err := h.db.FeedState(k)
	if err != nil {
		t.Fatal(err)
	}
	if st.Failures != 1 || !st.NextFetch.After(h.clock.Now()) {
		t.Fatalf("after a failure: %+v", st)
	}
	// Runs before NextFetch do not fetch.
	h.run(f)
	if st2, _, _ := h.db.FeedState(k); st2.Failures != 1 {
		t.Errorf("a run inside the backoff fetched again: failures %d", st2.Failures)
	}
	for range 8 {
		h.clock.Add(7 * time.Hour)
		h.run(f)
	}
	st, _, _ = h.db.FeedState(k)
	if !st.Broken || st.Failures != 9 {
		t.Fatalf("after 9 failures over 56 h: broken %v failures %d", st.Broken, st.Failures)
	}
	if d := st.NextFetch.Sub(h.clock.Now()); d > 6*time.Hour {
		t.Errorf("backoff %v exceeds the 6 h cap", d)
	}
	if strings.Count(h.logs.String(), "feed broken") != 1 {
		t.Errorf("want exactly one 'feed broken' line")
	}
	setFail(false)
	h.clock.Add(7 * time.Hour)
	h.run(f)
	st, _, _ = h.db.FeedState(k)
	if st.Broken || st.Failures != 0 {
		t.Errorf("after recovery: %+v", st)
	}
	if !strings.Contains(h.logs.String(), "feed recovered") {
		t.Error("no recovery line")
	}
}

func TestPushTimeoutIsRetried(t *testing.T) {
	h := newHarness(t)
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(release)
	client, err := mpns.NewClient(mpns.ClientOptions{Timeout: 200 * time.Millisecond, AllowPrivate: true})
	if err != nil {
		t.Fatal(err)
	}
	h.bot.Pusher = client
	news := h.feed("news", "/news.xml")
	news.Tile = nil
	h.feeds.add("/news.xml", rssItem{"n0", "Baseline", ""})
	ch, _, err := h.db.AddChannel(tilecast.Channel{URI: slow.URL + "/throttledthirdparty/01.00/slow", Feeds: []string{"news"}})
	if err != nil {
		t.Fatal(err)
	}
	h.run(news)
	h.feeds.add("/news.xml", rssItem{"n1", "Breaking", ""})
	h.run(news)
	h.deliver()
	if !strings.Contains(h.logs.String(), "outcome=retry") {
		t.Fatalf("a timed-out push was not retried:\n%s", h.logs)
	}
	outs, err := h.db.Outcomes(ch.ID, "", time.Time{})
	if err != nil || len(outs) != 1 || outs[0].Action != tilecast.ActionRetry || outs[0].Status != 0 {
		t.Fatalf("ledger after timeout: %+v (%v)", outs, err)
	}
	if stats, _ := h.db.Counts(); stats.OutboxDepth != 1 {
		t.Errorf("outbox depth %d, want the entry kept for its retry", stats.OutboxDepth)
	}
}

// levelRecorder is a slog.Handler that keeps each record's level, message
// and error attribute, so tests can check what is logged at which level.
type levelRecorder struct {
	mu   sync.Mutex
	recs []loggedRecord
}

type loggedRecord struct {
	level slog.Level
	msg   string
	err   string
}

func (r *levelRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *levelRecorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *levelRecorder) WithGroup(string) slog.Handler            { return r }
func (r *levelRecorder) Handle(_ context.Context, rec slog.Record) error {
	lr := loggedRecord{level: rec.Level, msg: rec.Message}
	rec.Attrs(func(a slog.Attr) bool {
		if a.Key == "error" {
			lr.err = a.Value.String()
		}
		return true
	})
	r.mu.Lock()
	r.recs = append(r.recs, lr)
	r.mu.Unlock()
	return nil
}

func (r *levelRecorder) take() []loggedRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.recs
	r.recs = nil
	return out
}

// A failed fetch is a WARN line, a fetch that works an INFO line, and the
// one ERROR a failing feed gets is "feed broken", once, when it has
// failed for broken_after; its recovery is INFO.
func TestFetchLogLevels(t *testing.T) {
	h := newHarness(t)
	rec := &levelRecorder{}
	h.bot.Logger = slog.New(rec)
	srv, setFail := flakyFeed(t, http.StatusServiceUnavailable)
	f := h.feed("flaky", "")
	f.URL = srv.URL + "/feed.xml"
	f.BrokenAfter = 10 * time.Hour

	type step struct {
		name string
		fail bool
		want []loggedRecord // level and message; err "" means any
	}
	steps := []step{
		{"first failure", true, []loggedRecord{{level: slog.LevelWarn, msg: "fetch"}}},
		{"still failing, not broken yet", true, []loggedRecord{{level: slog.LevelWarn, msg: "fetch"}}},
		{"failing past broken_after", true, []loggedRecord{{level: slog.LevelError, msg: "feed broken"}, {level: slog.LevelWarn, msg: "fetch"}}},
		{"broken, failing again", true, []loggedRecord{{level: slog.LevelWarn, msg: "fetch"}}},
		{"recovered", false, []loggedRecord{{level: slog.LevelInfo, msg: "feed recovered"}, {level: slog.LevelInfo, msg: "fetch"}}},
	}
	for _, s := range steps {
		setFail(s.fail)
		h.run(f)
		got := rec.take()
		if len(got) != len(s.want) {
			t.Fatalf("%s: logged %+v, want %+v", s.name, got, s.want)
		}
		for i, w := range s.want {
			if got[i].level != w.level || got[i].msg != w.msg {
				t.Errorf("%s: line %d is %s %q, want %s %q", s.name, i, got[i].level, got[i].msg, w.level, w.msg)
			}
			if got[i].msg == "fetch" && s.fail && !strings.Contains(got[i].err, "503") {
				t.Errorf("%s: failed fetch line without its error: %+v", s.name, got[i])
			}
		}
		h.clock.Add(7 * time.Hour)
	}
}
