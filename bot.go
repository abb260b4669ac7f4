package tilecast

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults used when a Bot field is left zero.
const (
	DefaultPushConcurrency  = 32
	DefaultFetchConcurrency = 8
	// DefaultFanOutPage is how many subscribers of a global feed one
	// transaction enqueues for: a run with more is paged (FanOutJob), so
	// memory stays flat however many channels a feed has.
	DefaultFanOutPage  = 4096
	DefaultMaxAttempts = 10

	// ChannelWait is how long a channel rests after 406 (daily cap) or 412
	// (device inactive): MPNS may block senders that retry within the hour.
	ChannelWait = 61 * time.Minute

	retryBase     = 4 * time.Minute // QueueFull / 503: 4, 8, 16, 32 … minutes
	retryCap      = time.Hour
	feedRetryBase = time.Minute
	feedRetryCap  = 6 * time.Hour
	dueBatch      = 256 // outbox entries read per dispatcher pass
	// recordFillWait is the longest the recorder waits, during a burst of
	// sends, for the whole send window to be answered (see recorder). It
	// costs latency, not safety: the window (2 × push.concurrency) bounds
	// what a crash can send twice, however long the wait.
	recordFillWait = 20 * time.Millisecond
)

// Observer receives what the Bot did, for metrics.
type Observer interface {
	ObserveFetch(feed, result string, newItems int)
	ObservePush(o Outcome)
	// ObservePossibleDuplicates is told, when delivery starts, how many
	// entries the previous run handed out without recording an outcome,
	// and, as outcomes are recorded, how many sends are to be sent again
	// although they may have arrived (no answer after the request was
	// written: ErrSentUnanswered).
	ObservePossibleDuplicates(n int)
}

// Failpoint names: the boundaries where a crash must lose nothing
// (reliability.md S2). The store's own transactions sit between them.
const (
	FailAfterFetch  = "after-fetch"  // fetched, nothing committed yet
	FailAfterCommit = "after-commit" // seen + outbox committed, nothing sent
	FailAfterSend   = "after-send"   // a push answered, its outcome not recorded
	FailAfterRecord = "after-record" // a batch of outcomes committed

	// Inside the store's write transactions, before they commit (S2 b, e);
	// the store calls these through its own hook, not the Bot's.
	FailInCommit = "in-commit" // seen, state and outbox written, not committed
	FailInRecord = "in-record" // a batch of outcomes written, not committed
	// FailInMigrate is inside each batch of the schema migration that
	// rewrites a state file's records, before it commits.
	FailInMigrate = "in-migrate"
)

func (b *Bot) failpoint(name string) {
	if b.Failpoint != nil {
		b.Failpoint(name)
	}
}

// Bot runs the pipeline. Set the exported fields, then call RunFeed from a
// scheduler and Deliver (or DeliverDue) to drain the outbox. A Bot is safe
// for concurrent use; SetFeeds swaps the feed set on a config reload.
type Bot struct {
	Fetcher Fetcher
	// Renderer renders the notifications of MPNS channels (and of
	// channels stored without a transport), unless Renderers has one for
	// TransportMPNS.
	Renderer Renderer
	// Renderers render the notifications of each transport's channels
	// (Channel.Transport). A channel whose transport has no renderer gets
	// no notifications; the run logs it once.
	Renderers map[Transport]Renderer
	// Pusher sends every notification; a daemon of several transports
	// gives a PushMux (behind a Breaker), which picks the channel's.
	Pusher Pusher
	Store  Store
	Logger *slog.Logger

	PushConcurrency  int
	FetchConcurrency int // per-user copies of one feed fetched at once
	MaxAttempts      int
	// RetryBase is the first retry delay after QueueFull, 503 or a network
	// error; it doubles per attempt up to an hour. Zero means 4 minutes
	// (the MPNS guidance); the demo shortens it to seconds.
	RetryBase time.Duration
	// FanOutPage overrides DefaultFanOutPage (tests page small).
	FanOutPage int

	// Observer, when set, is told of every fetch and every send outcome
	// (metrics). It must not block.
	Observer Observer
	// SendLog, when set, counts the sends a crash leaves unrecorded
	// (possible duplicates, logged and observed at the next start).
	SendLog SendLog
	// Ticks, when set, is asked before each scheduled run (RunTick) of a
	// feed key, so that instances sharing a state run each tick once.
	Ticks TickClaimer
	// Caps, when set, holds the daily cap of unauthenticated channels
	// across the instances sharing the state (see DailyCaps); nil, the
	// dispatcher counts each channel's sends of the day itself.
	Caps DailyCaps
	// Failpoint, when set, is called at the pipeline's commit boundaries
	// with the names Failpoint* below; the crash tests panic or exit there.
	Failpoint func(point string)

	// Now is the clock; nil means time.Now. Tests inject a fake.
	Now func() time.Time
	// Jitter returns a factor in [0.8, 1.2) applied to retry delays; nil uses math/rand.
	Jitter func() float64

	// Set by a reload (SetFetchConcurrency, SetMaxAttempts) while the Bot
	// runs, in place of the fields of the same name; 0: not set.
	fetchConcurrency, maxAttempts atomic.Int64

	mu         sync.Mutex
	feeds      map[string]*Feed
	defaultTTL TTL                   // [defaults]: for entries whose feed is no longer configured
	running    map[FeedKey]time.Time // fetches in progress and when they started
	// unwritten holds the last fetch of keys whose answer was not worth a
	// write (304, unchanged 200), so status pages can still show it.
	unwritten map[FeedKey]fetchMark
	wake      chan struct{}
	// lastPass is when the deliverer last made progress (a pass over the
	// due entries, or an entry handed to a worker), in Unix nanoseconds,
	// for health and the watchdog: a dispatcher waiting for a slow push
	// service to free a worker is working, not stuck.
	lastPass atomic.Int64
	// recordWait is set while the recorder retries outcomes the store
	// refuses (a database down, a full disk): the dispatcher then waits
	// for send-window slots and stops stamping lastPass, though the
	// deliverer is working.
	recordWait storeWaitMark
}

// StoreWait describes the deliverer waiting for a store that refuses to
// record send outcomes. The zero value means it is not waiting.
type StoreWait struct {
	// Since is when the first write of the current wait failed.
	Since time.Time
	// RetryAt is when the recorder tries the write again: a recorder past
	// it by more than a store call can take is stuck, not waiting.
	RetryAt time.Time
	// Err is the last failure.
	Err error
}

// storeWaitMark holds the recorder's StoreWait for health checks, which
// read it from other goroutines.
type storeWaitMark struct {
	mu sync.Mutex
	w  StoreWait
}

// failed notes a failed write, retried after retryIn.
func (m *storeWaitMark) failed(err error, retryIn time.Duration) {
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.w.Since.IsZero() {
		m.w.Since = now
	}
	m.w.RetryAt, m.w.Err = now.Add(retryIn), err
}

func (m *storeWaitMark) clear() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.w = StoreWait{}
}

func (m *storeWaitMark) get() StoreWait {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.w
}

// SetFetchConcurrency changes FetchConcurrency of a running Bot (a config
// reload): per-user feed runs that start afterwards use n.
func (b *Bot) SetFetchConcurrency(n int) { b.fetchConcurrency.Store(int64(n)) }

// SetMaxAttempts changes MaxAttempts of a running Bot (a config reload):
// send results recorded afterwards are judged by n.
func (b *Bot) SetMaxAttempts(n int) { b.maxAttempts.Store(int64(n)) }

// fetchConc is the per-user fetch concurrency in force.
func (b *Bot) fetchConc() int {
	n := b.FetchConcurrency
	if v := b.fetchConcurrency.Load(); v > 0 {
		n = int(v)
	}
	if n <= 0 {
		return DefaultFetchConcurrency
	}
	return n
}

// attemptLimit is the MaxAttempts in force.
func (b *Bot) attemptLimit() int {
	n := b.MaxAttempts
	if v := b.maxAttempts.Load(); v > 0 {
		n = int(v)
	}
	if n <= 0 {
		return DefaultMaxAttempts
	}
	return n
}

func (b *Bot) now() time.Time {
	if b.Now != nil {
		return b.Now()
	}
	return time.Now()
}

// rendererFor returns the renderer of transport t's channels, nil if none.
func (b *Bot) rendererFor(t Transport) Renderer {
	if r := b.Renderers[t]; r != nil {
		return r
	}
	if t == TransportMPNS || t == "" {
		return b.Renderer
	}
	return nil
}

func (b *Bot) log() *slog.Logger {
	if b.Logger != nil {
		return b.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func (b *Bot) jitter(d time.Duration) time.Duration {
	f := 0.8 + 0.4*rand.Float64()
	if b.Jitter != nil {
		f = b.Jitter()
	}
	return time.Duration(float64(d) * f)
}

// wakeCh returns the channel that nudges the deliverer when new work is queued.
func (b *Bot) wakeCh() chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.wake == nil {
		b.wake = make(chan struct{}, 1)
	}
	return b.wake
}

// Wake makes an idle deliverer look for due entries at once rather than
// at its next poll: another process added work to a shared state (a
// database's LISTEN/NOTIFY). It never blocks.
func (b *Bot) Wake() { b.nudge() }

func (b *Bot) nudge() {
	select {
	case b.wakeCh() <- struct{}{}:
	default:
	}
}

// SetFeeds replaces the feed set (used for tile-on-subscribe and reloads).
func (b *Bot) SetFeeds(feeds []Feed) {
	m := make(map[string]*Feed, len(feeds))
	for i := range feeds {
		f := feeds[i]
		m[f.Name] = &f
	}
	b.mu.Lock()
	b.feeds = m
	b.mu.Unlock()
}

// SetDefaultTTL sets the times to live ([defaults] toast_ttl etc.) of the
// notifications whose feed is no longer configured; nil means DefaultTTL.
// The daemon sets it with the feeds, at start and on every reload.
func (b *Bot) SetDefaultTTL(ttl TTL) {
	b.mu.Lock()
	b.defaultTTL = ttl
	b.mu.Unlock()
}

// ttl returns the time to live of feed's notifications of kind k: the
// feed's own, else [defaults]' for a feed no longer configured.
func (b *Bot) ttl(feed string, k Kind) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if f, ok := b.feeds[feed]; ok {
		return f.TTL.Of(k)
	}
	return b.defaultTTL.Of(k)
}

// Feed returns the named feed of the current set.
func (b *Bot) Feed(name string) (*Feed, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f, ok := b.feeds[name]
	return f, ok
}

// RunFeed fetches feed f now — once, or once per subscribed user for a
// per-user feed — and commits what is new. It returns after the commit; the
// deliverer sends. A fetch of the same feed (and user) still running is
// skipped and logged, so slow feeds never overlap.
func (b *Bot) RunFeed(ctx context.Context, f *Feed) error {
	return b.runFeed(ctx, f, false, time.Time{})
}

// RunFeedNow is RunFeed ignoring the backoff and the server's "not before" (`tilecast once`).
func (b *Bot) RunFeedNow(ctx context.Context, f *Feed) error {
	return b.runFeed(ctx, f, true, time.Time{})
}

// RunTick is RunFeed for the tick of f's schedule at time at (the
// scheduler's): with Ticks set, each feed key (each user's, for a
// per-user feed) is fetched only when this instance claims (key, at).
func (b *Bot) RunTick(ctx context.Context, f *Feed, at time.Time) error {
	return b.runFeed(ctx, f, false, at)
}

func (b *Bot) runFeed(ctx context.Context, f *Feed, force bool, tick time.Time) error {
	if !f.PerUser() {
		return b.poll(ctx, f, "", force, tick)
	}
	users, err := b.Store.FeedUsers(f.Name)
	if err != nil {
		return err
	}
	sem := make(chan struct{}, b.fetchConc())
	var wg sync.WaitGroup
	var errMu sync.Mutex
	var errs []error
	for _, u := range users {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := b.poll(ctx, f, u, force, tick); err != nil {
				errMu.Lock()
				errs = append(errs, err)
				errMu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// claim marks k as being fetched; false if a fetch of k is already running.
func (b *Bot) claim(k FeedKey) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.running == nil {
		b.running = make(map[FeedKey]time.Time)
	}
	if _, ok := b.running[k]; ok {
		return false
	}
	b.running[k] = time.Now()
	return true
}

// Progress reports the age of the oldest fetch still running (0 if none)
// and when the deliverer last made a pass (zero before Deliver starts). The
// daemon's health check and systemd watchdog use it to tell "alive but
// stuck" from working.
func (b *Bot) Progress() (oldestFetch time.Duration, lastDispatch time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, start := range b.running {
		oldestFetch = max(oldestFetch, time.Since(start))
	}
	if ns := b.lastPass.Load(); ns != 0 {
		lastDispatch = time.Unix(0, ns)
	}
	return oldestFetch, lastDispatch
}

// StoreWait reports whether the deliverer is waiting for the store to
// record send outcomes, and since when. While it waits, its dispatcher
// stops (the send window is full of unrecorded results) and Progress's
// lastDispatch ages, but the deliverer is not stuck: health checks count
// a retry that is on time as progress, since restarting the process
// would not make the store write.
func (b *Bot) StoreWait() StoreWait { return b.recordWait.get() }

func (b *Bot) release(k FeedKey) {
	b.mu.Lock()
	delete(b.running, k)
	b.mu.Unlock()
}

// poll is one fetch → diff → build → commit of one feed key. Fetch failures
// are recorded in the feed state and logged; only store failures are
// returned. A non-zero tick is the scheduled time of the run, which
// another instance may have claimed (Ticks).
func (b *Bot) poll(ctx context.Context, f *Feed, user string, force bool, tick time.Time) error {
	k := FeedKey{Feed: f.Name, User: user}
	lg := b.log()
	target, err := f.URLFor(user)
	if err != nil {
		// A user name that cannot stand where this feed's URL puts it (not
		// a DNS label for a host-label feed, a name registered before the
		// rules): that user's fetch is skipped, the other users' go on.
		lg.Warn("fetch skipped: user refused for this feed", "feed", f.Name, "user", user, "error", err.Error())
		return nil
	}
	if !b.claim(k) {
		lg.Warn("fetch skipped: previous run still going", "feed", f.Name, "user", user)
		return nil
	}
	defer b.release(k)
	if b.Ticks != nil && !tick.IsZero() && !force {
		ok, err := b.Ticks.ClaimTick(k, tick)
		if err != nil {
			return fmt.Errorf("claim tick %s of feed %s: %w", tick.Format(time.RFC3339), f.Name, err)
		}
		if !ok {
			lg.Debug("fetch skipped: another instance runs this tick", "feed", f.Name, "user", user, "tick", tick)
			return nil
		}
		defer func() {
			if err := b.Ticks.TickDone(k, tick); err != nil {
				lg.Warn("mark tick done", "feed", f.Name, "user", user, "error", err.Error())
			}
		}()
	}
	if user == "" {
		// A run of this feed that stopped mid-delivery finishes first:
		// its items are already marked seen.
		if err := b.resumeFanOut(ctx, f); err != nil {
			return err
		}
	}

	st, exists, err := b.Store.FeedState(k)
	if err != nil {
		return err
	}
	start := b.now()
	if !force && start.Before(st.NextFetch) {
		lg.Debug("fetch deferred", "feed", f.Name, "user", user, "until", st.NextFetch)
		return nil
	}
	res, ferr := b.Fetcher.Fetch(ctx, target, st.Validators)
	took := b.now().Sub(start)
	b.failpoint(FailAfterFetch)
	if ferr != nil {
		if ctx.Err() != nil {
			return nil // shutting down: not the feed's fault
		}
		b.fetchFailed(f, k, &st, start, ferr)
		b.observeFetch(f.Name, "error", 0)
		// WARN: worth a look, not yet an alert; the one ERROR is "feed
		// broken" (fetchFailed), once the feed has failed for broken_after.
		lg.Warn("fetch", "feed", f.Name, "user", user, "status", fetchStatus(ferr), "new", 0,
			"duration", took, "error", ferr.Error())
		return b.Store.SaveFeedState(k, st)
	}
	if res.NotModified {
		b.observeFetch(f.Name, "not_modified", 0)
		lg.Info("fetch", "feed", f.Name, "user", user, "status", res.Status, "new", 0, "duration", took)
		if st.Failures == 0 && !res.NotBefore.After(st.NextFetch) {
			b.fetchedUnwritten(k, start, "not_modified")
			return nil // a 304 costs no write transaction
		}
		b.fetchRecovered(f, k, &st)
		st.LastFetch, st.LastResult, st.LastSuccess = start, "not_modified", start
		st.NextFetch = res.NotBefore
		return b.Store.SaveFeedState(k, st)
	}

	newN, err := b.commit(ctx, f, k, st, exists, res, start)
	if err != nil {
		b.observeFetch(f.Name, "error", 0)
		lg.Error("fetch", "feed", f.Name, "user", user, "status", res.Status, "new", 0,
			"duration", took, "error", err.Error())
		return err
	}
	b.observeFetch(f.Name, "ok", newN)
	lg.Info("fetch", "feed", f.Name, "user", user, "status", res.Status, "new", newN, "duration", took)
	return nil
}

func (b *Bot) observeFetch(feed, result string, n int) {
	if b.Observer != nil {
		b.Observer.ObserveFetch(feed, result, n)
	}
}

func fetchStatus(err error) int {
	var fe *FetchError
	if errors.As(err, &fe) {
		return fe.Status
	}
	return 0
}

// fetchFailed advances the feed's backoff: exponential, capped at 6 h, never
// giving up, later if the server asked (Retry-After); broken after BrokenAfter.
func (b *Bot) fetchFailed(f *Feed, k FeedKey, st *FeedState, now time.Time, err error) {
	st.Failures++
	if st.FailingSince.IsZero() {
		st.FailingSince = now
	}
	st.LastFetch, st.LastResult = now, err.Error()
	d := feedRetryBase << min(st.Failures-1, 20)
	d = min(d, feedRetryCap)
	st.NextFetch = now.Add(d)
	var fe *FetchError
	if errors.As(err, &fe) && fe.RetryAfter.After(st.NextFetch) {
		st.NextFetch = fe.RetryAfter
	}
	if !st.Broken && f.BrokenAfter > 0 && now.Sub(st.FailingSince) >= f.BrokenAfter {
		st.Broken = true
		// The one ERROR-level line a failing feed gets: an operator's
		// alert can key on it without drowning in single failed fetches.
		b.log().Error("feed broken", "feed", k.Feed, "user", k.User, "failing_since", st.FailingSince,
			"failures", st.Failures, "error", err.Error())
	}
}

func (b *Bot) fetchRecovered(f *Feed, k FeedKey, st *FeedState) {
	if st.Broken {
		b.log().Info("feed recovered", "feed", k.Feed, "user", k.User, "failing_since", st.FailingSince)
	}
	st.Failures, st.FailingSince, st.Broken = 0, time.Time{}, false
}

// commit diffs res against the seen set, builds the notifications and writes
// both in one store transaction. It returns the number of new items.
func (b *Bot) commit(ctx context.Context, f *Feed, k FeedKey, st FeedState, exists bool, res *FeedResult, now time.Time) (int, error) {
	items := uniqueItems(res.Items)
	ids := make([]string, len(items))
	for i, it := range items {
		ids[i] = it.ID
	}
	unseen, err := b.Store.Unseen(k, ids)
	if err != nil {
		return 0, err
	}
	isNew := make(map[string]bool, len(unseen))
	for _, id := range unseen {
		isNew[id] = true
	}
	var fresh []Item
	for _, it := range items {
		if isNew[it.ID] {
			fresh = append(fresh, it)
		}
	}
	newestFirst(fresh)
	if len(fresh) == 0 && unchanged(&st, exists, res, now) {
		b.fetchedUnwritten(k, now, "ok")
		return 0, nil // like a 304: no write transaction
	}

	b.fetchRecovered(f, k, &st)
	st.Validators = res.Validators
	st.LastFetch, st.LastResult, st.LastSuccess = now, "ok", now
	st.NextFetch = res.NotBefore
	st.Title, st.Link = res.Title, res.Link
	info := FeedInfo{Name: f.Name, Title: res.Title, Link: res.Link}
	if info.Title == "" {
		info.Title = f.Name
	}

	baseline := (!exists || !st.Baselined) && f.FirstRun != FirstRunNotify
	st.Baselined = true
	if len(fresh) > 0 || st.Latest == nil {
		latest := TemplateData{Feed: info, NewCount: len(fresh), User: k.User}
		if len(fresh) > 0 {
			latest.Item = fresh[0]
		} else if all := newestFirstCopy(items); len(all) > 0 {
			latest.Item = all[0]
		}
		st.Latest = &latest
	}

	st.SeenRefreshed = now
	c := Commit{Key: k, State: st, Seen: ids, Now: now}
	var (
		fan       *fanRenderer
		firstPage []Channel
		nextPage  string
	)
	if len(fresh) > 0 && !baseline {
		if k.User != "" {
			ns, err := b.build(ctx, f, k, info, fresh, now)
			if err != nil {
				return 0, err
			}
			c.Notifications = ns
		} else {
			// A global feed: one transaction if its subscribers fit a
			// page, else a paged job whose first page is already read.
			firstPage, nextPage, err = b.Store.SubscribersAfter(f, "", b.fanOutPage())
			if err != nil {
				return 0, err
			}
			fan = b.newFanRenderer(f, "", info, fresh, true)
			if nextPage == "" {
				if c.Notifications, err = fan.notifications(ctx, firstPage, now); err != nil {
					return 0, err
				}
				fan = nil
			} else {
				c.FanOut = &FanOutJob{Feed: f.Name, Info: info, Fresh: fresh, Now: now}
			}
		}
	}
	if err := b.Store.Commit(c); err != nil {
		return 0, err
	}
	b.failpoint(FailAfterCommit)
	if len(c.Notifications) > 0 {
		b.nudge()
	}
	if fan != nil {
		if err := b.fanOut(ctx, f, *c.FanOut, fan, firstPage, nextPage); err != nil {
			return 0, err
		}
	}
	if baseline {
		return 0, nil
	}
	return len(fresh), nil
}

// build renders, for every subscribed channel, ≤ MaxToasts toasts (+1 summary
// toast when there are more) and one tile update. Payloads are rendered once
// per distinct channel user, not once per channel.
func (b *Bot) build(ctx context.Context, f *Feed, k FeedKey, info FeedInfo, fresh []Item, now time.Time) ([]Notification, error) {
	subs, err := b.Store.Subscribers(f, k.User)
	if err != nil {
		return nil, err
	}
	if len(subs) == 0 {
		return nil, nil
	}
	return b.newFanRenderer(f, k.User, info, fresh, true).notifications(ctx, subs, now)
}

// fanRenderer renders a run's payloads once per channel user (templates may
// use .User) and transport (each has its payloads), and turns them into one
// notification per subscriber and payload.
type fanRenderer struct {
	b     *Bot
	f     *Feed
	info  FeedInfo
	fresh []Item
	flood bool
	cache map[renderKey][]payload
}

// renderKey is what a run's payloads differ by.
type renderKey struct {
	user      string
	transport Transport
}

// payload is one rendered notification, shared by the channels of a user.
type payload struct {
	kind    Kind
	itemID  string
	payload []byte
}

// newFanRenderer prepares the rendering of fresh; warn logs the flood guard
// (once per run: a paged run makes one renderer per resumption).
func (b *Bot) newFanRenderer(f *Feed, user string, info FeedInfo, fresh []Item, warn bool) *fanRenderer {
	flood := f.FloodLimit > 0 && len(fresh) > f.FloodLimit
	if flood && warn {
		b.log().Warn("flood guard: only a tile and a summary toast are sent", "feed", f.Name, "user", user,
			"new", len(fresh), "flood_limit", f.FloodLimit)
	}
	return &fanRenderer{b: b, f: f, info: info, fresh: fresh, flood: flood, cache: map[renderKey][]payload{}}
}

// render renders the run's payloads for user's channels of transport t.
func (r *fanRenderer) render(user string, t Transport) []payload {
	f, fresh, lg := r.f, r.fresh, r.b.log()
	rr := r.b.rendererFor(t)
	if rr == nil {
		lg.Error("no renderer for the transport: its channels get nothing of this run", "feed", f.Name, "user", user,
			"transport", string(t))
		return nil
	}
	var out []payload
	data := TemplateData{Feed: r.info, Item: fresh[0], Items: fresh, NewCount: len(fresh), User: user}
	if f.Toast != nil {
		toasts := min(len(fresh), f.MaxToasts)
		if r.flood {
			toasts = 0
		}
		for _, it := range fresh[:toasts] {
			d := data
			d.Item = it
			req, err := rr.Toast(f, &d)
			if err != nil {
				lg.Error("render toast", "feed", f.Name, "user", user, "item", it.ID, "error", err.Error(), "transport", string(t))
				continue
			}
			out = append(out, payload{KindToast, it.ID, req})
		}
		if more := len(fresh) - toasts; more > 0 {
			req, err := rr.SummaryToast(f, &data, more)
			if err != nil {
				lg.Error("render summary toast", "feed", f.Name, "user", user, "error", err.Error(), "transport", string(t))
			} else {
				out = append(out, payload{KindToast, "", req})
			}
		}
	}
	if f.Tile != nil {
		parts, err := rr.TileUpdate(f, &data)
		if err != nil {
			lg.Error("render tile", "feed", f.Name, "user", user, "error", err.Error(), "transport", string(t))
		}
		for _, p := range parts {
			out = append(out, payload{p.Kind, fresh[0].ID, p.Payload})
		}
	}
	return out
}

// notifications returns the notifications of subs, due at now.
func (r *fanRenderer) notifications(ctx context.Context, subs []Channel, now time.Time) ([]Notification, error) {
	ns := make([]Notification, 0, len(subs)*2)
	for i := range subs {
		if i%1024 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		ch := &subs[i]
		k := renderKey{ch.User, TransportOf(ch)}
		ps, ok := r.cache[k]
		if !ok {
			ps = r.render(k.user, k.transport)
			r.cache[k] = ps
		}
		for _, p := range ps {
			ns = append(ns, Notification{
				ChannelID: ch.ID, Feed: r.f.Name, User: ch.User, ItemID: p.itemID,
				Kind: p.kind, Payload: p.payload, NextAttempt: now, Created: now,
			})
		}
	}
	return ns, nil
}

// fetchMark is a successful fetch that wrote nothing.
type fetchMark struct {
	at     time.Time
	result string // "ok" or "not_modified", as FeedState.LastResult
}

func (b *Bot) fetchedUnwritten(k FeedKey, at time.Time, result string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.unwritten == nil {
		b.unwritten = make(map[FeedKey]fetchMark)
	}
	b.unwritten[k] = fetchMark{at, result}
}

// OverlayFetches brings stored feed states up to date with the fetches that
// wrote nothing since (a 304 or an unchanged 200 saves no state): their
// time becomes LastFetch and LastSuccess. Status pages call it on what they
// read from the store; nothing is written.
func (b *Bot) OverlayFetches(states map[FeedKey]FeedState) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for k, m := range b.unwritten {
		st, ok := states[k]
		if !ok || !m.at.After(st.LastFetch) {
			continue
		}
		st.LastFetch, st.LastSuccess, st.LastResult = m.at, m.at, m.result
		states[k] = st
	}
}

// SeenRefreshInterval bounds how long an unchanged feed goes without its
// seen set's times being rewritten. Far below the store's 30-day seen
// retention, so an item still listed is never pruned.
const SeenRefreshInterval = 24 * time.Hour

// unchanged reports whether a 200 answer with no new items would change
// nothing worth a write: no failure to clear, same validators, title and
// link, no later "not before", a current tile to keep, and a seen set
// refreshed within SeenRefreshInterval. Then it costs what a 304 costs
// (the last fetch time is not saved either).
func unchanged(st *FeedState, exists bool, res *FeedResult, now time.Time) bool {
	return exists && st.Baselined && st.Failures == 0 && st.Latest != nil &&
		res.Validators == st.Validators && res.Title == st.Title && res.Link == st.Link &&
		!res.NotBefore.After(st.NextFetch) && now.Sub(st.SeenRefreshed) < SeenRefreshInterval
}

func (b *Bot) fanOutPage() int {
	if b.FanOutPage > 0 {
		return b.FanOutPage
	}
	return DefaultFanOutPage
}

// fanOut runs a paged delivery to its end, one transaction per page of
// subscribers (subs/next: a page already read, if any), skipping the
// channels created after job.Now. A cancelled ctx
// stops it between pages; the job stays in the store and is resumed by the
// feed's next run or the next start (ResumeFanOuts).
func (b *Bot) fanOut(ctx context.Context, f *Feed, job FanOutJob, r *fanRenderer, subs []Channel, next string) error {
	for read := subs != nil; ; read = false {
		if ctx.Err() != nil {
			return nil
		}
		if !read {
			var err error
			if subs, next, err = b.Store.SubscribersAfter(f, job.Cursor, b.fanOutPage()); err != nil {
				return err
			}
		}
		// A channel registered after the run started gets none of it,
		// however late its page is read (design.md §3: no backlog; it got
		// the feed's tile on subscribing). A channel rotated to a new URI
		// keeps its creation time, and so its share of the run.
		subs = slices.DeleteFunc(subs, func(ch Channel) bool { return ch.Created.After(job.Now) })
		ns, err := r.notifications(ctx, subs, job.Now)
		if err != nil {
			return nil // cancelled
		}
		from := job.Cursor
		job.Cursor = next
		if err := b.Store.FanOutStep(job, from, ns, next == ""); err != nil {
			if errors.Is(err, ErrFanOutMoved) {
				// Another instance resuming the same job enqueued this
				// page first (or finished the job): it carries on, and
				// this run's copy of the page is dropped, not sent twice.
				b.log().Info("interrupted delivery taken over by another run", "feed", f.Name)
				return nil
			}
			return err
		}
		if len(ns) > 0 {
			b.nudge()
		}
		if next == "" {
			return nil
		}
	}
}

// resumeFanOut finishes f's job left by a run that stopped mid-delivery.
// The caller holds f's claim.
func (b *Bot) resumeFanOut(ctx context.Context, f *Feed) error {
	jobs, err := b.Store.FanOutJobs()
	if err != nil {
		return err
	}
	for _, job := range jobs {
		if job.Feed != f.Name || len(job.Fresh) == 0 {
			continue
		}
		b.log().Info("resuming an interrupted delivery", "feed", f.Name, "new", len(job.Fresh))
		return b.fanOut(ctx, f, job, b.newFanRenderer(f, "", job.Info, job.Fresh, false), nil, "")
	}
	return nil
}

// ResumeFanOuts finishes the deliveries that the previous run left
// unfinished (see FanOutJob). The daemon calls it at start; a feed being
// fetched right now is skipped, as its run resumes the job itself. The job
// of a feed no longer configured is dropped with a warning.
func (b *Bot) ResumeFanOuts(ctx context.Context) error {
	jobs, err := b.Store.FanOutJobs()
	if err != nil {
		return err
	}
	var errs []error
	for _, job := range jobs {
		f, ok := b.Feed(job.Feed)
		if !ok || f.PerUser() {
			b.log().Warn("dropping an interrupted delivery: its feed is no longer configured", "feed", job.Feed,
				"new", len(job.Fresh))
			if err := b.Store.FanOutStep(job, job.Cursor, nil, true); err != nil && !errors.Is(err, ErrFanOutMoved) {
				errs = append(errs, err)
			}
			continue
		}
		k := FeedKey{Feed: f.Name}
		if !b.claim(k) {
			continue
		}
		errs = append(errs, b.resumeFanOut(ctx, f))
		b.release(k)
	}
	return errors.Join(errs...)
}

// uniqueItems drops repeated IDs (a feed that duplicates GUIDs), keeping the first.
func uniqueItems(items []Item) []Item {
	seen := make(map[string]bool, len(items))
	out := make([]Item, 0, len(items))
	for _, it := range items {
		if it.ID == "" || seen[it.ID] {
			continue
		}
		seen[it.ID] = true
		out = append(out, it)
	}
	return out
}

// newestFirst orders items by Published, newest first; items without a date
// keep their feed order (feeds list newest first by convention).
func newestFirst(items []Item) {
	sort.SliceStable(items, func(i, j int) bool {
		a, b := items[i].Published, items[j].Published
		if a.IsZero() || b.IsZero() {
			return false
		}
		return a.After(b)
	})
}

func newestFirstCopy(items []Item) []Item {
	c := append([]Item(nil), items...)
	newestFirst(c)
	return c
}

// Subscribe queues the current tile of every feed ch subscribes to that has
// tile_on_subscribe set, so a new device shows live data at once instead of
// waiting for the next new item. Feeds never fetched yet are skipped.
func (b *Bot) Subscribe(ch Channel) error {
	b.mu.Lock()
	feeds := make([]*Feed, 0, len(b.feeds))
	for _, f := range b.feeds {
		feeds = append(feeds, f)
	}
	b.mu.Unlock()
	sort.Slice(feeds, func(i, j int) bool { return feeds[i].Name < feeds[j].Name })
	now := b.now()
	var ns []Notification
	for _, f := range feeds {
		if f.Tile == nil || !f.TileOnSubscribe || !ch.Subscribed(f) {
			continue
		}
		k := FeedKey{Feed: f.Name}
		if f.PerUser() {
			k.User = ch.User
		}
		st, ok, err := b.Store.FeedState(k)
		if err != nil {
			return err
		}
		if !ok || st.Latest == nil {
			continue
		}
		d := *st.Latest
		d.User = ch.User
		t := TransportOf(&ch)
		rr := b.rendererFor(t)
		if rr == nil {
			b.log().Error("no renderer for the transport: no tile on subscribe", "feed", f.Name, "channel", ch.ID,
				"transport", string(t))
			return nil
		}
		parts, err := rr.TileUpdate(f, &d)
		if err != nil {
			b.log().Error("render tile", "feed", f.Name, "user", ch.User, "error", err.Error(), "transport", string(t))
		}
		for _, p := range parts {
			ns = append(ns, Notification{ChannelID: ch.ID, Feed: f.Name, User: ch.User, ItemID: d.Item.ID,
				Kind: p.Kind, Payload: p.Payload, NextAttempt: now, Created: now})
		}
	}
	if len(ns) == 0 {
		return nil
	}
	if err := b.Store.Enqueue(ns); err != nil {
		return err
	}
	b.nudge()
	return nil
}
