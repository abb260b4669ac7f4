package fetch

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
)

var testNow = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

func itoa(n int) string { return strconv.Itoa(n) }

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// serveFile serves one testdata file for every path.
func serveFile(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Write(b)
	})
}

// newClient returns a client for loopback test servers.
func newClient(opts Options) *Client {
	opts.AllowPrivate = true
	if opts.Now == nil {
		opts.Now = func() time.Time { return testNow }
	}
	return New(opts)
}

func wantFetchError(t *testing.T, err error, status int) *tilecast.FetchError {
	t.Helper()
	var fe *tilecast.FetchError
	if !errors.As(err, &fe) {
		t.Fatalf("err = %v (%T), want *tilecast.FetchError", err, err)
	}
	if fe.Status != status {
		t.Errorf("FetchError.Status = %d, want %d (err %v)", fe.Status, status, err)
	}
	return fe
}

func TestFetchFormats(t *testing.T) {
	srv := httptest.NewServer(http.FileServer(http.Dir("testdata")))
	defer srv.Close()
	tests := []struct {
		file      string
		title     string
		link      string
		items     int
		firstID   string
		firstPub  time.Time
		notBefore time.Time
	}{
		{"rss.xml", "Example City News", "https://news.example.org/", 20, "news-example-9000",
			time.Date(2026, 11, 20, 18, 0, 0, 0, time.UTC), testNow.Add(time.Hour)},
		{"atom.xml", "Dev <Log>", "https://blog.example.com/", 2, "tag:blog.example.com,2026:post-42",
			time.Date(2026, 11, 19, 8, 0, 0, 0, time.UTC), time.Time{}},
		{"feed.json", "Podcast Notes", "https://pod.example.net/", 2, "ep-12",
			time.Date(2026, 11, 18, 7, 0, 0, 0, time.UTC), time.Time{}},
	}
	c := newClient(Options{})
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			res, err := c.Fetch(t.Context(), srv.URL+"/"+tt.file, tilecast.Validators{})
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			if res.Status != 200 || res.NotModified {
				t.Errorf("Status = %d, NotModified = %v", res.Status, res.NotModified)
			}
			if res.Title != tt.title || res.Link != tt.link {
				t.Errorf("Title, Link = %q, %q; want %q, %q", res.Title, res.Link, tt.title, tt.link)
			}
			if len(res.Items) != tt.items {
				t.Fatalf("%d items, want %d", len(res.Items), tt.items)
			}
			if it := res.Items[0]; it.ID != tt.firstID || !it.Published.Equal(tt.firstPub) {
				t.Errorf("first item ID, Published = %q, %v; want %q, %v", it.ID, it.Published, tt.firstID, tt.firstPub)
			}
			if res.Validators.LastModified == "" {
				t.Error("Last-Modified from the file server not stored")
			}
			if !res.NotBefore.Equal(tt.notBefore) {
				t.Errorf("NotBefore = %v, want %v", res.NotBefore, tt.notBefore)
			}
		})
	}
}

func TestFetchRSSItemsInFeedOrder(t *testing.T) {
	srv := httptest.NewServer(serveFile("rss.xml"))
	defer srv.Close()
	res, err := newClient(Options{}).Fetch(t.Context(), srv.URL, tilecast.Validators{})
	if err != nil {
		t.Fatal(err)
	}
	for i, it := range res.Items {
		if want := "news-example-" + itoa(9000-i); it.ID != want {
			t.Errorf("Items[%d].ID = %q, want %q", i, it.ID, want)
		}
	}
	first := res.Items[0]
	if want := "City council approves new bike lanes. The decision follows months of public consultation & review. Read more on our site."; first.Summary != want {
		t.Errorf("Summary = %q, want %q", first.Summary, want)
	}
	if want := "https://cdn.example.org/img/city-council-approves-new-bike-lanes.jpg"; first.Image != want {
		t.Errorf("Image = %q, want %q", first.Image, want)
	}
}

func TestFetchUnparseable(t *testing.T) {
	for _, file := range []string{"page.html", "truncated.xml"} {
		t.Run(file, func(t *testing.T) {
			srv := httptest.NewServer(serveFile(file))
			defer srv.Close()
			res, err := newClient(Options{}).Fetch(t.Context(), srv.URL, tilecast.Validators{})
			if res != nil {
				t.Errorf("result = %+v, want nil", res)
			}
			fe := wantFetchError(t, err, 200)
			if !strings.Contains(fe.Error(), "parse feed") {
				t.Errorf("error %q does not say parse feed", fe)
			}
		})
	}
}

func TestConditionalGET(t *testing.T) {
	const etag, lastMod = `"v1"`, "Thu, 20 Nov 2026 10:00:00 GMT"
	var (
		mu       sync.Mutex
		inm, ims []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		inm = append(inm, r.Header.Get("If-None-Match"))
		ims = append(ims, r.Header.Get("If-Modified-Since"))
		mu.Unlock()
		if r.Header.Get("If-None-Match") == etag {
			// A 304 that only refreshes Last-Modified; the ETag must be kept.
			w.Header().Set("Last-Modified", "Thu, 20 Nov 2026 11:00:00 GMT")
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("ETag", etag)
		w.Header().Set("Last-Modified", lastMod)
		w.Write(readTestdata(t, "rss.xml"))
	}))
	defer srv.Close()

	c := newClient(Options{})
	var parses atomic.Int64
	c.onParse = func() { parses.Add(1) }

	first, err := c.Fetch(t.Context(), srv.URL, tilecast.Validators{})
	if err != nil {
		t.Fatal(err)
	}
	if want := (tilecast.Validators{ETag: etag, LastModified: lastMod}); first.Validators != want {
		t.Fatalf("Validators = %+v, want %+v", first.Validators, want)
	}
	if first.NotModified || len(first.Items) != 20 || parses.Load() != 1 {
		t.Fatalf("first fetch: NotModified %v, %d items, %d parses", first.NotModified, len(first.Items), parses.Load())
	}

	second, err := c.Fetch(t.Context(), srv.URL, first.Validators)
	if err != nil {
		t.Fatal(err)
	}
	if !second.NotModified || second.Status != http.StatusNotModified {
		t.Errorf("second fetch: Status %d, NotModified %v; want 304, true", second.Status, second.NotModified)
	}
	if second.Items != nil || second.Title != "" {
		t.Errorf("second fetch parsed something: %d items, title %q", len(second.Items), second.Title)
	}
	if n := parses.Load(); n != 1 {
		t.Errorf("%d parses after the 304, want 1", n)
	}
	if want := (tilecast.Validators{ETag: etag, LastModified: "Thu, 20 Nov 2026 11:00:00 GMT"}); second.Validators != want {
		t.Errorf("304 Validators = %+v, want %+v", second.Validators, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if inm[0] != "" || ims[0] != "" {
		t.Errorf("first request sent validators %q %q", inm[0], ims[0])
	}
	if inm[1] != etag || ims[1] != lastMod {
		t.Errorf("second request sent If-None-Match %q, If-Modified-Since %q", inm[1], ims[1])
	}
}

func TestUserAgent(t *testing.T) {
	tests := []struct{ set, want string }{
		{"tilecast/1.2.3 (+https://github.com/tilecast/tilecast)", "tilecast/1.2.3 (+https://github.com/tilecast/tilecast)"},
		{"", DefaultUserAgent},
	}
	for _, tt := range tests {
		var got atomic.Value
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got.Store(r.UserAgent())
			w.Write(readTestdata(t, "atom.xml"))
		}))
		if _, err := newClient(Options{UserAgent: tt.set}).Fetch(t.Context(), srv.URL, tilecast.Validators{}); err != nil {
			t.Fatal(err)
		}
		srv.Close()
		if got.Load() != tt.want {
			t.Errorf("User-Agent = %q, want %q", got.Load(), tt.want)
		}
	}
}

func TestBodyCap(t *testing.T) {
	const max = 64 << 10
	big := bytes.Repeat([]byte("<!-- padding -->"), 2*max/16)
	tests := []struct {
		name    string
		handler http.HandlerFunc
	}{
		{"content-length over cap", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", itoa(len(big)))
			w.Write(big)
		}},
		{"chunked over cap", func(w http.ResponseWriter, r *http.Request) {
			w.Write(big[:max/2])
			w.(http.Flusher).Flush() // forces chunked encoding: no Content-Length
			w.Write(big[max/2:])
		}},
		{"endless gzip bomb", func(w http.ResponseWriter, r *http.Request) {
			// A stream of compressed zeros that never ends: only a reader
			// that stops at the (decompressed) cap returns ErrBodyTooLarge.
			w.Header().Set("Content-Encoding", "gzip")
			zw, _ := gzip.NewWriterLevel(w, gzip.BestCompression)
			zeros := make([]byte, 1<<20)
			for r.Context().Err() == nil {
				if _, err := zw.Write(zeros); err != nil {
					return
				}
				if err := zw.Flush(); err != nil {
					return
				}
				w.(http.Flusher).Flush()
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tt.handler)
			defer srv.Close()
			c := newClient(Options{MaxBody: max, Timeout: 30 * time.Second})
			var parses atomic.Int64
			c.onParse = func() { parses.Add(1) }
			_, err := c.Fetch(t.Context(), srv.URL, tilecast.Validators{})
			wantFetchError(t, err, 200)
			if !errors.Is(err, tilecast.ErrBodyTooLarge) {
				t.Errorf("err = %v, want ErrBodyTooLarge", err)
			}
			if parses.Load() != 0 {
				t.Error("an over-cap body reached the parser")
			}
		})
	}
}

func TestBodyAtCapParses(t *testing.T) {
	body := readTestdata(t, "atom.xml")
	srv := httptest.NewServer(serveFile("atom.xml"))
	defer srv.Close()
	if _, err := newClient(Options{MaxBody: int64(len(body))}).Fetch(t.Context(), srv.URL, tilecast.Validators{}); err != nil {
		t.Fatalf("body of exactly MaxBody bytes: %v", err)
	}
}

func TestGzipDecoded(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			http.Error(w, "no gzip", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Encoding", "gzip")
		zw := gzip.NewWriter(w)
		zw.Write(readTestdata(t, "rss.xml"))
		zw.Close()
	}))
	defer srv.Close()
	res, err := newClient(Options{}).Fetch(t.Context(), srv.URL, tilecast.Validators{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Items) != 20 {
		t.Errorf("%d items, want 20", len(res.Items))
	}
}

func TestTimeout(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	tests := []struct {
		name    string
		handler http.HandlerFunc
	}{
		{"stalled body", func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(`<?xml version="1.0"?><rss version="2.0"><channel><title>slow`))
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}},
		{"stalled headers", func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tt.handler)
			defer srv.Close()
			res, err := newClient(Options{Timeout: 200 * time.Millisecond}).Fetch(t.Context(), srv.URL, tilecast.Validators{})
			if res != nil {
				t.Errorf("result = %+v, want nil", res)
			}
			wantFetchError(t, err, 0)
			if !errors.Is(err, context.DeadlineExceeded) && !strings.Contains(err.Error(), "timeout") {
				t.Errorf("err = %v, want a deadline error", err)
			}
		})
	}
}

func TestFetchHonoursContext(t *testing.T) {
	srv := httptest.NewServer(serveFile("rss.xml"))
	defer srv.Close()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := newClient(Options{}).Fetch(ctx, srv.URL, tilecast.Validators{})
	wantFetchError(t, err, 0)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

// redirectChain serves /r/N → /r/N-1 … /r/0, which serves a feed.
func redirectChain() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/r/"))
		if err != nil || n <= 0 {
			serveFile("atom.xml").ServeHTTP(w, r)
			return
		}
		http.Redirect(w, r, fmt.Sprintf("/r/%d", n-1), http.StatusFound)
	})
}

func TestRedirects(t *testing.T) {
	chain := httptest.NewServer(redirectChain())
	defer chain.Close()
	plain := httptest.NewServer(serveFile("atom.xml"))
	defer plain.Close()
	tlsSrv := httptest.NewTLSServer(redirectChain())
	defer tlsSrv.Close()
	downgrade := httptest.NewTLSServer(http.RedirectHandler(plain.URL+"/feed", http.StatusMovedPermanently))
	defer downgrade.Close()
	upgrade := httptest.NewServer(http.RedirectHandler(tlsSrv.URL+"/r/0", http.StatusFound))
	defer upgrade.Close()
	loop := httptest.NewServer(http.RedirectHandler("/loop", http.StatusFound))
	defer loop.Close()
	toFile := httptest.NewServer(http.RedirectHandler("file:///etc/passwd", http.StatusFound))
	defer toFile.Close()
	toGopher := httptest.NewServer(http.RedirectHandler("gopher://127.0.0.1:70/", http.StatusFound))
	defer toGopher.Close()
	toData := httptest.NewServer(http.RedirectHandler("data:application/rss+xml,<rss/>", http.StatusFound))
	defer toData.Close()

	tests := []struct {
		name    string
		max     int
		url     string
		wantErr string // "" = success
	}{
		{"no redirect", 0, chain.URL + "/r/0", ""},
		{"5 hops default", 0, chain.URL + "/r/5", ""},
		{"6 hops default", 0, chain.URL + "/r/6", "stopped after 5 redirects"},
		{"2 hops of max 2", 2, chain.URL + "/r/2", ""},
		{"3 hops of max 2", 2, chain.URL + "/r/3", "stopped after 2 redirects"},
		{"none allowed", -1, chain.URL + "/r/1", "stopped after 0 redirects"},
		{"loop", 0, loop.URL + "/loop", "stopped after 5 redirects"},
		{"20-hop chain", 0, chain.URL + "/r/20", "stopped after 5 redirects"},
		{"to data", 0, toData.URL, `scheme "data"`},
		{"https to http", 0, downgrade.URL, "downgrade"},
		{"http to https", 0, upgrade.URL, ""},
		{"https chain", 0, tlsSrv.URL + "/r/3", ""},
		{"to file", 0, toFile.URL, `scheme "file"`},
		{"to gopher", 0, toGopher.URL, `scheme "gopher"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(Options{MaxRedirects: tt.max})
			// Trust the TLS test servers' certificate.
			tr := c.http.Transport.(*http.Transport)
			tr.TLSClientConfig = &tls.Config{RootCAs: tlsPool(t, tlsSrv)}
			res, err := c.Fetch(t.Context(), tt.url, tilecast.Validators{})
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Fetch: %v", err)
				}
				if len(res.Items) != 2 {
					t.Errorf("%d items, want 2", len(res.Items))
				}
				return
			}
			wantFetchError(t, err, 0)
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestFetchRejectsNonHTTP(t *testing.T) {
	for _, u := range []string{"file:///etc/passwd", "ftp://example.org/feed", "gopher://x/", "://bad", "feed.xml"} {
		_, err := New(Options{}).Fetch(t.Context(), u, tilecast.Validators{})
		wantFetchError(t, err, 0)
	}
}

func tlsPool(t *testing.T, srv *httptest.Server) *x509.CertPool {
	t.Helper()
	return srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
}

func TestHTTPErrors(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		retryAfter string
		want       time.Time
	}{
		{"429 seconds", 429, "120", testNow.Add(2 * time.Minute)},
		{"503 date", 503, testNow.Add(time.Hour).Format(http.TimeFormat), testNow.Add(time.Hour)},
		{"503 capped", 503, "604800", testNow.Add(24 * time.Hour)},
		{"429 garbage", 429, "soon", time.Time{}},
		{"429 none", 429, "", time.Time{}},
		{"500 ignores Retry-After", 500, "120", time.Time{}},
		{"404", 404, "", time.Time{}},
		{"410", 410, "", time.Time{}},
		{"304-less 3xx without Location", 300, "", time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.retryAfter != "" {
					w.Header().Set("Retry-After", tt.retryAfter)
				}
				w.WriteHeader(tt.status)
				w.Write(readTestdata(t, "rss.xml"))
			}))
			defer srv.Close()
			res, err := newClient(Options{}).Fetch(t.Context(), srv.URL, tilecast.Validators{})
			if res != nil {
				t.Errorf("result = %+v, want nil", res)
			}
			fe := wantFetchError(t, err, tt.status)
			if !fe.RetryAfter.Equal(tt.want) {
				t.Errorf("RetryAfter = %v, want %v", fe.RetryAfter, tt.want)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	tests := []struct {
		in   string
		want time.Time
	}{
		{"0", time.Time{}},
		{"1", testNow.Add(time.Second)},
		{" 90 ", testNow.Add(90 * time.Second)},
		{"86400", testNow.Add(24 * time.Hour)},
		{"86401", testNow.Add(24 * time.Hour)},
		{"99999999999999999999999", time.Time{}}, // not a uint64: not seconds, not a date
		{"-5", time.Time{}},
		{"1.5", time.Time{}},
		{"", time.Time{}},
		{"Fri, 20 Nov 2026 12:30:00 GMT", testNow.Add(30 * time.Minute)},
		{"Friday, 20-Nov-26 12:30:00 GMT", testNow.Add(30 * time.Minute)},
		{"Fri Nov 20 12:30:00 2026", testNow.Add(30 * time.Minute)},
		{"Fri, 20 Nov 2026 11:00:00 GMT", time.Time{}}, // past
		{"Mon, 30 Nov 2026 12:00:00 GMT", testNow.Add(24 * time.Hour)},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, testNow); !got.Equal(tt.want) {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func FuzzRetryAfter(f *testing.F) {
	for _, s := range []string{"120", "0", "-1", "Fri, 20 Nov 2026 12:30:00 GMT", "x", "18446744073709551615"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := parseRetryAfter(s, testNow)
		if got.IsZero() {
			return
		}
		if !got.After(testNow) || got.After(testNow.Add(maxDelay)) {
			t.Fatalf("parseRetryAfter(%q) = %v, outside (now, now+24h]", s, got)
		}
	})
}

func TestNotBefore(t *testing.T) {
	tests := []struct {
		name   string
		header http.Header
		ttl    time.Duration
		want   time.Time
	}{
		{"nothing", http.Header{}, 0, time.Time{}},
		{"max-age", http.Header{"Cache-Control": {"public, max-age=600"}}, 0, testNow.Add(10 * time.Minute)},
		{"max-age minus Age", http.Header{"Cache-Control": {"max-age=600"}, "Age": {"100"}}, 0, testNow.Add(500 * time.Second)},
		{"max-age used up", http.Header{"Cache-Control": {"max-age=600"}, "Age": {"900"}}, 0, time.Time{}},
		{"max-age zero", http.Header{"Cache-Control": {"max-age=0"}}, 0, time.Time{}},
		{"max-age capped", http.Header{"Cache-Control": {"max-age=31536000"}}, 0, testNow.Add(24 * time.Hour)},
		{"max-age quoted", http.Header{"Cache-Control": {`max-age="60"`}}, 0, testNow.Add(time.Minute)},
		{"max-age garbage", http.Header{"Cache-Control": {"max-age=soon"}}, 0, time.Time{}},
		{"no-cache wins", http.Header{"Cache-Control": {"max-age=600, no-cache"}}, 0, time.Time{}},
		{"no-store wins", http.Header{"Cache-Control": {"no-store", "max-age=600"}}, 0, time.Time{}},
		{"expires", http.Header{"Expires": {testNow.Add(2 * time.Hour).Format(http.TimeFormat)}}, 0, testNow.Add(2 * time.Hour)},
		{"expires past", http.Header{"Expires": {"Thu, 01 Jan 1970 00:00:00 GMT"}}, 0, time.Time{}},
		{"expires invalid", http.Header{"Expires": {"0"}}, 0, time.Time{}},
		{"expires capped", http.Header{"Expires": {"Fri, 01 Jan 2027 00:00:00 GMT"}}, 0, testNow.Add(24 * time.Hour)},
		{"ttl", http.Header{}, 30 * time.Minute, testNow.Add(30 * time.Minute)},
		{"ttl capped", http.Header{}, 7 * 24 * time.Hour, testNow.Add(24 * time.Hour)},
		{"latest of three: ttl", http.Header{
			"Cache-Control": {"max-age=300"},
			"Expires":       {testNow.Add(20 * time.Minute).Format(http.TimeFormat)},
		}, time.Hour, testNow.Add(time.Hour)},
		{"latest of three: expires", http.Header{
			"Cache-Control": {"max-age=300"},
			"Expires":       {testNow.Add(3 * time.Hour).Format(http.TimeFormat)},
		}, time.Hour, testNow.Add(3 * time.Hour)},
		{"latest of three: max-age", http.Header{
			"Cache-Control": {"max-age=14400"},
			"Expires":       {testNow.Add(3 * time.Hour).Format(http.TimeFormat)},
		}, time.Hour, testNow.Add(4 * time.Hour)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := notBefore(tt.header, tt.ttl, testNow); !got.Equal(tt.want) {
				t.Errorf("notBefore = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestFetchNotBefore(t *testing.T) {
	tests := []struct {
		name   string
		file   string
		status int
		cc     string
		want   time.Time
	}{
		{"rss ttl beats max-age", "rss.xml", 200, "max-age=300", testNow.Add(time.Hour)},
		{"max-age beats rss ttl", "rss.xml", 200, "max-age=7200", testNow.Add(2 * time.Hour)},
		{"atom max-age", "atom.xml", 200, "max-age=300", testNow.Add(5 * time.Minute)},
		{"304 max-age", "", 304, "max-age=900", testNow.Add(15 * time.Minute)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Cache-Control", tt.cc)
				w.WriteHeader(tt.status)
				if tt.file != "" {
					w.Write(readTestdata(t, tt.file))
				}
			}))
			defer srv.Close()
			res, err := newClient(Options{}).Fetch(t.Context(), srv.URL, tilecast.Validators{ETag: `"x"`})
			if err != nil {
				t.Fatal(err)
			}
			if !res.NotBefore.Equal(tt.want) {
				t.Errorf("NotBefore = %v, want %v", res.NotBefore, tt.want)
			}
		})
	}
}

func TestParseConcurrencyBounded(t *testing.T) {
	srv := httptest.NewServer(serveFile("rss.xml"))
	defer srv.Close()
	const limit = 2
	c := newClient(Options{ParseConcurrency: limit})

	// A full semaphore makes Fetch wait, and the wait honours ctx.
	for range limit {
		c.sem <- struct{}{}
	}
	ctx, cancel := context.WithCancel(t.Context())
	var parses atomic.Int64
	c.onParse = func() { parses.Add(1); cancel() }
	done := make(chan error, 1)
	go func() {
		_, err := c.Fetch(ctx, srv.URL, tilecast.Validators{})
		done <- err
	}()
	<-c.sem // one slot frees: that fetch may now parse; it cancels ctx in the hook
	if err := <-done; err != nil {
		t.Fatalf("Fetch after a slot freed: %v", err)
	}
	if parses.Load() != 1 {
		t.Fatalf("%d parses, want 1", parses.Load())
	}
	// Slots: limit-1 held by the test, 0 by finished fetches.
	if got := len(c.sem); got != limit-1 {
		t.Fatalf("semaphore holds %d, want %d (a slot leaked)", got, limit-1)
	}
	c.sem <- struct{}{} // full again
	ctx2, cancel2 := context.WithCancel(t.Context())
	cancel2()
	if err := c.acquire(ctx2); !errors.Is(err, context.Canceled) {
		t.Errorf("acquire on a full semaphore with a cancelled ctx = %v", err)
	}
	for range limit {
		<-c.sem
	}

	// Many concurrent fetches never parse more than limit at once.
	var active, peak atomic.Int64
	c.onParse = func() {
		n := active.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		active.Add(-1)
	}
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if _, err := c.Fetch(t.Context(), srv.URL, tilecast.Validators{}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if p := peak.Load(); p < 1 || p > limit {
		t.Errorf("peak concurrent parses = %d, want 1..%d", p, limit)
	}
}

func TestOptionsDefaults(t *testing.T) {
	c := New(Options{})
	o := c.opts
	if o.Timeout != DefaultTimeout || o.MaxBody != DefaultMaxBody || o.MaxRedirects != DefaultMaxRedirects ||
		o.ParseConcurrency != DefaultParseConcurrency || o.UserAgent != DefaultUserAgent || o.Now == nil || o.Logger == nil {
		t.Errorf("defaults not applied: %+v", o)
	}
	if cap(c.sem) != DefaultParseConcurrency {
		t.Errorf("semaphore size %d", cap(c.sem))
	}
}
