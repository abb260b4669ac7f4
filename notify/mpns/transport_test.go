package mpns_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/internal/netguardtest"
	"github.com/tilecast/tilecast/notify"
	"github.com/tilecast/tilecast/notify/mpns"
)

// These tests drive the push client's own HTTP/1.1 connection pool through
// Push only, against real loopback listeners: httptest servers where a
// well-behaved host will do, raw listeners writing answers by hand where a
// misbehaving one has to be played.

// trAnswerOK is a minimal kept-alive MPNS delivery answer.
const trAnswerOK = "HTTP/1.1 200 OK\r\nX-NotificationStatus: Received\r\nContent-Length: 0\r\n\r\n"

// trBound is the generous limit for anything that should happen "at once";
// it only catches hangs, it does not time the transport.
const trBound = 5 * time.Second

// trRaw is a loopback listener whose connections are served by a
// hand-written handler.
type trRaw struct {
	URL      string
	accepted atomic.Int64 // connections accepted
	requests atomic.Int64 // requests read in full
	done     chan struct{}
	ln       net.Listener
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	closed   bool
}

// trConn is one accepted connection. br reads through rec, so that a
// request's bytes can be seen exactly as they came.
type trConn struct {
	net.Conn
	srv *trRaw
	br  *bufio.Reader
	rec bytes.Buffer
}

// trStartRaw listens on 127.0.0.1 and runs handle for each connection; the
// connection is closed when handle returns. Cleanup stops everything and
// waits for the handlers.
func trStartRaw(t *testing.T, handle func(c *trConn)) *trRaw {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &trRaw{URL: "http://" + ln.Addr().String(), done: make(chan struct{}), ln: ln, conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go s.serve(handle)
	t.Cleanup(s.close)
	return s
}

func (s *trRaw) serve(handle func(c *trConn)) {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			return
		}
		s.conns[nc] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		s.accepted.Add(1)
		c := &trConn{Conn: nc, srv: s}
		c.br = bufio.NewReader(io.TeeReader(nc, &c.rec))
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.conns, nc)
				s.mu.Unlock()
				nc.Close()
			}()
			handle(c)
		}()
	}
}

func (s *trRaw) close() {
	close(s.done)
	s.ln.Close()
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// readRequest reads one whole request and returns its bytes as sent.
func (c *trConn) readRequest() ([]byte, error) {
	req, err := http.ReadRequest(c.br)
	if err != nil {
		return nil, err
	}
	if _, err := io.Copy(io.Discard, req.Body); err != nil {
		return nil, err
	}
	c.srv.requests.Add(1)
	raw := bytes.Clone(c.rec.Bytes())
	c.rec.Reset()
	return raw, nil
}

func (c *trConn) write(s string) error {
	_, err := io.WriteString(c.Conn, s)
	return err
}

// hold blocks until the test ends.
func (c *trConn) hold() { <-c.srv.done }

// trServe answers every request on a connection with answer; closeAfter
// closes the connection after the first answer.
func trServe(answer string, closeAfter bool) func(c *trConn) {
	return func(c *trConn) {
		for {
			if _, err := c.readRequest(); err != nil {
				return
			}
			if c.write(answer) != nil || closeAfter {
				return
			}
		}
	}
}

// trStates counts an httptest server's connections from its ConnState hook.
type trStates struct {
	opened   atomic.Int64
	closed   atomic.Int64
	closedCh chan struct{}
}

// trHTTPServer starts an httptest server (TLS if useTLS) on 127.0.0.1 that
// counts its connections.
func trHTTPServer(t *testing.T, h http.HandlerFunc, useTLS bool) (*httptest.Server, *trStates) {
	t.Helper()
	st := &trStates{closedCh: make(chan struct{}, 1024)}
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			st.opened.Add(1)
		case http.StateClosed, http.StateHijacked:
			st.closed.Add(1)
			select {
			case st.closedCh <- struct{}{}:
			default:
			}
		}
	}
	if useTLS {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv, st
}

func trReceived(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	w.Header().Set("X-NotificationStatus", "Received")
}

// trClient is a loopback-allowed client closed at the end of the test.
func trClient(t *testing.T, opts mpns.ClientOptions) *mpns.Client {
	t.Helper()
	opts.AllowPrivate = true
	c, err := mpns.NewClient(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// trWaitFor polls cond until it holds, failing the test after trBound.
func trWaitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(trBound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting after %s: %s", trBound, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func trSend(t *testing.T, ch chan<- struct{}, what string) {
	t.Helper()
	select {
	case ch <- struct{}{}:
	case <-time.After(trBound):
		t.Fatalf("nobody took %s within %s", what, trBound)
	}
}

func trRecv(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(trBound):
		t.Fatalf("no %s within %s", what, trBound)
	}
}

func trDelivered(t *testing.T, what string, r tilecast.Result) {
	t.Helper()
	if r.Verdict != tilecast.VerdictDelivered || r.Status != http.StatusOK || r.Err != nil {
		t.Fatalf("%s: result = %+v, want delivered with status 200", what, r)
	}
}

// Item 1: one kept-alive connection carries sequential pushes; parallel
// pushes stay within the pool's size.
func TestTransportKeepAlive(t *testing.T) {
	t.Run("sequential", func(t *testing.T) {
		srv, st := trHTTPServer(t, trReceived, false)
		c := trClient(t, mpns.ClientOptions{})
		req := toastRequest(t)
		for i := range 50 {
			trDelivered(t, fmt.Sprintf("push %d", i), c.Push(t.Context(), srv.URL+"/throttledthirdparty/01.00/seq", req))
		}
		if n := st.opened.Load(); n != 1 {
			t.Errorf("50 sequential pushes used %d connections, want 1", n)
		}
	})
	t.Run("concurrency 4", func(t *testing.T) {
		var served atomic.Int64
		srv, st := trHTTPServer(t, func(w http.ResponseWriter, r *http.Request) {
			served.Add(1)
			trReceived(w, r)
		}, false)
		c := trClient(t, mpns.ClientOptions{Concurrency: 4})
		req := toastRequest(t)
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Go(func() {
				for i := range 25 {
					r := c.Push(t.Context(), srv.URL+"/throttledthirdparty/01.00/par", req)
					if r.Verdict != tilecast.VerdictDelivered || r.Status != http.StatusOK {
						t.Errorf("goroutine %d push %d: %+v", g, i, r)
						return
					}
				}
			})
		}
		wg.Wait()
		if n := served.Load(); n != 100 {
			t.Errorf("server answered %d requests, want 100", n)
		}
		if n := st.opened.Load(); n < 1 || n > 5 {
			t.Errorf("4×25 parallel pushes used %d connections, want 1 to 5", n)
		}
	})
}

// Item 2: a host that ends a kept-alive connection while it is idle does
// not cost a push: the next one goes out on a new connection.
func TestTransportServerClosesIdle(t *testing.T) {
	tests := []struct {
		name string
		kill func(c *trConn) // just before the server closes the idle connection
	}{
		{"close", func(*trConn) {}},
		{"reset", func(c *trConn) {
			if tc, ok := c.Conn.(*net.TCPConn); ok {
				_ = tc.SetLinger(0) // close sends RST
			}
		}},
		// Some servers say 408 on a connection they time out; that answer
		// belongs to no request and must not be taken for the next one's.
		{"408 then close", func(c *trConn) {
			_ = c.write("HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
		}},
		{"unsolicited answer then close", func(c *trConn) {
			_ = c.write("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			idle := make(chan struct{})      // test → server: the client holds the connection idle
			killed := make(chan struct{}, 8) // server → test: the connection is gone
			srv := trStartRaw(t, func(c *trConn) {
				if _, err := c.readRequest(); err != nil {
					return
				}
				if c.write(trAnswerOK) != nil {
					return
				}
				select {
				case <-idle:
				case <-c.srv.done:
					return
				}
				tt.kill(c)
				c.Conn.Close()
				killed <- struct{}{}
			})
			c := trClient(t, mpns.ClientOptions{Timeout: trBound})
			req := toastRequest(t)
			for i := range 3 {
				trDelivered(t, fmt.Sprintf("push %d", i), c.Push(t.Context(), srv.URL+"/throttledthirdparty/01.00/idle", req))
				trSend(t, idle, "the go-ahead to close the idle connection")
				trRecv(t, killed, "close of the idle connection")
			}
			if n := srv.requests.Load(); n != 3 {
				t.Errorf("server read %d requests, want 3", n)
			}
			if n := srv.accepted.Load(); n != 3 {
				t.Errorf("server accepted %d connections, want 3", n)
			}
		})
	}
	t.Run("httptest CloseClientConnections", func(t *testing.T) {
		srv, accepted := netguardtest.CountingServer(t, "127.0.0.1:0", http.HandlerFunc(trReceived))
		c := trClient(t, mpns.ClientOptions{Timeout: trBound})
		req := toastRequest(t)
		for i := range 3 {
			trDelivered(t, fmt.Sprintf("push %d", i), c.Push(t.Context(), srv.URL+"/throttledthirdparty/01.00/idle", req))
			srv.CloseClientConnections()
		}
		if n := accepted.Load(); n != 3 {
			t.Errorf("server accepted %d connections, want 3", n)
		}
	})
}

// Item 2, several idle connections: a host's idle timeout closes all of
// them at once; the next pushes must not give up after trying two stale
// ones.
func TestTransportServerClosesAllIdle(t *testing.T) {
	const parallel = 4
	var arrived atomic.Int64
	release := make(chan struct{})
	srv, st := trHTTPServer(t, func(w http.ResponseWriter, r *http.Request) {
		// The first requests wait for each other, so that each has its
		// own connection.
		if arrived.Add(1) == parallel {
			close(release)
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
		trReceived(w, r)
	}, false)
	c := trClient(t, mpns.ClientOptions{Concurrency: parallel, Timeout: trBound})
	req := toastRequest(t)
	var wg sync.WaitGroup
	for g := range parallel {
		wg.Go(func() {
			if r := c.Push(t.Context(), srv.URL+"/throttledthirdparty/01.00/all", req); r.Verdict != tilecast.VerdictDelivered {
				t.Errorf("parallel push %d: %+v", g, r)
			}
		})
	}
	wg.Wait()
	if n := st.opened.Load(); n != parallel {
		t.Fatalf("%d parallel pushes opened %d connections, want %d", parallel, n, parallel)
	}
	srv.CloseClientConnections()
	trWaitFor(t, "the server to close its idle connections", func() bool { return st.closed.Load() == parallel })
	for i := range parallel {
		trDelivered(t, fmt.Sprintf("push %d after the host closed every idle connection", i), c.Push(t.Context(), srv.URL+"/throttledthirdparty/01.00/all", req))
	}
}

// Item 3: an answer that ends the connection is honoured: nothing more is
// sent on it, the client closes it, the next push dials anew.
func TestTransportConnectionClose(t *testing.T) {
	t.Run("httptest keep-alives disabled", func(t *testing.T) {
		srv, st := trHTTPServer(t, trReceived, false)
		srv.Config.SetKeepAlivesEnabled(false)
		c := trClient(t, mpns.ClientOptions{Timeout: trBound})
		req := toastRequest(t)
		for i := range 5 {
			trDelivered(t, fmt.Sprintf("push %d", i), c.Push(t.Context(), srv.URL+"/throttledthirdparty/01.00/close", req))
		}
		if n := st.opened.Load(); n != 5 {
			t.Errorf("5 pushes used %d connections, want 5", n)
		}
	})
	// The server says the connection ends but leaves it open: a client
	// that sent another request on it would wait for an answer that never
	// comes.
	tests := []struct{ name, answer string }{
		{"connection close", "HTTP/1.1 200 OK\r\nConnection: close\r\nX-NotificationStatus: Received\r\nContent-Length: 0\r\n\r\n"},
		{"connection close with body", "HTTP/1.1 200 OK\r\nX-NotificationStatus: Received\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"},
		{"http/1.0", "HTTP/1.0 200 OK\r\nX-NotificationStatus: Received\r\nContent-Length: 0\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var reused, clientClosed atomic.Int64
			srv := trStartRaw(t, func(c *trConn) {
				if _, err := c.readRequest(); err != nil {
					return
				}
				if c.write(tt.answer) != nil {
					return
				}
				n, err := io.Copy(io.Discard, c.br)
				switch {
				case n > 0:
					reused.Add(1)
				case err == nil: // EOF: the client closed its end
					clientClosed.Add(1)
				}
			})
			c := trClient(t, mpns.ClientOptions{Timeout: 2 * time.Second})
			req := toastRequest(t)
			for i := range 5 {
				trDelivered(t, fmt.Sprintf("push %d", i), c.Push(t.Context(), srv.URL+"/throttledthirdparty/01.00/close", req))
			}
			if n := srv.accepted.Load(); n != 5 {
				t.Errorf("5 pushes used %d connections, want 5", n)
			}
			trWaitFor(t, "the client to close the 5 ended connections", func() bool { return clientClosed.Load()+reused.Load() == 5 })
			if n := reused.Load(); n != 0 {
				t.Errorf("%d ended connections were written to again", n)
			}
		})
	}
}

// Item 4: the framings a host may use for its answer, each followed by
// more pushes on the same client, so that a misread answer shows up in
// the next one.
func TestTransportResponseFraming(t *testing.T) {
	const received = "X-NotificationStatus: Received\r\n"
	tests := []struct {
		name         string
		answer       string
		closeAfter   bool
		verdict      tilecast.Verdict
		status       int
		notification string
	}{
		{"content-length body", "HTTP/1.1 200 OK\r\n" + received + "Content-Length: 12\r\n\r\nignored body", false, tilecast.VerdictDelivered, 200, "Received"},
		{"chunked", "HTTP/1.1 200 OK\r\n" + received + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", false, tilecast.VerdictDelivered, 200, "Received"},
		{"chunked empty", "HTTP/1.1 200 OK\r\n" + received + "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", false, tilecast.VerdictDelivered, 200, "Received"},
		{"chunked with extension and trailer", "HTTP/1.1 200 OK\r\n" + received + "Transfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n", false, tilecast.VerdictDelivered, 200, "Received"},
		{"100 continue", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n" + received + "Content-Length: 0\r\n\r\n", false, tilecast.VerdictDelivered, 200, "Received"},
		{"100 and 103 then chunked", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\nHTTP/1.1 200 OK\r\n" + received + "Transfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", false, tilecast.VerdictDelivered, 200, "Received"},
		{"lower-case header names", "HTTP/1.1 200 OK\r\nx-notificationstatus: Suppressed\r\nx-subscriptionstatus: Active\r\ncontent-length: 2\r\n\r\nok", false, tilecast.VerdictSuppressed, 200, "Suppressed"},
		{"204 no content", "HTTP/1.1 204 No Content\r\n\r\n", false, tilecast.VerdictDelivered, 204, ""},
		{"404 expired with body", "HTTP/1.1 404 Not Found\r\nX-NotificationStatus: Dropped\r\nX-SubscriptionStatus: Expired\r\nContent-Length: 9\r\n\r\nnot found", false, tilecast.VerdictGone, 404, "Dropped"},
		{"body ends with the connection", "HTTP/1.1 200 OK\r\n" + received + "\r\nbody until close", true, tilecast.VerdictDelivered, 200, "Received"},
		{"http/1.0 body ends with the connection", "HTTP/1.0 200 OK\r\n" + received + "\r\nbody until close", true, tilecast.VerdictDelivered, 200, "Received"},
		{"http/1.0 keep-alive", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n" + received + "Content-Length: 0\r\n\r\n", false, tilecast.VerdictDelivered, 200, "Received"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := trStartRaw(t, trServe(tt.answer, tt.closeAfter))
			c := trClient(t, mpns.ClientOptions{Timeout: 2 * time.Second})
			req := toastRequest(t)
			for i := range 3 {
				r := c.Push(t.Context(), srv.URL+"/throttledthirdparty/01.00/frame", req)
				if r.Verdict != tt.verdict || r.Status != tt.status || r.Notification != tt.notification {
					t.Fatalf("push %d: result = %+v, want %v, status %d, notification %q", i, r, tt.verdict, tt.status, tt.notification)
				}
			}
			if n := srv.requests.Load(); n != 3 {
				t.Errorf("server read %d requests, want 3", n)
			}
		})
	}
}

// Item 5: an answer with a body far larger than any MPNS answer is
// classified from its status and headers, and does not spoil the next push.
func TestTransportLargeBody(t *testing.T) {
	const mib = 1 << 20
	big := strings.Repeat("x", mib)
	var chunked strings.Builder
	for range 16 {
		fmt.Fprintf(&chunked, "%x\r\n%s\r\n", 64<<10, big[:64<<10])
	}
	chunked.WriteString("0\r\n\r\n")
	head := "HTTP/1.1 200 OK\r\nX-NotificationStatus: Received\r\n"
	rawTests := []struct {
		name   string
		handle func(c *trConn)
	}{
		{"content-length", trServe(head+"Content-Length: "+strconv.Itoa(mib)+"\r\n\r\n"+big, false)},
		{"chunked", trServe(head+"Transfer-Encoding: chunked\r\n\r\n"+chunked.String(), false)},
		// The host stops sending partway through the body: the status and
		// headers already said the notification was received.
		{"body stalls", func(c *trConn) {
			if _, err := c.readRequest(); err != nil {
				return
			}
			if c.write(head+"Content-Length: "+strconv.Itoa(mib)+"\r\n\r\n"+big[:8<<10]) != nil {
				return
			}
			c.hold()
		}},
	}
	for _, tt := range rawTests {
		t.Run(tt.name, func(t *testing.T) {
			srv := trStartRaw(t, tt.handle)
			c := trClient(t, mpns.ClientOptions{Timeout: 2 * time.Second})
			req := toastRequest(t)
			for i := range 3 {
				trDelivered(t, fmt.Sprintf("push %d", i), c.Push(t.Context(), srv.URL+"/throttledthirdparty/01.00/big", req))
			}
			if n := srv.requests.Load(); n != 3 {
				t.Errorf("server read %d requests, want 3", n)
			}
		})
	}
	t.Run("httptest", func(t *testing.T) {
		srv, _ := trHTTPServer(t, func(w http.ResponseWriter, r *http.Request) {
			trReceived(w, r)
			_, _ = io.WriteString(w, big)
		}, false)
		c := trClient(t, mpns.ClientOptions{Timeout: 2 * time.Second})
		req := toastRequest(t)
		for i := range 3 {
			trDelivered(t, fmt.Sprintf("push %d", i), c.Push(t.Context(), srv.URL+"/throttledthirdparty/01.00/big", req))
		}
	})
}

// trWriteUntilError writes chunk until the connection fails or the test
// ends.
func trWriteUntilError(c *trConn, chunk string) {
	for {
		select {
		case <-c.srv.done:
			return
		default:
		}
		if c.write(chunk) != nil {
			return
		}
	}
}

// trHostile are answers no HTTP host should give; each must end in a
// retry with an error and no status, without waiting for the timeout.
// They also seed FuzzTransportAnswer.
func trHostile() []struct {
	name   string
	handle func(c *trConn)
} {
	pad := strings.Repeat("a", 1000)
	var bigHeaders strings.Builder
	bigHeaders.WriteString("HTTP/1.1 200 OK\r\nX-NotificationStatus: Received\r\n")
	for i := 0; bigHeaders.Len() <= 1<<20+4<<10; i++ {
		fmt.Fprintf(&bigHeaders, "X-Pad-%d: %s\r\n", i, pad)
	}
	bigHeaders.WriteString("Content-Length: 0\r\n\r\n")
	answerThenHold := func(answer string) func(c *trConn) {
		return func(c *trConn) {
			if _, err := c.readRequest(); err != nil {
				return
			}
			if c.write(answer) != nil {
				return
			}
			c.hold()
		}
	}
	answerThenClose := func(answer string) func(c *trConn) {
		return func(c *trConn) {
			if _, err := c.readRequest(); err != nil {
				return
			}
			_ = c.write(answer)
		}
	}
	return []struct {
		name   string
		handle func(c *trConn)
	}{
		{"not http", answerThenHold("garbage\r\n\r\n")},
		{"header block over 1 MiB", answerThenHold(bigHeaders.String())},
		{"header line over 1 MiB", answerThenHold("HTTP/1.1 200 OK\r\nX-NotificationStatus: Received\r\nX-Long: " + strings.Repeat("a", 1<<20+4<<10) + "\r\nContent-Length: 0\r\n\r\n")},
		{"endless headers", func(c *trConn) {
			if _, err := c.readRequest(); err != nil {
				return
			}
			if c.write("HTTP/1.1 200 OK\r\nX-NotificationStatus: Received\r\n") != nil {
				return
			}
			trWriteUntilError(c, "X-Pad: "+pad+"\r\n")
		}},
		{"endless 100 continue", func(c *trConn) {
			if _, err := c.readRequest(); err != nil {
				return
			}
			trWriteUntilError(c, "HTTP/1.1 100 Continue\r\n\r\n")
		}},
		{"closed before any byte", answerThenClose("")},
		{"closed without reading the request", func(*trConn) {}},
		{"truncated status line", answerThenClose("HTTP/1.1 20")},
		{"truncated header block", answerThenClose("HTTP/1.1 200 OK\r\nX-NotificationStatus: Rec")},
		{"bad status code", answerThenHold("HTTP/1.1 abc OK\r\nContent-Length: 0\r\n\r\n")},
		{"bad protocol version", answerThenHold("HTTP/9.Z 200 OK\r\nContent-Length: 0\r\n\r\n")},
		{"negative content-length", answerThenHold("HTTP/1.1 200 OK\r\nX-NotificationStatus: Received\r\nContent-Length: -1\r\n\r\n")},
		{"conflicting content-lengths", answerThenHold("HTTP/1.1 200 OK\r\nX-NotificationStatus: Received\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab")},
	}
}

// Item 6: hostile answers.
func TestTransportHostileAnswers(t *testing.T) {
	good, _ := trHTTPServer(t, trReceived, false)
	for _, tt := range trHostile() {
		t.Run(tt.name, func(t *testing.T) {
			srv := trStartRaw(t, tt.handle)
			c := trClient(t, mpns.ClientOptions{Timeout: trBound})
			r := c.Push(t.Context(), srv.URL+"/throttledthirdparty/01.00/hostile", toastRequest(t))
			if r.Verdict != tilecast.VerdictRetry || r.Err == nil || r.Status != 0 {
				t.Errorf("result = %+v, want retry with an error and status 0", r)
			}
			if errors.Is(r.Err, context.DeadlineExceeded) {
				t.Errorf("err = %v: the answer was waited out, not recognised", r.Err)
			}
			// The client is not spoilt for other hosts.
			trDelivered(t, "push to a good host afterwards", c.Push(t.Context(), good.URL+"/throttledthirdparty/01.00/good", toastRequest(t)))
		})
	}
}

// Item 6: a host that never answers is given up on at the timeout.
func TestTransportNoAnswer(t *testing.T) {
	silent, err := net.Listen("tcp", "127.0.0.1:0") // never accepts: the kernel completes the handshake
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { silent.Close() })
	tests := []struct {
		name string
		url  func(t *testing.T) string
	}{
		{"reads the request, never answers", func(t *testing.T) string {
			return trStartRaw(t, func(c *trConn) {
				if _, err := c.readRequest(); err == nil {
					c.hold()
				}
			}).URL
		}},
		{"never reads", func(t *testing.T) string {
			return trStartRaw(t, (*trConn).hold).URL
		}},
		{"status line then silence", func(t *testing.T) string {
			return trStartRaw(t, func(c *trConn) {
				if _, err := c.readRequest(); err == nil && c.write("HTTP/1.1 200 OK\r\n") == nil {
					c.hold()
				}
			}).URL
		}},
		// Cut inside a header line: what was read must not pass for a
		// malformed answer, the host is merely slow.
		{"partial header line then silence", func(t *testing.T) string {
			return trStartRaw(t, func(c *trConn) {
				if _, err := c.readRequest(); err == nil && c.write("HTTP/1.1 200 OK\r\nX-Notif") == nil {
					c.hold()
				}
			}).URL
		}},
		{"never accepts", func(*testing.T) string { return "http://" + silent.Addr().String() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := tt.url(t)
			c := trClient(t, mpns.ClientOptions{Timeout: 100 * time.Millisecond})
			start := time.Now()
			r := c.Push(t.Context(), url+"/throttledthirdparty/01.00/silent", toastRequest(t))
			if took := time.Since(start); took >= trBound {
				t.Errorf("push took %s with a 100ms timeout", took)
			}
			if r.Verdict != tilecast.VerdictRetry || r.Status != 0 || !errors.Is(r.Err, context.DeadlineExceeded) {
				t.Errorf("result = %+v, want retry, status 0, context.DeadlineExceeded", r)
			}
		})
	}
}

// Item 7: cancelling the caller's context ends a push in flight.
func TestTransportCancelInFlight(t *testing.T) {
	tests := []struct {
		name    string
		partial string // written before the server blocks
	}{
		{"waiting for the answer", ""},
		{"inside the header block", "HTTP/1.1 200 OK\r\nX-NotificationStatus: Rec"},
		{"after 100 continue", "HTTP/1.1 100 Continue\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := make(chan struct{}, 1)
			srv := trStartRaw(t, func(c *trConn) {
				if _, err := c.readRequest(); err != nil {
					return
				}
				if tt.partial != "" && c.write(tt.partial) != nil {
					return
				}
				got <- struct{}{}
				c.hold()
			})
			c := trClient(t, mpns.ClientOptions{Timeout: 20 * time.Second})
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var cancelled atomic.Int64 // UnixNano of the cancel
			go func() {
				select {
				case <-got:
					cancelled.Store(time.Now().UnixNano())
					cancel()
				case <-ctx.Done():
				}
			}()
			r := c.Push(ctx, srv.URL+"/throttledthirdparty/01.00/cancel", toastRequest(t))
			at := cancelled.Load()
			if at == 0 {
				t.Fatalf("push returned before the server had the request: %+v", r)
			}
			if took := time.Since(time.Unix(0, at)); took >= trBound {
				t.Errorf("push returned %s after the cancel", took)
			}
			if r.Verdict != tilecast.VerdictRetry || r.Status != 0 || !errors.Is(r.Err, context.Canceled) {
				t.Errorf("result = %+v, want retry, status 0, context.Canceled", r)
			}
		})
	}
}

// trHeaderLine is one header line of a captured request.
type trHeaderLine struct{ name, value string }

// trParseWire splits a captured request into its request line, header
// lines (names as sent) and body.
func trParseWire(t *testing.T, raw []byte) (line string, headers []trHeaderLine, body []byte) {
	t.Helper()
	head, body, ok := bytes.Cut(raw, []byte("\r\n\r\n"))
	if !ok {
		t.Fatalf("request has no end of header block: %q", raw)
	}
	lines := strings.Split(string(head), "\r\n")
	for _, l := range lines[1:] {
		if strings.ContainsAny(l, "\r\n") {
			t.Errorf("header line with a bare CR or LF: %q", l)
		}
		name, value, ok := strings.Cut(l, ":")
		if !ok {
			t.Errorf("header line without a colon: %q", l)
			continue
		}
		headers = append(headers, trHeaderLine{name, strings.Trim(value, " \t")})
	}
	return lines[0], headers, body
}

// Item 8: the request on the wire.
func TestTransportWireFormat(t *testing.T) {
	enc := &mpns.Encoder{}
	tile, err := enc.EncodeTile(notify.Tile{Template: tilecast.TileFlip, Title: notify.Value("Ünïcode & <co>"), Count: notify.Value("7")})
	if err != nil {
		t.Fatal(err)
	}
	rawReq, err := enc.EncodeRaw(notify.Raw{Payload: []byte("line1\r\nline2\n\x00\xff\r\n\r\nPOST / HTTP/1.1\r\n")})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		path       string // appended to the server URL
		wantTarget string // request-target on the request line
		req        tilecast.Request
		userAgent  string
	}{
		{"toast", "/path?q=1", "/path?q=1", toastRequest(t), ""},
		{"toast with user agent", "/path?q=1", "/path?q=1", toastRequest(t), "tilecast-test/1.0"},
		{"flip tile", "/throttledthirdparty/01.00/AAF9MBULkDV0Tpyj24I3bzE3", "/throttledthirdparty/01.00/AAF9MBULkDV0Tpyj24I3bzE3", tile, "tilecast-test/1.0"},
		{"raw with binary body", "/throttledthirdparty/01.00/raw?a=b&c=d", "/throttledthirdparty/01.00/raw?a=b&c=d", rawReq, ""},
		{"escaped path", "/throttledthirdparty/01.00/A%2Fb%20c?q=%3D1", "/throttledthirdparty/01.00/A%2Fb%20c?q=%3D1", toastRequest(t), ""},
		{"no path", "", "/", toastRequest(t), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			captured := make(chan []byte, 4)
			srv := trStartRaw(t, func(c *trConn) {
				for {
					raw, err := c.readRequest()
					if err != nil {
						return
					}
					captured <- raw
					if c.write(trAnswerOK) != nil {
						return
					}
				}
			})
			host := strings.TrimPrefix(srv.URL, "http://")
			c := trClient(t, mpns.ClientOptions{UserAgent: tt.userAgent, Timeout: trBound})
			// Twice: the second request goes over the kept-alive connection.
			for i := range 2 {
				trDelivered(t, fmt.Sprintf("push %d", i), c.Push(t.Context(), srv.URL+tt.path, tt.req))
				var raw []byte
				select {
				case raw = <-captured:
				default:
					t.Fatalf("push %d: server captured no request", i)
				}
				trCheckWire(t, raw, tt.wantTarget, host, tt.req, tt.userAgent)
			}
		})
	}
}

func trCheckWire(t *testing.T, raw []byte, wantTarget, host string, req tilecast.Request, userAgent string) {
	t.Helper()
	line, headers, body := trParseWire(t, raw)
	if want := "POST " + wantTarget + " HTTP/1.1"; line != want {
		t.Errorf("request line %q, want %q", line, want)
	}
	values := func(name string) []string { // case-insensitive
		var vs []string
		for _, h := range headers {
			if strings.EqualFold(h.name, name) {
				vs = append(vs, h.value)
			}
		}
		return vs
	}
	if vs := values("Host"); len(vs) != 1 || vs[0] != host {
		t.Errorf("Host headers %q, want exactly [%q]", vs, host)
	}
	if vs := values("Content-Length"); len(vs) != 1 || vs[0] != strconv.Itoa(len(req.Body)) {
		t.Errorf("Content-Length headers %q, want exactly [%d]", vs, len(req.Body))
	}
	if vs := values("Transfer-Encoding"); len(vs) != 0 {
		t.Errorf("Transfer-Encoding %q sent", vs)
	}
	if !bytes.Equal(body, req.Body) {
		t.Errorf("body\n%q\nwant\n%q", body, req.Body)
	}
	// The encoder's headers, with their names as written, once each and
	// in its order.
	last := -1
	for _, h := range req.Headers {
		if strings.EqualFold(h.Name, "Content-Length") {
			continue // checked above; the transport may place it
		}
		at, n := -1, 0
		for i, got := range headers {
			if strings.EqualFold(got.name, h.Name) {
				n++
				at = i
				if got.name != h.Name || got.value != h.Value {
					t.Errorf("header sent as %q: %q, want %q: %q", got.name, got.value, h.Name, h.Value)
				}
			}
		}
		if n != 1 {
			t.Errorf("header %s sent %d times, want once", h.Name, n)
			continue
		}
		if at < last {
			t.Errorf("header %s out of the encoder's order: %v", h.Name, headers)
		}
		last = at
	}
	if userAgent != "" {
		n := 0
		for _, h := range headers {
			if strings.EqualFold(h.name, "User-Agent") {
				n++
				if h.name != "User-Agent" || h.value != userAgent {
					t.Errorf("User-Agent sent as %q: %q, want %q", h.name, h.value, userAgent)
				}
			}
		}
		if n != 1 {
			t.Errorf("User-Agent sent %d times, want once", n)
		}
	}
	if want := len(raw) - len(body); !bytes.HasSuffix(raw[:want], []byte("\r\n\r\n")) {
		t.Errorf("header block does not end in CRLF CRLF")
	}
}

// Item 9: a header that would inject lines is refused before anything is
// sent.
func TestTransportHeaderInjection(t *testing.T) {
	var served atomic.Int64
	srv, accepted := netguardtest.CountingServer(t, "127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		trReceived(w, r)
	}))
	tests := []struct{ name, header, value string }{
		{"value CRLF", "X-NotificationClass", "2\r\nX-Injected: 1"},
		{"value CRLF CRLF request", "X-WindowsPhone-Target", "toast\r\n\r\nPOST /evil HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"value LF", "X-NotificationClass", "2\nX-Injected: 1"},
		{"value CR", "X-NotificationClass", "2\rX-Injected: 1"},
		{"value trailing CRLF", "X-Custom", "v\r\n"},
		{"name CRLF", "X-A\r\nX-Injected", "1"},
		{"name LF", "X-A\nX-Injected", "1"},
		{"name CR", "X-A\rX-Injected", "1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := toastRequest(t)
			replaced := false
			for i := range req.Headers {
				if req.Headers[i].Name == tt.header {
					req.Headers[i].Value = tt.value
					replaced = true
				}
			}
			if !replaced {
				req.Headers = append(req.Headers, tilecast.Header{Name: tt.header, Value: tt.value})
			}
			c := trClient(t, mpns.ClientOptions{Timeout: trBound})
			if r := c.Push(t.Context(), srv.URL+"/throttledthirdparty/01.00/inject", req); r.Verdict != tilecast.VerdictFailed || r.Err == nil {
				t.Errorf("result = %+v, want failed with an error", r)
			}
		})
	}
	t.Run("user agent CRLF", func(t *testing.T) {
		c, err := mpns.NewClient(mpns.ClientOptions{AllowPrivate: true, UserAgent: "tilecast\r\nX-Injected: 1"})
		if err != nil {
			return // refusing the option up front is as good
		}
		defer c.Close()
		if r := c.Push(t.Context(), srv.URL+"/throttledthirdparty/01.00/inject", toastRequest(t)); r.Verdict != tilecast.VerdictFailed || r.Err == nil {
			t.Errorf("result = %+v, want failed with an error", r)
		}
	})
	if n, s := accepted.Load(), served.Load(); n != 0 || s != 0 {
		t.Errorf("server accepted %d connections and served %d requests, want none", n, s)
	}
	// The control: a clean request does reach the same server.
	trDelivered(t, "clean push", trClient(t, mpns.ClientOptions{}).Push(t.Context(), srv.URL+"/throttledthirdparty/01.00/clean", toastRequest(t)))
	if n := served.Load(); n != 1 {
		t.Errorf("server served %d requests after the clean push, want 1", n)
	}
}

// Item 10: pushes to several hosts from many goroutines share the pool
// without mixing requests or answers: each server checks that a request
// is meant for it and its body is its own, and answers with the status
// the request asked for, which the pusher checks.
func TestTransportManyHosts(t *testing.T) {
	const hosts, goroutines, perGoroutine = 3, 8, 30
	var urls [hosts]string
	var served [hosts]atomic.Int64
	for i := range hosts {
		srv, _ := trHTTPServer(t, func(w http.ResponseWriter, r *http.Request) {
			body, err := io.ReadAll(r.Body)
			if err != nil {
				t.Errorf("server %d: %v", i, err)
			}
			parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/"), "/")
			if len(parts) != 4 || parts[0] != "s"+strconv.Itoa(i) {
				t.Errorf("server %d got a request for %s", i, r.URL.Path)
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			if string(body) != r.URL.Path {
				t.Errorf("server %d: request %s carried body %q", i, r.URL.Path, body)
			}
			served[i].Add(1)
			w.Header().Set("X-NotificationStatus", parts[1])
		}, false)
		urls[i] = srv.URL
	}
	c := trClient(t, mpns.ClientOptions{Concurrency: 2, Timeout: trBound})
	var want [hosts]int64
	for g := range goroutines {
		for k := range perGoroutine {
			want[(g+k)%hosts]++
		}
	}
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			enc := mpns.NewEncoder(mpns.EncoderOptions{})
			for k := range perGoroutine {
				s := (g + k) % hosts
				status, verdict := "Received", tilecast.VerdictDelivered
				if (g*perGoroutine+k)%2 == 1 {
					status, verdict = "Suppressed", tilecast.VerdictSuppressed
				}
				path := fmt.Sprintf("/s%d/%s/g%d/k%d", s, status, g, k)
				req, err := enc.EncodeRaw(notify.Raw{Payload: []byte(path)})
				if err != nil {
					t.Error(err)
					return
				}
				r := c.Push(t.Context(), urls[s]+path, req)
				if r.Verdict != verdict || r.Status != http.StatusOK || r.Notification != status {
					t.Errorf("push %s: result = %+v, want %v with notification %q", path, r, verdict, status)
				}
			}
		})
	}
	wg.Wait()
	for i := range hosts {
		if n := served[i].Load(); n != want[i] {
			t.Errorf("server %d served %d requests, want %d", i, n, want[i])
		}
	}
}

// Item 11: Close ends the idle connections.
func TestTransportCloseEndsIdle(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		t.Run(map[bool]string{false: "http", true: "https"}[useTLS], func(t *testing.T) {
			srv, st := trHTTPServer(t, trReceived, useTLS)
			opts := mpns.ClientOptions{AllowPrivate: true, Timeout: trBound}
			if useTLS {
				opts.RootCAs = x509.NewCertPool()
				opts.RootCAs.AddCert(srv.Certificate())
			}
			c, err := mpns.NewClient(opts)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 2 {
				trDelivered(t, fmt.Sprintf("push %d", i), c.Push(t.Context(), srv.URL+"/throttledthirdparty/01.00/close", toastRequest(t)))
			}
			if o, cl := st.opened.Load(), st.closed.Load(); o != 1 || cl != 0 {
				t.Fatalf("before Close: %d connections opened, %d closed; want 1 kept alive", o, cl)
			}
			c.Close()
			trRecv(t, st.closedCh, "end of the idle connection after Close")
		})
	}
}

// Item 12: https connections are kept alive too.
func TestTransportTLSKeepAlive(t *testing.T) {
	srv, st := trHTTPServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil {
			t.Error("request without TLS")
		}
		trReceived(w, r)
	}, true)
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	c := trClient(t, mpns.ClientOptions{RootCAs: roots, Timeout: trBound})
	for i := range 10 {
		trDelivered(t, fmt.Sprintf("push %d", i), c.Push(t.Context(), srv.URL+"/throttledthirdparty/01.00/tls", toastRequest(t)))
	}
	if n := st.opened.Load(); n != 1 {
		t.Errorf("10 https pushes used %d connections, want 1", n)
	}
}

// FuzzTransportAnswer feeds arbitrary bytes to the client as the answer to
// a push (the host then closes the connection): Push must not panic, and
// a result without a status is a retry with an error.
func FuzzTransportAnswer(f *testing.F) {
	f.Add([]byte(trAnswerOK))
	f.Add([]byte("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nX-NotificationStatus: Received\r\nContent-Length: 0\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 503 Service Unavailable\r\nRetry-After: 30\r\nContent-Length: 0\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 404 Not Found\r\nX-SubscriptionStatus: Expired\r\n\r\n"))
	f.Add([]byte("garbage\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 20"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n"))
	f.Add([]byte{})
	answers := make(chan []byte)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { ln.Close() })
	// One listener for the whole run: a fresh one per input would use up
	// ports under -fuzz.
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				_ = nc.SetDeadline(time.Now().Add(trBound))
				br := bufio.NewReader(nc)
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				_, _ = io.Copy(io.Discard, req.Body)
				select {
				case a := <-answers:
					_, _ = nc.Write(a)
				case <-time.After(trBound):
				}
			}()
		}
	}()
	url := "http://" + ln.Addr().String() + "/throttledthirdparty/01.00/fuzz"
	f.Fuzz(func(t *testing.T, answer []byte) {
		c, err := mpns.NewClient(mpns.ClientOptions{AllowPrivate: true, Timeout: trBound})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		req := toastRequest(t)
		done := make(chan tilecast.Result, 1)
		go func() { done <- c.Push(t.Context(), url, req) }()
		var r tilecast.Result
		select {
		case answers <- answer:
			r = <-done
		case r = <-done: // failed before the server asked for an answer
		}
		switch {
		case r.Status == 0 && (r.Verdict != tilecast.VerdictRetry || r.Err == nil):
			t.Errorf("no status but %+v", r)
		case r.Status != 0 && (r.Status < 100 || r.Status > 999):
			t.Errorf("status %d out of range", r.Status)
		case r.Verdict == tilecast.VerdictDelivered && r.Err != nil:
			t.Errorf("delivered with an error: %+v", r)
		}
	})
}
