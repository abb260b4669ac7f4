package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/notify"
	"github.com/tilecast/tilecast/notify/mpns"
	"github.com/tilecast/tilecast/notify/pushhttp"
	"github.com/tilecast/tilecast/notify/webpush"
	"github.com/tilecast/tilecast/notify/wns"
	"github.com/tilecast/tilecast/store"
)

// DefaultConcurrency is the push concurrency of both the Bot and the raw
// loop (tilecast's push.concurrency default).
const DefaultConcurrency = tilecast.DefaultPushConcurrency

// BenchFeed is the feed the scenarios use: a toast and a flip tile per new
// item, like the example config, so every channel gets two pushes.
func BenchFeed(name, url string) tilecast.Feed {
	return tilecast.Feed{
		Name: name, URL: url, Schedule: "*/15 * * * *",
		FirstRun: tilecast.FirstRunBaseline, MaxToasts: 3, FloodLimit: 20,
		Toast: &tilecast.ToastSpec{Text1: "{{.Feed.Title}}", Text2: "{{.Item.Title}}",
			Param: "/Item.xaml?id={{.Item.ID | urlquery}}"},
		Tile: &tilecast.TileSpec{Template: tilecast.TileFlip, Title: "{{.Feed.Title}}", Count: "{{.NewCount}}",
			BackTitle: "{{.Feed.Title}}", BackContent: "{{.Item.Title}}", WideBackContent: "{{.Item.Summary}}"},
	}
}

// fixedFetcher answers every fetch with the same parsed result.
type fixedFetcher struct{ res tilecast.FeedResult }

func (f *fixedFetcher) Fetch(context.Context, string, tilecast.Validators) (*tilecast.FeedResult, error) {
	r := f.res
	return &r, nil
}

func benchItem(id string, t time.Time) tilecast.Item {
	return tilecast.Item{ID: id, Title: "Item " + id + ": something happened in the benchmark",
		Link: "https://example.org/" + id, Summary: "A short summary of item " + id + " as a feed would carry it.",
		Published: t}
}

var fanOutT0 = time.Date(2026, 1, 5, 12, 0, 0, 0, time.UTC)

func newRenderer() *notify.Renderer {
	return notify.NewRenderer(mpns.NewEncoder(mpns.EncoderOptions{}))
}

// renderers are the daemon's renderers (cmd/tilecast newRenderers).
func renderers() map[tilecast.Transport]tilecast.Renderer {
	return map[tilecast.Transport]tilecast.Renderer{
		tilecast.TransportMPNS:    newRenderer(),
		tilecast.TransportWNS:     wns.NewRenderer(notify.RendererOptions{}),
		tilecast.TransportWebPush: webpush.NewRenderer(nil, notify.RendererOptions{}),
	}
}

// BuildFanOutState creates a state file at path with one channel per URI
// (all on the default feed list) and the bench feed baselined with one old
// item, so the next run of the feed sees exactly one new item.
func BuildFanOutState(path string, uris []string) error {
	return BuildFanOutStateFor(path, uris, tilecast.TransportMPNS)
}

// BuildFanOutStateFor is BuildFanOutState with channels of transport t
// (for Web Push, uris are subscriptions: see webpush.go).
func BuildFanOutStateFor(path string, uris []string, t tilecast.Transport) error {
	db, err := store.Open(path, store.Options{})
	if err != nil {
		return err
	}
	defer db.Close()
	for _, u := range uris {
		ch, err := channelFor(u, t)
		if err != nil {
			return err
		}
		if _, _, err := db.AddChannel(ch); err != nil {
			return fmt.Errorf("add channel: %w", err)
		}
	}
	f := BenchFeed("news", "http://127.0.0.1/news.xml")
	bot := &tilecast.Bot{
		Fetcher:  &fixedFetcher{tilecast.FeedResult{Status: 200, Title: "Bench news", Items: []tilecast.Item{benchItem("old", fanOutT0)}}},
		Renderer: newRenderer(), Pusher: nopPusher{}, Store: db,
	}
	return bot.RunFeedNow(context.Background(), &f)
}

type nopPusher struct{}

func (nopPusher) Push(context.Context, *tilecast.Channel, *tilecast.Notification, time.Duration) tilecast.Result {
	return tilecast.Result{Status: 200, Notification: "Received", Verdict: tilecast.VerdictDelivered}
}

// CopyFile copies src to dst (a fresh state file for each run), writing
// chunk bytes per write call; chunk ≤ 0 writes the whole file at once.
//
// The chunk size matters on kernels whose ext4 caches files in large
// folios (seen on 6.18): one big write leaves dst's page cache in folios
// of up to 2 MiB, and every 4 KiB page bbolt later writes into such a
// folio costs its buffers' walk (ext4_block_write_begin, writeback), ~8 %
// of a 100k fan-out's CPU. A running daemon's state file is paged in by
// 4 KiB faults (bbolt maps it MADV_RANDOM) and 4 KiB writes, so the bench
// copies page by page by default.
func CopyFile(dst, src string, chunk int) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("copy state: %w", err)
	}
	if chunk <= 0 {
		chunk = max(len(b), 1)
	}
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("copy state: %w", err)
	}
	for len(b) > 0 {
		n := min(chunk, len(b))
		if _, err := f.Write(b[:n]); err != nil {
			f.Close()
			return fmt.Errorf("copy state: %w", err)
		}
		b = b[n:]
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("copy state: %w", err)
	}
	return nil
}

// FanOutResult is one fan-out run.
type FanOutResult struct {
	Notifications int               // pushes sent and recorded
	Elapsed       time.Duration     // feed fetched → every outcome committed
	Commit        time.Duration     // fetch → last page committed (subscribers, render, enqueue; sends overlap)
	Deliver       time.Duration     // last page committed → every outcome committed
	Store         map[string]OpStat // store calls made by the Bot
}

// PerSecond is notifications per second.
func (r FanOutResult) PerSecond() float64 { return float64(r.Notifications) / r.Elapsed.Seconds() }

// FanOutOptions configure RunFanOutWith and RunRawFanOutWith.
type FanOutOptions struct {
	Concurrency int // push concurrency of the Bot and of the raw loop
	// Transport is the channels' (the state's) transport: MPNS (""),
	// WNS, which is sent to with an access token from TokenURL
	// (Sink.TokenURL) for BenchWNSClientID, or Web Push (webpush.go).
	Transport tilecast.Transport
	TokenURL  string
}

// pusher is the daemon's push path for opts' transport: the client (for
// WNS with its token source) behind a PushMux, as cmd/tilecast wires it.
func (opts FanOutOptions) pusher() (tilecast.Pusher, func(), error) {
	if opts.Transport == tilecast.TransportWebPush {
		return opts.webPushPusher()
	}
	if opts.Transport != tilecast.TransportWNS {
		c, err := mpns.NewClient(mpns.ClientOptions{AllowPrivate: true, Concurrency: opts.Concurrency})
		if err != nil {
			return nil, nil, err
		}
		return tilecast.NewPushMux(map[tilecast.Transport]tilecast.Pusher{tilecast.TransportMPNS: c}, tilecast.PushMuxOptions{}), c.Close, nil
	}
	ts, err := opts.tokens()
	if err != nil {
		return nil, nil, err
	}
	c, err := wns.NewClient(wns.ClientOptions{Tokens: ts, AllowedHosts: []string{"127.0.0.1"}, AllowPrivate: true,
		Concurrency: opts.Concurrency})
	if err != nil {
		return nil, nil, err
	}
	return tilecast.NewPushMux(map[tilecast.Transport]tilecast.Pusher{tilecast.TransportWNS: c}, tilecast.PushMuxOptions{}), c.Close, nil
}

func (opts FanOutOptions) tokens() (*wns.TokenSource, error) {
	return wns.NewTokenSource(wns.Credentials{ClientID: BenchWNSClientID, Secret: []byte(BenchWNSSecret), TokenURL: opts.TokenURL},
		wns.TokenOptions{AllowHTTP: true})
}

// RunFanOut opens the state file at path (made by BuildFanOutState), runs
// the bench feed with one new item through the Bot and drains the outbox to
// the channels with concurrency workers. It returns once every outcome is
// committed, and checks that the outbox is empty and that the ledger holds
// one outcome per push.
func RunFanOut(ctx context.Context, path string, concurrency int) (FanOutResult, error) {
	return RunFanOutWith(ctx, path, FanOutOptions{Concurrency: concurrency})
}

// RunFanOutWith is RunFanOut for the channels' transport of opts (a state
// made by BuildFanOutStateFor): for WNS each channel gets a toast, a tile
// and a badge, with the access token of the client's token source.
func RunFanOutWith(ctx context.Context, path string, opts FanOutOptions) (FanOutResult, error) {
	concurrency := opts.Concurrency
	db, err := store.Open(path, store.Options{})
	if err != nil {
		return FanOutResult{}, err
	}
	defer db.Close()
	pusher, closePusher, err := opts.pusher()
	if err != nil {
		return FanOutResult{}, err
	}
	defer closePusher()
	f := BenchFeed("news", "http://127.0.0.1/news.xml")
	cs := newCountingStore(db)
	t1 := fanOutT0.Add(time.Hour)
	bot := &tilecast.Bot{
		Fetcher: &fixedFetcher{tilecast.FeedResult{Status: 200, Title: "Bench news",
			Items: []tilecast.Item{benchItem("new", t1), benchItem("old", fanOutT0)}}},
		Renderer: newRenderer(), Renderers: renderers(), Pusher: pusher, Store: cs, PushConcurrency: concurrency,
	}
	// The daemon's send log (one write(2) per push) is part of the cost.
	if bot.SendLog, err = db.SendLog(); err != nil {
		return FanOutResult{}, err
	}
	var outcomes atomic.Int64
	bot.Observer = outcomeCounter{&outcomes}
	// The deliverer drains while the run still enqueues its pages, as the
	// daemon's does; DeliverDue returns whenever nothing is due, so it is
	// called again until the run has committed its last page, then once more.
	start := time.Now()
	runErr := make(chan error, 1)
	go func() { runErr <- bot.RunFeedNow(ctx, &f) }()
	var committed time.Time
	for committed.IsZero() {
		select {
		case err := <-runErr:
			if err != nil {
				return FanOutResult{}, err
			}
			committed = time.Now()
		default:
		}
		n := outcomes.Load()
		if err := bot.DeliverDue(ctx); err != nil {
			return FanOutResult{}, err
		}
		if outcomes.Load() == n && committed.IsZero() {
			time.Sleep(time.Millisecond) // the first page is not committed yet
		}
	}
	if err := bot.DeliverDue(ctx); err != nil {
		return FanOutResult{}, err
	}
	end := time.Now()
	res := FanOutResult{Notifications: int(outcomes.Load()),
		Commit: committed.Sub(start), Deliver: end.Sub(committed), Elapsed: end.Sub(start)}
	res.Store = cs.Stats()
	after, err := db.Counts()
	if err != nil {
		return res, err
	}
	if after.OutboxDepth != 0 || after.DeadLetters != 0 {
		return res, fmt.Errorf("fan-out left %d queued, %d dead", after.OutboxDepth, after.DeadLetters)
	}
	return res, nil
}

// CountOutcomes returns the number of ledger entries with outcome delivered.
func CountOutcomes(path string) (int, error) {
	db, err := store.Open(path, store.Options{})
	if err != nil {
		return 0, err
	}
	defer db.Close()
	list, err := db.Outcomes("", "", time.Time{})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, o := range list {
		if o.Action == tilecast.ActionDelivered {
			n++
		}
	}
	return n, nil
}

// RawNotifications renders the bench feed's toast and tile for one new
// item: the same kinds and payloads the Bot sends to every channel.
func RawNotifications() ([]tilecast.Notification, error) {
	return RawNotificationsFor(tilecast.TransportMPNS)
}

// RawNotificationsFor is RawNotifications for transport t's channels: for
// WNS a toast, a tile and a badge.
func RawNotificationsFor(t tilecast.Transport) ([]tilecast.Notification, error) {
	f := BenchFeed("news", "http://127.0.0.1/news.xml")
	r := renderers()[t]
	if r == nil {
		return nil, fmt.Errorf("no renderer for transport %q", t)
	}
	it := benchItem("new", fanOutT0.Add(time.Hour))
	d := &tilecast.TemplateData{Feed: tilecast.FeedInfo{Name: "news", Title: "Bench news"}, Item: it,
		Items: []tilecast.Item{it}, NewCount: 1}
	toast, err := r.Toast(&f, d)
	if err != nil {
		return nil, err
	}
	parts, err := r.TileUpdate(&f, d)
	if err != nil {
		return nil, err
	}
	ns := []tilecast.Notification{{Feed: f.Name, Kind: tilecast.KindToast, Payload: toast}}
	for _, p := range parts {
		ns = append(ns, tilecast.Notification{Feed: f.Name, Kind: p.Kind, Payload: p.Payload})
	}
	return ns, nil
}

// RunRawFanOut is the baseline: a bare loop POSTing the requests of ns to
// every uri with concurrency workers, through the same push client
// configuration as RunFanOut's Bot (pushhttp with the same options; the
// requests built by mpns.NewRequest, as the Bot's client builds them),
// checking each answer and persisting nothing. The ratio to it is what
// tilecast's persistence, queueing and logging cost.
func RunRawFanOut(ctx context.Context, uris []string, ns []tilecast.Notification, concurrency int) (FanOutResult, error) {
	return RunRawFanOutWith(ctx, uris, ns, FanOutOptions{Concurrency: concurrency})
}

// RunRawFanOutWith is RunRawFanOut for opts' transport. For WNS the loop
// gets one access token from opts.TokenURL before it starts and sends
// every request with it, built by wns.NewRequest with the headers the
// Bot's client adds (X-WNS-TTL from the kind's default time to live,
// X-WNS-Tag from the feed), checking for 200 received. For Web Push
// every request is encrypted and signed in the loop (webPushPoster).
func RunRawFanOutWith(ctx context.Context, uris []string, ns []tilecast.Notification, opts FanOutOptions) (FanOutResult, error) {
	concurrency := opts.Concurrency
	c := pushhttp.New(pushhttp.Options{AllowPrivate: true, Concurrency: concurrency})
	defer c.Close()
	post := rawPost
	if opts.Transport == tilecast.TransportWebPush {
		var err error
		if post, err = webPushPoster(uris); err != nil {
			return FanOutResult{}, err
		}
	}
	if opts.Transport == tilecast.TransportWNS {
		ts, err := opts.tokens()
		if err != nil {
			return FanOutResult{}, err
		}
		tok, err := ts.Token(ctx)
		if err != nil {
			return FanOutResult{}, fmt.Errorf("raw fan-out token: %w", err)
		}
		post = func(ctx context.Context, c *pushhttp.Client, uri string, n *tilecast.Notification) error {
			return rawPostWNS(ctx, c, uri, n, tok)
		}
	}
	total := len(uris) * len(ns)
	var next atomic.Int64
	var wg sync.WaitGroup
	var errMu sync.Mutex
	var errs []error
	start := time.Now()
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= total || ctx.Err() != nil {
					return
				}
				if err := post(ctx, c, uris[i/len(ns)], &ns[i%len(ns)]); err != nil {
					errMu.Lock()
					errs = append(errs, err)
					errMu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	return FanOutResult{Notifications: total, Elapsed: el, Deliver: el}, errors.Join(errs...)
}

func rawPost(ctx context.Context, c *pushhttp.Client, uri string, n *tilecast.Notification) error {
	req, err := mpns.NewRequest(uri, n.Kind, n.Payload, mpns.RequestOptions{})
	if err != nil {
		return err
	}
	resp, err := c.Do(ctx, req)
	if err != nil {
		return fmt.Errorf("raw push %s: %w", uri, err)
	}
	if resp.Status != http.StatusOK || resp.Header.Get("X-NotificationStatus") != "Received" {
		return fmt.Errorf("raw push %s: %d %s", uri, resp.Status, resp.Header.Get("X-NotificationStatus"))
	}
	return nil
}

func rawPostWNS(ctx context.Context, c *pushhttp.Client, uri string, n *tilecast.Notification, token string) error {
	req, err := wns.NewRequest(uri, n.Kind, n.Payload, wns.RequestOptions{Token: token,
		TTL: tilecast.DefaultTTL().Of(n.Kind), Tag: wns.Tag(n.Feed)})
	if err != nil {
		return err
	}
	resp, err := c.Do(ctx, req)
	if err != nil {
		return fmt.Errorf("raw push %s: %w", uri, err)
	}
	if st := resp.Header.Get("X-WNS-Status"); resp.Status != http.StatusOK || st != wns.StatusReceived {
		return fmt.Errorf("raw push %s: %d %s", uri, resp.Status, st)
	}
	return nil
}

// outcomeCounter counts the outcomes the Bot reports after committing them.
type outcomeCounter struct{ n *atomic.Int64 }

func (c outcomeCounter) ObserveFetch(string, string, int) {}
func (c outcomeCounter) ObservePush(tilecast.Outcome)     { c.n.Add(1) }
func (c outcomeCounter) ObservePossibleDuplicates(int)    {}
