package tilecast

import (
	"context"
	"errors"
	"time"
)

// ErrFanOutMoved is a FanOutStep refused because the job is no longer at
// the page the caller read: another run (another instance resuming the same
// job) enqueued that page or finished the job. The caller stops: the job is
// that run's now.
var ErrFanOutMoved = errors.New("fan-out job moved on: another run stepped past this page")

// The interfaces below are what the Bot calls. They are declared here, by
// their consumer; fetch, notify/mpns and store implement them without
// importing each other.

// Fetcher fetches and parses one feed URL with a conditional GET.
// A 304 returns a result with NotModified set and nothing parsed.
// Failures are *FetchError (with RetryAfter when the server sent one).
type Fetcher interface {
	Fetch(ctx context.Context, url string, v Validators) (*FeedResult, error)
}

// Renderer turns a feed's templates and one run's data into the payloads
// (Notification.Payload) of one transport; the Bot has one per transport
// (Bot.Renderers) and renders each notification for its channel's.
// Template output is truncated to fit the transport's payload limit; a
// payload that still cannot fit is ErrPayloadTooLarge.
type Renderer interface {
	Toast(f *Feed, d *TemplateData) ([]byte, error)
	// SummaryToast is the "N more in <feed>" toast sent after MaxToasts
	// toasts, or alone when the flood guard trips.
	SummaryToast(f *Feed, d *TemplateData, more int) ([]byte, error)
	// TileUpdate renders f's tile for d as the notifications it is on
	// the renderer's transport, in send order: one KindTile on MPNS
	// (the count inside it); on a transport with badge notifications a
	// KindTile and a KindBadge (the count), either one alone when the
	// other has nothing to show. Each is an outbox entry of its own.
	TileUpdate(f *Feed, d *TemplateData) ([]Rendered, error)
}

// Pusher sends notification n to channel ch and classifies the response.
// The transport builds its request at send time from ch, n.Kind and
// n.Payload. ttl is what is left of n's time to live (0: unknown or
// none), for the protocols that carry it. It never returns an error:
// network failures are a Result with VerdictRetry.
type Pusher interface {
	Push(ctx context.Context, ch *Channel, n *Notification, ttl time.Duration) Result
}

// Store is the persistent state. Every method is one transaction.
type Store interface {
	FeedState(k FeedKey) (FeedState, bool, error) // bool: a state exists
	SaveFeedState(k FeedKey, st FeedState) error
	// Unseen returns the subset of ids not in k's seen set, in the given order.
	Unseen(k FeedKey, ids []string) ([]string, error)
	// Commit marks ids seen (and prunes ids unseen for 30 days), saves the
	// feed state and enqueues the notifications, all in one transaction.
	// A tile replaces a waiting tile for the same channel+feed; a tile whose
	// payload equals the last one delivered to that channel+feed is skipped.
	Commit(c Commit) error

	// Subscribers returns the channels that get feed f (for user, when f is per-user).
	Subscribers(f *Feed, user string) ([]Channel, error)
	// SubscribersAfter pages the subscribers of global feed f: up to limit
	// channels after cursor ("" = from the start) and the cursor of the
	// next page ("" when this page is the last).
	SubscribersAfter(f *Feed, cursor string, limit int) ([]Channel, string, error)
	// FanOutStep enqueues ns and saves job (its Cursor moved past them) in
	// one transaction; done deletes the job instead. from is the cursor the
	// page was read at: when the stored job's cursor is no longer from (or
	// the job is gone), another run already stepped past this page, and
	// FanOutStep enqueues nothing and returns an error wrapping
	// ErrFanOutMoved. With several instances on one state (PostgreSQL) the
	// check and the step are one transaction under the job's row lock, so
	// a page is enqueued once however many instances resume the job.
	FanOutStep(job FanOutJob, from string, ns []Notification, done bool) error
	// FanOutJobs returns the unfinished jobs, at most one per feed.
	FanOutJobs() ([]FanOutJob, error)
	// FeedUsers returns the distinct users with a channel naming feed f.
	FeedUsers(feed string) ([]string, error)
	Channel(id string) (Channel, error)

	// Due returns up to limit entries whose NextAttempt ≤ now, oldest first,
	// with their channels, skipping the ids in busy.
	Due(now time.Time, limit int, busy func(id uint64) bool) ([]Pending, error)
	// NextDue returns the earliest NextAttempt in the outbox (zero if empty).
	NextDue() (time.Time, error)
	// Record applies a batch of send results in one transaction.
	Record(recs []Record) error
	// Enqueue adds notifications outside a feed commit (tile on subscribe).
	Enqueue(ns []Notification) error
}

// Commit is one feed run's atomic write.
type Commit struct {
	Key           FeedKey
	State         FeedState
	Seen          []string // every item ID present in the feed now
	Now           time.Time
	Notifications []Notification
	// FanOut, instead of Notifications, starts a paged delivery (see
	// FanOutJob). The store refuses it while the feed has a job left.
	FanOut *FanOutJob
}

// Pending is a due outbox entry with its channel.
type Pending struct {
	Notification
	Channel Channel
}

// Op is what the store does with an outbox entry after a send (or a decision not to send).
type Op int

// Record operations.
const (
	OpDone          Op = iota // delivered or suppressed: delete the entry
	OpRetry                   // keep it, Attempts+1, next attempt at NextAttempt
	OpDead                    // permanently failed or max_attempts reached: move it to the dead letters with its last outcome
	OpRemoveChannel           // delete the channel and all its entries
	OpPostpone                // not sent (channel waiting or capped): move to NextAttempt, attempts unchanged
	// OpExpire: not sent, the entry outlived its time to live: delete it
	// and write Outcome (ActionExpired) to the channel's ledger; the
	// channel's daily count, streak and last outcome stay as they are.
	OpExpire
)

// Record is one entry's result.
type Record struct {
	ID uint64
	// Due is the entry's NextAttempt as Store.Due returned it (copy
	// Pending.NextAttempt): with ID it says where the entry is, so the
	// store needs no index from ID to entry. Zero makes the store search
	// the whole outbox for ID, which is for tools and tests only.
	Due         time.Time
	Op          Op
	NextAttempt time.Time // OpRetry, OpPostpone
	Sent        bool      // an HTTP request was made: counts toward the daily cap (unless Unanswered) and the ledger
	// Unanswered: a Sent request never reached the push service (refused
	// connection, no route, timed out before it was written): it does
	// not count toward the daily cap. A request written in full that then
	// got no answer may have arrived (ErrSentUnanswered) and is not
	// Unanswered.
	Unanswered bool
	Outcome    Outcome // logged in the ledger and as the channel's last outcome when Sent; ledger only for OpExpire
	// ChannelWaitUntil, when set, becomes the channel's NextAllowedAt (406/412).
	ChannelWaitUntil time.Time
}

// TickClaimer decides which of several instances sharing one state runs a
// feed's scheduled tick (design.md §10): ClaimTick records the claim of
// (k, at), at being the tick's scheduled time as the schedule computes it
// (so instances whose clocks differ a little name the same tick), and
// reports whether this instance got it: exactly one does. It also
// refuses a tick while a live instance still runs an earlier tick of k
// (at most one fetch of a feed at a time). TickDone marks the run of a
// claimed tick finished. A single instance needs none (Bot.Ticks nil).
type TickClaimer interface {
	ClaimTick(k FeedKey, at time.Time) (bool, error)
	TickDone(k FeedKey, at time.Time) error
}

// DailyCaps holds the daily cap of unauthenticated channels (DailyCap)
// for several instances sharing one state (design.md §10): the
// dispatcher reserves a send before it hands the entry to a worker and
// sends only what it got, so however many instances send, a channel
// never gets more than the cap in a UTC day. A reservation counts until
// the day ends: recorded or not, and when its instance dies mid-send
// (the push may have reached the service). Only a send that never
// reached the push service (no answer) is given back. Without it
// (bbolt: one process) the dispatcher counts the day's sends itself.
type DailyCaps interface {
	// ReserveSends reserves up to want[i] sends on day (UTC,
	// "2006-01-02") to channel ids[i] (distinct), each channel's
	// reservations of the day staying within limit, and returns how
	// many each got.
	ReserveSends(day string, ids []string, want []int, limit int) ([]int, error)
	// ReleaseSends gives back one reservation of day per element of
	// ids (a channel repeats once per send).
	ReleaseSends(day string, ids []string) error
}

// SendLog remembers, outside the state file's transactions, which outbox
// entries are being sent. An entry a crash leaves Sending but not Recorded
// was handed to the transport without its outcome being committed: it is
// still in the outbox, goes out again, and may reach its device twice
// (reliability.md P12). The log must survive the process dying (a write to
// the OS is enough); it need not survive a power cut. A crash between a
// Record commit and its Recorded call over-counts that batch; a crash
// during a request the device never received over-counts that request.
type SendLog interface {
	Sending(id uint64) error     // just before a push request
	Recorded(ids []uint64) error // after their outcomes are committed
	// Unfinished returns how many entries the previous run left Sending
	// and forgets them. Called once, before this run sends anything.
	Unfinished() (int, error)
}
