package pushhttp_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/tilecast/tilecast/notify/pushhttp"
)

// The tests play push hosts on loopback: httptest servers where a
// well-behaved host will do, raw listeners writing answers by hand where a
// misbehaving one has to be played (httptest cannot answer wrongly).

// bound is the generous limit for anything that should happen "at once";
// it only catches hangs, it does not time the client.
const bound = 5 * time.Second

// answerOK is a minimal kept-alive delivery answer.
const answerOK = "HTTP/1.1 200 OK\r\nX-NotificationStatus: Received\r\nContent-Length: 0\r\n\r\n"

// rawServer is a loopback listener whose connections are served by a
// hand-written handler.
type rawServer struct {
	URL      string
	accepted atomic.Int64 // connections accepted
	done     chan struct{}
	ln       net.Listener
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	closed   bool
}

// rawConn is one accepted connection.
type rawConn struct {
	net.Conn
	srv *rawServer
	br  *bufio.Reader
}

// startRaw listens on 127.0.0.1 and runs handle for each connection; the
// connection is closed when handle returns. Cleanup ends the handlers'
// holds, closes everything and waits for them.
func startRaw(t *testing.T, handle func(c *rawConn)) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveRaw(t, "http://", ln, handle)
}

// startRawTLS is startRaw over TLS offering only HTTP/2 (ALPN h2), with
// the pool a client must trust. The certificate is httptest's, for
// 127.0.0.1.
func startRawTLS(t *testing.T, handle func(c *rawConn)) (*rawServer, *x509.CertPool) {
	t.Helper()
	ts := httptest.NewTLSServer(http.NotFoundHandler()) // only for its certificate
	cert := ts.TLS.Certificates[0]
	roots := x509.NewCertPool()
	roots.AddCert(ts.Certificate())
	ts.Close()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{http2.NextProtoTLS}})
	if err != nil {
		t.Fatal(err)
	}
	return serveRaw(t, "https://", ln, handle), roots
}

func serveRaw(t *testing.T, scheme string, ln net.Listener, handle func(c *rawConn)) *rawServer {
	s := &rawServer{URL: scheme + ln.Addr().String(), done: make(chan struct{}), ln: ln, conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go s.serve(handle)
	t.Cleanup(s.close)
	return s
}

func (s *rawServer) serve(handle func(c *rawConn)) {
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
		c := &rawConn{Conn: nc, srv: s, br: bufio.NewReader(nc)}
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

func (s *rawServer) close() {
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

// readRequest reads one whole request and returns it with its body.
func (c *rawConn) readRequest() (*http.Request, []byte, error) {
	req, err := http.ReadRequest(c.br)
	if err != nil {
		return nil, nil, err
	}
	body, err := io.ReadAll(req.Body)
	return req, body, err
}

func (c *rawConn) write(s string) error {
	_, err := io.WriteString(c.Conn, s)
	return err
}

// hold blocks until the test ends.
func (c *rawConn) hold() { <-c.srv.done }

// waitClientClose reads until the client closes its end (EOF) or the test
// ends; it reports whether the client closed.
func (c *rawConn) waitClientClose() bool {
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-c.srv.done:
			_ = c.SetReadDeadline(time.Unix(1, 0))
		case <-stop:
		}
	}()
	_, err := io.Copy(io.Discard, c.br)
	return err == nil
}

// h2Conn is the host side of an HTTP/2 connection, written frame by
// frame: net/http's server cannot be made to reset a stream it read in
// full, or to disown it with a GOAWAY, which is what these tests need.
type h2Conn struct {
	fr   *http2.Framer
	hbuf bytes.Buffer
	enc  *hpack.Encoder
}

// serveH2 speaks HTTP/2 on c: it settles the settings and pings and calls
// handle with each request whose body has arrived in full (END_STREAM),
// until handle fails or the connection ends. Headers are not decoded: the
// tests tell requests apart by their bodies.
func (c *rawConn) serveH2(handle func(h *h2Conn, stream uint32, body []byte) error) {
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(c.br, preface); err != nil || string(preface) != http2.ClientPreface {
		return
	}
	h := &h2Conn{fr: http2.NewFramer(c.Conn, c.br)}
	h.enc = hpack.NewEncoder(&h.hbuf)
	if h.fr.WriteSettings() != nil {
		return
	}
	bodies := map[uint32][]byte{}
	for {
		f, err := h.fr.ReadFrame()
		if err != nil {
			return
		}
		var stream uint32
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() && h.fr.WriteSettingsAck() != nil {
				return
			}
			continue
		case *http2.PingFrame:
			if !f.IsAck() && h.fr.WritePing(true, f.Data) != nil {
				return
			}
			continue
		case *http2.HeadersFrame:
			stream = f.StreamID
			bodies[stream] = []byte{}
			if !f.StreamEnded() {
				continue
			}
		case *http2.DataFrame:
			stream = f.StreamID
			bodies[stream] = append(bodies[stream], f.Data()...) // Data is valid until the next read
			if !f.StreamEnded() {
				continue
			}
		default:
			continue
		}
		body := bodies[stream]
		delete(bodies, stream)
		if handle(h, stream, body) != nil {
			return
		}
	}
}

// answer ends stream with status and X-NotificationStatus: Received,
// without a body.
func (h *h2Conn) answer(stream uint32, status int) error {
	h.hbuf.Reset()
	for _, f := range []hpack.HeaderField{
		{Name: ":status", Value: strconv.Itoa(status)},
		{Name: "x-notificationstatus", Value: "Received"},
	} {
		if err := h.enc.WriteField(f); err != nil {
			return err
		}
	}
	return h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: stream, BlockFragment: h.hbuf.Bytes(), EndHeaders: true, EndStream: true})
}

// serveAll answers every request on a connection with answer; closeAfter
// closes the connection after the first answer.
func serveAll(answer string, closeAfter bool) func(c *rawConn) {
	return func(c *rawConn) {
		for {
			if _, _, err := c.readRequest(); err != nil {
				return
			}
			if c.write(answer) != nil || closeAfter {
				return
			}
		}
	}
}

// connStates counts an httptest server's connections.
type connStates struct{ opened, closed atomic.Int64 }

// httpServer starts an httptest server on 127.0.0.1 (TLS with HTTP/2 if
// useTLS) that counts its connections.
func httpServer(t *testing.T, h http.HandlerFunc, useTLS bool) (*httptest.Server, *connStates) {
	t.Helper()
	st := &connStates{}
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			st.opened.Add(1)
		case http.StateClosed, http.StateHijacked:
			st.closed.Add(1)
		}
	}
	if useTLS {
		srv.EnableHTTP2 = true
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv, st
}

func received(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	w.Header().Set("X-NotificationStatus", "Received")
}

// loopbackClient is a client allowed to reach loopback, closed at the end
// of the test.
func loopbackClient(t *testing.T, opts pushhttp.Options) *pushhttp.Client {
	t.Helper()
	opts.AllowPrivate = true
	c := pushhttp.New(opts)
	t.Cleanup(c.Close)
	return c
}

// post builds a push of body to uri.
func post(t *testing.T, uri, body string) *http.Request {
	t.Helper()
	req, err := pushhttp.NewPost(uri, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(bound):
		t.Fatalf("no %s within %s", what, bound)
		panic("unreachable")
	}
}
