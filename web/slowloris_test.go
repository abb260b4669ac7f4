package web

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"
)

// The A1 tests run the server the daemon runs (Server.HTTPServer on a real
// listener) with short timeouts, and assert only outcomes: every stalled
// connection is closed by the server, a normal client is served meanwhile,
// and goroutines and file descriptors come back. backstop is not a timing
// assertion: it only keeps a broken server from hanging the test.
const (
	slowConns     = 1000 // A1; each costs two descriptors, well under ulimit -n
	slowBodyConns = 50
	backstop      = 30 * time.Second
	leakMargin    = 10 // goroutines or descriptors the runtime may still hold
)

// liveServer serves e's handler on 127.0.0.1 through HTTPServer.
func liveServer(t *testing.T, e *env) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := e.srv.HTTPServer(ln.Addr().String())
	done := make(chan error, 1)
	go func() { done <- hs.Serve(ln) }()
	t.Cleanup(func() {
		_ = hs.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

func slowEnv(t *testing.T) *env {
	return newEnv(t, func(o *Options) {
		o.ReadHeaderTimeout = 500 * time.Millisecond
		o.ReadTimeout = time.Second
		o.WriteTimeout = 2 * time.Second
		o.IdleTimeout = time.Second
	})
}

// openFDs counts this process's descriptors; -1 where /proc is missing.
func openFDs() int {
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(fds)
}

// stall dials addr, sends prefix and then nothing. It reports on closed
// once the server has closed the connection, with the status of any
// response it sent first (0: none).
func stall(t *testing.T, addr, prefix string, closed chan<- stallResult) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial: %v (is ulimit -n too low for %d connections?)", err, slowConns)
	}
	if _, err := io.WriteString(c, prefix); err != nil {
		t.Fatalf("write: %v", err)
	}
	go func() {
		_ = c.SetReadDeadline(time.Now().Add(backstop))
		var res stallResult
		br := bufio.NewReader(c)
		if resp, err := http.ReadResponse(br, nil); err == nil {
			res.status = resp.StatusCode
			_, _ = io.Copy(io.Discard, resp.Body)
		}
		_, err := io.Copy(io.Discard, br) // nil at EOF
		res.err = err
		closed <- res
	}()
	return c
}

type stallResult struct {
	status int
	err    error // nil or a reset: closed by the server; a deadline: not closed
}

// waitClosed collects n results and fails for any connection the server
// left open.
func waitClosed(t *testing.T, n int, closed <-chan stallResult, wantStatus func(int) bool) {
	t.Helper()
	bad := 0
	for range n {
		res := <-closed
		if errors.Is(res.err, os.ErrDeadlineExceeded) {
			t.Fatalf("a stalled connection was still open after %v", backstop)
		}
		if !wantStatus(res.status) && bad == 0 {
			bad++
			t.Errorf("a stalled connection got status %d", res.status)
		}
	}
}

// waitBaseline polls until goroutines and descriptors are back near base.
func waitBaseline(t *testing.T, baseG, baseFD int) {
	t.Helper()
	deadline := time.Now().Add(backstop)
	for {
		g, fd := runtime.NumGoroutine(), openFDs()
		if g <= baseG+leakMargin && fd <= baseFD+leakMargin {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("goroutines %d (baseline %d), descriptors %d (baseline %d) after every connection closed",
				g, baseG, fd, baseFD)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSlowloris (A1): connections that send one header byte, or trickle
// bytes, and never finish their headers are closed by ReadHeaderTimeout
// while a normal client keeps being served.
func TestSlowloris(t *testing.T) {
	e := slowEnv(t)
	addr := liveServer(t, e)
	client := &http.Client{Transport: &http.Transport{}}
	baseG, baseFD := runtime.NumGoroutine(), openFDs()

	closed := make(chan stallResult, slowConns)
	conns := make([]net.Conn, 0, slowConns)
	for i := range slowConns {
		prefix := "G"
		if i%10 == 0 {
			prefix = "GET /v1/status HTTP/1.1\r\nHost: x\r\nX-Slow: " // a header line never ended
		}
		conns = append(conns, stall(t, addr, prefix, closed))
	}
	// A few connections trickle a byte every 50 ms: the header deadline is
	// absolute, so bytes arriving do not extend it.
	var trickle sync.WaitGroup
	stop := make(chan struct{})
	for range 10 {
		c := stall(t, addr, "P", closed)
		conns = append(conns, c)
		trickle.Go(func() {
			for {
				select {
				case <-stop:
					return
				case <-time.After(50 * time.Millisecond):
				}
				if _, err := c.Write([]byte("O")); err != nil {
					return // the server closed it
				}
			}
		})
	}

	// A normal client meanwhile: assert it is served, not how fast.
	for i := range 20 {
		var req *http.Request
		if i%2 == 0 {
			req, _ = http.NewRequest(http.MethodGet, "http://"+addr+"/v1/status", nil)
			req.Header.Set("Authorization", "Bearer "+keyOne)
		} else {
			req, _ = http.NewRequest(http.MethodGet, "http://"+addr+"/healthz", nil)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("normal request %d during the attack: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("normal request %d during the attack: %d", i, resp.StatusCode)
		}
	}
	t.Logf("normal client served while %d stalled connections were open", slowConns+10-len(closed))

	// At the header deadline net/http closes silently, or answers 400
	// first when it had a partial request line: never anything else.
	waitClosed(t, slowConns+10, closed, func(status int) bool { return status == 0 || status == http.StatusBadRequest })
	close(stop)
	trickle.Wait()
	for _, c := range conns {
		c.Close()
	}
	client.CloseIdleConnections()
	waitBaseline(t, baseG, baseFD)
}

// TestSlowBody (A1): connections that send complete headers and one byte
// of a longer body are closed by ReadTimeout and nothing is registered.
func TestSlowBody(t *testing.T) {
	e := slowEnv(t)
	addr := liveServer(t, e)
	baseG, baseFD := runtime.NumGoroutine(), openFDs()
	closed := make(chan stallResult, slowBodyConns)
	conns := make([]net.Conn, 0, slowBodyConns)
	for range slowBodyConns {
		head := fmt.Sprintf("POST /v1/channels HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"+
			"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{", keyOne)
		conns = append(conns, stall(t, addr, head, closed))
	}
	// A refused body is answered (400) before the close; never 2xx.
	waitClosed(t, slowBodyConns, closed, func(status int) bool { return status == 0 || status == http.StatusBadRequest })
	for _, c := range conns {
		c.Close()
	}
	if n := e.store.count(); n != 0 {
		t.Errorf("%d channels registered from stalled bodies", n)
	}
	waitBaseline(t, baseG, baseFD)
}
