package mpns

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/notify/pushhttp"
)

// Waits derived from the MPNS rules.
const (
	// ThrottleWait is how long a channel waits after 406 (daily cap) or 412
	// (device inactive): MPNS allows at most one retry per hour and may block
	// senders that retry faster; the mpns module suggested 61 minutes.
	ThrottleWait = 61 * time.Minute
	// MaxRetryAfter caps a Retry-After hint.
	MaxRetryAfter = time.Hour
)

// StatusError describes an MPNS reply that was not a plain delivery. It
// unwraps to tilecast.ErrChannelExpired when the channel is gone.
type StatusError struct {
	Status       int
	Notification string // X-NotificationStatus
	Subscription string // X-SubscriptionStatus
	Device       string // X-DeviceConnectionStatus
	Reason       string
	gone         bool
}

func (e *StatusError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "mpns: http %d", e.Status)
	if e.Notification != "" {
		b.WriteString(" " + e.Notification)
	}
	if e.Reason != "" {
		b.WriteString(": " + e.Reason)
	}
	return b.String()
}

// Unwrap lets callers use errors.Is(err, tilecast.ErrChannelExpired).
func (e *StatusError) Unwrap() error {
	if e.gone {
		return tilecast.ErrChannelExpired
	}
	return nil
}

// header reads a response header whatever the case of its name, since a
// hand-built (or emulated) response need not be canonical.
func header(h http.Header, name string) string {
	if v := h.Get(name); v != "" {
		return v
	}
	for k, vs := range h {
		if strings.EqualFold(k, name) && len(vs) > 0 {
			return vs[0]
		}
	}
	return ""
}

// Classify turns one MPNS response (or the error that prevented one) into a
// Result. It is pure: now only serves to read an HTTP-date Retry-After.
//
//	network error / timeout            retry
//	404, or X-SubscriptionStatus Expired  gone: delete the channel
//	200 Received (or no status)        delivered
//	200 QueueFull                      retry (backoff in minutes)
//	200 Suppressed                     suppressed: accepted and discarded, no retry
//	200 Dropped                        failed: MPNS refused it without saying why;
//	                                   resending the same bytes would not help
//	406 daily cap, 412 device inactive wait ThrottleWait (61 min)
//	400 401 403 405, other 4xx         failed (the channel is kept: unlike mpns,
//	                                   400/401 do not prove the channel is dead)
//	429, 503, any other 5xx            retry, Wait from Retry-After (429/503)
//	                                   (mpns treated 500 as success)
//	3xx                                failed (redirects are not followed)
func Classify(status int, h http.Header, err error, now time.Time) tilecast.Result {
	r := tilecast.Result{
		Status:       status,
		Notification: header(h, "X-NotificationStatus"),
		Subscription: header(h, "X-SubscriptionStatus"),
		Device:       header(h, "X-DeviceConnectionStatus"),
	}
	if err != nil {
		r.Verdict = tilecast.VerdictRetry
		r.Err = err
		return r
	}
	se := &StatusError{Status: status, Notification: r.Notification, Subscription: r.Subscription, Device: r.Device}
	fail := func(v tilecast.Verdict, reason string) tilecast.Result {
		se.Reason = reason
		r.Verdict = v
		r.Err = se
		return r
	}
	if status == http.StatusNotFound || strings.EqualFold(r.Subscription, "Expired") {
		se.gone = true
		return fail(tilecast.VerdictGone, "subscription expired")
	}
	switch {
	case status == http.StatusOK:
		switch {
		case r.Notification == "" || strings.EqualFold(r.Notification, "Received"):
			r.Verdict = tilecast.VerdictDelivered
			return r
		case strings.EqualFold(r.Notification, "QueueFull"):
			return fail(tilecast.VerdictRetry, "device queue full")
		case strings.EqualFold(r.Notification, "Suppressed"):
			return fail(tilecast.VerdictSuppressed, "suppressed: the app does not bind this notification type")
		case strings.EqualFold(r.Notification, "Dropped"):
			return fail(tilecast.VerdictFailed, "dropped by the push service")
		}
		// An unknown status token on a 200: the service took the request.
		r.Verdict = tilecast.VerdictDelivered
		return r
	case status == http.StatusNotAcceptable:
		r.Wait = ThrottleWait
		return fail(tilecast.VerdictWait, "per-day throttling limit reached")
	case status == http.StatusPreconditionFailed:
		r.Wait = ThrottleWait
		return fail(tilecast.VerdictWait, "device inactive")
	case status == http.StatusBadRequest:
		return fail(tilecast.VerdictFailed, "bad request: malformed XML payload or channel URI")
	case status == http.StatusUnauthorized:
		return fail(tilecast.VerdictFailed, "not authorized to send this notification")
	case status == http.StatusForbidden:
		return fail(tilecast.VerdictFailed, "authenticated push certificate problem")
	case status == http.StatusMethodNotAllowed:
		return fail(tilecast.VerdictFailed, "method not allowed")
	case status == http.StatusTooManyRequests:
		r.Wait, _ = RetryAfter(header(h, "Retry-After"), now)
		return fail(tilecast.VerdictRetry, "too many requests")
	case status == http.StatusServiceUnavailable:
		r.Wait, _ = RetryAfter(header(h, "Retry-After"), now)
		return fail(tilecast.VerdictRetry, "the push service is unable to process the request")
	case status >= 500 && status <= 599:
		return fail(tilecast.VerdictRetry, "server error")
	case status >= 200 && status <= 299:
		r.Verdict = tilecast.VerdictDelivered
		return r
	case status >= 300 && status <= 399:
		// Not followed: a push goes to the URI the channel registered.
		reason := "unexpected redirect, not followed"
		if loc := header(h, "Location"); loc != "" {
			reason += " (to " + truncate(loc, maxLocation) + ")"
		}
		return fail(tilecast.VerdictFailed, reason)
	case status >= 400 && status <= 499:
		return fail(tilecast.VerdictFailed, "client error")
	}
	r.Verdict = tilecast.VerdictRetry
	r.Err = errors.New("mpns: no usable response")
	return r
}

// maxLocation bounds how much of a redirect's Location goes into an error
// (and so into the log): enough to recognise the target.
const maxLocation = 200

// truncate cuts s to at most n bytes, on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// RetryAfter parses a Retry-After value — delay seconds or an HTTP-date —
// into a wait clamped to [0, MaxRetryAfter]. ok is false for a missing or
// malformed value, which the caller ignores in favour of its own backoff.
func RetryAfter(v string, now time.Time) (d time.Duration, ok bool) {
	return pushhttp.RetryAfter(v, now, MaxRetryAfter)
}
