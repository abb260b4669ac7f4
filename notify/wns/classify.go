package wns

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

// MaxRetryAfter caps what X-WNS-CONTINUE-AFTER or Retry-After can ask for.
const MaxRetryAfter = time.Hour

// Notification status values (X-WNS-Status, X-WNS-NotificationStatus).
const (
	StatusReceived         = "received"
	StatusDropped          = "dropped"
	StatusChannelThrottled = "channelthrottled"
)

// StatusError describes a WNS answer that was not a plain delivery. It
// unwraps to tilecast.ErrChannelExpired when the channel is gone (404,
// 410) and to tilecast.ErrCredentials when the sender's credentials are
// not good for the channel (403, or a 401 even after a new token).
type StatusError struct {
	Status       int
	Notification string // X-WNS-Status, else X-WNS-NotificationStatus
	Description  string // X-WNS-Error-Description, as WNS sent it (cut to 200 bytes)
	Reason       string // what tilecast makes of the answer
	gone         bool
	credentials  bool
}

func (e *StatusError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "wns: http %d", e.Status)
	if e.Notification != "" {
		b.WriteString(" " + e.Notification)
	}
	if e.Reason != "" {
		b.WriteString(": " + e.Reason)
	}
	if e.Description != "" {
		b.WriteString(" (" + e.Description + ")")
	}
	return b.String()
}

// Unwrap lets callers use errors.Is with tilecast.ErrChannelExpired and
// tilecast.ErrCredentials.
func (e *StatusError) Unwrap() error {
	switch {
	case e.gone:
		return tilecast.ErrChannelExpired
	case e.credentials:
		return tilecast.ErrCredentials
	}
	return nil
}

// ConfigError reports whether the answer means tilecast's WNS
// configuration is wrong (the credentials do not own the channel), which
// the deliverer logs as such rather than as a fault of the channel.
func (e *StatusError) ConfigError() bool { return e.credentials }

// header reads a response header whatever the case of its name.
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

// maxDescription bounds what of X-WNS-Error-Description (or a token
// endpoint's error text) goes into an error, and so into the log.
const maxDescription = 200

// clean cuts s to n bytes on a rune boundary and replaces control
// characters, so that a header value cannot forge log lines.
func clean(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, strings.TrimSpace(s))
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// notificationStatus reads the notification status from both header names
// (protocols.md §3.3: current docs say X-WNS-Status, older WNS and wns
// 0.5.4 use X-WNS-NotificationStatus). When both are present and
// disagree, the one that is not "received" wins: a drop is never hidden by
// the other header.
func notificationStatus(h http.Header) string {
	cur := strings.TrimSpace(header(h, "X-WNS-Status"))
	old := strings.TrimSpace(header(h, "X-WNS-NotificationStatus"))
	switch {
	case cur == "":
		return old
	case old == "" || strings.EqualFold(cur, old) || !strings.EqualFold(cur, StatusReceived):
		return cur
	}
	return old
}

// Classify turns one WNS answer (or the error that prevented one) into a
// Result. It is pure: now only serves to read an HTTP-date Retry-After.
// 401 is not handled here but by the Client (new token, one resend);
// alone it is a failure.
//
//	network error / timeout             retry
//	200 received (or no status header)  delivered
//	200 dropped, 200 channelthrottled   retry, Wait from X-WNS-CONTINUE-AFTER / Retry-After
//	406, 429 (throttled)                retry, Wait as above
//	404 (unknown channel), 410 (expired) gone: delete the channel
//	400, 405, 413                       failed, with WNS's description
//	401                                 failed (token refused)
//	403                                 failed, a configuration error (ErrCredentials)
//	500, 503, other 5xx                 retry, Wait from Retry-After
//	other 2xx                           delivered; 3xx failed (not followed); other 4xx failed
//
// Every Result carries X-WNS-Msg-ID, X-WNS-Debug-Trace and MS-CV, and
// X-WNS-DeviceConnectionStatus in Device.
func Classify(status int, h http.Header, err error, now time.Time) tilecast.Result {
	r := tilecast.Result{
		Status:            status,
		Notification:      clean(notificationStatus(h), 40),
		Device:            clean(header(h, "X-WNS-DeviceConnectionStatus"), 40),
		MsgID:             clean(header(h, "X-WNS-Msg-ID"), 64),
		DebugTrace:        clean(header(h, "X-WNS-Debug-Trace"), maxDescription),
		CorrelationVector: clean(header(h, "MS-CV"), 128),
	}
	if err != nil {
		r.Verdict = tilecast.VerdictRetry
		r.Err = err
		return r
	}
	se := &StatusError{Status: status, Notification: r.Notification,
		Description: clean(header(h, "X-WNS-Error-Description"), maxDescription)}
	fail := func(v tilecast.Verdict, reason string) tilecast.Result {
		se.Reason = reason
		r.Verdict = v
		r.Err = se
		return r
	}
	wait := func() time.Duration {
		d, ok := RetryAfter(header(h, "X-WNS-CONTINUE-AFTER"), now)
		if !ok {
			d, _ = RetryAfter(header(h, "Retry-After"), now)
		}
		return d
	}
	switch {
	case status == http.StatusOK:
		switch n := r.Notification; {
		case n == "" || strings.EqualFold(n, StatusReceived):
			r.Verdict = tilecast.VerdictDelivered
			return r
		case strings.EqualFold(n, StatusChannelThrottled):
			r.Wait = wait()
			return fail(tilecast.VerdictRetry, "channel throttled")
		case strings.EqualFold(n, StatusDropped):
			r.Wait = wait()
			return fail(tilecast.VerdictRetry, "dropped by WNS")
		}
		// An unknown status token on a 200: WNS took the request.
		r.Verdict = tilecast.VerdictDelivered
		return r
	case status == http.StatusNotFound:
		se.gone = true
		return fail(tilecast.VerdictGone, "channel URI not valid or not recognized")
	case status == http.StatusGone:
		se.gone = true
		return fail(tilecast.VerdictGone, "channel expired")
	case status == http.StatusNotAcceptable || status == http.StatusTooManyRequests:
		r.Wait = wait()
		return fail(tilecast.VerdictRetry, "throttled")
	case status == http.StatusBadRequest:
		return fail(tilecast.VerdictFailed, "bad request: headers wrong or conflicting")
	case status == http.StatusUnauthorized:
		return fail(tilecast.VerdictFailed, "access token not accepted")
	case status == http.StatusForbidden:
		se.credentials = true
		return fail(tilecast.VerdictFailed, "configuration error: these credentials are not authorized for this channel (another app's channel?)")
	case status == http.StatusMethodNotAllowed:
		return fail(tilecast.VerdictFailed, "method not allowed")
	case status == http.StatusRequestEntityTooLarge:
		return fail(tilecast.VerdictFailed, "payload over 5000 bytes")
	case status >= 500 && status <= 599:
		r.Wait = wait()
		return fail(tilecast.VerdictRetry, "WNS server error")
	case status >= 200 && status <= 299:
		r.Verdict = tilecast.VerdictDelivered
		return r
	case status >= 300 && status <= 399:
		return fail(tilecast.VerdictFailed, "unexpected redirect, not followed")
	case status >= 400 && status <= 499:
		return fail(tilecast.VerdictFailed, "client error")
	}
	r.Verdict = tilecast.VerdictRetry
	r.Err = errors.New("wns: no usable response")
	return r
}

// RetryAfter parses a delay — X-WNS-CONTINUE-AFTER's seconds, or
// Retry-After's seconds or HTTP-date — into a wait clamped to
// [0, MaxRetryAfter]. ok is false for a missing or malformed value, which
// the caller ignores in favour of its own backoff.
func RetryAfter(v string, now time.Time) (d time.Duration, ok bool) {
	return pushhttp.RetryAfter(v, now, MaxRetryAfter)
}
