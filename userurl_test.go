package tilecast

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

func TestCheckUser(t *testing.T) {
	tests := []struct {
		name, user string
		want       string // "" accepts; else a substring of the error
	}{
		{"empty means no user", "", ""},
		{"ascii", "bob", ""},
		{"unicode letters", "Zoë-王", ""},
		{"punctuation", "bob&key=x/../%2F", ""},
		{"space", "bob smith", ""},
		{"invalid utf8", "bob\xff", "not valid UTF-8"},
		{"truncated rune", "b\xe2\x82", "not valid UTF-8"},
		{"replacement character", "bob\ufffd", "U+FFFD at byte 3"},
		{"NUL", "bob\x00", "control character U+0000"},
		{"newline", "bob\nlevel=ERROR", "control character U+000A"},
		{"DEL", "bob\x7f", "control character U+007F"},
		{"C1", "bob\u0085", "control character U+0085"},
		{"line separator", "bob\u2028x", "line or paragraph separator U+2028"},
		{"RLO", "bob\u202egnp.exe", "bidi control U+202E"},
		{"RLM", "\u200fbob", "bidi control U+200F"},
		{"isolate", "bob\u2067x\u2069", "bidi control U+2067"},
		{"arabic letter mark", "bob\u061c", "bidi control U+061C"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckUser(tt.user)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("CheckUser(%q) = %v, want nil", tt.user, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, ErrBadUser) {
				t.Fatalf("CheckUser(%q) = %v, want ErrBadUser with %q", tt.user, err, tt.want)
			}
		})
	}
}

func TestCheckFeedURL(t *testing.T) {
	tests := []struct {
		url  string
		want string // "" accepts
	}{
		{"https://example.org/feed.xml", ""},
		{"https://example.org/users/{user}/feed.xml", ""},
		{"https://example.org/feed?u={user}&k=1", ""},
		{"https://{user}.example.org/feed", ""},
		{"https://{user}.example.org./feed", ""},
		{"https://{user}.{user}.example.org/{user}?u={user}", ""},
		{"https://{user}.example.org:8443/feed", ""},
		{"https://{user}/feed", "at least two labels"},
		{"https://{user}.org/feed", "at least two labels"},
		{"https://{user}.org./feed", "at least two labels"},
		{"https://example.{user}.org/feed", "at least two labels"},
		{"https://u{user}.example.org/feed", "whole DNS label"},
		{"https://[::{user}]/feed", "IP address"},
		{"http{user}://example.org/", "scheme"},
		{"https://{user}@example.org/", "userinfo"},
		{"https://a:{user}@example.org/", "userinfo"},
		{"https://example.org:{user}/", "port"},
		{"https://example.org:8{user}/", "port"},
		{"https://example.org/feed#{user}", "fragment"},
		{"https://example.org/feed?x=1#u={user}", "fragment"},
		{"//example.org/{user}", "absolute"},
	}
	for _, tt := range tests {
		err := CheckFeedURL(tt.url)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("CheckFeedURL(%q) = %v, want nil", tt.url, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("CheckFeedURL(%q) = %v, want an error with %q", tt.url, err, tt.want)
		}
	}
}

func TestURLFor(t *testing.T) {
	const (
		inPath  = "https://example.org/users/{user}/feed.xml"
		inQuery = "https://example.org/feed?user={user}&format=rss"
		inHost  = "https://{user}.example.org/feed?for={user}"
		inBoth  = "https://example.org/u/{user}.xml?q={user}#top"
	)
	tests := []struct {
		name, url, user string
		want            string // the URL; "" means refused
		bad             bool   // the refusal wraps ErrBadUser
	}{
		{"plain in path", inPath, "bob", "https://example.org/users/bob/feed.xml", false},
		{"slash and dots stay one segment", inPath, "bob/../admin", "https://example.org/users/bob%2F..%2Fadmin/feed.xml", false},
		{"parent segment refused", inPath, "..", "", true},
		{"current segment refused", inPath, ".", "", true},
		{"dots inside a segment are harmless", inBoth, "..", "https://example.org/u/...xml?q=..#top", false},
		{"query separators in path", inPath, "bob&key=x?y#z", "https://example.org/users/bob&key=x%3Fy%23z/feed.xml", false},
		{"space in path", inPath, "bob smith", "https://example.org/users/bob%20smith/feed.xml", false},
		{"percent is escaped, not decoded", inPath, "a%2Fb", "https://example.org/users/a%252Fb/feed.xml", false},
		{"unicode in path", inPath, "Zoë", "https://example.org/users/Zo%C3%AB/feed.xml", false},
		{"query injection", inQuery, "bob&key=x", "https://example.org/feed?user=bob%26key%3Dx&format=rss", false},
		{"query space and hash", inQuery, "a b#c", "https://example.org/feed?user=a+b%23c&format=rss", false},
		{"unicode in query", inQuery, "王", "https://example.org/feed?user=%E7%8E%8B&format=rss", false},
		{"both", inBoth, "a/b c", "https://example.org/u/a%2Fb%20c.xml?q=a%2Fb+c#top", false},
		{"host label", inHost, "bob-2", "https://bob-2.example.org/feed?for=bob-2", false},
		{"host label upper case", inHost, "Bob", "https://Bob.example.org/feed?for=Bob", false},
		{"host: dot refused", inHost, "evil.com#", "", true},
		{"host: dots would add labels", inHost, "a.b", "", true},
		{"host: slash", inHost, "a/b", "", true},
		{"host: at sign", inHost, "x@evil", "", true},
		{"host: colon", inHost, "x:1", "", true},
		{"host: leading hyphen", inHost, "-bob", "", true},
		{"host: trailing hyphen", inHost, "bob-", "", true},
		{"host: unicode", inHost, "zoë", "", true},
		{"host: too long", inHost, strings.Repeat("a", 64), "", true},
		{"host: 63 bytes", inHost, strings.Repeat("a", 63), "https://" + strings.Repeat("a", 63) + ".example.org/feed?for=" + strings.Repeat("a", 63), false},
		{"no user", inPath, "", "", true},
		{"invalid utf8", inPath, "bob\xff", "", true},
		{"bidi", inQuery, "bob\u202e", "", true},
		{"control", inQuery, "bob\r\nX: y", "", true},
		{"misplaced placeholder", "https://example.org:{user}/", "bob", "", false},
		{"global feed ignores the user", "https://example.org/feed.xml", "anything", "https://example.org/feed.xml", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &Feed{Name: "f", URL: tt.url}
			got, err := f.URLFor(tt.user)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("URLFor(%q) = %q, want an error", tt.user, got)
				}
				if errors.Is(err, ErrBadUser) != tt.bad {
					t.Errorf("URLFor(%q) error %v: errors.Is(ErrBadUser) = %v, want %v", tt.user, err, !tt.bad, tt.bad)
				}
				return
			}
			if err != nil {
				t.Fatalf("URLFor(%q): %v", tt.user, err)
			}
			if got != tt.want {
				t.Fatalf("URLFor(%q) = %q, want %q", tt.user, got, tt.want)
			}
			// Whatever the user, the URL parses and its host is the
			// template's, or the user as one label of it.
			u, err := url.Parse(got)
			if err != nil {
				t.Fatalf("result does not parse: %v", err)
			}
			wantHost := strings.ReplaceAll(strings.SplitN(strings.TrimPrefix(tt.url, "https://"), "/", 2)[0], UserPlaceholder, tt.user)
			if u.Host != wantHost {
				t.Errorf("host %q, want %q", u.Host, wantHost)
			}
		})
	}
}

// FuzzURLFor: for any user, expanding a template with {user}
// in path and query yields a URL whose path has the template's segments
// and whose query has the template's parameters, with the user's name
// read back intact.
func FuzzURLFor(f *testing.F) {
	for _, s := range []string{"bob", "bob&key=x", "../admin", "a b", "%2F", "Zoë", "?#", ".", ".."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, user string) {
		feed := &Feed{Name: "f", URL: "https://example.org/u/{user}/feed?who={user}&fmt=rss"}
		got, err := feed.URLFor(user)
		if err != nil {
			if !errors.Is(err, ErrBadUser) {
				t.Fatalf("URLFor(%q): %v does not wrap ErrBadUser", user, err)
			}
			return
		}
		u, err := url.Parse(got)
		if err != nil {
			t.Fatalf("URLFor(%q) = %q does not parse: %v", user, got, err)
		}
		if u.Host != "example.org" || u.Fragment != "" {
			t.Fatalf("URLFor(%q) = %q: host %q fragment %q", user, got, u.Host, u.Fragment)
		}
		segs := strings.Split(u.EscapedPath(), "/")
		if len(segs) != 4 || segs[1] != "u" || segs[3] != "feed" {
			t.Fatalf("URLFor(%q) = %q: path segments %q", user, got, segs)
		}
		if seg, err := url.PathUnescape(segs[2]); err != nil || seg != user {
			t.Fatalf("URLFor(%q): path segment reads back as %q (%v)", user, seg, err)
		}
		q, err := url.ParseQuery(u.RawQuery)
		if err != nil || len(q) != 2 || q.Get("who") != user || q.Get("fmt") != "rss" {
			t.Fatalf("URLFor(%q) = %q: query %v (%v)", user, got, q, err)
		}
	})
}
