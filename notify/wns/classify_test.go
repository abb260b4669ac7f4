package wns_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/notify/wns"
)

// TestClassify is the whole table of protocols.md §3.3, one row per
// status and status header.
func TestClassify(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		status  int
		h       map[string]string
		verdict tilecast.Verdict
		wait    time.Duration
		gone    bool
		creds   bool
	}{
		{"received", 200, map[string]string{"X-WNS-Status": "received"}, tilecast.VerdictDelivered, 0, false, false},
		{"received, old header", 200, map[string]string{"X-WNS-NotificationStatus": "received"}, tilecast.VerdictDelivered, 0, false, false},
		{"no status header", 200, nil, tilecast.VerdictDelivered, 0, false, false},
		{"dropped", 200, map[string]string{"X-WNS-Status": "dropped"}, tilecast.VerdictRetry, 0, false, false},
		{"dropped, old header", 200, map[string]string{"X-WNS-NotificationStatus": "dropped"}, tilecast.VerdictRetry, 0, false, false},
		{"received but old header dropped", 200, map[string]string{"X-WNS-Status": "received", "X-WNS-NotificationStatus": "dropped"}, tilecast.VerdictRetry, 0, false, false},
		{"channelthrottled with continue-after", 200, map[string]string{"X-WNS-Status": "channelthrottled", "X-WNS-CONTINUE-AFTER": "30"}, tilecast.VerdictRetry, 30 * time.Second, false, false},
		{"406 with continue-after", 406, map[string]string{"X-WNS-CONTINUE-AFTER": "45"}, tilecast.VerdictRetry, 45 * time.Second, false, false},
		{"406 with retry-after", 406, map[string]string{"Retry-After": "20"}, tilecast.VerdictRetry, 20 * time.Second, false, false},
		{"429 with retry-after date", 429, map[string]string{"Retry-After": now.Add(2 * time.Minute).Format(http.TimeFormat)}, tilecast.VerdictRetry, 2 * time.Minute, false, false},
		{"429 asking for a year", 429, map[string]string{"X-WNS-CONTINUE-AFTER": "31536000"}, tilecast.VerdictRetry, wns.MaxRetryAfter, false, false},
		{"429 with garbage", 429, map[string]string{"Retry-After": "soon"}, tilecast.VerdictRetry, 0, false, false},
		{"404", 404, nil, tilecast.VerdictGone, 0, true, false},
		{"410", 410, map[string]string{"X-WNS-Status": "dropped"}, tilecast.VerdictGone, 0, true, false},
		{"400", 400, nil, tilecast.VerdictFailed, 0, false, false},
		{"401 alone", 401, nil, tilecast.VerdictFailed, 0, false, false},
		{"403", 403, nil, tilecast.VerdictFailed, 0, false, true},
		{"405", 405, nil, tilecast.VerdictFailed, 0, false, false},
		{"413", 413, nil, tilecast.VerdictFailed, 0, false, false},
		{"500", 500, nil, tilecast.VerdictRetry, 0, false, false},
		{"503 with retry-after", 503, map[string]string{"Retry-After": "60"}, tilecast.VerdictRetry, time.Minute, false, false},
		{"302", 302, map[string]string{"Location": "https://elsewhere/"}, tilecast.VerdictFailed, 0, false, false},
		{"418", 418, nil, tilecast.VerdictFailed, 0, false, false},
		{"204", 204, nil, tilecast.VerdictDelivered, 0, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tt.h {
				h[k] = []string{v} // as sent, not canonicalised: the reader must not care
			}
			h.Set("X-WNS-Error-Description", "example\r\nforged: line")
			h.Set("X-WNS-Msg-ID", "1ACE34A9B9F8D7C1")
			h.Set("X-WNS-Debug-Trace", "DB5SCH101051823")
			h.Set("MS-CV", "abc.1.2")
			h.Set("X-WNS-DeviceConnectionStatus", "connected")
			r := wns.Classify(tt.status, h, nil, now)
			if r.Verdict != tt.verdict || r.Wait != tt.wait || r.Status != tt.status {
				t.Errorf("verdict %v wait %v status %d, want %v %v %d", r.Verdict, r.Wait, r.Status, tt.verdict, tt.wait, tt.status)
			}
			if errors.Is(r.Err, tilecast.ErrChannelExpired) != tt.gone {
				t.Errorf("ErrChannelExpired = %v, want %v (err %v)", !tt.gone, tt.gone, r.Err)
			}
			if errors.Is(r.Err, tilecast.ErrCredentials) != tt.creds {
				t.Errorf("ErrCredentials = %v, want %v (err %v)", !tt.creds, tt.creds, r.Err)
			}
			if r.MsgID != "1ACE34A9B9F8D7C1" || r.DebugTrace != "DB5SCH101051823" || r.CorrelationVector != "abc.1.2" || r.Device != "connected" {
				t.Errorf("extras %q %q %q %q", r.MsgID, r.DebugTrace, r.CorrelationVector, r.Device)
			}
			if tt.verdict != tilecast.VerdictDelivered {
				if r.Err == nil || !strings.Contains(r.Err.Error(), "example  forged: line") {
					t.Errorf("error %v lacks the (cleaned) description", r.Err)
				}
				if strings.ContainsAny(r.Err.Error(), "\r\n") {
					t.Errorf("error carries a line break: %q", r.Err)
				}
			} else if r.Err != nil {
				t.Errorf("delivered with error %v", r.Err)
			}
		})
	}
	r := wns.Classify(0, nil, errors.New("connection reset"), now)
	if r.Verdict != tilecast.VerdictRetry || r.Err == nil {
		t.Errorf("network error: %+v", r)
	}
	var se *wns.StatusError
	if r := wns.Classify(403, nil, nil, now); !errors.As(r.Err, &se) || !se.ConfigError() {
		t.Errorf("403 is not flagged as a configuration error: %v", r.Err)
	}
}

// respCase is one entry of response-classification.json.
type respCase struct {
	Name string `json:"name"`
	Err  *struct {
		Message    string            `json:"message"`
		Headers    map[string]string `json:"headers"`
		StatusCode int               `json:"statusCode"`
	} `json:"callback_err"`
}

// TestResponseClassificationGolden replays every answer of the capture
// from a loopback server and checks what tilecast makes of it, where wns
// 0.5.4 only ever reported an error.
func TestResponseClassificationGolden(t *testing.T) {
	var cases []respCase
	if err := json.Unmarshal(readGolden(t, "response-classification.json"), &cases); err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		verdict tilecast.Verdict
		gone    bool
		creds   bool
	}{
		"resp-400":                  {tilecast.VerdictFailed, false, false},
		"resp-403":                  {tilecast.VerdictFailed, false, true},
		"resp-404":                  {tilecast.VerdictGone, true, false},
		"resp-405":                  {tilecast.VerdictFailed, false, false},
		"resp-406":                  {tilecast.VerdictRetry, false, false},
		"resp-410-dropped":          {tilecast.VerdictGone, true, false},
		"resp-413":                  {tilecast.VerdictFailed, false, false},
		"resp-500":                  {tilecast.VerdictRetry, false, false},
		"resp-503":                  {tilecast.VerdictRetry, false, false},
		"resp-200-dropped":          {tilecast.VerdictRetry, false, false},
		"resp-200-channelthrottled": {tilecast.VerdictRetry, false, false},
	}
	f := newFakeWNS(t)
	s := newSetup(t, f, nil)
	checked := 0
	for _, c := range cases {
		if !strings.HasPrefix(c.Name, "resp-") {
			continue
		}
		w, ok := want[c.Name]
		if !ok {
			t.Errorf("%s: no expectation", c.Name)
			continue
		}
		checked++
		f.queuePushes(answer{status: c.Err.StatusCode, headers: c.Err.Headers})
		r := s.push(t, f, toastNote())
		if r.Status != c.Err.StatusCode || r.Verdict != w.verdict {
			t.Errorf("%s: status %d verdict %v, want %d %v", c.Name, r.Status, r.Verdict, c.Err.StatusCode, w.verdict)
		}
		if errors.Is(r.Err, tilecast.ErrChannelExpired) != w.gone || errors.Is(r.Err, tilecast.ErrCredentials) != w.creds {
			t.Errorf("%s: error %v: gone %v credentials %v", c.Name, r.Err, w.gone, w.creds)
		}
		if r.Err == nil || !strings.Contains(r.Err.Error(), "(example)") {
			t.Errorf("%s: error %v lacks X-WNS-Error-Description", c.Name, r.Err)
		}
		if r.DebugTrace != "DB5SCH101051823" {
			t.Errorf("%s: debug trace %q", c.Name, r.DebugTrace)
		}
	}
	if checked != len(want) {
		t.Errorf("checked %d answers, want %d", checked, len(want))
	}
	if tok, pushes := f.counts(); tok != 1 || pushes != checked {
		t.Errorf("%d token and %d push requests, want 1 and %d", tok, pushes, checked)
	}
}

// TestEveryRowOverLoopback sends one push per row of the response table
// through the Client and a loopback server, so the headers travel the
// wire (canonical names, HTTP/1.1) before they are read.
func TestEveryRowOverLoopback(t *testing.T) {
	rows := []struct {
		status  int
		h       map[string]string
		verdict tilecast.Verdict
		wait    time.Duration
	}{
		{200, map[string]string{"X-WNS-Status": "received", "X-WNS-DeviceConnectionStatus": "tempdisconnected"}, tilecast.VerdictDelivered, 0},
		{200, map[string]string{"X-WNS-Status": "dropped", "X-WNS-CONTINUE-AFTER": "5"}, tilecast.VerdictRetry, 5 * time.Second},
		{200, map[string]string{"X-WNS-Status": "channelthrottled", "X-WNS-CONTINUE-AFTER": "7"}, tilecast.VerdictRetry, 7 * time.Second},
		{400, nil, tilecast.VerdictFailed, 0},
		{403, nil, tilecast.VerdictFailed, 0},
		{404, nil, tilecast.VerdictGone, 0},
		{405, nil, tilecast.VerdictFailed, 0},
		{406, map[string]string{"X-WNS-CONTINUE-AFTER": "9"}, tilecast.VerdictRetry, 9 * time.Second},
		{410, nil, tilecast.VerdictGone, 0},
		{413, nil, tilecast.VerdictFailed, 0},
		{429, map[string]string{"Retry-After": "11"}, tilecast.VerdictRetry, 11 * time.Second},
		{500, nil, tilecast.VerdictRetry, 0},
		{503, map[string]string{"Retry-After": "13"}, tilecast.VerdictRetry, 13 * time.Second},
	}
	f := newFakeWNS(t)
	s := newSetup(t, f, nil)
	for _, row := range rows {
		h := map[string]string{"X-WNS-Msg-ID": "M" + strconv.Itoa(row.status), "MS-CV": "cv." + strconv.Itoa(row.status)}
		for k, v := range row.h {
			h[k] = v
		}
		f.queuePushes(answer{status: row.status, headers: h})
		r := s.push(t, f, toastNote())
		if r.Status != row.status || r.Verdict != row.verdict || r.Wait != row.wait {
			t.Errorf("%d %v: got status %d verdict %v wait %v, want %v %v", row.status, row.h, r.Status, r.Verdict, r.Wait, row.verdict, row.wait)
		}
		if r.MsgID != "M"+strconv.Itoa(row.status) || r.CorrelationVector != "cv."+strconv.Itoa(row.status) {
			t.Errorf("%d: msg id %q, ms-cv %q", row.status, r.MsgID, r.CorrelationVector)
		}
		if r.TokenRefreshed {
			t.Errorf("%d: marked token_refreshed", row.status)
		}
	}
	// A network error (nothing listening) is a retry.
	f.srv.Close()
	r := s.push(t, f, toastNote())
	if r.Verdict != tilecast.VerdictRetry || r.Status != 0 || r.Err == nil {
		t.Errorf("connection refused: %+v", r)
	}
}
