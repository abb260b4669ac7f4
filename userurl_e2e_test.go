package tilecast_test

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/tilecast/tilecast/fetch"
	"github.com/tilecast/tilecast/internal/netguardtest"
)

// recordingFeeds is a feed server that keeps each request's Host and
// request-target exactly as they arrived, and answers an empty RSS feed.
type recordingFeeds struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []*http.Request
}

func newRecordingFeeds(t *testing.T) *recordingFeeds {
	rf := &recordingFeeds{}
	rf.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rf.mu.Lock()
		rf.reqs = append(rf.reqs, r)
		rf.mu.Unlock()
		w.Header().Set("Content-Type", "application/rss+xml")
		fmt.Fprint(w, `<?xml version="1.0"?><rss version="2.0"><channel><title>Inbox</title></channel></rss>`)
	}))
	t.Cleanup(rf.Close)
	return rf
}

func (rf *recordingFeeds) requests() []*http.Request {
	rf.mu.Lock()
	defer rf.mu.Unlock()
	return slices.Clone(rf.reqs)
}

// TestPerUserFeedEscapesUser registers users whose names try to change the
// feed URL and checks, at the feed server, what the Bot's fetches asked
// for: each user's name arrives as one path segment and as one query
// value, read back intact, and no request reaches another path or carries
// another parameter. A user that would be a ".." segment is skipped and
// logged; the others are fetched anyway.
func TestPerUserFeedEscapesUser(t *testing.T) {
	h := newHarness(t)
	rf := newRecordingFeeds(t)
	inbox := h.feed("inbox", "")
	inbox.URL = rf.URL + "/users/{user}/feed.xml?who={user}&fmt=rss"

	// Each user and the request-target its fetch must use.
	want := map[string]string{
		"bob&key=x":    "/users/bob&key=x/feed.xml?who=bob%26key%3Dx&fmt=rss",
		"../admin":     "/users/..%2Fadmin/feed.xml?who=..%2Fadmin&fmt=rss",
		"bob/../admin": "/users/bob%2F..%2Fadmin/feed.xml?who=bob%2F..%2Fadmin&fmt=rss",
		"ann smith":    "/users/ann%20smith/feed.xml?who=ann+smith&fmt=rss",
		"Zoë 王":        "/users/Zo%C3%AB%20%E7%8E%8B/feed.xml?who=Zo%C3%AB+%E7%8E%8B&fmt=rss",
		"a%2Fb":        "/users/a%252Fb/feed.xml?who=a%252Fb&fmt=rss",
		"x?fmt=atom#f": "/users/x%3Ffmt=atom%23f/feed.xml?who=x%3Ffmt%3Datom%23f&fmt=rss",
	}
	i := 0
	for user := range want {
		i++
		h.channel(fmt.Sprintf("tok%d", i), user, "inbox")
	}
	h.channel("dots", "..", "inbox") // refused for this feed: a ".." path segment

	h.run(inbox)

	got := map[string]string{}
	for _, r := range rf.requests() {
		if r.URL.Path == "/users/../feed.xml" || !strings.HasPrefix(r.URL.Path, "/users/") || strings.Count(r.URL.EscapedPath(), "/") != 3 {
			t.Errorf("a fetch reached path %q (%s)", r.URL.Path, r.RequestURI)
		}
		q := r.URL.Query()
		if len(q) != 2 || len(q["who"]) != 1 || q.Get("fmt") != "rss" {
			t.Errorf("a fetch carried query %v (%s): want exactly who and fmt=rss", q, r.RequestURI)
		}
		seg, err := url.PathUnescape(strings.Split(r.URL.EscapedPath(), "/")[2])
		if err != nil || seg != q.Get("who") {
			t.Errorf("%s: path names %q, query names %q", r.RequestURI, seg, q.Get("who"))
		}
		got[q.Get("who")] = r.RequestURI
	}
	for user, target := range want {
		if got[user] != target {
			t.Errorf("user %q fetched as %q, want %q", user, got[user], target)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d users fetched, want %d: %v", len(got), len(want), got)
	}
	logs := h.logs.String()
	if !strings.Contains(logs, `msg="fetch skipped: user refused for this feed" feed=inbox user=..`) ||
		!strings.Contains(logs, "dot segment") {
		t.Errorf("the refused user was not logged:\n%s", logs)
	}
}

// TestPerUserFeedHostLabel fetches a feed whose host is per user
// (http://{user}.feeds.test:PORT/…) through the real fetcher, with a
// resolver that answers every *.feeds.test name with 127.0.0.1 in process
// (no real DNS). A user that is a DNS label is fetched at its own host; a
// user that is not (dots, spaces, unicode, "@", ":") is skipped and
// logged, and never changes the host another fetch goes to.
func TestPerUserFeedHostLabel(t *testing.T) {
	h := newHarness(t)
	rf := newRecordingFeeds(t)
	port := rf.Listener.Addr().(*net.TCPAddr).Port
	suffix := dnsmessage.MustNewName("feeds.test.")
	resolver := netguardtest.Resolver(t, func(q dnsmessage.Question) (dnsmessage.RCode, []netip.Addr) {
		if !strings.HasSuffix(q.Name.String(), "."+suffix.String()) {
			return dnsmessage.RCodeNameError, nil
		}
		if q.Type != dnsmessage.TypeA {
			return dnsmessage.RCodeSuccess, nil
		}
		return dnsmessage.RCodeSuccess, []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	})
	h.bot.Fetcher = fetch.New(fetch.Options{AllowPrivate: true, Timeout: 5 * time.Second, Resolver: resolver})
	inbox := h.feed("inbox", "")
	inbox.URL = fmt.Sprintf("http://{user}.feeds.test:%d/feed.xml?u={user}", port)

	good := []string{"bob", "Ann-2", "x1"}
	bad := []string{"evil.com#", "a.b", "ann smith", "zoë", "x@127.0.0.1", "x:80", "-bob", strings.Repeat("l", 64)}
	for i, u := range append(slices.Clone(good), bad...) {
		h.channel(fmt.Sprintf("tok%d", i), u, "inbox")
	}
	h.run(inbox)

	var hosts []string
	for _, r := range rf.requests() {
		hosts = append(hosts, r.Host)
		if u := r.URL.Query().Get("u"); r.Host != u+".feeds.test:"+fmt.Sprint(port) {
			t.Errorf("request for user %q went to host %q", u, r.Host)
		}
	}
	slices.Sort(hosts)
	var wantHosts []string
	for _, u := range good {
		wantHosts = append(wantHosts, fmt.Sprintf("%s.feeds.test:%d", u, port))
	}
	slices.Sort(wantHosts)
	if !slices.Equal(hosts, wantHosts) {
		t.Errorf("fetched hosts %q, want %q", hosts, wantHosts)
	}
	logs := h.logs.String()
	for _, u := range bad {
		if !strings.Contains(logs, "user="+quoteLog(u)) {
			t.Errorf("refused user %q not logged", u)
		}
	}
	if n := strings.Count(logs, "fetch skipped: user refused for this feed"); n != len(bad) {
		t.Errorf("%d refusals logged, want %d:\n%s", n, len(bad), logs)
	}
}

// quoteLog is how slog's text handler writes a string value.
func quoteLog(s string) string {
	if strings.ContainsAny(s, " \"=") || strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) {
		return fmt.Sprintf("%q", s)
	}
	return s
}

// The config loader refuses what URLFor cannot escape; a feed built by
// hand with {user} in the port is refused at fetch time, and nothing is
// fetched.
func TestPerUserFeedMisplacedPlaceholderFetchesNothing(t *testing.T) {
	h := newHarness(t)
	rf := newRecordingFeeds(t)
	inbox := h.feed("inbox", "")
	inbox.URL = strings.Replace(rf.URL, "127.0.0.1:", "127.0.0.1:{user}", 1) + "/feed.xml"
	h.channel("t1", "80", "inbox")
	h.run(inbox)
	if n := len(rf.requests()); n != 0 {
		t.Errorf("%d fetches, want none", n)
	}
	if !strings.Contains(h.logs.String(), "not allowed in the port") {
		t.Errorf("refusal not logged:\n%s", h.logs.String())
	}
}
