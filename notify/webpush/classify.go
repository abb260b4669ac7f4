package webpush

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tilecast/tilecast"
)

// ErrVAPID marks a push the service refused for its VAPID authorization
// (401 or 403: a bad signature or claims, or a key other than the one the
// subscription was made with). It is a configuration error: the same
// request will be refused again. It wraps tilecast.ErrCredentials, so the
// deliverer logs a run of them as one configuration error.
var ErrVAPID = fmt.Errorf("VAPID authorization refused: %w", tilecast.ErrCredentials)

// MaxRetryAfter caps a Retry-After hint.
const MaxRetryAfter = time.Hour

// maxErrorBody bounds how much of a service's error body goes into an
// error (and so into the log): enough for a JSON reason.
const maxErrorBody = 512

// StatusError describes a push-service answer that was not a delivery.
// It unwraps to tilecast.ErrChannelExpired for 404 and 410 and to ErrVAPID
// for 401 and 403.
type StatusError struct {
	Status int
	Reason string // what the status means for tilecast
	// Body is the start of the service's answer (e.g. Apple's
	// {"reason":"BadJwtToken"}, autopush's errno JSON), printable.
	Body string
}

func (e *StatusError) Error() string {
	s := "webpush: http " + strconv.Itoa(e.Status)
	if e.Reason != "" {
		s += " " + e.Reason
	}
	if e.Body != "" {
		s += ": " + e.Body
	}
	return s
}

// Unwrap lets callers use errors.Is with tilecast.ErrChannelExpired and
// ErrVAPID.
func (e *StatusError) Unwrap() error {
	switch e.Status {
	case http.StatusNotFound, http.StatusGone:
		return tilecast.ErrChannelExpired
	case http.StatusUnauthorized, http.StatusForbidden:
		return ErrVAPID
	}
	return nil
}

// Classify turns one push-service answer (or the error that prevented
// one) into a Result (protocols.md §4.2). It is pure: now only serves to
// read an HTTP-date Retry-After.
//
//	network error / timeout  retry (the caller's backoff)
//	201, other 2xx           delivered (a 201 means accepted by the service)
//	404, 410                 gone: the subscription expired or was unsubscribed
//	400                      failed, with the service's error body
//	401, 403                 failed, a VAPID configuration error (ErrVAPID)
//	413                      failed, with the service's error body
//	429                      retry after Retry-After
//	5xx                      retry (Retry-After honoured on 503)
//	3xx                      failed: redirects are not followed
//	other 4xx                failed, with the service's error body
func Classify(status int, h http.Header, body []byte, err error, now time.Time) tilecast.Result {
	r := tilecast.Result{Status: status}
	if err != nil {
		r.Verdict = tilecast.VerdictRetry
		r.Err = err
		return r
	}
	se := &StatusError{Status: status}
	fail := func(v tilecast.Verdict, reason string, withBody bool) tilecast.Result {
		se.Reason = reason
		if withBody {
			se.Body = printable(body, maxErrorBody)
		}
		r.Verdict = v
		r.Err = se
		return r
	}
	switch {
	case status >= 200 && status <= 299:
		r.Verdict = tilecast.VerdictDelivered
		return r
	case status == http.StatusNotFound:
		return fail(tilecast.VerdictGone, "subscription not found or expired", false)
	case status == http.StatusGone:
		return fail(tilecast.VerdictGone, "subscription expired or unsubscribed", false)
	case status == http.StatusBadRequest:
		return fail(tilecast.VerdictFailed, "bad request", true)
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return fail(tilecast.VerdictFailed, "VAPID authorization refused: check [push.webpush] vapid_private_key_file and subject", true)
	case status == http.StatusRequestEntityTooLarge:
		return fail(tilecast.VerdictFailed, "payload too large", true)
	case status == http.StatusTooManyRequests:
		r.Wait, _ = RetryAfter(h.Get("Retry-After"), now)
		return fail(tilecast.VerdictRetry, "too many requests", false)
	case status >= 500 && status <= 599:
		if status == http.StatusServiceUnavailable {
			r.Wait, _ = RetryAfter(h.Get("Retry-After"), now)
		}
		return fail(tilecast.VerdictRetry, "push service error", false)
	case status >= 300 && status <= 399:
		return fail(tilecast.VerdictFailed, "unexpected redirect, not followed", false)
	case status >= 400 && status <= 499:
		return fail(tilecast.VerdictFailed, "client error", true)
	}
	r.Verdict = tilecast.VerdictRetry
	r.Err = fmt.Errorf("webpush: no usable answer (status %d)", status)
	return r
}

// printable returns at most limit bytes of b as text fit for a log line:
// control characters become spaces, invalid UTF-8 is dropped, white space
// is trimmed, and a cut is marked with "…".
func printable(b []byte, limit int) string {
	var sb strings.Builder
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		i += n
		switch {
		case r == utf8.RuneError && n == 1:
			continue
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			r = ' '
		}
		if sb.Len()+utf8.RuneLen(r) > limit {
			return strings.TrimSpace(sb.String()) + "…"
		}
		sb.WriteRune(r)
	}
	return strings.TrimSpace(sb.String())
}

// RetryAfter parses a Retry-After value — delay seconds or an HTTP-date —
// into a wait clamped to [0, MaxRetryAfter]. ok is false for a missing or
// malformed value, which leaves the caller's own backoff in charge.
func RetryAfter(v string, now time.Time) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if v[0] >= '0' && v[0] <= '9' {
		for i := 0; i < len(v); i++ {
			if v[i] < '0' || v[i] > '9' {
				return 0, false
			}
		}
		secs, err := strconv.ParseUint(v, 10, 64)
		if err != nil || secs >= uint64(MaxRetryAfter/time.Second) {
			return MaxRetryAfter, true // a number out of range still asks for the longest wait
		}
		return time.Duration(secs) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return min(max(t.Sub(now), 0), MaxRetryAfter), true
}
