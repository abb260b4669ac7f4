package mpns

import (
	"fmt"
	"io"
	"net/http"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/notify/pushhttp"
)

// Notification classes (X-NotificationClass batching intervals).
const (
	ClassImmediate = "immediate"
	Class450s      = "450s"
	Class900s      = "900s"
)

// ValidClass reports whether class is an accepted class ("" is immediate).
func ValidClass(class string) bool {
	_, err := classIndex(class)
	return err == nil
}

func classIndex(class string) (int, error) {
	switch class {
	case "", ClassImmediate:
		return 0, nil
	case Class450s:
		return 1, nil
	case Class900s:
		return 2, nil
	}
	return 0, fmt.Errorf("mpns: unknown notification class %q (want immediate, 450s or 900s)", class)
}

// X-NotificationClass values: priority×10 + kind (tile 1, toast 2, raw 3),
// spelt out so that no request needs a conversion.
var classValues = [3][3]string{
	{"1", "2", "3"},
	{"11", "12", "13"},
	{"21", "22", "23"},
}

// Header values of the mpns module.
const (
	contentType  = "text/xml"
	acceptHeader = "application/*"
	targetToast  = "toast"
	targetTile   = "token" // not "tile": the value MPNS expects for every tile kind
)

// RequestOptions are what an MPNS request depends on besides the channel
// and the notification.
type RequestOptions struct {
	// Class is the delivery batching interval (push.class): "immediate"
	// (or ""), "450s" or "900s". The mpns module always sent immediate.
	Class string
	// UserAgent is sent with the request; "" means pushhttp.DefaultUserAgent.
	UserAgent string
}

// NewRequest builds the MPNS POST of a notification of kind with payload
// (its XML body, or the raw bytes) to channel uri: the headers of the mpns
// module — Content-Type text/xml, Accept application/*,
// X-NotificationClass from the class and kind, X-WindowsPhone-Target toast
// or token (none for raw) — and User-Agent. net/http adds Host and
// Content-Length when it writes it. The client's Push, `tilecast send
// --dry-run` and `tilecast preview` all build their requests here, so what
// the dry run prints is what is sent.
//
// A kind MPNS has no form for, an unknown class or a URI that is not an
// absolute http(s) URL is an error.
func NewRequest(uri string, kind tilecast.Kind, payload []byte, opts RequestOptions) (*http.Request, error) {
	ci, err := classIndex(opts.Class)
	if err != nil {
		return nil, err
	}
	var class, target string
	switch kind {
	case tilecast.KindToast:
		class, target = classValues[ci][1], targetToast
	case tilecast.KindTile:
		class, target = classValues[ci][0], targetTile
	case tilecast.KindRaw:
		class = classValues[ci][2] // no target: MPNS hands raw bytes to the running app
	case tilecast.KindBadge:
		// WNS and Web Push send a badge on its own; an MPNS tile carries
		// its count (Count) instead, so a badge entry for an MPNS channel
		// is a routing mistake, not something to approximate.
		return nil, fmt.Errorf("mpns: MPNS has no badge notification (the tile's Count carries the badge)")
	default:
		return nil, fmt.Errorf("mpns: no MPNS notification for kind %q", kind)
	}
	req, err := pushhttp.NewPost(uri, payload)
	if err != nil {
		return nil, fmt.Errorf("mpns: %w", err)
	}
	ua := opts.UserAgent
	if ua == "" {
		ua = pushhttp.DefaultUserAgent
	}
	// The names are set as the module spelt them (X-WindowsPhone-Target,
	// not Header.Set's canonical X-Windowsphone-Target): names are
	// case-insensitive, but the wire then reads like the reference's.
	h := req.Header
	h["Content-Type"] = []string{contentType}
	h["Accept"] = []string{acceptHeader}
	h["X-NotificationClass"] = []string{class}
	if target != "" {
		h["X-WindowsPhone-Target"] = []string{target}
	}
	h["User-Agent"] = []string{ua}
	return req, nil
}

// DumpRequest writes req (from NewRequest) as it goes on the wire over
// HTTP/1.1: the request line, the headers as net/http writes them, a blank
// line and the body. It is `tilecast send --dry-run` and `tilecast
// preview`.
func DumpRequest(w io.Writer, req *http.Request) error {
	return pushhttp.Dump(w, req, pushhttp.DefaultUserAgent)
}
