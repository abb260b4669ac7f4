package tilecast_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
)

func TestFeedStatuses(t *testing.T) {
	t1 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	t2 := t1.Add(time.Hour)
	feeds := []tilecast.Feed{
		{Name: "news", Schedule: "*/15 * * * *", URL: "https://example.org/news.xml"},
		{Name: "inbox", Schedule: "@every 5m", URL: "https://example.org/{user}/inbox.xml"},
		{Name: "quiet", Schedule: "@hourly", URL: "https://example.org/quiet.xml"},
		{Name: "news", Schedule: "@daily", URL: "https://example.org/other.xml"}, // repeated: the first counts
	}
	full := tilecast.FeedState{
		Validators: tilecast.Validators{ETag: `"v1"`, LastModified: "Fri, 01 May 2026 12:00:00 GMT"},
		Baselined:  true, LastFetch: t2, LastResult: "http 500: boom", LastSuccess: t1, Failures: 7,
		FailingSince: t1, Broken: true, NextFetch: t2.Add(time.Hour), Title: "News",
		Latest: &tilecast.TemplateData{},
	}
	tests := []struct {
		name       string
		feeds      []tilecast.Feed
		states     map[tilecast.FeedKey]tilecast.FeedState
		want       []tilecast.FeedStatus
		wantBroken int
	}{
		{
			name:  "no states: every configured feed, in config order, without state",
			feeds: feeds,
			want: []tilecast.FeedStatus{
				{Name: "news", Schedule: "*/15 * * * *"},
				{Name: "inbox", Schedule: "@every 5m", PerUser: true},
				{Name: "quiet", Schedule: "@hourly"},
			},
		},
		{
			name:  "states joined; stale and unconfigured ones left out; users sorted",
			feeds: feeds,
			states: map[tilecast.FeedKey]tilecast.FeedState{
				{Feed: "news"}:                 {Baselined: true, LastFetch: t1, LastResult: "ok"},
				{Feed: "news", User: "ana"}:    {Broken: true}, // global feed: a user's state is stale
				{Feed: "inbox"}:                {Broken: true}, // per-user feed: a global state is stale
				{Feed: "inbox", User: "zoe"}:   {Baselined: true, LastFetch: t2, Broken: true},
				{Feed: "inbox", User: "ana"}:   {Baselined: true, LastFetch: t1, LastResult: "not_modified"},
				{Feed: "inbox", User: "bob"}:   {Broken: true, Failures: 3},
				{Feed: "removed"}:              {Broken: true},
				{Feed: "removed", User: "ana"}: {Broken: true},
			},
			want: []tilecast.FeedStatus{
				{Name: "news", Schedule: "*/15 * * * *", State: &tilecast.FeedStateView{Baselined: true, LastFetch: t1, LastResult: "ok"}},
				{Name: "inbox", Schedule: "@every 5m", PerUser: true, Broken: true, Users: []tilecast.FeedStateView{
					{User: "ana", Baselined: true, LastFetch: t1, LastResult: "not_modified"},
					{User: "bob", Broken: true, Failures: 3},
					{User: "zoe", Baselined: true, LastFetch: t2, Broken: true},
				}},
				{Name: "quiet", Schedule: "@hourly"},
			},
			wantBroken: 2,
		},
		{
			name:   "every shown field copied",
			feeds:  feeds[:1],
			states: map[tilecast.FeedKey]tilecast.FeedState{{Feed: "news"}: full},
			want: []tilecast.FeedStatus{{Name: "news", Schedule: "*/15 * * * *", Broken: true, State: &tilecast.FeedStateView{
				Baselined: true, LastFetch: t2, LastResult: "http 500: boom", LastSuccess: t1, Failures: 7,
				FailingSince: t1, Broken: true, NextFetch: t2.Add(time.Hour), Title: "News",
			}}},
			wantBroken: 1,
		},
		{
			name:   "no feeds configured",
			states: map[tilecast.FeedKey]tilecast.FeedState{{Feed: "news"}: full},
			want:   []tilecast.FeedStatus{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, broken := tilecast.FeedStatuses(tt.feeds, tt.states)
			if !reflect.DeepEqual(got, tt.want) || broken != tt.wantBroken {
				g, _ := json.MarshalIndent(got, "", " ")
				w, _ := json.MarshalIndent(tt.want, "", " ")
				t.Errorf("FeedStatuses: broken %d, want %d\ngot  %s\nwant %s", broken, tt.wantBroken, g, w)
			}
		})
	}
}

// The view is what GET /v1/status and `status --json` print: the state's
// public fields under their stable names, never validators or tile data.
func TestFeedStatusJSON(t *testing.T) {
	t1 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	st := tilecast.FeedState{
		Validators: tilecast.Validators{ETag: `"secret-etag"`}, Baselined: true, LastFetch: t1, LastResult: "ok",
		Title: "News", Latest: &tilecast.TemplateData{},
	}
	got, _ := tilecast.FeedStatuses(
		[]tilecast.Feed{{Name: "news", Schedule: "@hourly", URL: "https://example.org/n.xml"}, {Name: "inbox", Schedule: "@daily", URL: "https://example.org/{user}"}},
		map[tilecast.FeedKey]tilecast.FeedState{{Feed: "news"}: st, {Feed: "inbox", User: "ana"}: st})
	b, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	const want = `[{"name":"news","schedule":"@hourly","broken":false,"state":{"baselined":true,"last_fetch":"2026-05-01T12:00:00Z","last_result":"ok","broken":false,"title":"News"}},` +
		`{"name":"inbox","schedule":"@daily","per_user":true,"broken":false,"users":[{"user":"ana","baselined":true,"last_fetch":"2026-05-01T12:00:00Z","last_result":"ok","broken":false,"title":"News"}]}]`
	if string(b) != want {
		t.Errorf("JSON\n got %s\nwant %s", b, want)
	}
	if strings.Contains(string(b), "secret-etag") {
		t.Error("validators leaked into the view")
	}
}
