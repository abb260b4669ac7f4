package mpns_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/internal/netguardtest"
	"github.com/tilecast/tilecast/netguard"
	"github.com/tilecast/tilecast/notify"
	"github.com/tilecast/tilecast/notify/mpns"
)

func toast(t *testing.T) *tilecast.Notification {
	t.Helper()
	payload, err := (&mpns.Encoder{}).EncodeToast(notify.Toast{Text1: "Hello", Text2: "World"})
	if err != nil {
		t.Fatal(err)
	}
	return &tilecast.Notification{Kind: tilecast.KindToast, Payload: payload}
}

// push sends n to uri with c, as the deliverer does.
func push(ctx context.Context, c *mpns.Client, uri string, n *tilecast.Notification) tilecast.Result {
	return c.Push(ctx, &tilecast.Channel{URI: uri}, n, 0)
}

func TestClientPush(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		headers map[string]string
		verdict tilecast.Verdict
		wait    time.Duration
	}{
		{"received", 200, map[string]string{"X-NotificationStatus": "Received", "X-SubscriptionStatus": "Active", "X-DeviceConnectionStatus": "Connected"}, tilecast.VerdictDelivered, 0},
		{"queue full", 200, map[string]string{"X-NotificationStatus": "QueueFull", "X-SubscriptionStatus": "Active", "X-DeviceConnectionStatus": "TempDisconnected"}, tilecast.VerdictRetry, 0},
		{"suppressed", 200, map[string]string{"X-NotificationStatus": "Suppressed", "X-SubscriptionStatus": "Active", "X-DeviceConnectionStatus": "Connected"}, tilecast.VerdictSuppressed, 0},
		{"expired", 404, map[string]string{"X-NotificationStatus": "Dropped", "X-SubscriptionStatus": "Expired", "X-DeviceConnectionStatus": "Disconnected"}, tilecast.VerdictGone, 0},
		{"daily cap", 406, map[string]string{"X-NotificationStatus": "Dropped", "X-SubscriptionStatus": "Active", "X-DeviceConnectionStatus": "Connected"}, tilecast.VerdictWait, mpns.ThrottleWait},
		{"inactive", 412, map[string]string{"X-NotificationStatus": "Dropped", "X-DeviceConnectionStatus": "Inactive"}, tilecast.VerdictWait, mpns.ThrottleWait},
		{"unavailable", 503, map[string]string{"Retry-After": "300"}, tilecast.VerdictRetry, 5 * time.Minute},
		{"internal error", 500, nil, tilecast.VerdictRetry, 0},
		{"bad request", 400, nil, tilecast.VerdictFailed, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := toast(t)
			var got *http.Request
			var gotBody []byte
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got = r
				gotBody, _ = io.ReadAll(r.Body)
				for k, v := range tt.headers {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tt.status)
				io.WriteString(w, "ignored body")
			}))
			defer srv.Close()
			c, err := mpns.NewClient(mpns.ClientOptions{AllowPrivate: true, UserAgent: "tilecast-test", Class: mpns.Class900s, Now: func() time.Time { return now }})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			r := push(t.Context(), c, srv.URL+"/throttledthirdparty/01.00/abc", n)
			if r.Verdict != tt.verdict || r.Wait != tt.wait || r.Status != tt.status {
				t.Errorf("result = %+v, want verdict %v wait %v", r, tt.verdict, tt.wait)
			}
			if r.Notification != tt.headers["X-NotificationStatus"] || r.Subscription != tt.headers["X-SubscriptionStatus"] || r.Device != tt.headers["X-DeviceConnectionStatus"] {
				t.Errorf("status headers = %q %q %q", r.Notification, r.Subscription, r.Device)
			}
			if got == nil {
				t.Fatal("server saw no request")
			}
			if got.Method != http.MethodPost || got.URL.Path != "/throttledthirdparty/01.00/abc" {
				t.Errorf("request %s %s", got.Method, got.URL)
			}
			if string(gotBody) != string(n.Payload) || got.ContentLength != int64(len(n.Payload)) {
				t.Errorf("body %q (length %d)", gotBody, got.ContentLength)
			}
			for k, v := range map[string]string{"Content-Type": "text/xml", "Accept": "application/*",
				"X-NotificationClass": "22", "X-WindowsPhone-Target": "toast", "User-Agent": "tilecast-test"} {
				if g := got.Header.Get(k); g != v {
					t.Errorf("header %s = %q, want %q", k, g, v)
				}
			}
		})
	}
}

func TestClientTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	c, err := mpns.NewClient(mpns.ClientOptions{AllowPrivate: true, Timeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	r := push(t.Context(), c, srv.URL, toast(t))
	if r.Verdict != tilecast.VerdictRetry || !errors.Is(r.Err, context.DeadlineExceeded) {
		t.Errorf("result = %+v, want retry with a deadline error", r)
	}
}

func TestClientContextCanceled(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	c, err := mpns.NewClient(mpns.ClientOptions{AllowPrivate: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	r := push(ctx, c, srv.URL, toast(t))
	if r.Verdict != tilecast.VerdictRetry || !errors.Is(r.Err, context.Canceled) {
		t.Errorf("result = %+v, want retry with context.Canceled", r)
	}
}

func TestClientNetworkError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	url := srv.URL
	srv.Close() // nothing listens any more
	c, err := mpns.NewClient(mpns.ClientOptions{AllowPrivate: true})
	if err != nil {
		t.Fatal(err)
	}
	if r := push(t.Context(), c, url, toast(t)); r.Verdict != tilecast.VerdictRetry || r.Err == nil || r.Status != 0 {
		t.Errorf("result = %+v, want retry with an error", r)
	}
	if r := push(t.Context(), c, "ftp://127.0.0.1/x", toast(t)); r.Verdict != tilecast.VerdictFailed {
		t.Errorf("ftp uri: %+v, want failed", r)
	}
	// A kind MPNS has no form for is never sent.
	if r := push(t.Context(), c, url, &tilecast.Notification{Kind: "badge", Payload: []byte("x")}); r.Verdict != tilecast.VerdictFailed || r.Err == nil {
		t.Errorf("badge: %+v, want failed", r)
	}
}

func TestClientRedirectNotFollowed(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/elsewhere" {
			t.Error("redirect followed")
		}
		http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	c, err := mpns.NewClient(mpns.ClientOptions{AllowPrivate: true})
	if err != nil {
		t.Fatal(err)
	}
	if r := push(t.Context(), c, srv.URL, toast(t)); r.Verdict != tilecast.VerdictFailed || r.Status != 307 ||
		r.Err == nil || !strings.Contains(r.Err.Error(), "/elsewhere") {
		t.Errorf("result = %+v, want failed with the 307 and its target", r)
	}
}

// writeCert writes a self-signed certificate and key (PEM) for 127.0.0.1.
func writeCert(t *testing.T, dir, name string) (certFile, keyFile string, cert *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ = x509.ParseCertificate(der)
	return certFile, keyFile, cert
}

func TestClientTLSClientCertificate(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, clientCert := writeCert(t, dir, "tilecast-service")
	var seen string
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TLS.PeerCertificates) > 0 {
			seen = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		w.Header().Set("X-NotificationStatus", "Received")
	}))
	pool := x509.NewCertPool()
	pool.AddCert(clientCert)
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	srv.StartTLS()
	defer srv.Close()
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())

	c, err := mpns.NewClient(mpns.ClientOptions{AllowPrivate: true, ClientCertFile: certFile, ClientKeyFile: keyFile, RootCAs: roots})
	if err != nil {
		t.Fatal(err)
	}
	if r := push(t.Context(), c, srv.URL, toast(t)); r.Verdict != tilecast.VerdictDelivered {
		t.Fatalf("result = %+v", r)
	}
	if seen != "tilecast-service" {
		t.Errorf("server saw client certificate %q", seen)
	}

	// Without the certificate the handshake fails: a retryable network error.
	c2, err := mpns.NewClient(mpns.ClientOptions{AllowPrivate: true, RootCAs: roots})
	if err != nil {
		t.Fatal(err)
	}
	if r := push(t.Context(), c2, srv.URL, toast(t)); r.Verdict != tilecast.VerdictRetry || r.Err == nil {
		t.Errorf("without cert: %+v", r)
	}
}

func TestNewClientOptions(t *testing.T) {
	if _, err := mpns.NewClient(mpns.ClientOptions{ClientCertFile: "a.crt"}); err == nil {
		t.Error("certificate without key accepted")
	}
	if _, err := mpns.NewClient(mpns.ClientOptions{ClientCertFile: "missing.crt", ClientKeyFile: "missing.key"}); err == nil {
		t.Error("missing certificate files accepted")
	}
	if _, err := mpns.NewClient(mpns.ClientOptions{Class: mpns.Class450s, RootCAs: x509.NewCertPool()}); err != nil {
		t.Error(err)
	}
}

// TestClientRefusesN1 runs the N1 matrix (reliability.md §2.6) through the
// push client: every address is refused at dial time with a typed error and
// a permanent failure, and the loopback listener accepts nothing.
func TestClientRefusesN1(t *testing.T) {
	srv, accepted := netguardtest.CountingServer(t, "127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-NotificationStatus", "Received")
	}))
	port := strconv.Itoa(srv.Listener.Addr().(*net.TCPAddr).Port)
	c, err := mpns.NewClient(mpns.ClientOptions{Policy: netguardtest.Tripwire(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tests := netguardtest.N1()
	for _, tt := range tests {
		t.Run(tt.Host, func(t *testing.T) {
			r := push(t.Context(), c, "http://"+tt.Host+":"+port+"/throttledthirdparty/01.00/x", toast(t))
			var pe *netguard.ProhibitedError
			if r.Verdict != tilecast.VerdictFailed || !errors.As(r.Err, &pe) {
				t.Fatalf("result = %+v, want failed with a *netguard.ProhibitedError", r)
			}
			if !slices.Contains(tt.Addrs, pe.Addr.String()) {
				t.Errorf("ProhibitedError.Addr = %s, want one of %v", pe.Addr, tt.Addrs)
			}
		})
	}
	if n := accepted.Load(); n != 0 {
		t.Errorf("loopback server accepted %d connections, want 0", n)
	}

	// The default options (no Policy) refuse loopback too.
	def, err := mpns.NewClient(mpns.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer def.Close()
	if r := push(t.Context(), def, srv.URL, toast(t)); r.Verdict != tilecast.VerdictFailed {
		t.Errorf("default client: %+v, want failed", r)
	}
	if n := accepted.Load(); n != 0 {
		t.Errorf("loopback server accepted %d connections, want 0", n)
	}

	// The allowed side: a policy that admits 127.0.0.2 delivers there.
	pub, pubAccepted := netguardtest.CountingServer(t, "127.0.0.2:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-NotificationStatus", "Received")
	}))
	allow, err := mpns.NewClient(mpns.ClientOptions{Policy: netguardtest.Tripwire(t, netip.MustParseAddr("127.0.0.2"))})
	if err != nil {
		t.Fatal(err)
	}
	defer allow.Close()
	if r := push(t.Context(), allow, pub.URL, toast(t)); r.Verdict != tilecast.VerdictDelivered {
		t.Errorf("allowed address: %+v, want delivered", r)
	}
	if n := pubAccepted.Load(); n != 1 {
		t.Errorf("allowed server accepted %d connections, want 1", n)
	}
}

// TestClientIgnoresProxyEnv (N3): proxy variables pointing at a loopback
// listener are not used; the push goes direct.
func TestClientIgnoresProxyEnv(t *testing.T) {
	proxy, proxied := netguardtest.CountingServer(t, "127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "proxied", http.StatusBadGateway)
	}))
	for _, k := range []string{"HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"} {
		t.Setenv(k, proxy.URL)
	}
	t.Setenv("NO_PROXY", "")
	t.Setenv("no_proxy", "")
	target, _ := netguardtest.CountingServer(t, "127.0.0.2:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-NotificationStatus", "Received")
	}))
	c, err := mpns.NewClient(mpns.ClientOptions{Policy: netguardtest.Tripwire(t, netip.MustParseAddr("127.0.0.2"))})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if r := push(t.Context(), c, target.URL, toast(t)); r.Verdict != tilecast.VerdictDelivered {
		t.Errorf("result = %+v, want delivered", r)
	}
	if n := proxied.Load(); n != 0 {
		t.Errorf("proxy accepted %d connections, want 0", n)
	}
}
