package tilecast_test

import (
	"testing"

	"github.com/tilecast/tilecast"
)

// TestCountsFeedsBroken: only the configured feeds' states count, each in
// the form the feed has now (global or per user), a feed listed twice once.
func TestCountsFeedsBroken(t *testing.T) {
	c := tilecast.Counts{Broken: map[string]tilecast.BrokenStates{
		"news":    {Global: 1},
		"inbox":   {Users: 3},
		"mixed":   {Global: 1, Users: 2}, // its URL gained {user} at some point
		"removed": {Global: 1, Users: 5},
	}}
	global := func(name string) tilecast.Feed { return tilecast.Feed{Name: name, URL: "https://example.org/" + name} }
	perUser := func(name string) tilecast.Feed {
		return tilecast.Feed{Name: name, URL: "https://example.org/" + name + "?u={user}"}
	}
	tests := []struct {
		name  string
		feeds []tilecast.Feed
		want  int
	}{
		{"none configured", nil, 0},
		{"global", []tilecast.Feed{global("news")}, 1},
		{"per user", []tilecast.Feed{perUser("inbox")}, 3},
		{"global now", []tilecast.Feed{global("mixed")}, 1},
		{"per user now", []tilecast.Feed{perUser("mixed")}, 2},
		{"wrong form", []tilecast.Feed{perUser("news"), global("inbox")}, 0},
		{"listed twice", []tilecast.Feed{global("news"), global("news")}, 1},
		{"all", []tilecast.Feed{global("news"), perUser("inbox"), perUser("mixed"), global("quiet")}, 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := c.FeedsBroken(tt.feeds); got != tt.want {
				t.Errorf("FeedsBroken = %d, want %d", got, tt.want)
			}
		})
	}
	var empty tilecast.Counts
	if got := empty.FeedsBroken([]tilecast.Feed{global("news")}); got != 0 {
		t.Errorf("no broken states: %d", got)
	}
}
