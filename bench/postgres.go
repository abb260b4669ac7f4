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
// notifications had a pool of its own, each deliverer (an instance, as in
// the daemon) another; DeliverStatements is their sum.
type PGFanOutResult struct {
	FanOutResult
	EnqueueStatements uint64 // fetch, subscribers, render, enqueue (Commit and its pages)
	DeliverStatements uint64 // Due (with its leases), Record, heartbeats
	Outcomes          int    // delivered outcomes in the database's ledger
	Duplicates        int    // delivered outcomes beyond the first for a channel and kind
	Instances         int    // delivering instances
	PerInstance       []int  // outcomes each instance committed
	InstanceRows      int    // instances heartbeating in the database at the end of the run
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

// benchPoolConns is the pool size of each of the run's DBs: the daemon's
// minimum (cmd/tilecast openDatabaseAs).
const benchPoolConns = 8

// RunFanOutPG is RunFanOutWith on the PostgreSQL state at dbURL (a copy
// of a BuildFanOutStateFor state, CopyStateToPG): one Bot runs the feed
// and enqueues, while instances (at least one) deliverer Bots drain the
// outbox, started together. Each deliverer has a DB of its own, opened as
// an instance the way `tilecast run` opens it (its own Instance name,
// pool, leases of 2 × concurrency, and Caps); they share the pusher
// configuration and the sink. All run in this process: separate pools and
// instance rows, one Go runtime. It returns once every outcome is
// committed, and checks that the outbox is empty, nothing is
// dead-lettered, that the ledger holds one delivered outcome per push,
// and that no channel got a kind of notification delivered twice.
func RunFanOutPG(ctx context.Context, dbURL string, opts FanOutOptions, instances int) (PGFanOutResult, error) {
	concurrency := opts.Concurrency
	instances = max(instances, 1)
	enq, err := postgres.Open(ctx, dbURL, postgres.Options{MaxConns: benchPoolConns})
	if err != nil {
		return PGFanOutResult{}, err
	}
	defer enq.Close()
	dels := make([]*postgres.DB, instances)
	for i := range dels {
		del, err := postgres.Open(ctx, dbURL, postgres.Options{MaxConns: benchPoolConns,
			Instance: fmt.Sprintf("bench-%d", i+1), LeaseBatch: 2 * concurrency})
		if err != nil {
			return PGFanOutResult{}, err
		}
		defer del.Close()
		dels[i] = del
	}
	pusher, closePusher, err := opts.pusher()
	if err != nil {
		return PGFanOutResult{}, err
	}
	defer closePusher()
	f := BenchFeed("news", "http://127.0.0.1/news.xml")
	t1 := fanOutT0.Add(time.Hour)
	var stray atomic.Int64
	// The store calls of each side, for the bench's log.
	enqCS := newCountingStore(enq)
	runner := &tilecast.Bot{
		Fetcher: &fixedFetcher{tilecast.FeedResult{Status: 200, Title: "Bench news",
			Items: []tilecast.Item{benchItem("new", t1), benchItem("old", fanOutT0)}}},
		Renderer: newRenderer(), Renderers: renderers(), Pusher: strayPusher{&stray}, Store: enqCS,
		PushConcurrency: concurrency,
	}
	// Caps as `tilecast run` wires it on PostgreSQL: the daily cap's
	// reservations are part of what a delivery costs.
	delCS := make([]*countingStore, instances)
	deliverers := make([]*tilecast.Bot, instances)
	perInstance := make([]atomic.Int64, instances)
	for i, del := range dels {
		delCS[i] = newCountingStore(del)
		deliverers[i] = &tilecast.Bot{Renderer: newRenderer(), Renderers: renderers(), Pusher: pusher, Store: delCS[i],
			Caps: del, PushConcurrency: concurrency, Observer: outcomeCounter{&perInstance[i]}}
	}
	enq0 := enq.Statements()
	del0 := make([]uint64, instances)
	for i, del := range dels {
		del0[i] = del.Statements()
	}
	outcomes := func() int64 {
		var n int64
		for i := range perInstance {
			n += perInstance[i].Load()
		}
		return n
	}
	start := time.Now()
	var committedAt atomic.Int64 // UnixNano once the run committed its last page
	runErr := make(chan error, 1)
	go func() {
		err := runner.RunFeedNow(ctx, &f)
		committedAt.Store(time.Now().UnixNano())
		runErr <- err
	}()
	// Each deliverer drains while the run still enqueues its pages, as the
	// daemon's does; DeliverDue returns whenever nothing is due to it, so it
	// is called again until the run has committed its last page, then once
	// more: what that last call leaves is leased by another instance, which
	// records it before its own last call returns.
	delErr := make(chan error, instances)
	for i, b := range deliverers {
		go func() {
			for {
				done := committedAt.Load() != 0
				n := perInstance[i].Load()
				if err := b.DeliverDue(ctx); err != nil {
					delErr <- fmt.Errorf("instance %s: %w", dels[i].Instance(), err)
					return
				}
				if done {
					delErr <- nil
					return
				}
				if perInstance[i].Load() == n {
					time.Sleep(time.Millisecond) // nothing due to it yet
				}
			}
		}()
	}
	var firstErr error
	for range instances {
		if err := <-delErr; err != nil && firstErr == nil {
			firstErr = err
		}
	}
	if err := <-runErr; err != nil {
		return PGFanOutResult{}, err
	}
	if firstErr != nil {
		return PGFanOutResult{}, firstErr
	}
	end := time.Now()
	committed := time.Unix(0, committedAt.Load())
	res := PGFanOutResult{FanOutResult: FanOutResult{Notifications: int(outcomes()),
		Commit: committed.Sub(start), Deliver: end.Sub(committed), Elapsed: end.Sub(start)},
		EnqueueStatements: enq.Statements() - enq0, Instances: instances}
	// The deliverers' store calls are summed over the instances: their
	// times overlap, so a sum may exceed the run's elapsed time.
	res.Store = map[string]OpStat{}
	for name, st := range enqCS.Stats() {
		res.Store["enqueue "+name] = st
	}
	for i, del := range dels {
		res.DeliverStatements += del.Statements() - del0[i]
		res.PerInstance = append(res.PerInstance, int(perInstance[i].Load()))
		for name, st := range delCS[i].Stats() {
			sum := res.Store["deliver "+name]
			sum.Calls += st.Calls
			sum.Items += st.Items
			sum.Time += st.Time
			res.Store["deliver "+name] = sum
		}
	}
	if n := stray.Load(); n > 0 {
		return res, fmt.Errorf("the run that enqueued pushed %d notifications itself: the statement split is wrong", n)
	}
	rows, err := dels[0].Instances()
	if err != nil {
		return res, err
	}
	res.InstanceRows = len(rows)
	after, err := dels[0].Counts()
	if err != nil {
		return res, err
	}
	if after.OutboxDepth != 0 || after.DeadLetters != 0 {
		return res, fmt.Errorf("fan-out left %d queued, %d dead", after.OutboxDepth, after.DeadLetters)
	}
	list, err := dels[0].Outcomes("", "", time.Time{})
	if err != nil {
		return res, err
	}
	// One notification of each kind per channel: a second delivered
	// outcome for a channel and kind is a duplicate send.
	seen := map[string]bool{}
	for _, o := range list {
		if o.Action != tilecast.ActionDelivered {
			continue
		}
		res.Outcomes++
		key := o.ChannelID + " " + string(o.Kind)
		if seen[key] {
			res.Duplicates++
		}
		seen[key] = true
	}
	if res.Duplicates > 0 {
		return res, fmt.Errorf("the ledger holds %d duplicate deliveries (a channel got a kind of notification twice or more)", res.Duplicates)
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
