package tilecast_test

import (
	"math/rand/v2"
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

// TestFeedsBrokenAgreesWithFeedStatuses: for random configs and states,
// the count made from per-feed broken counts (what the store keeps) equals
// the one FeedStatuses makes from the states themselves.
func TestFeedsBrokenAgreesWithFeedStatuses(t *testing.T) {
	rng := rand.New(rand.NewPCG(14, 1))
	names := []string{"a", "b", "c", "d"}
	for round := range 500 {
		var feeds []tilecast.Feed
		for range rng.IntN(6) {
			f := tilecast.Feed{Name: names[rng.IntN(len(names))], URL: "https://example.org/f"}
			if rng.IntN(2) == 0 {
				f.URL += "?u={user}"
			}
			feeds = append(feeds, f)
		}
		states := map[tilecast.FeedKey]tilecast.FeedState{}
		c := tilecast.Counts{Broken: map[string]tilecast.BrokenStates{}}
		for range rng.IntN(12) {
			k := tilecast.FeedKey{Feed: names[rng.IntN(len(names))], User: []string{"", "ann", "bob"}[rng.IntN(3)]}
			if _, dup := states[k]; dup {
				continue
			}
			st := tilecast.FeedState{Broken: rng.IntN(2) == 0}
			states[k] = st
			if st.Broken {
				b := c.Broken[k.Feed]
				if k.User == "" {
					b.Global++
				} else {
					b.Users++
				}
				c.Broken[k.Feed] = b
			}
		}
		_, want := tilecast.FeedStatuses(feeds, states)
		if got := c.FeedsBroken(feeds); got != want {
			t.Fatalf("round %d: FeedsBroken = %d, FeedStatuses counts %d\nfeeds %+v\nstates %+v", round, got, want, feeds, states)
		}
	}
}
