// Package demo holds the fixtures of `tilecast demo`: a sample feed server
// on loopback whose feeds gain an item every few seconds, so the demo shows
// new toasts and tiles without any network access.
package demo

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// headlines are the bundled sample stories, cycled through as new items.
var headlines = [...]struct{ title, summary string }{
	{"Harbour bridge reopens after repairs", "Traffic flows again across the old harbour bridge after six weeks of works."},
	{"Local team wins the cup in extra time", "A late header settled a tense final in front of a sold-out stadium."},
	{"Library extends opening hours", "The central library will now stay open until 10 pm on weekdays."},
	{"Storm warning for the coast tonight", "Gusts of up to 90 km/h are expected along the coast after midnight."},
	{"New bike lanes on Main Street", "Protected lanes now run the whole length of Main Street."},
	{"Farmers' market moves to Saturdays", "The weekly market changes day to draw more visitors."},
	{"Museum shows lost sketches", "Forty sketches thought lost in a fire go on display next month."},
	{"Night trains return this summer", "Sleeper services to the mountains resume in June."},
}

// Feeds serves the demo's feeds: /news.xml (global) and
// /users/{user}/inbox.xml (one per user). Every Every, each feed gains an item.
type Feeds struct {
	Every time.Duration
	Now   func() time.Time

	mu    sync.Mutex
	start time.Time
}

// NewFeeds returns a server whose feeds start with two items each.
func NewFeeds(every time.Duration, now func() time.Time) *Feeds {
	if now == nil {
		now = time.Now
	}
	return &Feeds{Every: every, Now: now, start: now()}
}

type rss struct {
	XMLName xml.Name   `xml:"rss"`
	Version string     `xml:"version,attr"`
	Channel rssChannel `xml:"channel"`
}

type rssChannel struct {
	Title string    `xml:"title"`
	Link  string    `xml:"link"`
	Items []rssItem `xml:"item"`
}

type rssItem struct {
	GUID        string `xml:"guid"`
	Title       string `xml:"title"`
	Description string `xml:"description"`
	PubDate     string `xml:"pubDate"`
}

// count is how many items exist now: two at the start, one more each Every.
func (f *Feeds) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return 2 + int(f.Now().Sub(f.start)/f.Every)
}

func (f *Feeds) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := f.count()
	var ch rssChannel
	switch {
	case r.URL.Path == "/news.xml":
		ch = rssChannel{Title: "Harbour Town News", Link: "http://127.0.0.1/news"}
		for i := n - 1; i >= 0 && i >= n-20; i-- {
			h := headlines[i%len(headlines)]
			ch.Items = append(ch.Items, rssItem{GUID: fmt.Sprintf("news-%d", i), Title: h.title,
				Description: h.summary, PubDate: f.start.Add(time.Duration(i) * f.Every).Format(time.RFC1123Z)})
		}
	case strings.HasPrefix(r.URL.Path, "/users/") && strings.HasSuffix(r.URL.Path, "/inbox.xml"):
		user := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/users/"), "/inbox.xml")
		if user == "" || strings.Contains(user, "/") {
			http.NotFound(w, r)
			return
		}
		ch = rssChannel{Title: "Inbox of " + user, Link: "http://127.0.0.1/users/" + user}
		for i := n - 1; i >= 0 && i >= n-20; i-- {
			ch.Items = append(ch.Items, rssItem{GUID: fmt.Sprintf("%s-msg-%d", user, i),
				Title:       fmt.Sprintf("Message %d for %s", i+1, user),
				Description: "You have a new message.", PubDate: f.start.Add(time.Duration(i) * f.Every).Format(time.RFC1123Z)})
		}
	default:
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/rss+xml; charset=utf-8")
	w.Write([]byte(xml.Header))
	xml.NewEncoder(w).Encode(rss{Version: "2.0", Channel: ch})
}
