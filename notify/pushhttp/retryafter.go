package pushhttp

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// RetryAfter parses a push service's delay hint — Retry-After's delay
// seconds or HTTP-date, or the seconds of WNS's X-WNS-CONTINUE-AFTER —
// into a wait clamped to [0, limit]. ok is false for a missing or
// malformed value, which the caller ignores in favour of its own backoff;
// a number too large is still a number and yields limit.
func RetryAfter(v string, now time.Time, limit time.Duration) (d time.Duration, ok bool) {
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
		if err != nil || secs >= uint64(limit/time.Second) {
			return limit, true
		}
		return time.Duration(secs) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return min(max(t.Sub(now), 0), limit), true
}
