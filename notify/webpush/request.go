package webpush

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/notify/pushhttp"
)

// Urgency values (RFC 8030 §5.3): how soon the push service should wake
// a device that saves power.
const (
	UrgencyVeryLow = "very-low"
	UrgencyLow     = "low"
	UrgencyNormal  = "normal"
	UrgencyHigh    = "high"
)

// ValidUrgency reports whether u is an Urgency value.
func ValidUrgency(u string) bool {
	switch u {
	case UrgencyVeryLow, UrgencyLow, UrgencyNormal, UrgencyHigh:
		return true
	}
	return false
}

// DefaultUrgency is the urgency of a kind when the config names none:
// toasts (and raw data) normal, tiles and badges low: a badge can wait
// until the device wakes anyway.
func DefaultUrgency(kind tilecast.Kind) string {
	switch kind {
	case tilecast.KindTile, tilecast.KindBadge:
		return UrgencyLow
	}
	return UrgencyNormal
}

// MaxTopic is the longest Topic header value (RFC 8030 §5.4).
const MaxTopic = 32

// ValidTopic reports whether t can be a Topic header: 1 to 32 characters
// of the URL-safe base64 alphabet.
func ValidTopic(t string) bool {
	if t == "" || len(t) > MaxTopic {
		return false
	}
	for i := 0; i < len(t); i++ {
		if c := t[i]; !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// TopicFor derives the Topic of a tile from a caller's tag (the feed's
// name): the tag itself when it is a valid topic (feed names of up to 32
// characters are), else the first 32 characters of the unpadded base64url
// SHA-256 of the tag. The same tag always gives the same topic, so a
// newer tile replaces one the push service still holds for the device.
// An empty tag gives no topic ("").
func TopicFor(tag string) string {
	if tag == "" || ValidTopic(tag) {
		return tag
	}
	sum := sha256.Sum256([]byte(tag))
	return base64.RawURLEncoding.EncodeToString(sum[:])[:MaxTopic]
}

// Header values.
const (
	contentEncoding = "aes128gcm"
	contentType     = "application/octet-stream"
)

// RequestOptions are what a request depends on besides the subscription,
// the kind, the plaintext and the time to live.
type RequestOptions struct {
	// VAPID signs the Authorization header (required).
	VAPID *Signer
	// Urgency overrides DefaultUrgency(kind) when set.
	Urgency string
	// Topic, when set, is sent as the Topic header (see TopicFor); it must
	// be a ValidTopic. Toasts are sent without one: each is its own
	// notification.
	Topic string
	// Pad pads the plaintext (EncryptOptions.Pad).
	Pad int
	// UserAgent is sent with the request; "" means pushhttp.DefaultUserAgent.
	UserAgent string
}

// NewRequest builds the POST of a Web Push message to sub.Endpoint (RFC
// 8030 §5) at send time: plaintext encrypted for sub (aes128gcm, RFC
// 8291), the VAPID Authorization from opts.VAPID (RFC 8292), and
//
//	TTL               ttl in whole seconds (rounded down; ≥ 0), always sent:
//	                  a service refuses a push without it
//	Urgency           opts.Urgency, else DefaultUrgency(kind)
//	Topic             opts.Topic, when set
//	Content-Encoding  aes128gcm
//	Content-Type      application/octet-stream
//
// plus User-Agent; net/http adds Host and Content-Length. kind is toast,
// tile, badge (a tile that carries only the count, BadgePayload: same
// urgency and topic as a tile) or raw. Client.Push and `tilecast send --dry-run` (with
// DumpRequest) build requests here, so a dry run shows what is sent. A
// plaintext over MaxPlaintext wraps tilecast.ErrPayloadTooLarge.
func NewRequest(sub Subscription, kind tilecast.Kind, plaintext []byte, ttl time.Duration, opts RequestOptions) (*http.Request, error) {
	switch kind {
	case tilecast.KindToast, tilecast.KindTile, tilecast.KindRaw, tilecast.KindBadge:
	default:
		return nil, fmt.Errorf("webpush: no Web Push message for kind %q", kind)
	}
	if opts.VAPID == nil {
		return nil, errors.New("webpush: no VAPID signer")
	}
	urgency := opts.Urgency
	if urgency == "" {
		urgency = DefaultUrgency(kind)
	}
	if !ValidUrgency(urgency) {
		return nil, fmt.Errorf("webpush: urgency %q: want very-low, low, normal or high", urgency)
	}
	if opts.Topic != "" && !ValidTopic(opts.Topic) {
		return nil, fmt.Errorf("webpush: topic %q: want 1 to %d characters of A-Z a-z 0-9 - _", opts.Topic, MaxTopic)
	}
	auth, err := opts.VAPID.Authorization(sub.Endpoint)
	if err != nil {
		return nil, err
	}
	body, err := Encrypt(sub, plaintext, EncryptOptions{Pad: opts.Pad})
	if err != nil {
		return nil, err
	}
	req, err := pushhttp.NewPost(sub.Endpoint, body)
	if err != nil {
		return nil, fmt.Errorf("webpush: %w", err)
	}
	secs := int64(0)
	if ttl > 0 {
		secs = int64(ttl / time.Second)
	}
	ua := opts.UserAgent
	if ua == "" {
		ua = pushhttp.DefaultUserAgent
	}
	// Canonical names (Header.Set): "Ttl" on HTTP/1.1, "ttl" on HTTP/2;
	// names are case-insensitive, and Header.Get finds them.
	h := req.Header
	h.Set("TTL", strconv.FormatInt(secs, 10))
	h.Set("Urgency", urgency)
	if opts.Topic != "" {
		h.Set("Topic", opts.Topic)
	}
	h.Set("Content-Encoding", contentEncoding)
	h.Set("Content-Type", contentType)
	h.Set("Authorization", auth)
	h.Set("User-Agent", ua)
	return req, nil
}

// DumpRequest writes req (from NewRequest) for `tilecast send --dry-run`:
// the request line and headers as net/http writes them over HTTP/1.1,
// then, instead of the ciphertext, a line describing the encrypted body
// and the plaintext it carries. req's body is rewound for a later send.
func DumpRequest(w io.Writer, req *http.Request, plaintext []byte) error {
	var buf bytes.Buffer
	if err := pushhttp.Dump(&buf, req, pushhttp.DefaultUserAgent); err != nil {
		return err
	}
	head, body, ok := bytes.Cut(buf.Bytes(), []byte("\r\n\r\n"))
	if !ok {
		return errors.New("dump request: no header end")
	}
	if _, err := w.Write(append(head, "\r\n\r\n"...)); err != nil {
		return fmt.Errorf("dump request: %w", err)
	}
	desc := fmt.Sprintf("[%d bytes aes128gcm]", len(body))
	if len(body) >= HeaderLen {
		desc = fmt.Sprintf("[%d bytes aes128gcm: salt %x, record size %d, one record of %d bytes]",
			len(body), body[:16], binary.BigEndian.Uint32(body[16:20]), len(body)-HeaderLen)
	}
	_, err := fmt.Fprintf(w, "%s\nplaintext (%d bytes):\n%s\n", desc, len(plaintext), plaintext)
	if err != nil {
		return fmt.Errorf("dump request: %w", err)
	}
	return nil
}
