// Package tilecast holds the domain types of the tilecast daemon — feeds, items,
// channels, notifications and delivery outcomes — and the Bot that runs the
// pipeline schedule → fetch → diff → build → commit → deliver.
//
// The root package imports only the standard library. The concrete parts live
// in sub-packages named after what they wrap (fetch: HTTP + gofeed, notify:
// payloads + templates, notify/mpns and notify/wns: the MPNS and WNS wire
// protocols, store: bbolt) and are wired together in cmd/tilecast. The Bot
// talks to them through the small interfaces declared in interfaces.go.
//
// A channel names its transport (MPNS, WNS, Web Push), and every part
// that depends on the protocol is picked by it from a map keyed by
// Transport: InferTransport for registrations that name none, a Renderer
// per transport (Bot.Renderers), a Pusher per transport (PushMux), and
// DegradedReporter for /healthz (which the Breaker implements too). transport.go describes how a transport
// plugs in.
package tilecast

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Sentinel errors shared by the packages. Callers branch on them with errors.Is.
var (
	// ErrNotFound is returned by the store for an unknown channel, feed or entry.
	ErrNotFound = errors.New("not found")
	// ErrChannelExpired means the push service said the channel no longer exists
	// (MPNS 404 or X-SubscriptionStatus: Expired); the channel must be deleted.
	ErrChannelExpired = errors.New("channel expired")
	// ErrPayloadTooLarge means a payload cannot be made to fit the transport's
	// limit even after truncating the template output.
	ErrPayloadTooLarge = errors.New("payload too large")
	// ErrBodyTooLarge means a fetched body exceeded fetch.max_body.
	ErrBodyTooLarge = errors.New("body too large")
	// ErrStateLocked means another process holds the state file.
	ErrStateLocked = errors.New("state file is in use by another tilecast")
	// ErrInvalidChannel means a channel given to a store cannot be stored
	// (empty, malformed or oversized URI, NUL bytes or control
	// characters in a name, an unknown transport). The API maps it to 400.
	ErrInvalidChannel = errors.New("invalid channel")
	// ErrHostNotAllowed marks a channel URI whose host is not in push.allowed_hosts.
	ErrHostNotAllowed = errors.New("host not allowed")
	// ErrCredentials marks a push refused because the sender's credentials
	// are not good for the channel (WNS 403: the channel belongs to another
	// app; a 401 even with a fresh access token; Web Push 401 or 403: the
	// VAPID key or subject refused). It is a configuration
	// error to log as such, not a fault of the channel or the notification.
	ErrCredentials = errors.New("push credentials not accepted for this channel")
)

// MaxChannelURI is the longest channel URI accepted (design.md §2).
const MaxChannelURI = 2048

// Feed is one configured data source and how its items become notifications.
// It is built by the config loader with every default already applied.
type Feed struct {
	Name     string // stable key, [a-z0-9_-]+
	URL      string // may contain {user}
	Schedule string // cron spec as written in the config

	FirstRun        string        // FirstRunBaseline or FirstRunNotify
	MaxToasts       int           // toasts per channel per run, before the summary toast
	FloodLimit      int           // more new items than this at once: tile + one summary toast only
	ImageCheck      bool          // fetch remote tile images once and check type and size
	FallbackImage   string        // used when a checked image is refused; "" leaves the element out
	BrokenAfter     time.Duration // failing this long marks the feed broken
	TileOnSubscribe bool          // a new subscriber gets the current tile at once
	// TTL is how long each kind of this feed's notifications may wait
	// to be sent ([defaults] toast_ttl etc.); kinds it lacks use DefaultTTL.
	TTL TTL

	Toast *ToastSpec // nil: this feed sends no toasts
	Tile  *TileSpec  // nil: this feed sends no tile updates
	// WNS holds what Windows has beyond MPNS ([feed.wns]); nil: the
	// defaults (ToastGeneric toasts, adaptive tiles, the default sound).
	WNS *WNSSpec

	// WebPushUrgency is the Urgency of this feed's Web Push notifications
	// ([feed.webpush] urgency); "" leaves each kind's default.
	WebPushUrgency string
	// WebPushIcon is the icon URL of this feed's Web Push toasts: its
	// [feed.webpush] icon, else [push.webpush] icon; "" sends none.
	WebPushIcon string
}

// WNSSpec is a feed's [feed.wns] table: options of its notifications to
// Windows (WNS) channels. The image fields are text/template sources.
type WNSSpec struct {
	Audio        string // "", "silent", a system sound name or an ms-appx:/ms-appdata: URI
	HeroImage    string // large image at the top of the toast
	AppLogoImage string // replaces the app logo on the toast
	Scenario     string // "", "reminder", "alarm", "incomingCall", "urgent"
	Legacy       bool   // send the Windows 8 templates (ToastText02, TileWideText09, …) as wns 0.5.4 did
}

// First-run policies.
const (
	FirstRunBaseline = "baseline"
	FirstRunNotify   = "notify"
)

// PerUser reports whether the feed is fetched once per subscribed user.
func (f *Feed) PerUser() bool { return strings.Contains(f.URL, UserPlaceholder) }

// ToastSpec holds the text/template sources of a feed's toast.
type ToastSpec struct {
	Text1 string
	Text2 string
	Param string
}

// TileSpec holds a feed's tile template kind and the text/template source of
// each field. Empty fields are left out of the payload.
type TileSpec struct {
	Template string // TileFlip, TileClassic, TileIconic, TileCycle
	ID       string // secondary tile navigation URI; "" = primary tile

	Title                   string
	Count                   string
	BackgroundImage         string
	BackTitle               string
	BackContent             string
	BackBackgroundImage     string
	SmallBackgroundImage    string
	WideBackgroundImage     string
	WideBackContent         string
	WideBackBackgroundImage string
	IconImage               string
	SmallIconImage          string
	WideContent1            string
	WideContent2            string
	WideContent3            string
	BackgroundColor         string
	CycleImages             []string // up to 9
}

// Tile template kinds.
const (
	TileFlip    = "flip"
	TileClassic = "classic"
	TileIconic  = "iconic"
	TileCycle   = "cycle"
)

// FeedInfo is the feed as templates see it (.Feed).
type FeedInfo struct {
	Name  string
	Title string
	Link  string
}

// Item is one entry of a feed.
type Item struct {
	ID        string // GUID; else link; else a hash of title + published + content
	Title     string
	Link      string
	Summary   string // HTML stripped
	Published time.Time
	Image     string // enclosure, media:thumbnail or first <img>; "" if none
}

// TemplateData is what a feed's templates are executed with.
type TemplateData struct {
	Feed     FeedInfo
	Item     Item   // the newest new item
	Items    []Item // all new items, newest first
	NewCount int
	User     string
}

// FanOutJob is what is left of a global feed run whose subscribers are too
// many for one transaction: the new items to render and where in the
// subscriber list the run has got to. The run's Commit saves it together
// with the seen set; each step then enqueues one page of subscribers and
// moves Cursor in the same transaction, so a crash resumes where it
// stopped, with nothing lost and nothing queued twice.
type FanOutJob struct {
	Feed   string
	Info   FeedInfo
	Fresh  []Item // the run's new items, newest first
	Now    time.Time
	Cursor string // opaque to the Bot (Store.SubscribersAfter); "" = the start
}

// Validators are the conditional-GET validators stored per feed (and user).
type Validators struct {
	ETag         string
	LastModified string
}

// FeedResult is what one fetch produced.
type FeedResult struct {
	Status      int  // HTTP status
	NotModified bool // 304: nothing was parsed
	Title       string
	Link        string
	Items       []Item // in feed order
	Validators  Validators
	// NotBefore is the earliest time the feed asks to be fetched again
	// (Cache-Control max-age, Expires, RSS <ttl>); zero when it says nothing.
	NotBefore time.Time
}

// FetchError is a failed fetch. RetryAfter, when set, is the earliest time the
// server allows the next attempt (429/503 Retry-After).
type FetchError struct {
	Status     int // 0 for network or parse errors
	RetryAfter time.Time
	Err        error
}

func (e *FetchError) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("http %d: %v", e.Status, e.Err)
	}
	return e.Err.Error()
}

func (e *FetchError) Unwrap() error { return e.Err }

// Transport names the push protocol a channel is reached through.
type Transport string

// Transports (design.md §11). A channel stored before channels had one is
// an MPNS channel.
const (
	TransportMPNS    Transport = "mpns"
	TransportWNS     Transport = "wns"
	TransportWebPush Transport = "webpush"
)

// PushKeys are a Web Push subscription's keys (RFC 8291): the user
// agent's P-256 ECDH public key (uncompressed point) and its
// authentication secret. They are what encrypts the pushes to it, so they
// are never shown or logged.
type PushKeys struct {
	P256DH []byte
	Auth   []byte
}

// Channel is one device's push channel.
type Channel struct {
	ID      string    `json:"id"`
	URI     string    `json:"uri"` // for Web Push, the subscription's endpoint
	User    string    `json:"user,omitempty"`
	Feeds   []string  `json:"feeds,omitempty"` // empty: every feed without {user}
	Device  string    `json:"device,omitempty"`
	Created time.Time `json:"created"`

	Transport Transport `json:"transport"`
	Keys      *PushKeys `json:"-"`                // Web Push only; never in API answers or logs
	Expires   time.Time `json:"expires,omitzero"` // Web Push expirationTime; zero: none

	LastOutcome   string    `json:"last_outcome,omitempty"`
	LastOutcomeAt time.Time `json:"last_outcome_at,omitzero"`
	FailureStreak int       `json:"failure_streak,omitempty"`
	NextAllowedAt time.Time `json:"next_allowed_at,omitzero"` // 406/412: wait until then
	SendsDay      string    `json:"sends_day,omitempty"`      // UTC date (2006-01-02) of SendsToday
	SendsToday    int       `json:"sends_today,omitempty"`
}

// Subscribed reports whether the channel gets notifications of feed f.
// A channel with no feeds listed gets every feed without {user}; per-user
// feeds must be named and only reach the channel's own user.
func (c *Channel) Subscribed(f *Feed) bool {
	named := false
	for _, n := range c.Feeds {
		if n == f.Name {
			named = true
			break
		}
	}
	if f.PerUser() {
		return named && c.User != ""
	}
	return named || len(c.Feeds) == 0
}

// Authenticated reports whether the channel is exempt from the MPNS cap of
// 500 sends per UTC day: an https (authenticated) MPNS channel, or a
// channel of another transport (the cap is MPNS's; WNS and Web Push
// throttle with answers the deliverer acts on).
func (c *Channel) Authenticated() bool {
	if c.Transport != "" && c.Transport != TransportMPNS {
		return true
	}
	return len(c.URI) >= 6 && strings.EqualFold(c.URI[:6], "https:") // no lower-cased copy: the dispatcher asks per send
}

// DailyCap is the MPNS limit of sends per unauthenticated channel per UTC day.
const DailyCap = 500

// Kind is the kind of a notification. Transports switch on it to build
// their requests; a kind a transport has no form for is a failed push.
type Kind string

// Notification kinds.
const (
	KindToast Kind = "toast"
	KindTile  Kind = "tile"
	KindRaw   Kind = "raw"
	// KindBadge is the number (or glyph) on an app's tile or icon, sent on
	// its own by the transports that have it (WNS, Web Push); MPNS carries
	// the count inside the tile instead.
	KindBadge Kind = "badge"
)

// TTL is how long a notification of each kind may wait in the outbox
// (design.md §11): an entry older than its kind's time to live is dropped
// as expired instead of sent, and a send carries what is left of it (WNS
// X-WNS-TTL, Web Push TTL). A kind a TTL lacks uses DefaultTTL's.
type TTL map[Kind]time.Duration

// MaxTTL is the longest time to live a config may set: Web Push services
// cap a message's time to live near four weeks.
const MaxTTL = 28 * 24 * time.Hour

// DefaultTTL returns each kind's time to live when the config sets none.
// A new kind is one line here (and its config key).
func DefaultTTL() TTL {
	return TTL{
		KindToast: 24 * time.Hour,
		KindTile:  72 * time.Hour, // WNS's own default tile expiry; a newer tile replaces a waiting one anyway
		KindRaw:   24 * time.Hour,
		KindBadge: 72 * time.Hour, // WNS's default badge expiry; like a tile, state that a newer badge replaces
	}
}

// Of returns kind k's time to live: t's, else DefaultTTL's, else a day.
func (t TTL) Of(k Kind) time.Duration {
	if d, ok := t[k]; ok && d > 0 {
		return d
	}
	if d, ok := DefaultTTL()[k]; ok {
		return d
	}
	return 24 * time.Hour
}

// Notification is one outbox entry: what is to be shown (kind, payload,
// creation time), not how it is sent. Each transport builds its request
// from it at send time, so what depends on the moment of sending (access
// tokens, encryption, the remaining time to live) is never stored.
type Notification struct {
	ID        uint64 `json:"id"` // assigned by the store
	ChannelID string `json:"channel"`
	Feed      string `json:"feed"`
	User      string `json:"user,omitempty"`
	ItemID    string `json:"item,omitempty"`
	Kind      Kind   `json:"kind"`
	// Payload is the body as the channel's transport sends it, before
	// any per-send encoding: MPNS or WNS XML, WNS raw bytes, Web Push
	// plaintext JSON (encrypted and signed when it is sent). The headers
	// follow from Kind and the channel's transport.
	Payload     []byte    `json:"payload"`
	Attempts    int       `json:"attempts"`
	NextAttempt time.Time `json:"next_attempt"`
	Created     time.Time `json:"created"`
}

// Action is what was done after a send; it is the `outcome` log field.
type Action string

// Outcome actions (design.md §7).
const (
	ActionDelivered      Action = "delivered"
	ActionRetry          Action = "retry"
	ActionDropped        Action = "dropped"
	ActionChannelRemoved Action = "channel_removed"
	ActionFailed         Action = "failed"
	// ActionExpired: not sent, the entry waited longer than its kind's
	// time to live (TTL). No request, no attempt, not counted toward the
	// daily cap.
	ActionExpired Action = "expired"
)

// Verdict is how a transport classified one push response.
type Verdict int

// Verdicts. Their mapping to store operations is the Bot's.
const (
	VerdictDelivered  Verdict = iota // 200 Received
	VerdictRetry                     // QueueFull, 503, other 5xx, network error: exponential backoff
	VerdictSuppressed                // 200 Suppressed: accepted and thrown away, do not retry
	VerdictGone                      // 404 / Expired: delete the channel
	VerdictWait                      // 406 daily cap, 412 inactive: the channel waits ≥ Result.Wait
	VerdictFailed                    // 400/401/403/405: permanent failure
)

func (v Verdict) String() string {
	switch v {
	case VerdictDelivered:
		return "delivered"
	case VerdictRetry:
		return "retry"
	case VerdictSuppressed:
		return "suppressed"
	case VerdictGone:
		return "gone"
	case VerdictWait:
		return "wait"
	case VerdictFailed:
		return "failed"
	}
	return fmt.Sprintf("verdict(%d)", int(v))
}

// Result is one push attempt as the transport saw and classified it.
type Result struct {
	Status       int    // HTTP status; 0 when no response arrived
	Notification string // X-NotificationStatus
	Subscription string // X-SubscriptionStatus
	Device       string // X-DeviceConnectionStatus
	Verdict      Verdict
	// Wait is the minimum time before the next attempt: 61 min for
	// VerdictWait, a Retry-After hint (capped) for VerdictRetry, else 0.
	Wait     time.Duration
	Duration time.Duration
	Err      error // network error or the reason for a failure

	// What WNS answers with (X-WNS-Msg-ID, X-WNS-Debug-Trace, MS-CV),
	// for the log and the ledger: Microsoft asks for them in support
	// cases. Empty for the other transports.
	MsgID             string
	DebugTrace        string
	CorrelationVector string
	// TokenRefreshed is set when the push was answered 401, a new access
	// token was fetched, and the notification was sent again within the
	// same attempt; Status and the rest describe the second answer.
	TokenRefreshed bool
}

// ErrSentUnanswered is in the chain of a push's error when no answer came
// after its request was written in full (a timeout, a reset, an HTTP/2
// stream reset): the push service may have acted on it, so the next
// attempt may show the notification twice. The deliverer counts such a
// retry as a possible duplicate, and the send toward the daily cap (the
// service may have counted it). A request that was never written (refused
// connection, no route, the guard) does not carry it.
var ErrSentUnanswered = errors.New("the request was sent, so the push may have arrived")

// Outcome is the record of one send: the `push` log line and a ledger entry.
type Outcome struct {
	Time         time.Time `json:"time"`
	ChannelID    string    `json:"channel"`
	User         string    `json:"user,omitempty"`
	Feed         string    `json:"feed"`
	ItemID       string    `json:"item,omitempty"`
	Kind         Kind      `json:"kind"`
	Status       int       `json:"status"`
	Notification string    `json:"notification,omitempty"`
	Subscription string    `json:"subscription,omitempty"`
	Device       string    `json:"device,omitempty"` // MPNS's X-DeviceConnectionStatus
	// DeviceID is the channel's device id (Channel.Device), so a reader
	// of the log can tell which device got what; "device" above already
	// means MPNS's connection status.
	DeviceID string        `json:"device_id,omitempty"`
	Action   Action        `json:"outcome"`
	Attempt  int           `json:"attempt"`
	RetryIn  time.Duration `json:"retry_in,omitempty"`
	Duration time.Duration `json:"duration"`
	Error    string        `json:"error,omitempty"`

	Transport Transport `json:"transport,omitempty"` // the channel's, when the send happened
	// What WNS answers with (X-WNS-Msg-ID, X-WNS-Debug-Trace, MS-CV), for
	// support requests to Microsoft about a push.
	MsgID             string `json:"msg_id,omitempty"`
	DebugTrace        string `json:"debug_trace,omitempty"`
	CorrelationVector string `json:"ms_cv,omitempty"`
	// TokenRefreshed: the push was answered 401, a new access token was
	// fetched and the notification sent again within this attempt (WNS).
	TokenRefreshed bool `json:"token_refreshed,omitempty"`
}

// DeadLetter is a notification given up on (after max_attempts or a
// permanent failure), kept with its payload and its last outcome.
type DeadLetter struct {
	Notification Notification `json:"notification"`
	Outcome      Outcome      `json:"outcome"`
}

// FeedKey names the state of a feed, or of one user's copy of a per-user feed.
type FeedKey struct {
	Feed string
	User string // "" for global feeds
}

func (k FeedKey) String() string {
	if k.User == "" {
		return k.Feed
	}
	return k.Feed + "/" + k.User
}

// FeedState is what the store keeps per FeedKey between runs.
type FeedState struct {
	Validators
	Baselined    bool      `json:"baselined"` // the first run happened
	LastFetch    time.Time `json:"last_fetch,omitzero"`
	LastResult   string    `json:"last_result,omitempty"` // "ok", "not_modified" or the error
	LastSuccess  time.Time `json:"last_success,omitzero"`
	Failures     int       `json:"failures,omitempty"`
	FailingSince time.Time `json:"failing_since,omitzero"`
	Broken       bool      `json:"broken,omitempty"`
	NextFetch    time.Time `json:"next_fetch,omitzero"` // backoff / Retry-After / max-age: skip runs before this
	Title        string    `json:"title,omitempty"`
	Link         string    `json:"link,omitempty"`
	// SeenRefreshed is when the seen set's "last listed" times were last
	// written. A 200 with nothing new and nothing else changed writes
	// nothing (like a 304) until it is a SeenRefreshInterval old.
	SeenRefreshed time.Time `json:"seen_refreshed,omitzero"`
	// Latest is the data the current tile was rendered from, so a channel
	// that subscribes later can get the feed's current tile at once.
	Latest *TemplateData `json:"latest,omitempty"`
}
