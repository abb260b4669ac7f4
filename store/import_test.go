package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
)

// genChannels makes n channels: every third one names a user and the
// per-user feed "inbox", every other one lists "news", the rest no feeds.
func genChannels(n int, prefix string) []tilecast.Channel {
	chs := make([]tilecast.Channel, n)
	for i := range chs {
		ch := tilecast.Channel{URI: fmt.Sprintf("http://127.0.0.1/%s/%07d", prefix, i)}
		switch i % 3 {
		case 0:
			ch.User, ch.Feeds = fmt.Sprintf("u%04d", i%5000), []string{"inbox", "news"}
		case 1:
			ch.Feeds = []string{"news"}
		}
		chs[i] = ch
	}
	return chs
}

// Enough channels for several batches: every one stored and indexed;
// importing them again only updates. The 100k case is
// BenchmarkImportChannels100k (too slow for every -race run).
func TestImportChannelsBatches(t *testing.T) {
	db, _ := mustOpen(t)
	n := 3*ImportBatch + 7
	chs := genChannels(n, "bulk")
	start := time.Now()
	added, updated, err := db.ImportChannels(chs)
	if err != nil || added != n || updated != 0 {
		t.Fatalf("ImportChannels = %d added, %d updated, %v; want %d, 0", added, updated, err, n)
	}
	t.Logf("imported %d channels in %s", n, time.Since(start))
	if s, err := db.Counts(); err != nil || s.Channels != n {
		t.Fatalf("Stats = %+v, %v; want %d channels", s, err, n)
	}
	news := &tilecast.Feed{Name: "news", URL: "http://127.0.0.1/news"}
	if subs, err := db.Subscribers(news, ""); err != nil || len(subs) != n {
		t.Errorf("Subscribers(news) = %d, %v; want every channel (listing it or none)", len(subs), err)
	}
	wantU3, users := 0, map[string]bool{}
	for _, ch := range chs {
		if ch.User == "u0003" {
			wantU3++
		}
		if ch.User != "" {
			users[ch.User] = true
		}
	}
	inbox := &tilecast.Feed{Name: "inbox", URL: "http://127.0.0.1/{user}"}
	if subs, err := db.Subscribers(inbox, "u0003"); err != nil || len(subs) != wantU3 || wantU3 == 0 {
		t.Errorf("Subscribers(inbox, u0003) = %d, %v; want %d", len(subs), err, wantU3)
	}
	if got, _ := db.FeedUsers("inbox"); len(got) != len(users) {
		t.Errorf("FeedUsers(inbox) = %d users, want %d", len(got), len(users))
	}
	last, err := db.ChannelByURI(chs[n-1].URI)
	if err != nil || !slices.Equal(last.Feeds, chs[n-1].Feeds) || last.User != chs[n-1].User {
		t.Errorf("ChannelByURI(last) = %+v, %v; want %+v", last, err, chs[n-1])
	}

	chs[n-1].User = "changed"
	added, updated, err = db.ImportChannels(chs)
	if err != nil || added != 0 || updated != n {
		t.Fatalf("re-import = %d added, %d updated, %v; want 0, %d", added, updated, err, n)
	}
	again, _ := db.ChannelByURI(chs[n-1].URI)
	if again.ID != last.ID || !again.Created.Equal(last.Created) || again.User != "changed" {
		t.Errorf("re-import: %+v, was %+v; want the same channel with the new user", again, last)
	}
	if got, _ := db.Channels("changed"); len(got) != 1 {
		t.Errorf("user index after re-import: %d channels of the new user, want 1", len(got))
	}
	if s, _ := db.Counts(); s.Channels != n {
		t.Errorf("after re-import %d channels, want %d", s.Channels, n)
	}
}

func TestImportChannelsRules(t *testing.T) {
	tests := []struct {
		name             string
		existing         []tilecast.Channel
		in               []tilecast.Channel
		added, updated   int
		wantErr          error
		wantChannels     int
		wantUser         map[string]string // URI → user after the import
		wantFeeds        map[string][]string
		wantMissingURIs  []string
		wantSameIDForURI string            // a URI of existing whose ID must be kept
		wantIDOf         map[string]string // URI → the URI of existing whose ID it must have
		wantRotations    int               // channel rotated log lines
	}{
		{
			name:         "new and existing",
			existing:     []tilecast.Channel{{URI: "http://127.0.0.1/a", User: "ana", Feeds: []string{"news"}}},
			in:           []tilecast.Channel{{URI: "http://127.0.0.1/a", User: "bob"}, {URI: "http://127.0.0.1/b", Feeds: []string{"x", "x", "y"}}},
			added:        1,
			updated:      1,
			wantChannels: 2,
			wantUser:     map[string]string{"http://127.0.0.1/a": "bob", "http://127.0.0.1/b": ""},
			wantFeeds:    map[string][]string{"http://127.0.0.1/a": nil, "http://127.0.0.1/b": {"x", "y"}},

			wantSameIDForURI: "http://127.0.0.1/a",
		},
		{
			name:         "a URI repeated in the input: the later one wins",
			in:           []tilecast.Channel{{URI: "http://127.0.0.1/a", User: "ana"}, {URI: "http://127.0.0.1/a", User: "bob"}},
			added:        1,
			updated:      1,
			wantChannels: 1,
			wantUser:     map[string]string{"http://127.0.0.1/a": "bob"},
		},
		{
			name:         "one invalid channel: nothing is written",
			existing:     []tilecast.Channel{{URI: "http://127.0.0.1/a"}},
			in:           []tilecast.Channel{{URI: "http://127.0.0.1/b"}, {URI: ""}, {URI: "http://127.0.0.1/c"}},
			wantErr:      ErrInvalidChannel,
			wantChannels: 1,

			wantMissingURIs: []string{"http://127.0.0.1/b", "http://127.0.0.1/c"},
		},
		{
			name:         "NUL in a user",
			in:           []tilecast.Channel{{URI: "http://127.0.0.1/b", User: "a\x00b"}},
			wantErr:      ErrInvalidChannel,
			wantChannels: 0,
		},
		{
			name:         "a bidi control in a user",
			in:           []tilecast.Channel{{URI: "http://127.0.0.1/b", User: "ok"}, {URI: "http://127.0.0.1/c", User: "a\u2066b"}},
			wantErr:      ErrInvalidChannel,
			wantChannels: 0,
		},
		{
			name:         "invalid UTF-8 in a user is refused, not replaced",
			in:           []tilecast.Channel{{URI: "http://127.0.0.1/b", User: "bob\xc3"}},
			wantErr:      ErrInvalidChannel,
			wantChannels: 0,
		},
		{
			name:            "a device's new URI rotates its channel",
			existing:        []tilecast.Channel{{URI: "http://127.0.0.1/old", User: "ana", Device: "d1"}},
			in:              []tilecast.Channel{{URI: "http://127.0.0.1/new", User: "ana", Device: "d1"}},
			updated:         1,
			wantChannels:    1,
			wantMissingURIs: []string{"http://127.0.0.1/old"},
			wantIDOf:        map[string]string{"http://127.0.0.1/new": "http://127.0.0.1/old"},
			wantRotations:   1,
		},
		{
			name:          "another user's device ID is another device",
			existing:      []tilecast.Channel{{URI: "http://127.0.0.1/ana", User: "ana", Device: "d1"}},
			in:            []tilecast.Channel{{URI: "http://127.0.0.1/bob", User: "bob", Device: "d1"}},
			added:         1,
			wantChannels:  2,
			wantUser:      map[string]string{"http://127.0.0.1/ana": "ana", "http://127.0.0.1/bob": "bob"},
			wantIDOf:      map[string]string{"http://127.0.0.1/ana": "http://127.0.0.1/ana"},
			wantRotations: 0,
		},
		{
			name: "empty input",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db, _, logs := rotationLog(t)
			ids := map[string]string{}
			for _, ch := range tc.existing {
				ids[ch.URI] = addChannel(t, db, ch).ID
			}
			added, updated, err := db.ImportChannels(tc.in)
			if n := strings.Count(logs.String(), `msg="channel rotated"`); n != tc.wantRotations {
				t.Errorf("%d rotations logged, want %d:\n%s", n, tc.wantRotations, logs.String())
			}
			for uri, from := range tc.wantIDOf {
				if ch, err := db.ChannelByURI(uri); err != nil || ch.ID != ids[from] {
					t.Errorf("%s: %+v, %v; want the ID of %s (%s)", uri, ch, err, from, ids[from])
				}
			}
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if added != tc.added || updated != tc.updated {
				t.Errorf("added %d updated %d, want %d %d", added, updated, tc.added, tc.updated)
			}
			if s, _ := db.Counts(); s.Channels != tc.wantChannels {
				t.Errorf("%d channels, want %d", s.Channels, tc.wantChannels)
			}
			for uri, user := range tc.wantUser {
				ch, err := db.ChannelByURI(uri)
				if err != nil || ch.User != user {
					t.Errorf("%s: %+v, %v; want user %q", uri, ch, err, user)
				}
				if chs, _ := db.Channels(user); user != "" && !slices.ContainsFunc(chs, func(c tilecast.Channel) bool { return c.URI == uri }) {
					t.Errorf("user index of %q lacks %s", user, uri)
				}
			}
			for uri, feeds := range tc.wantFeeds {
				if ch, _ := db.ChannelByURI(uri); !slices.Equal(ch.Feeds, feeds) {
					t.Errorf("%s feeds %v, want %v", uri, ch.Feeds, feeds)
				}
			}
			for _, uri := range tc.wantMissingURIs {
				if _, err := db.ChannelByURI(uri); !errors.Is(err, tilecast.ErrNotFound) {
					t.Errorf("%s: %v, want not found", uri, err)
				}
			}
			if u := tc.wantSameIDForURI; u != "" {
				if ch, _ := db.ChannelByURI(u); ch.ID != ids[u] {
					t.Errorf("%s: ID %s, want the existing %s", u, ch.ID, ids[u])
				}
			}
		})
	}
}

// ImportChannels and AddChannel share one code path: the same input gives
// the same records (ID and Created aside) and the same indexes.
func TestImportMatchesAddChannel(t *testing.T) {
	in := genChannels(30, "same")
	in = append(in, tilecast.Channel{URI: in[4].URI, User: "zed", Feeds: []string{"inbox"}, Device: "dev"})
	c1, c2 := newClock(), newClock()
	one := openAt(t, filepath.Join(t.TempDir(), "a.db"), c1)
	two := openAt(t, filepath.Join(t.TempDir(), "b.db"), c2)
	for _, ch := range in {
		addChannel(t, one, ch)
	}
	if _, _, err := two.ImportChannels(in); err != nil {
		t.Fatal(err)
	}
	a, _ := one.Channels("")
	b, _ := two.Channels("")
	norm := func(chs []tilecast.Channel) []string {
		var out []string
		for _, c := range chs {
			out = append(out, fmt.Sprintf("%s|%s|%v|%s|%s", c.URI, c.User, c.Feeds, c.Device, c.Created))
		}
		slices.Sort(out)
		return out
	}
	if !slices.Equal(norm(a), norm(b)) {
		t.Errorf("AddChannel and ImportChannels differ:\n%v\n%v", norm(a), norm(b))
	}
	for _, db := range []*DB{one, two} {
		if users, _ := db.FeedUsers("inbox"); !slices.Contains(users, "zed") {
			t.Errorf("FeedUsers(inbox) = %v, want zed", users)
		}
	}
}

// BenchmarkImportChannels100k: a 100k-channel import into an empty file.
func BenchmarkImportChannels100k(b *testing.B) {
	chs := genChannels(100_000, "bench")
	for b.Loop() {
		b.StopTimer()
		db, err := Open(filepath.Join(b.TempDir(), "state.db"), Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if added, _, err := db.ImportChannels(chs); err != nil || added != len(chs) {
			b.Fatalf("added %d, %v", added, err)
		}
		b.StopTimer()
		if s, err := db.Counts(); err != nil || s.Channels != len(chs) {
			b.Fatalf("Stats = %+v, %v; want %d channels", s, err, len(chs))
		}
		_ = db.Close()
		b.StartTimer()
	}
}
