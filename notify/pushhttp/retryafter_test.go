package pushhttp_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/tilecast/tilecast/notify/pushhttp"
)

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	const limit = 10 * time.Minute
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"30", 30 * time.Second, true},
		{" 7 ", 7 * time.Second, true},
		{"600", limit, true},
		{"99999999999999999999999", limit, true},
		{"-5", 0, false},
		{"5s", 0, false},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
		{now.Add(48 * time.Hour).Format(http.TimeFormat), limit, true},
		{"tomorrow", 0, false},
	}
	for _, tt := range tests {
		got, ok := pushhttp.RetryAfter(tt.in, now, limit)
		if got != tt.want || ok != tt.ok {
			t.Errorf("RetryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}
