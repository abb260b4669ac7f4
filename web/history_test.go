package web

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
)

// observeDay feeds the daemon's reports over a day into e's metrics: sends
// and fetches at different hours, and some from more than 24 hours ago
// that the chart must leave out.
func observeDay(e *env) {
	m := e.srv.Metrics()
	at := func(d time.Duration, f func()) {
		e.clock.Add(d)
		f()
		e.clock.Add(-d)
	}
	push := func(a tilecast.Action, n int) {
		for range n {
			m.ObservePush(tilecast.Outcome{Kind: tilecast.KindToast, Action: a})
		}
	}
	fetch := func(feed, result string, n int) {
		for range n {
			m.ObserveFetch(feed, result, 0)
		}
	}
	at(-25*time.Hour, func() { push(tilecast.ActionDelivered, 7); fetch("news", "ok", 9) })
	at(-3*time.Hour, func() { push(tilecast.ActionDelivered, 5); push(tilecast.ActionRetry, 2) })
	at(-2*time.Hour, func() { fetch("news", "ok", 3); fetch("news", "not_modified", 2) })
	at(-time.Hour, func() {
		push(tilecast.ActionFailed, 1)
		push(tilecast.ActionChannelRemoved, 1)
		push(tilecast.ActionExpired, 3)
	})
	push(tilecast.ActionDelivered, 4)
	push(tilecast.ActionDropped, 1)
	fetch("weather", "error", 4)
	fetch("gone-feed", "ok", 1) // a feed a reload removed: still in the window
}

// TestDashboardChart: the last 24 hours as inline SVG drawn by the server
// (one bar segment per hour and outcome that happened, axis numbered),
// with the same numbers in tables, legends with totals, hours older than
// 24 h left out, and no script.
func TestDashboardChart(t *testing.T) {
	e := newDashEnv(t, nil)
	observeDay(e)
	rec := e.get(t, "/", e.mustLogin(t, keyOne))
	if rec.Code != 200 {
		t.Fatalf("dashboard: %d", rec.Code)
	}
	body := rec.Body.String()
	if strings.Contains(strings.ToLower(body), "<script") {
		t.Error("the dashboard carries a script")
	}
	if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("CSP %q", csp)
	}
	sends := between(t, body, "sends-chart", "</svg>")
	if n := strings.Count(sends, "<rect"); n != 7 {
		t.Errorf("sends chart has %d bar segments, want 7 (2 at 09:00, 3 at 11:00, 2 at 12:00)", n)
	}
	for _, want := range []string{"<title>09:00 delivered: 5</title>", "<title>11:00 expired: 3</title>", "<title>12:00 dropped: 1</title>",
		">0</text>", ">5</text>", ">10</text>", ">12h</text>"} {
		if !strings.Contains(sends, want) {
			t.Errorf("sends chart lacks %q", want)
		}
	}
	table := between(t, body, "sends-table", "</table>")
	rows := regexp.MustCompile(`<tr><th scope="row">([0-9:]+)</th>((?:<td class="num">\d+</td>)+)</tr>`).FindAllStringSubmatch(table, -1)
	got := map[string]string{}
	for _, r := range rows {
		got[r[1]] = regexp.MustCompile(`\D+`).ReplaceAllString(r[2], " ")
	}
	want := map[string]string{
		"09:00": " 5 2 0 0 0 0 7 ",
		"11:00": " 0 0 1 1 3 0 5 ",
		"12:00": " 4 0 0 0 0 1 5 ",
	}
	if len(got) != len(want) {
		t.Errorf("sends table rows %v, want %v", got, want)
	}
	for h, w := range want {
		if got[h] != w {
			t.Errorf("sends table %s: %q, want %q", h, got[h], w)
		}
	}
	for _, w := range []string{"delivered <b>9</b>", "retry <b>2</b>", "failed <b>1</b>", "removed <b>1</b>", "expired <b>3</b>",
		"17 sends and 10 fetches"} {
		if !strings.Contains(body, w) {
			t.Errorf("page lacks %q", w)
		}
	}
	fetches := between(t, body, "fetch-table", "</table>")
	for _, w := range []string{
		`<th scope="row">news</th><td class="num">3</td><td class="num">2</td><td class="num">0</td><td class="num">5</td>`,
		`<th scope="row">weather</th><td class="num">0</td><td class="num">0</td><td class="num">4</td><td class="num">4</td>`,
		`<th scope="row">gone-feed</th><td class="num">1</td>`,
	} {
		if !strings.Contains(fetches, w) {
			t.Errorf("fetch table lacks %s:\n%s", w, fetches)
		}
	}
	fsvg := between(t, body, "fetch-chart", "</svg>")
	for _, w := range []string{">news</text>", ">weather</text>", "<title>weather 12:00 error: 4</title>", "<title>news 10:00 not modified: 2</title>"} {
		if !strings.Contains(fsvg, w) {
			t.Errorf("fetch chart lacks %q", w)
		}
	}
}

// TestChartEscapesFeedNames: a feed name is text in the SVG and the table.
func TestChartEscapesFeedNames(t *testing.T) {
	c := buildChart([]hourView{{Start: t0, Fetch: map[string][3]int{`<script>x</script>`: {1, 0, 0}}}}, nil)
	if strings.Contains(string(c.FetchSVG), "<script>") || !strings.Contains(string(c.FetchSVG), "&lt;script&gt;") {
		t.Errorf("feed name not escaped: %s", c.FetchSVG)
	}
}
