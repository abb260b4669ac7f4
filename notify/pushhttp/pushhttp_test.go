package pushhttp_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/internal/netguardtest"
	"github.com/tilecast/tilecast/netguard"
	"github.com/tilecast/tilecast/notify/pushhttp"
)

// TestProxyEnvIgnored (reliability.md N3): proxy variables pointing at a
// loopback listener are not used, the push goes direct. It runs first,
// before anything could have read the variables (net/http reads them once).
func TestProxyEnvIgnored(t *testing.T) {
	proxy, proxied := netguardtest.CountingServer(t, "127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "proxied", http.StatusBadGateway)
	}))
	for _, k := range []string{"HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"} {
		t.Setenv(k, proxy.URL)
	}
	t.Setenv("NO_PROXY", "")
	t.Setenv("no_proxy", "")
	target, reached := netguardtest.CountingServer(t, "127.0.0.2:0", http.HandlerFunc(received))
	c := pushhttp.New(pushhttp.Options{Policy: netguardtest.Tripwire(t, netip.MustParseAddr("127.0.0.2"))})
	defer c.Close()
	r, err := c.Do(t.Context(), post(t, target.URL+"/ch", "x"))
	if err != nil || r.Status != http.StatusOK || r.Header.Get("X-NotificationStatus") != "Received" {
		t.Errorf("Do = %+v, %v; want 200 Received from the target", r, err)
	}
	if n := reached.Load(); n != 1 {
		t.Errorf("target accepted %d connections, want 1", n)
	}
	// net/http never proxies loopback targets anyway; a name that does
	// not resolve would go to the proxy if proxies were used. Direct, it
	// fails to resolve.
	open := loopbackClient(t, pushhttp.Options{Timeout: bound})
	if r, err := open.Do(t.Context(), post(t, "http://push.invalid/ch", "x")); err == nil {
		t.Errorf("push.invalid answered: %+v", r)
	}
	if n := proxied.Load(); n != 0 {
		t.Errorf("proxy accepted %d connections, want 0", n)
	}
}

// A POST written on a kept-alive connection that then fails is not sent
// again by the client: the host may have acted on it. (The outbox's next
// attempt resends it, counted and logged.)
func TestPostOnReusedConnectionIsNotResent(t *testing.T) {
	var firsts, seconds atomic.Int64
	srv := startRaw(t, func(c *rawConn) {
		for {
			_, body, err := c.readRequest()
			if err != nil {
				return
			}
			switch string(body) {
			case "first":
				firsts.Add(1)
				if c.write(answerOK) != nil {
					return
				}
			case "second":
				seconds.Add(1)
				return // read in full, then closed without an answer
			}
		}
	})
	c := loopbackClient(t, pushhttp.Options{Timeout: bound})
	if r, err := c.Do(t.Context(), post(t, srv.URL+"/ch", "first")); err != nil || r.Status != http.StatusOK {
		t.Fatalf("first push: %+v, %v", r, err)
	}
	r, err := c.Do(t.Context(), post(t, srv.URL+"/ch", "second"))
	if err == nil {
		t.Fatalf("second push: %+v, want an error (no answer)", r)
	}
	if !errors.Is(err, tilecast.ErrSentUnanswered) {
		t.Errorf("second push: %v, want tilecast.ErrSentUnanswered: the host read it", err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("second push waited out the deadline: %v", err)
	}
	if n := srv.accepted.Load(); n != 1 {
		t.Fatalf("server accepted %d connections, want 1: the second push must have gone on the reused one", n)
	}
	if n := seconds.Load(); n != 1 {
		t.Errorf("server read the second push %d times, want exactly 1", n)
	}
	if n := firsts.Load(); n != 1 {
		t.Errorf("server read the first push %d times, want 1", n)
	}
}

// The same over HTTP/2: a POST the host read in full (END_STREAM) and then
// refused on its stream — RST_STREAM with PROTOCOL_ERROR or
// REFUSED_STREAM, or a GOAWAY whose last stream is the one before — is not
// sent again by the client. net/http's HTTP/2 transport resends such a
// request on its own when the request has a GetBody; the host would act
// on the push twice while the outbox counts one attempt. The host answers
// a resend with 200, so a client that resends reports a delivery.
func TestPostOnReusedHTTP2ConnectionIsNotResent(t *testing.T) {
	tests := []struct {
		name   string
		refuse func(h *h2Conn, stream uint32) error
	}{
		{"RST_STREAM PROTOCOL_ERROR", func(h *h2Conn, stream uint32) error {
			return h.fr.WriteRSTStream(stream, http2.ErrCodeProtocol)
		}},
		{"RST_STREAM REFUSED_STREAM", func(h *h2Conn, stream uint32) error {
			return h.fr.WriteRSTStream(stream, http2.ErrCodeRefusedStream)
		}},
		{"GOAWAY", func(h *h2Conn, stream uint32) error {
			return h.fr.WriteGoAway(stream-2, http2.ErrCodeNo, nil) // client streams are odd
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var firsts, seconds atomic.Int64
			srv, roots := startRawTLS(t, func(c *rawConn) {
				c.serveH2(func(h *h2Conn, stream uint32, body []byte) error {
					switch string(body) {
					case "first":
						firsts.Add(1)
					case "second":
						if seconds.Add(1) == 1 {
							return tt.refuse(h, stream)
						}
					}
					return h.answer(stream, http.StatusOK)
				})
			})
			c := loopbackClient(t, pushhttp.Options{RootCAs: roots, Timeout: bound})
			if r, err := c.Do(t.Context(), post(t, srv.URL+"/ch", "first")); err != nil || r.Status != http.StatusOK || r.Proto != "HTTP/2.0" {
				t.Fatalf("first push: %+v, %v; want 200 over HTTP/2.0", r, err)
			}
			r, err := c.Do(t.Context(), post(t, srv.URL+"/ch", "second"))
			if err == nil {
				t.Errorf("second push: %+v, want an error (no answer)", r)
			} else if !errors.Is(err, tilecast.ErrSentUnanswered) {
				t.Errorf("second push: %v, want tilecast.ErrSentUnanswered: the host read it", err)
			}
			if errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("second push waited out the deadline: %v", err)
			}
			if n := seconds.Load(); n != 1 {
				t.Errorf("server read the second push %d times, want exactly 1", n)
			}
			if n := firsts.Load(); n != 1 {
				t.Errorf("server read the first push %d times, want 1", n)
			}
			if n := srv.accepted.Load(); n != 1 {
				t.Errorf("server accepted %d connections, want 1: the second push goes on the reused one, and nothing follows it", n)
			}
		})
	}
}

// An HTTP/1.x answer with neither Content-Length nor chunking ends when
// the host closes the connection. A host that keeps it open must not hold
// the push: the answer is taken with what of its body arrived within a
// short grace. The hosts below keep the connection open until the test
// releases it, which it does only if a push has not returned after bound
// (5 s, against a grace of a fraction of a second); a push that comes back
// only then waited for the host, which fails the test. (The push deadline
// is an hour, so it is not what ends the wait either.)
func TestAnswerUntilCloseOnHeldConnection(t *testing.T) {
	tests := []struct{ name, answer, body string }{
		{"http/1.1 with body", "HTTP/1.1 200 OK\r\nX-NotificationStatus: Received\r\n\r\nbody until close", "body until close"},
		{"http/1.1 no body yet", "HTTP/1.1 200 OK\r\nX-NotificationStatus: Received\r\n\r\n", ""},
		{"http/1.0 with body", "HTTP/1.0 200 OK\r\nX-NotificationStatus: Received\r\n\r\nbody until close", "body until close"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			release := make(chan struct{})
			var released atomic.Bool
			dropped := make(chan bool, 4)
			srv := startRaw(t, func(c *rawConn) {
				if _, _, err := c.readRequest(); err != nil {
					return
				}
				if c.write(tt.answer) != nil {
					return
				}
				stop := make(chan struct{})
				defer close(stop)
				go func() {
					select {
					case <-release:
						released.Store(true)
						_ = c.Conn.Close()
					case <-stop:
					}
				}()
				dropped <- c.waitClientClose()
			})
			c := loopbackClient(t, pushhttp.Options{Timeout: time.Hour})
			type result struct {
				r             pushhttp.Response
				err           error
				afterReleased bool
			}
			for i := range 2 {
				done := make(chan result, 1)
				go func() {
					r, err := c.Do(t.Context(), post(t, srv.URL+"/ch", "x"))
					done <- result{r, err, released.Load()}
				}()
				var res result
				select {
				case res = <-done:
				case <-time.After(bound):
					close(release) // let the push end, to report it
					res = <-done
				}
				if res.afterReleased {
					t.Fatalf("push %d returned only when the host closed the connection: %+v, %v", i, res.r, res.err)
				}
				if res.err != nil || res.r.Status != http.StatusOK || res.r.Header.Get("X-NotificationStatus") != "Received" || string(res.r.Body) != tt.body {
					t.Fatalf("push %d: %+v (body %q), %v; want 200 Received, body %q, no error", i, res.r, res.r.Body, res.err, tt.body)
				}
				// The client let go of the connection: it cannot carry
				// another request.
				if !recv(t, dropped, "close of the connection by the client") {
					t.Fatalf("push %d: the connection was not closed by the client", i)
				}
			}
			if n := srv.accepted.Load(); n != 2 {
				t.Errorf("2 pushes used %d connections, want 2", n)
			}
		})
	}
}

// A host that answers with a body delimited by the end of the connection
// and closes it at once gives its reason: the body is read to its end (up
// to MaxBody), as a push service's error reason must be.
func TestAnswerUntilCloseReadToTheClose(t *testing.T) {
	const reason = `{"code":400,"errno":999,"error":"Bad Request","message":"reason until close"}`
	long := strings.Repeat("r", pushhttp.MaxBody+100)
	tests := []struct {
		name, answer string
		status       int
		body         string
	}{
		{"http/1.1", "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n\r\n" + reason, 400, reason},
		{"http/1.0", "HTTP/1.0 410 Gone\r\n\r\n" + reason, 410, reason},
		{"over the cap", "HTTP/1.1 400 Bad Request\r\n\r\n" + long, 400, long[:pushhttp.MaxBody]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startRaw(t, func(c *rawConn) {
				if _, _, err := c.readRequest(); err != nil {
					return
				}
				_ = c.write(tt.answer) // then closed
			})
			c := loopbackClient(t, pushhttp.Options{Timeout: bound})
			for i := range 2 {
				r, err := c.Do(t.Context(), post(t, srv.URL+"/ch", "x"))
				if err != nil || r.Status != tt.status || string(r.Body) != tt.body {
					t.Fatalf("push %d: status %d, body %q, %v; want %d and %q", i, r.Status, r.Body, err, tt.status, tt.body)
				}
			}
			if n := srv.accepted.Load(); n != 2 {
				t.Errorf("2 pushes used %d connections, want 2", n)
			}
		})
	}
}

// What a host sends on an idle kept-alive connection (an unsolicited 408
// before it times the connection out, a stray answer, the end of the
// connection) is not the next request's answer: the client drops the
// connection and the next push gets its own answer on a new one.
func TestIdleConnectionEventsAreNotAnswers(t *testing.T) {
	const answerNext = "HTTP/1.1 200 OK\r\nX-NotificationStatus: Suppressed\r\nContent-Length: 0\r\n\r\n"
	tests := []struct {
		name  string
		event func(c *rawConn) error
	}{
		{"unsolicited 408", func(c *rawConn) error {
			return c.write("HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n")
		}},
		{"unsolicited 400", func(c *rawConn) error {
			return c.write("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
		}},
		{"close between requests", func(c *rawConn) error {
			return c.Conn.(*net.TCPConn).CloseWrite() // FIN; the read side stays to see the client's close
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			idle := make(chan struct{})
			dropped := make(chan bool, 1)
			var nexts atomic.Int64
			srv := startRaw(t, func(c *rawConn) {
				for {
					_, body, err := c.readRequest()
					if err != nil {
						return
					}
					if string(body) != "first" {
						nexts.Add(1)
						if c.write(answerNext) != nil {
							return
						}
						continue
					}
					if c.write(answerOK) != nil {
						return
					}
					select {
					case <-idle:
					case <-c.srv.done:
						return
					}
					if tt.event(c) != nil {
						return
					}
					dropped <- c.waitClientClose()
					return
				}
			})
			c := loopbackClient(t, pushhttp.Options{Timeout: bound})
			if r, err := c.Do(t.Context(), post(t, srv.URL+"/ch", "first")); err != nil || r.Header.Get("X-NotificationStatus") != "Received" {
				t.Fatalf("first push: %+v, %v", r, err)
			}
			close(idle)
			if !recv(t, dropped, "close of the idle connection by the client") {
				t.Fatal("the client kept the connection after the host's event")
			}
			r, err := c.Do(t.Context(), post(t, srv.URL+"/ch", "next"))
			if err != nil || r.Status != http.StatusOK || r.Header.Get("X-NotificationStatus") != "Suppressed" {
				t.Fatalf("next push: %+v, %v; want its own answer (200 Suppressed)", r, err)
			}
			if n := srv.accepted.Load(); n != 2 {
				t.Errorf("server accepted %d connections, want 2", n)
			}
			if n := nexts.Load(); n != 1 {
				t.Errorf("server read the next push %d times, want 1", n)
			}
		})
	}
}

func TestRedirectNotFollowed(t *testing.T) {
	for _, status := range []int{301, 302, 303, 307, 308} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			var followed atomic.Int64
			srv, _ := httpServer(t, func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/elsewhere" {
					followed.Add(1)
					received(w, r)
					return
				}
				http.Redirect(w, r, "/elsewhere", status)
			}, false)
			c := loopbackClient(t, pushhttp.Options{Timeout: bound})
			r, err := c.Do(t.Context(), post(t, srv.URL+"/ch", "x"))
			if err != nil || r.Status != status || r.Header.Get("Location") != "/elsewhere" {
				t.Errorf("Do = %+v, %v; want the %d itself", r, err, status)
			}
			if n := followed.Load(); n != 0 {
				t.Errorf("redirect followed %d times", n)
			}
		})
	}
}

// TestGuard runs the N1 matrix (reliability.md §2.6): every address is
// refused at dial time with a *netguard.ProhibitedError, and the loopback
// listener accepts nothing; the allowed side reaches its host.
func TestGuard(t *testing.T) {
	srv, accepted := netguardtest.CountingServer(t, "127.0.0.1:0", http.HandlerFunc(received))
	port := strconv.Itoa(srv.Listener.Addr().(*net.TCPAddr).Port)
	c := pushhttp.New(pushhttp.Options{Policy: netguardtest.Tripwire(t), Timeout: bound})
	defer c.Close()
	for _, tt := range netguardtest.N1() {
		t.Run(tt.Host, func(t *testing.T) {
			r, err := c.Do(t.Context(), post(t, "http://"+tt.Host+":"+port+"/ch", "x"))
			var pe *netguard.ProhibitedError
			if !errors.As(err, &pe) {
				t.Fatalf("Do = %+v, %v; want a *netguard.ProhibitedError", r, err)
			}
			if !slices.Contains(tt.Addrs, pe.Addr.String()) {
				t.Errorf("ProhibitedError.Addr = %s, want one of %v", pe.Addr, tt.Addrs)
			}
		})
	}
	// The default options (no Policy) refuse loopback too.
	def := pushhttp.New(pushhttp.Options{Timeout: bound})
	defer def.Close()
	var pe *netguard.ProhibitedError
	if _, err := def.Do(t.Context(), post(t, srv.URL+"/ch", "x")); !errors.As(err, &pe) {
		t.Errorf("default client: %v, want a *netguard.ProhibitedError", err)
	}
	if n := accepted.Load(); n != 0 {
		t.Errorf("loopback server accepted %d connections, want 0", n)
	}
	// AllowPrivate reaches it.
	open := loopbackClient(t, pushhttp.Options{Timeout: bound})
	if r, err := open.Do(t.Context(), post(t, srv.URL+"/ch", "x")); err != nil || r.Status != http.StatusOK {
		t.Errorf("AllowPrivate: %+v, %v", r, err)
	}
	// A policy that admits 127.0.0.2 reaches a host there.
	pub, pubAccepted := netguardtest.CountingServer(t, "127.0.0.2:0", http.HandlerFunc(received))
	allow := pushhttp.New(pushhttp.Options{Policy: netguardtest.Tripwire(t, netip.MustParseAddr("127.0.0.2")), Timeout: bound})
	defer allow.Close()
	if r, err := allow.Do(t.Context(), post(t, pub.URL+"/ch", "x")); err != nil || r.Status != http.StatusOK {
		t.Errorf("allowed address: %+v, %v", r, err)
	}
	if n := pubAccepted.Load(); n != 1 {
		t.Errorf("allowed server accepted %d connections, want 1", n)
	}
}

// https negotiates HTTP/2 (WNS and Web Push services speak it), and its
// streams share one connection.
func TestHTTP2OverTLS(t *testing.T) {
	var protos sync.Map
	srv, st := httpServer(t, func(w http.ResponseWriter, r *http.Request) {
		protos.Store(r.Proto, true)
		received(w, r)
	}, true)
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	c := loopbackClient(t, pushhttp.Options{RootCAs: roots, Timeout: bound})
	for i := range 5 {
		r, err := c.Do(t.Context(), post(t, srv.URL+"/ch", "x"))
		if err != nil || r.Status != http.StatusOK || r.Proto != "HTTP/2.0" {
			t.Fatalf("push %d: %+v, %v; want 200 over HTTP/2.0", i, r, err)
		}
	}
	if _, ok := protos.Load("HTTP/2.0"); !ok {
		t.Error("server saw no HTTP/2.0 request")
	}
	if _, ok := protos.Load("HTTP/1.1"); ok {
		t.Error("server saw HTTP/1.1 requests")
	}
	if n := st.opened.Load(); n != 1 {
		t.Errorf("5 pushes used %d connections, want 1", n)
	}
	// A host whose certificate is not trusted is refused.
	strict := loopbackClient(t, pushhttp.Options{Timeout: bound})
	if r, err := strict.Do(t.Context(), post(t, srv.URL+"/ch", "x")); err == nil {
		t.Errorf("untrusted certificate accepted: %+v", r)
	}
}

// selfSigned returns a certificate (for client authentication) and a pool
// that trusts it.
func selfSigned(t *testing.T, cn string) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		IsCA:        true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, pool
}

func TestClientCertificate(t *testing.T) {
	cert, pool := selfSigned(t, "tilecast-service")
	var seen atomic.Value
	h := func(w http.ResponseWriter, r *http.Request) {
		cn := "-"
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			cn = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		seen.Store(cn)
		received(w, r)
	}
	plain, _ := httpServer(t, h, false)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(h))
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())

	c := loopbackClient(t, pushhttp.Options{ClientCert: &cert, RootCAs: roots, Timeout: bound})
	if r, err := c.Do(t.Context(), post(t, srv.URL+"/ch", "x")); err != nil || r.Status != http.StatusOK {
		t.Fatalf("with certificate: %+v, %v", r, err)
	}
	if cn, _ := seen.Load().(string); cn != "tilecast-service" {
		t.Errorf("server saw client certificate %q", cn)
	}
	// Over plain http there is no TLS and nothing to present.
	if r, err := c.Do(t.Context(), post(t, plain.URL+"/ch", "x")); err != nil || r.Status != http.StatusOK {
		t.Fatalf("plain http: %+v, %v", r, err)
	}
	if cn, _ := seen.Load().(string); cn != "-" {
		t.Errorf("plain http request carried certificate %q", cn)
	}
	// Without the certificate the handshake fails.
	bare := loopbackClient(t, pushhttp.Options{RootCAs: roots, Timeout: bound})
	if r, err := bare.Do(t.Context(), post(t, srv.URL+"/ch", "x")); err == nil {
		t.Errorf("without certificate: %+v, want an error", r)
	}
}

func TestTimeoutAndCancel(t *testing.T) {
	got := make(chan struct{}, 4)
	srv := startRaw(t, func(c *rawConn) {
		if _, _, err := c.readRequest(); err != nil {
			return
		}
		got <- struct{}{}
		c.hold()
	})
	t.Run("timeout", func(t *testing.T) {
		c := loopbackClient(t, pushhttp.Options{Timeout: 100 * time.Millisecond})
		r, err := c.Do(t.Context(), post(t, srv.URL+"/ch", "x"))
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Do = %+v, %v; want context.DeadlineExceeded", r, err)
		}
		recv(t, got, "request at the server")
	})
	t.Run("cancel", func(t *testing.T) {
		c := loopbackClient(t, pushhttp.Options{Timeout: 20 * time.Second})
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go func() {
			select {
			case <-got:
				cancel()
			case <-ctx.Done():
			}
		}()
		r, err := c.Do(ctx, post(t, srv.URL+"/ch", "x"))
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Do = %+v, %v; want context.Canceled", r, err)
		}
		if ctx.Err() == nil {
			t.Error("Do returned before the request reached the server")
		}
	})
	t.Run("cancelled before", func(t *testing.T) {
		c := loopbackClient(t, pushhttp.Options{Timeout: bound})
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := c.Do(ctx, post(t, srv.URL+"/ch", "x")); !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
	})
}

// The body is read up to MaxBody: one that ends within it is drained and
// its connection reused, a longer one is cut and its connection dropped.
func TestBodyCap(t *testing.T) {
	full := strings.Repeat("b", pushhttp.MaxBody+100)
	chunked := func(s string) string {
		return fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(s), s)
	}
	head := "HTTP/1.1 200 OK\r\nX-NotificationStatus: Received\r\n"
	tests := []struct {
		name   string
		answer string
		body   string // what Do returns
		conns  int64  // for 3 pushes
	}{
		{"length within", head + "Content-Length: 11\r\n\r\nhello world", "hello world", 1},
		{"length at the cap", head + "Content-Length: " + strconv.Itoa(pushhttp.MaxBody) + "\r\n\r\n" + full[:pushhttp.MaxBody], full[:pushhttp.MaxBody], 1},
		{"length over the cap", head + "Content-Length: " + strconv.Itoa(len(full)) + "\r\n\r\n" + full, full[:pushhttp.MaxBody], 3},
		{"chunked within", head + "Transfer-Encoding: chunked\r\n\r\n" + chunked("hello"), "hello", 1},
		{"chunked over the cap", head + "Transfer-Encoding: chunked\r\n\r\n" + chunked(full), full[:pushhttp.MaxBody], 3},
		{"megabyte", head + "Content-Length: " + strconv.Itoa(1<<20) + "\r\n\r\n" + strings.Repeat("m", 1<<20), strings.Repeat("m", pushhttp.MaxBody), 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startRaw(t, serveAll(tt.answer, false))
			c := loopbackClient(t, pushhttp.Options{Timeout: bound})
			for i := range 3 {
				r, err := c.Do(t.Context(), post(t, srv.URL+"/ch", "x"))
				if err != nil || r.Status != http.StatusOK || string(r.Body) != tt.body {
					t.Fatalf("push %d: status %d, %d body bytes, %v; want 200 and %d bytes", i, r.Status, len(r.Body), err, len(tt.body))
				}
			}
			if n := srv.accepted.Load(); n != tt.conns {
				t.Errorf("3 pushes used %d connections, want %d", n, tt.conns)
			}
		})
	}
}

// The framings a host may use, each followed by more pushes on the same
// client, so that a misread answer would show in the next one.
func TestAnswerFraming(t *testing.T) {
	const rcv = "X-NotificationStatus: Received\r\n"
	tests := []struct {
		name, answer string
		status       int
		notification string
	}{
		{"content-length", "HTTP/1.1 200 OK\r\n" + rcv + "Content-Length: 12\r\n\r\nignored body", 200, "Received"},
		{"chunked with extension and trailer", "HTTP/1.1 200 OK\r\n" + rcv + "Transfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n", 200, "Received"},
		{"100 and 103 first", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\nHTTP/1.1 200 OK\r\n" + rcv + "Content-Length: 0\r\n\r\n", 200, "Received"},
		{"lower-case names", "HTTP/1.1 200 OK\r\nx-notificationstatus: Suppressed\r\ncontent-length: 2\r\n\r\nok", 200, "Suppressed"},
		{"204", "HTTP/1.1 204 No Content\r\n\r\n", 204, ""},
		{"404 with body", "HTTP/1.1 404 Not Found\r\nX-NotificationStatus: Dropped\r\nContent-Length: 9\r\n\r\nnot found", 404, "Dropped"},
		{"http/1.0 keep-alive", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n" + rcv + "Content-Length: 0\r\n\r\n", 200, "Received"},
		{"connection close", "HTTP/1.1 200 OK\r\nConnection: close\r\n" + rcv + "Content-Length: 0\r\n\r\n", 200, "Received"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var reqs atomic.Int64
			srv := startRaw(t, func(c *rawConn) {
				for {
					if _, _, err := c.readRequest(); err != nil {
						return
					}
					reqs.Add(1)
					if c.write(tt.answer) != nil {
						return
					}
				}
			})
			c := loopbackClient(t, pushhttp.Options{Timeout: bound})
			for i := range 3 {
				r, err := c.Do(t.Context(), post(t, srv.URL+"/ch", "x"))
				if err != nil || r.Status != tt.status || r.Header.Get("X-NotificationStatus") != tt.notification {
					t.Fatalf("push %d: %+v, %v; want %d %q", i, r, err, tt.status, tt.notification)
				}
			}
			if n := reqs.Load(); n != 3 {
				t.Errorf("server read %d requests, want 3", n)
			}
		})
	}
}

// Answers no HTTP host should give end in an error, recognised rather than
// waited out, and do not spoil the client for other hosts.
func TestHostileAnswers(t *testing.T) {
	good, _ := httpServer(t, received, false)
	var bigHeaders strings.Builder
	bigHeaders.WriteString("HTTP/1.1 200 OK\r\n")
	for i := 0; bigHeaders.Len() <= 80<<10; i++ {
		fmt.Fprintf(&bigHeaders, "X-Pad-%d: %s\r\n", i, strings.Repeat("a", 1000))
	}
	bigHeaders.WriteString("Content-Length: 0\r\n\r\n")
	tests := []struct{ name, answer string }{
		{"not http", "garbage\r\n\r\n"},
		{"header block over 64 KiB", bigHeaders.String()},
		{"bad status code", "HTTP/1.1 abc OK\r\nContent-Length: 0\r\n\r\n"},
		{"status 000", "HTTP/1.1 000 Zero\r\nContent-Length: 0\r\n\r\n"},
		{"bad protocol version", "HTTP/9.Z 200 OK\r\nContent-Length: 0\r\n\r\n"},
		{"negative content-length", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"},
		{"conflicting content-lengths", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"},
		{"truncated header block then close", "HTTP/1.1 200 OK\r\nX-Notif"},
		{"closed before any byte", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startRaw(t, func(c *rawConn) {
				if _, _, err := c.readRequest(); err != nil {
					return
				}
				if tt.answer == "" || strings.HasSuffix(tt.answer, "X-Notif") {
					_ = c.write(tt.answer)
					return // close
				}
				if c.write(tt.answer) == nil {
					c.hold()
				}
			})
			c := loopbackClient(t, pushhttp.Options{Timeout: bound})
			r, err := c.Do(t.Context(), post(t, srv.URL+"/ch", "x"))
			if err == nil {
				t.Fatalf("Do = %+v, want an error", r)
			}
			if errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("err = %v: the answer was waited out, not recognised", err)
			}
			if r, err := c.Do(t.Context(), post(t, good.URL+"/ch", "x")); err != nil || r.Status != http.StatusOK {
				t.Errorf("push to a good host afterwards: %+v, %v", r, err)
			}
		})
	}
}

// Sequential pushes share one kept-alive connection; parallel ones stay
// within the pool's size.
func TestKeepAlive(t *testing.T) {
	srv, st := httpServer(t, received, false)
	c := loopbackClient(t, pushhttp.Options{Concurrency: 4, Timeout: bound})
	for i := range 20 {
		if r, err := c.Do(t.Context(), post(t, srv.URL+"/ch", "x")); err != nil || r.Status != http.StatusOK {
			t.Fatalf("push %d: %+v, %v", i, r, err)
		}
	}
	if n := st.opened.Load(); n != 1 {
		t.Errorf("20 sequential pushes used %d connections, want 1", n)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 25 {
				if r, err := c.Do(t.Context(), post(t, srv.URL+"/ch", "x")); err != nil || r.Status != http.StatusOK {
					t.Errorf("goroutine %d push %d: %+v, %v", g, i, r, err)
					return
				}
			}
		})
	}
	wg.Wait()
	// A push may dial while another connection is on its way back to the
	// pool, so more than 4 may have been opened; at most Concurrency +
	// 1/4 stay open between pushes.
	waitFor(t, "at most 5 idle connections", func() bool { return st.opened.Load()-st.closed.Load() <= 5 })
	c.Close()
	waitFor(t, "Close to end the idle connections", func() bool { return st.closed.Load() == st.opened.Load() })
}

// The pool keeps a connection for every worker: Concurrency pushes in
// flight to one host at once, round after round, reuse the connections of
// the first round. A pool smaller than Concurrency would close the
// surplus after each round and dial it again in the next. The host holds
// each round's answers until all of its pushes have arrived, so every
// round has exactly Concurrency connections busy at once (HTTP/1.1: one
// push per connection), whatever the scheduling.
func TestIdlePoolHoldsConcurrency(t *testing.T) {
	const (
		n      = 8
		rounds = 20
		// net/http gives up on reusing a connection whose writer has not
		// reported within 50 ms of the answer (maxWriteWaitBeforeConnReuse),
		// possible on a loaded machine; each such miss costs one dial. A
		// pool of n-1 would cost rounds-1 dials, far over this.
		slack = n / 2
	)
	arrived := make(chan struct{})
	release := make(chan struct{})
	srv, st := httpServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case arrived <- struct{}{}:
		case <-t.Context().Done():
			return
		}
		select {
		case <-release:
		case <-t.Context().Done():
			return
		}
		received(w, r)
	}, false)
	c := loopbackClient(t, pushhttp.Options{Concurrency: n, Timeout: bound})
	var wg sync.WaitGroup
	defer wg.Wait() // no t.Errorf after the test ends, should a round stall
	for round := range rounds {
		for i := range n {
			wg.Go(func() {
				if r, err := c.Do(t.Context(), post(t, srv.URL+"/ch", "x")); err != nil || r.Status != http.StatusOK {
					t.Errorf("round %d push %d: %+v, %v", round, i, r, err)
				}
			})
		}
		for range n {
			recv(t, arrived, fmt.Sprintf("push of round %d at the host", round))
		}
		for range n {
			release <- struct{}{}
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
	}
	if got := st.opened.Load(); got < n || got > n+slack {
		t.Errorf("%d rounds of %d parallel pushes opened %d connections, want %d (at most %d)", rounds, n, got, n, n+slack)
	}
}

// waitFor polls cond until it holds, failing the test after bound.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting after %s: %s", bound, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestNewPost(t *testing.T) {
	good := []string{
		"http://db3.notify.live.net/throttledthirdparty/01.00/AAF9",
		"https://db3.notify.live.net/unthrottledthirdparty/01.00/AAF9?x=1",
		"HTTP://127.0.0.1:8080/a%2Fb",
		"http://[::1]:80/x",
	}
	for _, u := range good {
		req, err := pushhttp.NewPost(u, []byte("body"))
		if err != nil {
			t.Errorf("%s: %v", u, err)
			continue
		}
		if req.Method != http.MethodPost || req.ContentLength != 4 || req.GetBody == nil {
			t.Errorf("%s: %s, length %d", u, req.Method, req.ContentLength)
		}
	}
	bad := []string{"", "ftp://host/x", "/relative", "http://", "http:///path", "http://host/\x7f\n", "mailto:a@b", "http://[::1/x"}
	for _, u := range bad {
		if _, err := pushhttp.NewPost(u, nil); err == nil {
			t.Errorf("%q accepted", u)
		}
	}
}

// Dump shows exactly what Do writes on an HTTP/1.1 connection: the wire
// bytes a host reads are compared with the dump, byte for byte.
func TestDumpIsTheWire(t *testing.T) {
	wire := make(chan []byte, 2)
	srv := startRaw(t, func(c *rawConn) {
		var rec bytes.Buffer
		br := bufio.NewReader(io.TeeReader(c.Conn, &rec))
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			if _, err := io.Copy(io.Discard, req.Body); err != nil {
				return
			}
			wire <- bytes.Clone(rec.Bytes()[:rec.Len()-br.Buffered()])
			rec.Reset()
			if c.write(answerOK) != nil {
				return
			}
		}
	})
	build := func(withUA bool) *http.Request {
		req := post(t, srv.URL+"/throttledthirdparty/01.00/A%2Fb?q=1", "<wp:Notification>Ünï & co</wp:Notification>")
		req.Header["Content-Type"] = []string{"text/xml"}
		req.Header["X-WindowsPhone-Target"] = []string{"toast"} // not canonical: kept as written
		if withUA {
			req.Header["User-Agent"] = []string{"tilecast-test/1.0"}
		}
		return req
	}
	c := loopbackClient(t, pushhttp.Options{UserAgent: "client-default/2", Timeout: bound})
	for _, withUA := range []bool{true, false} {
		req := build(withUA)
		var dump bytes.Buffer
		if err := pushhttp.Dump(&dump, req, c.UserAgent()); err != nil {
			t.Fatal(err)
		}
		// The dump leaves the request sendable.
		if r, err := c.Do(t.Context(), req); err != nil || r.Status != http.StatusOK {
			t.Fatalf("Do after Dump: %+v, %v", r, err)
		}
		got := recv(t, wire, "request at the server")
		if !bytes.Equal(got, dump.Bytes()) {
			t.Errorf("user agent %v: the wire differs from the dump\nwire %q\ndump %q", withUA, got, dump.Bytes())
		}
		s := dump.String()
		for _, want := range []string{
			"POST /throttledthirdparty/01.00/A%2Fb?q=1 HTTP/1.1\r\n",
			"Host: " + strings.TrimPrefix(srv.URL, "http://") + "\r\n",
			"X-WindowsPhone-Target: toast\r\n",
			"Content-Length: 45\r\n",
			"\r\n\r\n<wp:Notification>Ünï & co</wp:Notification>",
		} {
			if !strings.Contains(s, want) {
				t.Errorf("dump lacks %q:\n%s", want, s)
			}
		}
		ua := "User-Agent: client-default/2\r\n"
		if withUA {
			ua = "User-Agent: tilecast-test/1.0\r\n"
		}
		if !strings.Contains(s, ua) || strings.Count(s, "User-Agent") != 1 {
			t.Errorf("dump has not exactly %q:\n%s", ua, s)
		}
		if strings.Contains(s, "Accept-Encoding") {
			t.Errorf("request asks for compression:\n%s", s)
		}
	}
}

// FuzzAnswer feeds arbitrary bytes to the client as a host's answer (the
// host then closes the connection): Do must not panic or hang, and an
// answer it accepts has a plausible status and a capped body.
func FuzzAnswer(f *testing.F) {
	f.Add([]byte(answerOK))
	f.Add([]byte("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 503 Service Unavailable\r\nRetry-After: 30\r\nContent-Length: 0\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 404 Not Found\r\nX-SubscriptionStatus: Expired\r\n\r\n"))
	f.Add([]byte("HTTP/1.0 200 OK\r\n\r\nuntil close"))
	f.Add([]byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n"))
	f.Add([]byte("garbage\r\n\r\n"))
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
				_ = nc.SetDeadline(time.Now().Add(bound))
				req, err := http.ReadRequest(bufio.NewReader(nc))
				if err != nil {
					return
				}
				_, _ = io.Copy(io.Discard, req.Body)
				select {
				case a := <-answers:
					_, _ = nc.Write(a)
				case <-time.After(bound):
				}
			}()
		}
	}()
	uri := "http://" + ln.Addr().String() + "/ch"
	f.Fuzz(func(t *testing.T, answer []byte) {
		c := pushhttp.New(pushhttp.Options{AllowPrivate: true, Timeout: bound})
		defer c.Close()
		type result struct {
			r   pushhttp.Response
			err error
		}
		done := make(chan result, 1)
		go func() {
			r, err := c.Do(t.Context(), post(t, uri, "x"))
			done <- result{r, err}
		}()
		var res result
		select {
		case answers <- answer:
			res = <-done
		case res = <-done: // failed before the host asked for an answer
		}
		if res.err != nil {
			return
		}
		if res.r.Status < 100 || res.r.Status > 999 {
			t.Errorf("status %d accepted", res.r.Status)
		}
		if len(res.r.Body) > pushhttp.MaxBody {
			t.Errorf("body of %d bytes, cap %d", len(res.r.Body), pushhttp.MaxBody)
		}
	})
}

// A push that got no answer carries tilecast.ErrSentUnanswered exactly
// when its request had been written in full: the host may have acted on
// it (the deliverer counts the retry as a possible duplicate, and the
// send toward the daily cap). A request that never left — a refused
// connection, the guard, a context ended before — does not.
func TestSentUnanswered(t *testing.T) {
	closeAfterRead := startRaw(t, func(c *rawConn) { _, _, _ = c.readRequest() }) // read, then closed: no answer
	holdAfterRead := startRaw(t, func(c *rawConn) {
		if _, _, err := c.readRequest(); err == nil {
			c.hold()
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there now
	open := loopbackClient(t, pushhttp.Options{Timeout: bound})
	short := loopbackClient(t, pushhttp.Options{Timeout: 200 * time.Millisecond})
	guarded := pushhttp.New(pushhttp.Options{Timeout: bound}) // the guard refuses loopback
	defer guarded.Close()
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	tests := []struct {
		name string
		c    *pushhttp.Client
		ctx  context.Context
		uri  string
		sent bool
	}{
		{"closed after reading the request", open, t.Context(), closeAfterRead.URL, true},
		{"no answer within the deadline", short, t.Context(), holdAfterRead.URL, true},
		{"connection refused", open, t.Context(), refused, false},
		{"refused by the guard", guarded, t.Context(), closeAfterRead.URL, false},
		{"context ended before", open, cancelled, closeAfterRead.URL, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := tt.c.Do(tt.ctx, post(t, tt.uri+"/ch", "x"))
			if err == nil {
				t.Fatalf("Do = %+v, want an error (no answer)", r)
			}
			if got := errors.Is(err, tilecast.ErrSentUnanswered); got != tt.sent {
				t.Errorf("errors.Is(%v, ErrSentUnanswered) = %v, want %v", err, got, tt.sent)
			}
		})
	}
}
