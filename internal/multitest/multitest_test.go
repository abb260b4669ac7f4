package multitest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/emulator"
	"github.com/tilecast/tilecast/fetch"
	"github.com/tilecast/tilecast/internal/logtest"
	"github.com/tilecast/tilecast/internal/pgtest"
	"github.com/tilecast/tilecast/notify"
	"github.com/tilecast/tilecast/notify/mpns"
	"github.com/tilecast/tilecast/store/postgres"
)

func TestMain(m *testing.M) {
	if os.Getenv(envChild) != "" {
		os.Exit(child())
	}
	os.Exit(pgtest.Main(m))
}

// feedServer serves one RSS feed whose items the test adds, and counts
// the fetches.
type feedServer struct {
	*httptest.Server
	mu    sync.Mutex
	items []string // GUIDs, newest first
	gets  int
}

func newFeedServer(t *testing.T) *feedServer {
	fs := &feedServer{}
	fs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fs.mu.Lock()
		fs.gets++
		var b strings.Builder
		b.WriteString(`<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>News</title><link>http://example.org/</link>`)
		for _, g := range fs.items {
			fmt.Fprintf(&b, `<item><guid>%s</guid><title>%s</title></item>`, g, g)
		}
		b.WriteString(`</channel></rss>`)
		fs.mu.Unlock()
		w.Header().Set("Content-Type", "application/rss+xml")
		io.WriteString(w, b.String())
	}))
	t.Cleanup(fs.Close)
	return fs
}

func (fs *feedServer) add(guid string) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.items = append([]string{guid}, fs.items...)
}

func (fs *feedServer) fetches() int {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.gets
}

func newEmulator(t *testing.T) *emulator.Emulator {
	emu := emulator.New(emulator.Options{Rand: rand.New(rand.NewPCG(1, 2))})
	srv := httptest.NewServer(emu.Handler())
	t.Cleanup(srv.Close)
	t.Cleanup(emu.Close)
	emu.SetBaseURL(srv.URL)
	return emu
}

// phones makes n healthy emulator channels and registers them.
func phones(t *testing.T, emu *emulator.Emulator, db *postgres.DB, n int) []emulator.Channel {
	t.Helper()
	out := make([]emulator.Channel, n)
	chs := make([]tilecast.Channel, n)
	for i := range out {
		ec, err := emu.CreateChannel(emulator.Healthy, fmt.Sprint("phone ", i))
		if err != nil {
			t.Fatal(err)
		}
		out[i], chs[i] = ec, tilecast.Channel{URI: ec.URI}
	}
	if _, _, err := db.ImportChannels(chs); err != nil {
		t.Fatal(err)
	}
	return out
}

// openInstance opens the state at url as instance name.
func openInstance(t testing.TB, url, name string, o postgres.Options) *postgres.DB {
	t.Helper()
	o.Instance = name
	db, err := postgres.Open(context.Background(), url, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func newBot(t testing.TB, db *postgres.DB, concurrency int, log io.Writer) *tilecast.Bot {
	t.Helper()
	client, err := mpns.NewClient(mpns.ClientOptions{Timeout: 15 * time.Second, AllowPrivate: true})
	if err != nil {
		t.Fatal(err)
	}
	return &tilecast.Bot{
		Fetcher:         fetch.New(fetch.Options{AllowPrivate: true, Timeout: 5 * time.Second}),
		Renderer:        notify.NewRenderer(mpns.NewEncoder(mpns.EncoderOptions{})),
		Pusher:          client,
		Store:           db,
		Ticks:           db,
		Caps:            db,
		Logger:          slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		PushConcurrency: concurrency,
		MaxAttempts:     4,
	}
}

// Two instances run every tick of a feed at once, each on its own
// clock's idea of "now" a little apart: each tick is fetched and
// committed once (the feed server's count), and every phone gets each new
// item's toast once, the two instances sharing the deliveries.
func TestEachTickOnce(t *testing.T) {
	url := pgtest.New(t)
	emu := newEmulator(t)
	feeds := newFeedServer(t)
	logs := &logtest.Buffer{}
	a := openInstance(t, url, "a", postgres.Options{})
	b := openInstance(t, url, "b", postgres.Options{})
	ps := phones(t, emu, a, 20)
	bots := []*tilecast.Bot{newBot(t, a, 4, logs), newBot(t, b, 4, logs)}
	feed := &tilecast.Feed{Name: "news", URL: feeds.URL + "/news.xml", Schedule: "*/5 * * * *",
		FirstRun: tilecast.FirstRunBaseline, MaxToasts: 5, FloodLimit: 20,
		Toast: &tilecast.ToastSpec{Text1: "{{.Feed.Title}}", Text2: "{{.Item.Title}}"}}
	for _, bot := range bots {
		bot.SetFeeds([]tilecast.Feed{*feed})
	}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var deliverers sync.WaitGroup
	for _, bot := range bots {
		deliverers.Go(func() {
			if err := bot.Deliver(ctx); err != nil {
				t.Error(err)
			}
		})
	}

	const ticks = 6
	tick := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for i := range ticks {
		if i > 0 {
			feeds.add(fmt.Sprint("item-", i)) // the first tick is the baseline
		}
		var wg sync.WaitGroup
		for j, bot := range bots {
			wg.Go(func() {
				time.Sleep(time.Duration(j*(i%3)) * 5 * time.Millisecond) // who asks first varies
				if err := bot.RunTick(ctx, feed, tick); err != nil {
					t.Errorf("tick %d: %v", i, err)
				}
			})
		}
		wg.Wait()
		if got := feeds.fetches(); got != i+1 {
			t.Fatalf("after tick %d the feed was fetched %d times, want %d (once per tick)", i, got, i+1)
		}
		tick = tick.Add(5 * time.Minute)
	}

	want := ticks - 1
	waitFor(t, "every phone to get every item", func() bool {
		for _, p := range ps {
			if st, _ := emu.Channel(p.Token); len(st.Toasts) < want {
				return false
			}
		}
		return true
	})
	cancel()
	deliverers.Wait()
	for _, p := range ps {
		st, _ := emu.Channel(p.Token)
		seen := map[string]int{}
		for _, toast := range st.Toasts {
			seen[toast.Text2]++
		}
		for i := 1; i < ticks; i++ {
			if n := seen[fmt.Sprint("item-", i)]; n != 1 {
				t.Errorf("%s got item-%d %d times, want once", p.Name, i, n)
			}
		}
	}
	if n := strings.Count(logs.String(), "another instance runs this tick"); n != ticks {
		t.Errorf("%d runs skipped a tick the other instance had, want %d", n, ticks)
	}
}

// waitFor polls cond for up to a minute.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Deliveries shared by instances: both send, no phone gets a toast twice.
func TestDeliveriesShared(t *testing.T) {
	url := pgtest.New(t)
	emu := newEmulator(t)
	logs := &logtest.Buffer{}
	var dups atomic.Int64
	count := func(n int) { dups.Add(int64(n)) }
	a := openInstance(t, url, "a", postgres.Options{LeaseBatch: 8, PossibleDuplicates: count})
	b := openInstance(t, url, "b", postgres.Options{LeaseBatch: 8, PossibleDuplicates: count})
	ps := phones(t, emu, a, 300)
	enqueueToasts(t, a, 1)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var wg sync.WaitGroup
	var sent [2]atomic.Int64
	for i, db := range []*postgres.DB{a, b} {
		bot := newBot(t, db, 4, logs)
		bot.Pusher = countingPusher{bot.Pusher, &sent[i]}
		wg.Go(func() {
			if err := bot.Deliver(ctx); err != nil {
				t.Error(err)
			}
		})
	}
	waitFor(t, "every phone's toast", func() bool { return received(emu, ps) >= len(ps) })
	cancel()
	wg.Wait()
	if n := received(emu, ps); n != len(ps) {
		t.Errorf("%d toasts received for %d phones: some sent twice", n, len(ps))
	}
	if dups.Load() != 0 {
		t.Errorf("%d possible duplicates counted without a crash", dups.Load())
	}
	if c, _ := a.Counts(); c.OutboxDepth != 0 {
		t.Errorf("outbox depth %d after delivery", c.OutboxDepth)
	}
	// Both sent: each counts its own sends.
	if sa, sb := sent[0].Load(), sent[1].Load(); sa == 0 || sb == 0 || sa+sb != int64(len(ps)) {
		t.Errorf("a sent %d, b sent %d: want both to send, %d in all", sa, sb, len(ps))
	}
}

// enqueueToasts enqueues n toasts for every channel of db.
func enqueueToasts(t testing.TB, db *postgres.DB, n int) {
	t.Helper()
	chs, err := db.Channels("")
	if err != nil {
		t.Fatal(err)
	}
	enc := mpns.NewEncoder(mpns.EncoderOptions{})
	var ns []tilecast.Notification
	for _, ch := range chs {
		for i := range n {
			payload, err := notify.Fit(enc, notify.Toast{Text1: "News", Text2: fmt.Sprint("toast ", i)})
			if err != nil {
				t.Fatal(err)
			}
			ns = append(ns, tilecast.Notification{ChannelID: ch.ID, Feed: "news", ItemID: fmt.Sprint(i), Kind: tilecast.KindToast,
				Payload: payload, NextAttempt: time.Now()})
		}
	}
	if err := db.Enqueue(ns); err != nil {
		t.Fatal(err)
	}
}

// received sums the toasts the phones received.
func received(emu *emulator.Emulator, ps []emulator.Channel) int {
	n := 0
	for _, p := range ps {
		st, _ := emu.Channel(p.Token)
		n += st.Counts.Received
	}
	return n
}

// countingPusher counts the pushes of one instance.
type countingPusher struct {
	tilecast.Pusher
	n *atomic.Int64
}

func (p countingPusher) Push(ctx context.Context, ch *tilecast.Channel, n *tilecast.Notification, ttl time.Duration) tilecast.Result {
	p.n.Add(1)
	return p.Pusher.Push(ctx, ch, n, ttl)
}

// New work another instance commits wakes an idle instance at once
// (LISTEN/NOTIFY): its deliverer, which would sleep until its next due
// entry (up to a minute), sends the new entry within seconds.
func TestNewWorkWakesIdleInstance(t *testing.T) {
	url := pgtest.New(t)
	emu := newEmulator(t)
	var bot atomic.Pointer[tilecast.Bot]
	a := openInstance(t, url, "a", postgres.Options{})
	b := openInstance(t, url, "b", postgres.Options{Wake: func() {
		if bb := bot.Load(); bb != nil {
			bb.Wake()
		}
	}})
	ps := phones(t, emu, a, 2)
	chs, err := a.Channels("")
	if err != nil {
		t.Fatal(err)
	}
	payload, err := notify.Fit(mpns.NewEncoder(mpns.EncoderOptions{}), notify.Toast{Text1: "News", Text2: "later"})
	if err != nil {
		t.Fatal(err)
	}
	// Something due in 50 minutes: the idle deliverer sleeps its longest.
	later := tilecast.Notification{ChannelID: chs[0].ID, Feed: "news", ItemID: "later", Kind: tilecast.KindToast,
		Payload: payload, NextAttempt: time.Now().Add(50 * time.Minute)}
	if err := a.Enqueue([]tilecast.Notification{later}); err != nil {
		t.Fatal(err)
	}
	bot.Store(newBot(t, b, 2, &logtest.Buffer{}))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { bot.Load().Deliver(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	time.Sleep(500 * time.Millisecond) // b has looked, found nothing due, and sleeps

	start := time.Now()
	enqueueToasts(t, a, 1)
	for received(emu, ps) < len(ps) {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("the idle instance did not wake for new work: %d of %d delivered after %s", received(emu, ps), len(ps), time.Since(start))
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("new work delivered by the idle instance after %s", time.Since(start).Round(time.Millisecond))
}

// A channel's rest after 406 is the channel's, not the instance's: after
// one instance got 406 from it, another sends it nothing for 61 minutes.
func TestRestAcrossInstances(t *testing.T) {
	url := pgtest.New(t)
	var pushes atomic.Int64
	mpnsSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pushes.Add(1)
		w.Header().Set("X-NotificationStatus", "Dropped")
		w.Header().Set("X-SubscriptionStatus", "Active")
		w.Header().Set("X-DeviceConnectionStatus", "Connected")
		w.WriteHeader(http.StatusNotAcceptable)
	}))
	defer mpnsSrv.Close()
	a := openInstance(t, url, "a", postgres.Options{})
	b := openInstance(t, url, "b", postgres.Options{})
	if _, _, err := a.AddChannel(tilecast.Channel{URI: mpnsSrv.URL + "/phone"}); err != nil {
		t.Fatal(err)
	}
	enqueueToasts(t, a, 1)
	if err := newBot(t, a, 2, &logtest.Buffer{}).DeliverDue(t.Context()); err != nil {
		t.Fatal(err)
	}
	if pushes.Load() != 1 {
		t.Fatalf("%d pushes, want the one answered 406", pushes.Load())
	}
	chs, _ := b.Channels("")
	if wait := time.Until(chs[0].NextAllowedAt); wait < 60*time.Minute {
		t.Fatalf("channel rests %s after 406, want 61 minutes", wait)
	}
	// b delivers the retry and a new toast: neither goes out yet.
	enqueueToasts(t, b, 2)
	if err := newBot(t, b, 2, &logtest.Buffer{}).DeliverDue(t.Context()); err != nil {
		t.Fatal(err)
	}
	if pushes.Load() != 1 {
		t.Errorf("%d pushes: the other instance sent to a resting channel", pushes.Load())
	}
	if c, _ := b.Counts(); c.OutboxDepth != 3 {
		t.Errorf("outbox depth %d, want the three entries waiting", c.OutboxDepth)
	}
}
