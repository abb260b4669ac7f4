package store

import (
	"slices"
	"strings"
	"testing"

	"github.com/tilecast/tilecast"
)

// TestSubscribersAfterPages: every page size walks the default list, then
// the feed's own subscribers, each exactly once, and ends with "".
func TestSubscribersAfterPages(t *testing.T) {
	db, _ := mustOpen(t)
	var want []string
	for i, feeds := range [][]string{nil, {"news"}, {"news", "sports"}, {"sports"}, nil, {"news"}, {"news"}} {
		ch := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/c" + string(rune('a'+i)), Feeds: feeds})
		if feeds == nil || slices.Contains(feeds, "news") {
			want = append(want, ch.ID)
		}
	}
	f := &tilecast.Feed{Name: "news", URL: "http://127.0.0.1/news.xml"}
	slices.Sort(want)
	for limit := 1; limit <= len(want)+1; limit++ {
		var got []string
		cursor, pages := "", 0
		for {
			page, next, err := db.SubscribersAfter(f, cursor, limit)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) > limit {
				t.Fatalf("limit %d: page of %d", limit, len(page))
			}
			for _, ch := range page {
				got = append(got, ch.ID)
			}
			if pages++; next == "" || pages > 100 {
				break
			}
			cursor = next
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("limit %d: got %v, want %v", limit, got, want)
		}
	}
	if _, _, err := db.SubscribersAfter(&tilecast.Feed{Name: "inbox", URL: "http://127.0.0.1/{user}"}, "", 10); err == nil {
		t.Error("paging a per-user feed: no error")
	}
}

// TestFanOutJobLifecycle: a Commit starts a job, steps enqueue and move it,
// the last step deletes it; a second job for the same feed, a step for a
// finished job and a commit mixing both kinds are refused.
func TestFanOutJobLifecycle(t *testing.T) {
	db, clk := mustOpen(t)
	a := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/a", Feeds: []string{"news"}})
	k := tilecast.FeedKey{Feed: "news"}
	job := tilecast.FanOutJob{Feed: "news", Fresh: []tilecast.Item{{ID: "1"}}, Now: clk.Now()}
	c := tilecast.Commit{Key: k, State: tilecast.FeedState{Baselined: true}, Seen: []string{"1"}, Now: clk.Now(), FanOut: &job}
	if err := db.Commit(c); err != nil {
		t.Fatal(err)
	}
	if err := db.Commit(c); err == nil || !strings.Contains(err.Error(), "unfinished delivery") {
		t.Errorf("second job for the feed: %v", err)
	}
	mixed := c
	mixed.Key = tilecast.FeedKey{Feed: "sports"}
	mixed.FanOut = &tilecast.FanOutJob{Feed: "sports"}
	mixed.Notifications = []tilecast.Notification{toast(a, "sports", "1")}
	if err := db.Commit(mixed); err == nil {
		t.Error("a commit with both a job and notifications was accepted")
	}

	job.Cursor = "somewhere"
	if err := db.FanOutStep(job, []tilecast.Notification{toast(a, "news", "1")}, false); err != nil {
		t.Fatal(err)
	}
	jobs, err := db.FanOutJobs()
	if err != nil || len(jobs) != 1 || jobs[0].Cursor != "somewhere" || jobs[0].Fresh[0].ID != "1" {
		t.Fatalf("jobs = %+v, %v", jobs, err)
	}
	if err := db.FanOutStep(job, nil, true); err != nil {
		t.Fatal(err)
	}
	if jobs, _ := db.FanOutJobs(); len(jobs) != 0 {
		t.Errorf("jobs after the last step: %+v", jobs)
	}
	if err := db.FanOutStep(job, []tilecast.Notification{toast(a, "news", "1")}, false); err == nil {
		t.Error("a step for a finished job was accepted (it would send a page twice)")
	}
	due, err := db.Due(clk.Now(), 10, func(uint64) bool { return false })
	if err != nil || len(due) != 1 {
		t.Errorf("outbox: %d entries, %v; want the one page entry", len(due), err)
	}
}
