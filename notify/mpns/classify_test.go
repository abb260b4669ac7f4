package mpns_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/notify/mpns"
)

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h[kv[i]] = []string{kv[i+1]} // as given: tests non-canonical names too
	}
	return h
}

func TestClassify(t *testing.T) {
	netErr := errors.New("dial tcp: connection refused")
	tests := []struct {
		name    string
		status  int
		h       http.Header
		err     error
		verdict tilecast.Verdict
		wait    time.Duration
		gone    bool
	}{
		{"received", 200, hdr("X-NotificationStatus", "Received", "X-SubscriptionStatus", "Active", "X-DeviceConnectionStatus", "Connected"), nil, tilecast.VerdictDelivered, 0, false},
		{"received lower-case names", 200, hdr("x-notificationstatus", "received"), nil, tilecast.VerdictDelivered, 0, false},
		{"200 without status", 200, nil, nil, tilecast.VerdictDelivered, 0, false},
		{"queue full", 200, hdr("X-NotificationStatus", "QueueFull"), nil, tilecast.VerdictRetry, 0, false},
		{"suppressed", 200, hdr("X-NotificationStatus", "Suppressed"), nil, tilecast.VerdictSuppressed, 0, false},
		{"200 dropped", 200, hdr("X-NotificationStatus", "Dropped"), nil, tilecast.VerdictFailed, 0, false},
		{"200 but expired", 200, hdr("X-NotificationStatus", "Received", "X-SubscriptionStatus", "Expired"), nil, tilecast.VerdictGone, 0, true},
		{"404", 404, hdr("X-NotificationStatus", "Dropped", "X-SubscriptionStatus", "Expired"), nil, tilecast.VerdictGone, 0, true},
		{"404 bare", 404, nil, nil, tilecast.VerdictGone, 0, true},
		{"406", 406, hdr("X-NotificationStatus", "Dropped"), nil, tilecast.VerdictWait, 61 * time.Minute, false},
		{"412", 412, hdr("X-DeviceConnectionStatus", "InActive"), nil, tilecast.VerdictWait, 61 * time.Minute, false},
		{"400", 400, nil, nil, tilecast.VerdictFailed, 0, false},
		{"401", 401, nil, nil, tilecast.VerdictFailed, 0, false},
		{"403", 403, nil, nil, tilecast.VerdictFailed, 0, false},
		{"405", 405, nil, nil, tilecast.VerdictFailed, 0, false},
		{"other 4xx", 418, nil, nil, tilecast.VerdictFailed, 0, false},
		{"503", 503, nil, nil, tilecast.VerdictRetry, 0, false},
		{"503 retry-after seconds", 503, hdr("Retry-After", "120"), nil, tilecast.VerdictRetry, 2 * time.Minute, false},
		{"503 retry-after date", 503, hdr("Retry-After", now.Add(10*time.Minute).Format(http.TimeFormat)), nil, tilecast.VerdictRetry, 10 * time.Minute, false},
		{"503 retry-after huge", 503, hdr("Retry-After", "999999999"), nil, tilecast.VerdictRetry, time.Hour, false},
		{"503 retry-after garbage", 503, hdr("Retry-After", "soon"), nil, tilecast.VerdictRetry, 0, false},
		{"429 retry-after", 429, hdr("retry-after", "30"), nil, tilecast.VerdictRetry, 30 * time.Second, false},
		{"500 is not success", 500, nil, nil, tilecast.VerdictRetry, 0, false},
		{"502", 502, nil, nil, tilecast.VerdictRetry, 0, false},
		{"redirect", 302, nil, nil, tilecast.VerdictFailed, 0, false},
		{"network error", 0, nil, netErr, tilecast.VerdictRetry, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mpns.Classify(tt.status, tt.h, tt.err, now)
			if r.Verdict != tt.verdict {
				t.Errorf("verdict = %v, want %v", r.Verdict, tt.verdict)
			}
			if r.Wait != tt.wait {
				t.Errorf("wait = %v, want %v", r.Wait, tt.wait)
			}
			if got := errors.Is(r.Err, tilecast.ErrChannelExpired); got != tt.gone {
				t.Errorf("errors.Is(ErrChannelExpired) = %v (err %v)", got, r.Err)
			}
			if (r.Err == nil) != (tt.verdict == tilecast.VerdictDelivered) {
				t.Errorf("err = %v for verdict %v", r.Err, r.Verdict)
			}
			if r.Status != tt.status {
				t.Errorf("status = %d", r.Status)
			}
		})
	}
	r := mpns.Classify(403, nil, nil, now)
	if r.Err == nil || r.Err.Error() != "mpns: http 403: authenticated push certificate problem" {
		t.Errorf("403 err = %v", r.Err)
	}
}

// TestClassifyCaptured runs the responses captured from mpns 2.1.3 and
// records where tilecast agrees and where it deliberately differs.
func TestClassifyCaptured(t *testing.T) {
	var cases []struct {
		Name     string `json:"name"`
		Response struct {
			StatusCode int               `json:"statusCode"`
			Headers    map[string]string `json:"headers"`
			Error      string            `json:"error"`
		} `json:"simulated_response"`
		Err    map[string]any `json:"callback_err"`
		Result map[string]any `json:"callback_result"`
	}
	if err := json.Unmarshal(readGolden(t, "response-classification.json"), &cases); err != nil {
		t.Fatal(err)
	}
	want := map[string]tilecast.Verdict{
		"resp-200-received":   tilecast.VerdictDelivered,
		"resp-200-queuefull":  tilecast.VerdictRetry,      // mpns: success
		"resp-200-suppressed": tilecast.VerdictSuppressed, // mpns: success
		"resp-400":            tilecast.VerdictFailed,     // mpns: shouldDeleteChannel
		"resp-401":            tilecast.VerdictFailed,     // mpns: shouldDeleteChannel
		"resp-403":            tilecast.VerdictFailed,
		"resp-404-expired":    tilecast.VerdictGone,
		"resp-405":            tilecast.VerdictFailed,
		"resp-406-throttled":  tilecast.VerdictWait,
		"resp-412-inactive":   tilecast.VerdictWait,
		"resp-503":            tilecast.VerdictRetry,
		"resp-500-unlisted":   tilecast.VerdictRetry, // mpns: success (its bug)
		"resp-network-error":  tilecast.VerdictRetry,
	}
	if len(cases) != len(want) {
		t.Errorf("%d captured cases, %d expectations", len(cases), len(want))
	}
	for _, c := range cases {
		v, ok := want[c.Name]
		if !ok {
			t.Errorf("no expectation for %s", c.Name)
			continue
		}
		h := http.Header{}
		for k, val := range c.Response.Headers {
			h[k] = []string{val} // node lower-cases names: keep them so
		}
		var err error
		if c.Response.Error != "" {
			err = errors.New(c.Response.Error)
		}
		r := mpns.Classify(c.Response.StatusCode, h, err, now)
		if r.Verdict != v {
			t.Errorf("%s: verdict %v, want %v", c.Name, r.Verdict, v)
		}
		// The header fields must carry what mpns reported.
		got := c.Result
		if got == nil {
			got = c.Err
		}
		for field, value := range map[string]string{"notificationStatus": r.Notification, "subscriptionStatus": r.Subscription, "deviceConnectionStatus": r.Device} {
			exp, _ := got[field].(string)
			if exp != value {
				t.Errorf("%s: %s = %q, mpns saw %q", c.Name, field, value, exp)
			}
		}
		// Where mpns asked for a delay of 61 minutes we wait as long.
		if m, ok := got["minutesToDelay"].(float64); ok && m == 61 && r.Wait != 61*time.Minute {
			t.Errorf("%s: wait %v, mpns 61 min", c.Name, r.Wait)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"0", 0, true},
		{"120", 2 * time.Minute, true},
		{" 45 ", 45 * time.Second, true},
		{"3600", time.Hour, true},
		{"3601", time.Hour, true},
		{"99999999999999999999999", time.Hour, true},
		{"-5", 0, false},
		{"1.5", 0, false},
		{"12abc", 0, false},
		{"", 0, false},
		{"garbage", 0, false},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
		{now.Add(48 * time.Hour).Format(http.TimeFormat), time.Hour, true},
		{now.Add(5 * time.Minute).Format(time.RFC850), 5 * time.Minute, true},
	}
	for _, tt := range tests {
		got, ok := mpns.RetryAfter(tt.in, now)
		if got != tt.want || ok != tt.ok {
			t.Errorf("RetryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func FuzzRetryAfter(f *testing.F) {
	for _, s := range []string{"0", "120", "999999999", "-1", "", "soon", "Sun, 01 Mar 2026 12:10:00 GMT",
		"Sunday, 01-Mar-26 12:10:00 GMT", "Sun Mar  1 12:10:00 2026", "18446744073709551616"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, ok := mpns.RetryAfter(s, now)
		if d < 0 || d > mpns.MaxRetryAfter {
			t.Fatalf("RetryAfter(%q) = %v outside [0, %v]", s, d, mpns.MaxRetryAfter)
		}
		if !ok && d != 0 {
			t.Fatalf("RetryAfter(%q) = %v with ok=false", s, d)
		}
		r := mpns.Classify(503, http.Header{"Retry-After": {s}}, nil, now)
		if r.Wait != d || r.Verdict != tilecast.VerdictRetry {
			t.Fatalf("Classify 503 with Retry-After %q: %+v", s, r)
		}
	})
}
