package bench

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/store"
	"github.com/tilecast/tilecast/store/postgres"
)

// PGFanOutResult is one fan-out run on PostgreSQL. The statements are
// counted by the store's pgx tracer (postgres.DB.Statements: every query,
// every query of a batch, every COPY, BEGIN and COMMIT), one count per
// connection pool: the run that fetched the feed and enqueued its
// notifications had a pool of its own, the deliverer (an instance, as in
// the daemon) another.
type PGFanOutResult struct {
	FanOutResult
	EnqueueStatements uint64 // fetch, subscribers, render, enqueue (Commit and its pages)
	DeliverStatements uint64 // Due (with its leases), Record, heartbeats
	Outcomes          int    // delivered outcomes in the database's ledger
}

// EnqueuePerNotification and DeliverPerNotification are the statements
// per notification sent.
func (r PGFanOutResult) EnqueuePerNotification() float64 {
	return float64(r.EnqueueStatements) / float64(max(r.Notifications, 1))
}

// DeliverPerNotification: see EnqueuePerNotification.
func (r PGFanOutResult) DeliverPerNotification() float64 {
	return float64(r.DeliverStatements) / float64(max(r.Notifications, 1))
}

// NewSchema creates schema name in the database at base and returns a URL
// whose search_path is that schema, and a function that drops it: each
// run starts from its own copy of the template state.
func NewSchema(ctx context.Context, base, name string) (string, func() error, error) {
	exec := func(sql string) error {
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			return err
		}
		defer conn.Close(context.Background())
		_, err = conn.Exec(ctx, sql)
		return err
	}
	id := pgx.Identifier{name}.Sanitize()
	if err := exec("CREATE SCHEMA " + id); err != nil {
		return "", nil, fmt.Errorf("create schema %s: %w", name, err)
	}
	u, err := url.Parse(base)
	if err != nil {
		return "", nil, fmt.Errorf("database URL: %w", err)
	}
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	return u.String(), func() error { return exec("DROP SCHEMA " + id + " CASCADE") }, nil
}

// CopyStateToPG copies the bbolt state at path (made by
// BuildFanOutStateFor) into the empty PostgreSQL state at dbURL, as
// `tilecast state copy` does (Export, then the database's COPY-based
// Importer).
func CopyStateToPG(ctx context.Context, path, dbURL string) error {
	src, err := store.Open(path, store.Options{})
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := postgres.Open(ctx, dbURL, postgres.Options{})
	if err != nil {
		return err
	}
	defer dst.Close()
	w := dst.Importer()
	if err := src.Export(ctx, w.Write); err != nil {
		return fmt.Errorf("copy state to PostgreSQL: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("copy state to PostgreSQL: %w", err)
	}
	return nil
}

// benchPoolConns is the pool size of each of the run's two DBs: the
// daemon's minimum (cmd/tilecast openDatabaseAs).
const benchPoolConns = 8

// RunFanOutPG is RunFanOutWith on the PostgreSQL state at dbURL (a copy
// of a BuildFanOutStateFor state, CopyStateToPG): one Bot runs the feed
// and enqueues, while a deliverer Bot on its own DB, opened as an
// instance the way `tilecast run` opens it (leases of 2 × concurrency),
// drains the outbox. It returns once every outcome is committed, and
// checks that the outbox is empty, nothing is dead-lettered, and that the
// ledger holds one delivered outcome per push.
func RunFanOutPG(ctx context.Context, dbURL string, opts FanOutOptions) (PGFanOutResult, error) {
	concurrency := opts.Concurrency
	enq, err := postgres.Open(ctx, dbURL, postgres.Options{MaxConns: benchPoolConns})
	if err != nil {
		return PGFanOutResult{}, err
	}
	defer enq.Close()
	del, err := postgres.Open(ctx, dbURL, postgres.Options{MaxConns: benchPoolConns, Instance: "bench",
		LeaseBatch: 2 * concurrency})
	if err != nil {
		return PGFanOutResult{}, err
	}
	defer del.Close()
	pusher, closePusher, err := opts.pusher()
	if err != nil {
		return PGFanOutResult{}, err
	}
	defer closePusher()
	f := BenchFeed("news", "http://127.0.0.1/news.xml")
	t1 := fanOutT0.Add(time.Hour)
	var stray atomic.Int64
	// The store calls of each side, for the bench's log.
	enqCS, delCS := newCountingStore(enq), newCountingStore(del)
	runner := &tilecast.Bot{
		Fetcher: &fixedFetcher{tilecast.FeedResult{Status: 200, Title: "Bench news",
			Items: []tilecast.Item{benchItem("new", t1), benchItem("old", fanOutT0)}}},
		Renderer: newRenderer(), Renderers: renderers(), Pusher: strayPusher{&stray}, Store: enqCS,
		PushConcurrency: concurrency,
	}
	// Caps as `tilecast run` wires it on PostgreSQL: the daily cap's
	// reservations are part of what a delivery costs.
	deliverer := &tilecast.Bot{Renderer: newRenderer(), Renderers: renderers(), Pusher: pusher, Store: delCS,
		Caps: del, PushConcurrency: concurrency}
	var outcomes atomic.Int64
	deliverer.Observer = outcomeCounter{&outcomes}
	enq0, del0 := enq.Statements(), del.Statements()
	start := time.Now()
	runErr := make(chan error, 1)
	go func() { runErr <- runner.RunFeedNow(ctx, &f) }()
	var committed time.Time
	for committed.IsZero() {
		select {
		case err := <-runErr:
			if err != nil {
				return PGFanOutResult{}, err
			}
			committed = time.Now()
		default:
		}
		n := outcomes.Load()
		if err := deliverer.DeliverDue(ctx); err != nil {
			return PGFanOutResult{}, err
		}
		if outcomes.Load() == n && committed.IsZero() {
			time.Sleep(time.Millisecond) // the first page is not committed yet
		}
	}
	if err := deliverer.DeliverDue(ctx); err != nil {
		return PGFanOutResult{}, err
	}
	end := time.Now()
	res := PGFanOutResult{FanOutResult: FanOutResult{Notifications: int(outcomes.Load()),
		Commit: committed.Sub(start), Deliver: end.Sub(committed), Elapsed: end.Sub(start)},
		EnqueueStatements: enq.Statements() - enq0, DeliverStatements: del.Statements() - del0}
	res.Store = map[string]OpStat{}
	for name, st := range enqCS.Stats() {
		res.Store["enqueue "+name] = st
	}
	for name, st := range delCS.Stats() {
		res.Store["deliver "+name] = st
	}
	if n := stray.Load(); n > 0 {
		return res, fmt.Errorf("the run that enqueued pushed %d notifications itself: the statement split is wrong", n)
	}
	after, err := del.Counts()
	if err != nil {
		return res, err
	}
	if after.OutboxDepth != 0 || after.DeadLetters != 0 {
		return res, fmt.Errorf("fan-out left %d queued, %d dead", after.OutboxDepth, after.DeadLetters)
	}
	list, err := del.Outcomes("", "", time.Time{})
	if err != nil {
		return res, err
	}
	for _, o := range list {
		if o.Action == tilecast.ActionDelivered {
			res.Outcomes++
		}
	}
	if res.Outcomes != res.Notifications {
		return res, fmt.Errorf("the ledger holds %d delivered outcomes for %d notifications sent", res.Outcomes, res.Notifications)
	}
	return res, nil
}

// strayPusher counts pushes of the Bot that should only enqueue.
type strayPusher struct{ n *atomic.Int64 }

func (p strayPusher) Push(context.Context, *tilecast.Channel, *tilecast.Notification, time.Duration) tilecast.Result {
	p.n.Add(1)
	return tilecast.Result{Err: errors.New("bench: the enqueueing Bot must not push")}
}
