package wns

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/notify/pushhttp"
)

// Header values (protocols.md §3.2). The names are set as wns 0.5.4 and
// Microsoft's documentation spell them (X-WNS-Type, not net/http's
// canonical X-Wns-Type): names are case-insensitive, but the wire then
// reads like the reference's.
const (
	TypeToast = "wns/toast"
	TypeTile  = "wns/tile"
	TypeBadge = "wns/badge"
	TypeRaw   = "wns/raw"

	contentTypeXML = "text/xml"
	contentTypeRaw = "application/octet-stream"
)

// Header names.
const (
	hType             = "X-WNS-Type"
	hRequestForStatus = "X-WNS-RequestForStatus"
	hTTL              = "X-WNS-TTL"
	hTag              = "X-WNS-Tag"
	hCachePolicy      = "X-WNS-Cache-Policy"
	hAuthorization    = "Authorization"
)

// MaxTag is the longest X-WNS-Tag WNS accepts.
const MaxTag = 16

// RequestOptions are what a WNS request depends on besides the channel,
// the kind and the payload.
type RequestOptions struct {
	// Token is the access token, sent as "Authorization: Bearer <token>".
	// "" leaves the header out (a dry run shows the request without a
	// credential). Tokens are applied when the request is built at send
	// time and never stored with the notification.
	Token string
	// TTL, when > 0, is sent as X-WNS-TTL in whole seconds (at least 1):
	// what is left of the notification's time to live.
	TTL time.Duration
	// Tag is sent as X-WNS-Tag with tiles and badges, so that a newer
	// update replaces one WNS still holds for an offline device. Give it
	// through Tag(feed name); it must be 1-16 ASCII letters and digits.
	// "" sends none.
	Tag string
	// UserAgent is sent with the request; "" means pushhttp.DefaultUserAgent.
	UserAgent string
}

// NewRequest builds the WNS POST of a notification of kind with payload
// (the XML body, or the raw bytes) to channel uri: Content-Type (text/xml,
// application/octet-stream for raw), X-WNS-Type, Authorization (when
// opts.Token is set), X-WNS-RequestForStatus: true (so WNS reports the
// device's connection status), X-WNS-TTL, X-WNS-Tag (tiles and badges),
// X-WNS-Cache-Policy (cache for tiles and badges, so an offline device
// gets the latest when it reconnects; no-cache for raw, which only a
// running app can take) and User-Agent. net/http adds Host and
// Content-Length when it writes it. Push and `tilecast send --dry-run`
// both build their requests here.
//
// It does not check the URI's host (see CheckChannelURI); it refuses a
// kind WNS has no form for, a payload over MaxPayload, an invalid tag and
// a URI that is not an absolute http(s) URL.
func NewRequest(uri string, kind tilecast.Kind, payload []byte, opts RequestOptions) (*http.Request, error) {
	typ, ct, cache, err := checkRequest(kind, payload, opts)
	if err != nil {
		return nil, err
	}
	req, err := pushhttp.NewPost(uri, payload)
	if err != nil {
		return nil, fmt.Errorf("wns: %w", err)
	}
	ua := opts.UserAgent
	if ua == "" {
		ua = pushhttp.DefaultUserAgent
	}
	h := req.Header
	h["Content-Type"] = []string{ct}
	h[hType] = []string{typ}
	if opts.Token != "" {
		h[hAuthorization] = []string{"Bearer " + opts.Token}
	}
	h[hRequestForStatus] = []string{"true"}
	if opts.TTL > 0 {
		h[hTTL] = []string{strconv.FormatInt(max(int64(opts.TTL/time.Second), 1), 10)}
	}
	if opts.Tag != "" && (kind == tilecast.KindTile || kind == tilecast.KindBadge) {
		h[hTag] = []string{opts.Tag}
	}
	if cache != "" {
		h[hCachePolicy] = []string{cache}
	}
	h["User-Agent"] = []string{ua}
	return req, nil
}

// checkRequest refuses what NewRequest cannot build and returns the
// kind's X-WNS-Type, Content-Type and X-WNS-Cache-Policy ("" for none).
func checkRequest(kind tilecast.Kind, payload []byte, opts RequestOptions) (typ, ct, cache string, err error) {
	switch kind {
	case tilecast.KindToast:
		typ, ct = TypeToast, contentTypeXML
	case tilecast.KindTile:
		typ, ct, cache = TypeTile, contentTypeXML, "cache"
	case tilecast.KindBadge:
		typ, ct, cache = TypeBadge, contentTypeXML, "cache"
	case tilecast.KindRaw:
		typ, ct, cache = TypeRaw, contentTypeRaw, "no-cache"
	default:
		return "", "", "", fmt.Errorf("wns: no WNS notification for kind %q", kind)
	}
	if len(payload) > MaxPayload {
		return "", "", "", fmt.Errorf("wns: %s payload of %d bytes, WNS takes at most %d: %w", kind, len(payload), MaxPayload, tilecast.ErrPayloadTooLarge)
	}
	if opts.Tag != "" && !validTag(opts.Tag) {
		return "", "", "", fmt.Errorf("wns: tag %q: want 1-%d ASCII letters and digits (see Tag)", opts.Tag, MaxTag)
	}
	if strings.ContainsAny(opts.Token, "\r\n") {
		return "", "", "", errors.New("wns: access token contains a line break")
	}
	return typ, ct, cache, nil
}

// DumpRequest writes req (from NewRequest) as it goes on the wire over
// HTTP/1.1: the request line, the headers as net/http writes them, a blank
// line and the body. It is `tilecast send --dry-run`.
func DumpRequest(w io.Writer, req *http.Request) error {
	return pushhttp.Dump(w, req, pushhttp.DefaultUserAgent)
}

func validTag(s string) bool {
	if s == "" || len(s) > MaxTag {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !alnum(s[i]) {
			return false
		}
	}
	return true
}

func alnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// Tag derives an X-WNS-Tag from s (a feed name; a per-user feed's tile
// goes to that user's channels only, so the name suffices): s itself when
// it is already 1-16 ASCII letters and digits, else up to 8 of its letters
// and digits followed by 8 hex digits of its SHA-256, so that two feeds
// get the same tag only by a 1-in-4-billion accident and the tag still
// hints at the feed. "" yields "".
func Tag(s string) string {
	if s == "" || validTag(s) {
		return s
	}
	var b [MaxTag]byte
	n := 0
	for i := 0; i < len(s) && n < 8; i++ {
		if alnum(s[i]) {
			b[n] = s[i]
			n++
		}
	}
	sum := sha256.Sum256([]byte(s))
	hex.Encode(b[n:n+8], sum[:4])
	return string(b[:n+8])
}

// HostSuffix is the domain every WNS channel URI lives under.
const HostSuffix = ".notify.windows.com"

// CheckChannelURI reports whether uri may be used as a WNS channel: an
// absolute https URL on a host under notify.windows.com (Microsoft tells
// senders to refuse any other domain, and the access token goes to it),
// with no user info, at most tilecast.MaxChannelURI bytes. allowed lists
// further hosts — "host" or "*.suffix", as in push.allowed_hosts — for the
// emulator and tests; those may be http, unless they are under
// notify.windows.com (a pattern such as "*.notify.windows.com" in the
// list never lets the access token go there in clear). The error wraps
// tilecast.ErrHostNotAllowed when only the host is wrong.
func CheckChannelURI(uri string, allowed []string) error {
	if len(uri) > tilecast.MaxChannelURI {
		return fmt.Errorf("wns channel uri is %d bytes, at most %d", len(uri), tilecast.MaxChannelURI)
	}
	u, err := url.Parse(uri)
	if err != nil {
		return fmt.Errorf("bad wns channel uri: %w", err)
	}
	host := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return fmt.Errorf("wns channel uri scheme %q: want https", u.Scheme)
	case host == "":
		return errors.New("wns channel uri has no host")
	case u.User != nil:
		return errors.New("wns channel uri must not carry user info")
	case u.Fragment != "" || u.Opaque != "":
		return errors.New("wns channel uri must be a plain https URL")
	}
	wnsHost := strings.HasSuffix(host, HostSuffix) && net.ParseIP(host) == nil
	if !wnsHost && HostAllowed(host, allowed) {
		return nil
	}
	if !wnsHost {
		return fmt.Errorf("wns channel host %q is not under notify.windows.com: %w", host, tilecast.ErrHostNotAllowed)
	}
	if u.Scheme != "https" {
		return errors.New("wns channel uri must be https")
	}
	return nil
}

// HostAllowed reports whether host (lower case, no port) matches one of
// the patterns: "host" exactly or "*.suffix" for any host under suffix.
func HostAllowed(host string, patterns []string) bool {
	for _, p := range patterns {
		p = strings.ToLower(strings.TrimSuffix(p, "."))
		if suffix, ok := strings.CutPrefix(p, "*."); ok {
			if strings.HasSuffix(host, "."+suffix) {
				return true
			}
			continue
		}
		if host == p || "["+host+"]" == p {
			return true
		}
	}
	return false
}
