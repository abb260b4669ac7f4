package mpns

import (
	"testing"
)

func TestQuickTarget(t *testing.T) {
	tests := []struct {
		uri  string
		ok   bool
		want target
	}{
		{"http://db3.notify.live.net/throttledthirdparty/01.00/AQHgBxKx-_Xv8cSY", true, target{
			key: "http://db3.notify.live.net:80", addr: "db3.notify.live.net:80", host: "db3.notify.live.net",
			serverName: "db3.notify.live.net", requestURI: "/throttledthirdparty/01.00/AQHgBxKx-_Xv8cSY"}},
		{"https://127.0.0.1:8443/c/1?x=1&y=(2)", true, target{
			key: "https://127.0.0.1:8443", addr: "127.0.0.1:8443", host: "127.0.0.1:8443",
			serverName: "127.0.0.1", requestURI: "/c/1?x=1&y=(2)", tls: true}},
		{"http://h/", true, target{key: "http://h:80", addr: "h:80", host: "h", serverName: "h", requestURI: "/"}},
		{"http://h", false, target{}},          // no path: url.Parse adds "/"
		{"HTTP://h/x", false, target{}},        // upper-case scheme
		{"http://[::1]:80/x", false, target{}}, // IPv6 literal
		{"http://u@h/x", false, target{}},      // user info
		{"http://h/a%20b", false, target{}},    // escapes
		{"http://h/a#frag", false, target{}},   // fragment
		{"http://h/(x)", false, target{}},      // url.Parse escapes these in a path
		{"http://h:/x", false, target{}},       // empty port
		{"http://h:123456/x", false, target{}}, // port too long
		{"http://h/a b", false, target{}},      // space
		{"http://h\u00e9/x", false, target{}},  // non-ASCII host
		{"ftp://h/x", false, target{}},         // scheme
		{"http://h/x?q=\x7f", false, target{}}, // control byte
		{"http://h:8080/x?a=1?b=2", true, target{ // a second '?' is query text
			key: "http://h:8080", addr: "h:8080", host: "h:8080", serverName: "h", requestURI: "/x?a=1?b=2"}},
	}
	for _, tt := range tests {
		t.Run(tt.uri, func(t *testing.T) {
			got, ok := quickTarget(tt.uri)
			if ok != tt.ok || got != tt.want {
				t.Fatalf("quickTarget = %+v, %v; want %+v, %v", got, ok, tt.want, tt.ok)
			}
			if ok {
				checkLikeURLTarget(t, tt.uri, got)
			}
		})
	}
}

func checkLikeURLTarget(t *testing.T, uri string, got target) {
	t.Helper()
	slow, err := urlTarget(uri)
	if err != nil {
		t.Fatalf("quickTarget accepted %q, url.Parse path refuses it: %v", uri, err)
	}
	if slow != got {
		t.Fatalf("%q: quickTarget %+v, url.Parse path %+v", uri, got, slow)
	}
}

// FuzzQuickTarget: what quickTarget accepts, the url.Parse path parses to
// the same target.
func FuzzQuickTarget(f *testing.F) {
	f.Add("http://db3.notify.live.net/throttledthirdparty/01.00/AQHgBxKxXv8cSYmBwXGWExAAAAADAQAAAAQUZm52")
	f.Add("https://127.0.0.1:8443/c/1?x=1&y=(2)*!'")
	f.Add("http://a-b.c:1/$&+,:;=@~._-?/?")
	f.Fuzz(func(t *testing.T, uri string) {
		if got, ok := quickTarget(uri); ok {
			checkLikeURLTarget(t, uri, got)
		}
	})
}
