package fetch

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
)

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// TestReadCappedGzipBomb (F3): an endless stream of compressed zeros is
// read to exactly cap+1 decompressed bytes.
func TestReadCappedGzipBomb(t *testing.T) {
	const max = 1 << 20
	pr, pw := io.Pipe()
	go func() {
		zw, _ := gzip.NewWriterLevel(pw, gzip.BestCompression)
		zeros := make([]byte, 1<<20)
		for {
			if _, err := zw.Write(zeros); err != nil {
				pw.CloseWithError(err)
				return
			}
		}
	}()
	defer pr.Close()
	zr, err := gzip.NewReader(pr)
	if err != nil {
		t.Fatal(err)
	}
	cr := &countingReader{r: zr}
	body, err := readCapped(cr, max)
	if !errors.Is(err, tilecast.ErrBodyTooLarge) || body != nil {
		t.Fatalf("readCapped = %d bytes, %v; want ErrBodyTooLarge", len(body), err)
	}
	if cr.n != max+1 {
		t.Errorf("read %d decompressed bytes, want exactly %d", cr.n, max+1)
	}
	// At the cap exactly, the body is returned.
	if b, err := readCapped(strings.NewReader(strings.Repeat("x", max)), max); err != nil || len(b) != max {
		t.Errorf("body of exactly max: %d bytes, %v", len(b), err)
	}
}

// silentListener accepts TCP connections and never reads or writes: a
// server that hangs after accept, or a TLS handshake that never completes.
func silentListener(t *testing.T) (addr string, accepted *atomic.Int64) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		n     atomic.Int64
		done  = make(chan struct{})
	)
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return l.Addr().String(), &n
}

// trickle writes one byte of s every interval until the client goes away.
func trickle(w io.Writer, flush func(), s string, interval time.Duration, stop <-chan struct{}) {
	for i := 0; ; i++ {
		if _, err := w.Write([]byte{s[i%len(s)]}); err != nil {
			return
		}
		flush()
		select {
		case <-stop:
			return
		case <-time.After(interval):
		}
	}
}

// TestWholeRequestDeadline (F4): every way of stalling ends at the fetch
// deadline with a per-feed error.
func TestWholeRequestDeadline(t *testing.T) {
	silent, silentAccepted := silentListener(t)
	slowHeaders, _ := net.Listen("tcp", "127.0.0.1:0")
	t.Cleanup(func() { slowHeaders.Close() })
	go func() {
		for {
			c, err := slowHeaders.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				// Read the request first: bytes sent before it would be an
				// unsolicited response, which the transport rejects at once.
				if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
					return
				}
				trickle(c, func() {}, "HTTP/1.1 200 OK\r\nX-Slow: ", 10*time.Millisecond, nil)
			}()
		}
	}()
	slowBody := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`<?xml version="1.0"?><rss version="2.0"><channel><title>`))
		trickle(w, w.(http.Flusher).Flush, "slow", 10*time.Millisecond, r.Context().Done())
	}))
	defer slowBody.Close()

	tests := []struct{ name, url string }{
		{"accept then silence", "http://" + silent + "/feed"},
		{"stalled tls handshake", "https://" + silent + "/feed"},
		{"slow headers", "http://" + slowHeaders.Addr().String() + "/feed"},
		{"slow body", slowBody.URL},
	}
	c := newClient(Options{Timeout: 300 * time.Millisecond})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := c.Fetch(t.Context(), tt.url, tilecast.Validators{})
			if res != nil {
				t.Errorf("result = %+v, want nil", res)
			}
			wantFetchError(t, err, 0)
			if !errors.Is(err, context.DeadlineExceeded) && !strings.Contains(err.Error(), "timeout") {
				t.Errorf("err = %v, want a deadline error", err)
			}
		})
	}
	if n := silentAccepted.Load(); n != 2 {
		t.Errorf("silent listener accepted %d connections, want 2", n)
	}
}

// TestNoGoroutineLeak (F4): after 100 fetches that all hit their deadline,
// the goroutine count returns to its baseline once idle connections and
// the servers are closed.
func TestNoGoroutineLeak(t *testing.T) {
	baseline := runtime.NumGoroutine()
	silent, _ := silentListener(t)
	slowBody := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`<rss>`))
		trickle(w, w.(http.Flusher).Flush, "x", 10*time.Millisecond, r.Context().Done())
	}))
	c := newClient(Options{Timeout: 100 * time.Millisecond})
	urls := []string{"http://" + silent + "/", "https://" + silent + "/", slowBody.URL}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 20)
	var failures atomic.Int64
	for i := range 100 {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if _, err := c.Fetch(t.Context(), urls[i%len(urls)], tilecast.Validators{}); err != nil {
				failures.Add(1)
			}
		})
	}
	wg.Wait()
	if n := failures.Load(); n != 100 {
		t.Errorf("%d of 100 slow fetches failed, want all", n)
	}
	c.http.CloseIdleConnections()
	slowBody.Close()
	// Closing the listeners is the t.Cleanup's; they hold no goroutine per
	// connection. Goroutines wind down asynchronously: wait for the count,
	// bounded by the test timeout rather than a clock.
	var n int
	for {
		if n = runtime.NumGoroutine(); n <= baseline+5 {
			break
		}
		time.Sleep(10 * time.Millisecond)
		if t.Context().Err() != nil {
			break
		}
	}
	if n > baseline+5 {
		t.Errorf("%d goroutines after 100 slow fetches, baseline %d", n, baseline)
	}
}

// heapPeak runs f and returns the peak live heap above the level before
// it, sampled every millisecond (a lower bound, like reliability.md §2.3).
func heapPeak(f func()) uint64 {
	runtime.GC()
	read := func() uint64 {
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		metrics.Read(s)
		return s[0].Value.Uint64()
	}
	base := read()
	var peak atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			if v := read(); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-done:
				return
			case <-time.After(time.Millisecond):
			}
		}
	})
	f()
	close(done)
	wg.Wait()
	if p := peak.Load(); p > base {
		return p - base
	}
	return 0
}

// fillItems is an RSS feed of realistic items padded to about size bytes
// while staying within the pre-scan's element limit.
func fillItems(size int) []byte {
	const n = maxElements/6 - 10
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>`)
	pad := strings.Repeat("d", max(size/n-190, 0))
	for i := range n {
		fmt.Fprintf(&b, `<item><guid>g%d</guid><title>Item %d</title><link>https://e.org/%d</link><pubDate>Mon, 02 Jan 2006 15:04:05 GMT</pubDate><description>%s</description></item>`, i, i, i, pad)
	}
	b.WriteString(`</channel></rss>`)
	return b.Bytes()
}

// TestParseMemoryBudget measures the peak heap of parsing the worst inputs
// the default 4 MiB cap and the pre-scan let through, alone and
// ParseConcurrency (2) at once; the package doc states the resulting
// budget. The pre-scan's limits, not the body size, bound the wide cases,
// so the budget is a multiple of the cap: 16× per parse (measured ≈ 8×).
// Inputs the pre-scan refuses cost about twice their size (tokenizer
// garbage).
func TestParseMemoryBudget(t *testing.T) {
	const size = DefaultMaxBody
	accepted := []struct {
		name string
		data []byte
	}{
		{"items at the element limit", fillItems(size)},
		{"flat children at the element limit", flat(maxElements - 100)},
		{"attributes at the limit", manyAttrs(maxAttributes - 1000)},
		{"one text node", []byte(`<rss version="2.0"><channel><title>` + strings.Repeat("t", size-60) + `</title></channel></rss>`)},
	}
	var worst []byte
	var worstPeak uint64
	for _, tt := range accepted {
		var err error
		p := heapPeak(func() { _, err = parse(tt.data, testBase) })
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		t.Logf("%s: %d bytes in, peak heap %.1f MiB (%.1f× input, %.1f× the cap)", tt.name, len(tt.data),
			float64(p)/(1<<20), float64(p)/float64(len(tt.data)), float64(p)/size)
		if p > 16*size {
			t.Errorf("%s: peak %d bytes, budget 16× the cap (%d)", tt.name, p, 16*size)
		}
		if p > worstPeak {
			worst, worstPeak = tt.data, p
		}
	}
	refused := []struct {
		name string
		data []byte
	}{
		{"nested 350k", deepXML("rss", 350_000)},
		{"flat 600k", flat(600_000)},
	}
	for _, tt := range refused {
		var err error
		p := heapPeak(func() { _, err = parse(tt.data, testBase) })
		if !errors.Is(err, errTooComplex) {
			t.Fatalf("%s: err = %v, want errTooComplex", tt.name, err)
		}
		t.Logf("%s (refused by the pre-scan): %d bytes in, peak heap %.1f MiB", tt.name, len(tt.data), float64(p)/(1<<20))
		if p > 4*uint64(len(tt.data)) {
			t.Errorf("%s: pre-scan peak %d bytes, want under 4× input", tt.name, p)
		}
	}
	// Two maximal feeds at once, as ParseConcurrency allows.
	p := heapPeak(func() {
		var wg sync.WaitGroup
		for range DefaultParseConcurrency {
			wg.Go(func() {
				if _, err := parse(worst, testBase); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
	})
	t.Logf("%d concurrent worst-case parses: peak heap %.1f MiB", DefaultParseConcurrency, float64(p)/(1<<20))
	if limit := uint64(DefaultParseConcurrency) * 16 * size; p > limit {
		t.Errorf("concurrent peak %d bytes, budget %d", p, limit)
	}
}
