package web

// The dashboard's last 24 hours: sends per hour by outcome and fetch
// results per feed and hour, counted in memory as the daemon reports them
// (Metrics.ObservePush, ObserveFetch) and drawn by the server as inline
// SVG with the numbers in a table beside it. Memory only: a restart starts
// the chart afresh; /metrics stays the source for anything longer.

import (
	"fmt"
	"html/template"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tilecast/tilecast"
)

// historyHours is how many hours the chart shows.
const historyHours = 24

// sendOutcomes are the chart's send outcomes in drawing order, with their
// words and colours.
var sendOutcomes = [...]struct {
	action tilecast.Action
	label  string
	colour string
}{
	{tilecast.ActionDelivered, "delivered", "#2e9e44"},
	{tilecast.ActionRetry, "retry", "#e3a008"},
	{tilecast.ActionFailed, "failed", "#c62828"},
	{tilecast.ActionChannelRemoved, "removed", "#6d4c9f"},
	{tilecast.ActionExpired, "expired", "#8a8a8a"},
	{tilecast.ActionDropped, "dropped", "#4a90c2"},
}

// fetchResults are the fetch results ObserveFetch is told, in drawing order.
var fetchResults = [...]struct{ result, label, colour string }{
	{"ok", "ok", "#2e9e44"},
	{"not_modified", "not modified", "#9cc9a5"},
	{"error", "error", "#c62828"},
}

type hourStats struct {
	hour  int64 // hours since the Unix epoch; the slot is stale when it is not the one asked for
	sends [len(sendOutcomes)]int
	fetch map[string]*[len(fetchResults)]int
}

// history is the ring of the last historyHours hours.
type history struct {
	mu    sync.Mutex
	now   func() time.Time
	hours [historyHours]hourStats
}

func newHistory() *history { return &history{now: time.Now} }

func (h *history) slot(at time.Time) *hourStats {
	hour := at.Unix() / 3600
	s := &h.hours[int(hour%historyHours)]
	if s.hour != hour {
		*s = hourStats{hour: hour}
	}
	return s
}

func (h *history) push(a tilecast.Action) {
	i := -1
	for j, o := range sendOutcomes {
		if o.action == a {
			i = j
		}
	}
	if i < 0 {
		return
	}
	h.mu.Lock()
	h.slot(h.now()).sends[i]++
	h.mu.Unlock()
}

func (h *history) fetch(feed, result string) {
	i := 2 // anything else is an error
	for j, r := range fetchResults {
		if r.result == result {
			i = j
		}
	}
	h.mu.Lock()
	s := h.slot(h.now())
	if s.fetch == nil {
		s.fetch = map[string]*[len(fetchResults)]int{}
	}
	c := s.fetch[feed]
	if c == nil {
		c = new([len(fetchResults)]int)
		s.fetch[feed] = c
	}
	c[i]++
	h.mu.Unlock()
}

// hourView is one hour of the chart, oldest first.
type hourView struct {
	Start time.Time
	Sends [len(sendOutcomes)]int
	Fetch map[string][len(fetchResults)]int
}

// snapshot returns the last historyHours hours up to the current one,
// oldest first, with empty hours filled in.
func (h *history) snapshot() []hourView {
	h.mu.Lock()
	defer h.mu.Unlock()
	cur := h.now().Unix() / 3600
	out := make([]hourView, historyHours)
	for i := range out {
		hour := cur - int64(historyHours-1-i)
		v := hourView{Start: time.Unix(hour*3600, 0).UTC(), Fetch: map[string][len(fetchResults)]int{}}
		if s := &h.hours[int(hour%historyHours)]; s.hour == hour {
			v.Sends = s.sends
			for f, c := range s.fetch {
				v.Fetch[f] = *c
			}
		}
		out[i] = v
	}
	return out
}

// activityChart is the dashboard's "last 24 hours" section.
type activityChart struct {
	SendsSVG  template.HTML
	FetchSVG  template.HTML
	Outcomes  []legendItem
	Results   []legendItem
	SendRows  []sendRow
	FetchRows []fetchRow
	Sends     int // in the 24 hours
	Fetches   int
	Since     string
}

type legendItem struct {
	Label, Colour string
	Total         int
}

type sendRow struct {
	Hour   string
	Counts []int
	Total  int
}

type fetchRow struct {
	Feed   string
	Counts []int
	Total  int
}

// Chart geometry, in SVG user units (the SVG scales to its box).
const (
	chartW, chartH  = 480, 170
	chartLeft       = 34 // room for the axis numbers
	chartBottom     = 20 // room for the hour labels
	feedRowH        = 30
	feedLabelW      = 90
	barGap          = 2
	chartTopPadding = 10
)

// buildChart lays out the snapshot as two inline SVGs and their tables.
func buildChart(hours []hourView, feeds []string) activityChart {
	var c activityChart
	if len(hours) == 0 {
		return c
	}
	c.Since = hours[0].Start.Format("2006-01-02 15:00 UTC")
	for _, o := range sendOutcomes {
		c.Outcomes = append(c.Outcomes, legendItem{Label: o.label, Colour: o.colour})
	}
	for _, r := range fetchResults {
		c.Results = append(c.Results, legendItem{Label: r.label, Colour: r.colour})
	}
	maxSends := 0
	for _, h := range hours {
		total := 0
		for i, n := range h.Sends {
			total += n
			c.Outcomes[i].Total += n
		}
		maxSends = max(maxSends, total)
		c.Sends += total
		if total > 0 {
			c.SendRows = append(c.SendRows, sendRow{Hour: h.Start.Format("15:00"), Counts: slices.Clone(h.Sends[:]), Total: total})
		}
	}
	// Feeds: the configured ones in config order, then any others seen
	// in the window (a feed removed by a reload).
	seen := map[string]bool{}
	names := []string{}
	for _, f := range feeds {
		if !seen[f] {
			seen[f] = true
			names = append(names, f)
		}
	}
	var extra []string
	for _, h := range hours {
		for f := range h.Fetch {
			if !seen[f] {
				seen[f] = true
				extra = append(extra, f)
			}
		}
	}
	slices.Sort(extra)
	names = append(names, extra...)
	for _, f := range names {
		row := fetchRow{Feed: f, Counts: make([]int, len(fetchResults))}
		for _, h := range hours {
			for i, n := range h.Fetch[f] {
				row.Counts[i] += n
				row.Total += n
				c.Results[i].Total += n
			}
		}
		c.Fetches += row.Total
		c.FetchRows = append(c.FetchRows, row)
	}
	c.SendsSVG = sendsSVG(hours, maxSends)
	c.FetchSVG = fetchSVG(hours, names)
	return c
}

// niceMax rounds a maximum up to 1, 2 or 5 times a power of ten, so the
// axis reads in round numbers.
func niceMax(n int) int {
	if n <= 0 {
		return 1
	}
	for p := 1; ; p *= 10 {
		for _, m := range []int{1, 2, 5} {
			if m*p >= n {
				return m * p
			}
		}
	}
}

func esc(s string) string { return template.HTMLEscapeString(s) }

// hourLabel labels the bar at x (width w) with its hour; the last one is
// right-aligned so it is not cut at the chart's edge.
func hourLabel(x, w float64, y int, last bool, start time.Time) string {
	anchor, at := "middle", x+w/2
	if last {
		anchor, at = "end", x+w
	}
	return fmt.Sprintf(`<text x="%.1f" y="%d" text-anchor="%s" font-size="12" fill="#555">%s</text>`, at, y, anchor, start.Format("15h"))
}

// sendsSVG draws sends per hour as stacked bars, with the axis numbered
// and every third hour labelled, so it reads without hovering.
func sendsSVG(hours []hourView, maxSends int) template.HTML {
	var b strings.Builder
	top := niceMax(maxSends)
	plotW := float64(chartW - chartLeft)
	plotH := float64(chartH - chartBottom - chartTopPadding)
	barW := plotW / float64(len(hours))
	fmt.Fprintf(&b, `<svg class="chart" id="sends-chart" viewBox="0 0 %d %d" role="img" aria-labelledby="sends-chart-title"><title id="sends-chart-title">Sends per hour by outcome, last 24 hours (numbers in the table)</title>`, chartW, chartH)
	// Grid lines at 0, half and the top, numbered.
	for _, v := range []int{0, top / 2, top} {
		y := float64(chartTopPadding) + plotH - plotH*float64(v)/float64(top)
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/><text x="%d" y="%.1f" text-anchor="end" font-size="12" fill="#555">%d</text>`,
			chartLeft, y, chartW, y, chartLeft-4, y+4, v)
	}
	for i, h := range hours {
		x := float64(chartLeft) + float64(i)*barW
		y := float64(chartTopPadding) + plotH
		for j, n := range h.Sends {
			if n == 0 {
				continue
			}
			hgt := plotH * float64(n) / float64(top)
			y -= hgt
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s: %d</title></rect>`,
				x+barGap/2, y, barW-barGap, hgt, sendOutcomes[j].colour, h.Start.Format("15:00"), sendOutcomes[j].label, n)
		}
		if i%3 == 0 || i == len(hours)-1 {
			b.WriteString(hourLabel(x, barW, chartH-6, i == len(hours)-1, h.Start))
		}
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) // every value above is a number or a fixed word
}

// fetchSVG draws one row per feed: per hour a bar split by result, the
// hour's fetches scaled to the busiest hour of that feed, so a feed that
// turned to errors shows red where it did.
func fetchSVG(hours []hourView, feeds []string) template.HTML {
	if len(feeds) == 0 {
		return ""
	}
	var b strings.Builder
	h := len(feeds)*feedRowH + chartBottom
	plotW := float64(chartW - feedLabelW)
	barW := plotW / float64(len(hours))
	fmt.Fprintf(&b, `<svg class="chart" id="fetch-chart" viewBox="0 0 %d %d" role="img" aria-labelledby="fetch-chart-title"><title id="fetch-chart-title">Fetch results per feed and hour, last 24 hours (numbers in the table)</title>`, chartW, h)
	for r, f := range feeds {
		y0 := float64(r * feedRowH)
		busiest := 0
		for _, hv := range hours {
			t := 0
			for _, n := range hv.Fetch[f] {
				t += n
			}
			busiest = max(busiest, t)
		}
		label := f
		if len([]rune(label)) > 12 {
			label = string([]rune(label)[:11]) + "…"
		}
		fmt.Fprintf(&b, `<text x="0" y="%.1f" font-size="12" fill="#222">%s</text>`, y0+feedRowH/2+4, esc(label))
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>`, feedLabelW, y0+feedRowH-4, chartW, y0+feedRowH-4)
		for i, hv := range hours {
			x := float64(feedLabelW) + float64(i)*barW
			y := y0 + feedRowH - 4
			for j, n := range hv.Fetch[f] {
				if n == 0 {
					continue
				}
				hgt := float64(feedRowH-8) * float64(n) / float64(busiest)
				y -= hgt
				fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s %s: %d</title></rect>`,
					x+barGap/2, y, barW-barGap, hgt, fetchResults[j].colour, esc(f), hv.Start.Format("15:00"), fetchResults[j].label, n)
			}
		}
	}
	for i, hv := range hours {
		if i%3 == 0 || i == len(hours)-1 {
			b.WriteString(hourLabel(float64(feedLabelW)+float64(i)*barW, barW, h-6, i == len(hours)-1, hv.Start))
		}
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) // feed names escaped by esc; the rest are numbers and fixed words
}
