// Package rules holds what both state stores apply the same way: which
// channels may be stored and how a registration changes one (canonical
// URIs, feed lists, transports, device rotation), the retention limits,
// the key of a long item ID in a seen set, and the opaque cursors of the
// paged listings. The stores (store: bbolt, store/postgres) keep their own
// records; keeping the rules here, once, is what lets one conformance
// suite (store/storetest) hold both to the same behaviour.
package rules

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/channeluri"
)

// Limits for channel fields: design.md §2 caps URIs at 2048 bytes; the
// others keep index keys far below the stores' key limits (bbolt: 32 KiB,
// a PostgreSQL btree entry: ~2.7 KB).
const (
	MaxURILen  = 2048
	MaxNameLen = 1024
	// MaxKeyLen bounds each Web Push subscription key: a P-256 public
	// key is 65 bytes and an auth secret 16; anything far larger is not
	// a key.
	MaxKeyLen = 256
)

// Retention (design.md §7).
const (
	// LedgerRetention and LedgerPerChannel bound each channel's delivery
	// ledger: the last 7 days, at most 100 entries.
	LedgerRetention  = 7 * 24 * time.Hour
	LedgerPerChannel = 100
	// SeenRetention is how long an item ID stays in a seen set after the
	// feed last listed it.
	SeenRetention = 30 * 24 * time.Hour
)

// ImportBatch is how many channels an import writes per transaction:
// large enough that the per-commit sync does not dominate, small enough
// that a transaction stays a few MiB.
const ImportBatch = 5000

// ValidateChannel checks ch and puts its URI in canonical form
// (channeluri.Canonical), so that whoever adds a channel — the API, the
// CLI, an import, a test — cannot store a second spelling of one URI. An
// invalid channel is tilecast.ErrInvalidChannel with the reason.
func ValidateChannel(ch *tilecast.Channel) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", tilecast.ErrInvalidChannel, fmt.Sprintf(format, args...))
	}
	if ch.URI == "" {
		return bad("uri is empty")
	}
	uri, err := channeluri.Canonical(ch.URI)
	if err != nil {
		return fmt.Errorf("%w: %w", tilecast.ErrInvalidChannel, err)
	}
	ch.URI = uri
	switch {
	case len(ch.URI) > MaxURILen:
		return bad("uri is longer than %d bytes", MaxURILen)
	case len(ch.User) > MaxNameLen:
		return bad("user is longer than %d bytes", MaxNameLen)
	case len(ch.Device) > MaxNameLen || strings.IndexByte(ch.Device, 0) >= 0:
		return bad("device is too long or contains NUL")
	}
	// The user is part of per-user feed URLs, logs and the dashboard:
	// valid UTF-8 without control or bidi characters (tilecast.CheckUser).
	if err := tilecast.CheckUser(ch.User); err != nil {
		return fmt.Errorf("%w: user: %w", tilecast.ErrInvalidChannel, err)
	}
	for _, f := range ch.Feeds {
		if f == "" || len(f) > MaxNameLen || strings.IndexByte(f, 0) >= 0 {
			return bad("feed name %q is empty, too long or contains NUL", f)
		}
	}
	return nil
}

// CheckTransport checks ch's transport fields, making an unnamed transport
// MPNS (what every registration was before transports existed). Which
// transport a URI needs is the caller's decision (design.md §11).
func CheckTransport(ch *tilecast.Channel) error {
	switch ch.Transport {
	case "":
		ch.Transport = tilecast.TransportMPNS
	case tilecast.TransportMPNS, tilecast.TransportWNS, tilecast.TransportWebPush:
	default:
		return fmt.Errorf("%w: unknown transport %q", tilecast.ErrInvalidChannel, ch.Transport)
	}
	if k := ch.Keys; k != nil && (len(k.P256DH) > MaxKeyLen || len(k.Auth) > MaxKeyLen) {
		return fmt.Errorf("%w: subscription keys longer than %d bytes", tilecast.ErrInvalidChannel, MaxKeyLen)
	}
	return nil
}

// Prepare is what every store does with a registration before looking at
// what it holds: ValidateChannel, CheckTransport and NormFeeds.
func Prepare(ch *tilecast.Channel) error {
	if err := ValidateChannel(ch); err != nil {
		return err
	}
	if err := CheckTransport(ch); err != nil {
		return err
	}
	ch.Feeds = NormFeeds(ch.Feeds)
	return nil
}

// SameKeys reports whether two channels hold the same subscription keys.
func SameKeys(a, b *tilecast.PushKeys) bool {
	if a == nil || b == nil {
		return a == b
	}
	return bytes.Equal(a.P256DH, b.P256DH) && bytes.Equal(a.Auth, b.Auth)
}

// NormFeeds drops duplicate feed names, keeping the first occurrence.
func NormFeeds(feeds []string) []string {
	if len(feeds) == 0 {
		return nil
	}
	out := make([]string, 0, len(feeds))
	for _, f := range feeds {
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

// NewChannelID returns a random channel ID: 16 hex digits.
func NewChannelID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	return hex.EncodeToString(b[:])
}

// Register applies what a registration says (user, feeds, device,
// transport fields) to channel c.
func Register(c, reg *tilecast.Channel) {
	c.User, c.Feeds, c.Device = reg.User, reg.Feeds, reg.Device
	c.Transport, c.Keys, c.Expires = reg.Transport, reg.Keys, reg.Expires
}

// Unchanged reports whether registration reg says nothing new about
// channel cur (apps re-register on every start, imports are re-run): no
// write is needed, provided cur's device, if any, names cur.
func Unchanged(cur, reg *tilecast.Channel) bool {
	return cur.User == reg.User && cur.Device == reg.Device && slices.Equal(cur.Feeds, reg.Feeds) &&
		cur.Transport == reg.Transport && SameKeys(cur.Keys, reg.Keys) && cur.Expires.Equal(reg.Expires)
}

// Older reports whether channel a is older than c: created earlier, or at
// the same time with the smaller ID. Of two channels made one, the older
// is kept.
func Older(a, c *tilecast.Channel) bool {
	if d := a.Created.Compare(c.Created); d != 0 {
		return d < 0
	}
	return a.ID < c.ID
}

// Moves reports whether a waiting notification of a channel made one with
// ch is one ch would get: not another user's, and of a feed ch gets.
func Moves(n *tilecast.Notification, ch *tilecast.Channel) bool {
	if n.User != "" && n.User != ch.User {
		return false
	}
	if len(ch.Feeds) == 0 {
		return n.User == ""
	}
	return slices.Contains(ch.Feeds, n.Feed)
}

// Rotation is one device's channel moving to a new URI (AddChannel).
type Rotation struct {
	Channel    string // the channel that stays
	OldChannel string // the device's channel before
	NewChannel string // the channel that held the new URI (OldChannel when none did)
	User       string
	Device     string
	Host       string // of the new URI: the URI itself is a capability, never logged
}

// LogRotations logs each rotation of a committed transaction, one line
// each (msg="channel rotated").
func LogRotations(log *slog.Logger, rs []Rotation) {
	for _, r := range rs {
		log.Info("channel rotated", "channel", r.Channel, "old_channel", r.OldChannel,
			"new_channel", r.NewChannel, "user", r.User, "device", r.Device, "host", r.Host)
	}
}

// URIHost is the host of a channel URI, for logs: the whole URI is a
// capability (whoever has it can push to the device) and is never logged.
func URIHost(uri string) string {
	if u, err := url.Parse(uri); err == nil {
		return u.Host
	}
	return ""
}

// MaxSeenKey bounds the key of an item ID in a seen set: a longer ID is
// stored as its hash, so a hostile feed's huge GUID cannot wedge every
// commit of that feed.
const MaxSeenKey = 1024

// SeenKey is how item ID id is kept in a seen set: itself, or "sha256:"
// and its SHA-256 when it is longer than MaxSeenKey bytes.
func SeenKey(id string) []byte {
	if len(id) <= MaxSeenKey {
		return []byte(id)
	}
	sum := sha256.Sum256([]byte(id))
	return append([]byte("sha256:"), sum[:]...)
}
