package web_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tilecast/tilecast/internal/tlstest"
	"github.com/tilecast/tilecast/web"
)

// serveTLS runs e's server the way the daemon does (HTTPServer, then
// ServeTLS with the certificate from TLSConfig) on a loopback port.
func serveTLS(t *testing.T, e *accessEnv) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := e.srv.HTTPServer(ln.Addr().String())
	if hs.TLSConfig == nil {
		t.Fatal("TLS configured, but HTTPServer has no TLSConfig")
	}
	done := make(chan error, 1)
	go func() { done <- hs.ServeTLS(ln, "", "") }()
	t.Cleanup(func() {
		hs.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("ServeTLS: %v", err)
		}
	})
	return ln.Addr().String()
}

// servedCert dials addr trusting roots and returns the leaf it presented.
func servedCert(t *testing.T, addr string, roots ...[]byte) ([]byte, error) {
	t.Helper()
	pool := x509.NewCertPool()
	for _, der := range roots {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		pool.AddCert(c)
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].Raw, nil
}

// TestTLSListenerReload: the listener serves the configured certificate;
// after the files are replaced, Reload makes new connections get the new
// one; a bad new pair is refused and the old certificate stays.
func TestTLSListenerReload(t *testing.T) {
	dir := t.TempDir()
	live := tlstest.SelfSigned(t, dir, "live", "127.0.0.1")
	first := live.DER
	e := newAccessEnv(t, roleKeys, func(o *web.Options) { o.TLSCertFile, o.TLSKeyFile = live.CertFile, live.KeyFile })
	addr := serveTLS(t, e)

	got, err := servedCert(t, addr, first)
	if err != nil || !bytes.Equal(got, first) {
		t.Fatalf("first certificate: %v (same: %v)", err, bytes.Equal(got, first))
	}
	// Renewed in place.
	next := tlstest.SelfSigned(t, dir, "next", "127.0.0.1")
	tlstest.Copy(t, next, live)
	if err := e.srv.Reload(); err != nil {
		t.Fatal(err)
	}
	got, err = servedCert(t, addr, next.DER)
	if err != nil || !bytes.Equal(got, next.DER) {
		t.Fatalf("after reload: %v (new cert served: %v)", err, bytes.Equal(got, next.DER))
	}
	// A certificate whose key does not match: refused, the old one stays.
	other := tlstest.SelfSigned(t, dir, "other", "127.0.0.1")
	stray := tlstest.SelfSigned(t, dir, "stray", "127.0.0.1")
	tlstest.Copy(t, tlstest.Cert{CertFile: other.CertFile, KeyFile: stray.KeyFile}, live)
	err = e.srv.Reload()
	if err == nil || !strings.Contains(err.Error(), "tls certificate") {
		t.Fatalf("reload of a mismatched pair: %v, want an error", err)
	}
	if !strings.Contains(e.logs.String(), "the old certificate stays") {
		t.Errorf("the failed reload was not logged:\n%s", e.logs.String())
	}
	if got, err = servedCert(t, addr, next.DER); err != nil || !bytes.Equal(got, next.DER) {
		t.Errorf("after a failed reload: %v, want the previous certificate", err)
	}
	// An unverifiable certificate is refused by a verifying client.
	if _, err := servedCert(t, addr, first); err == nil {
		t.Error("a client trusting only the old certificate accepted the new one")
	}
}

// TestTLSSecureCookie: over the TLS listener the API works and the
// dashboard's session cookie is Secure.
func TestTLSSecureCookie(t *testing.T) {
	dir := t.TempDir()
	c := tlstest.SelfSigned(t, dir, "srv", "127.0.0.1")
	e := newAccessEnv(t, roleKeys, func(o *web.Options) { o.TLSCertFile, o.TLSKeyFile = c.CertFile, c.KeyFile })
	addr := serveTLS(t, e)
	pool := x509.NewCertPool()
	leaf, _ := x509.ParseCertificate(c.DER)
	pool.AddCert(leaf)
	client := &http.Client{
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	defer client.CloseIdleConnections()
	base := "https://" + addr
	req, _ := http.NewRequest(http.MethodGet, base+"/v1/status", nil)
	req.Header.Set("Authorization", "Bearer "+adminKey)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status over TLS: %d", resp.StatusCode)
	}
	resp, err = client.PostForm(base+"/login", url.Values{"key": {adminKey}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cookies := resp.Cookies()
	if resp.StatusCode != http.StatusSeeOther || len(cookies) != 1 || !cookies[0].Secure || !cookies[0].HttpOnly {
		t.Fatalf("login over TLS: %d, cookies %+v; want one Secure HttpOnly cookie", resp.StatusCode, cookies)
	}
	// Plain HTTP to the TLS port gets no answer from the API.
	if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("plain HTTP was served on the TLS listener")
		}
	}
}

// TestTLSOptionsChecked: one of the two files, or a pair that does not
// load, stops New.
func TestTLSOptionsChecked(t *testing.T) {
	dir := t.TempDir()
	c := tlstest.SelfSigned(t, dir, "srv", "127.0.0.1")
	for _, tc := range []struct {
		name, cert, key, err string
	}{
		{"cert only", c.CertFile, "", "both"},
		{"key only", "", c.KeyFile, "both"},
		{"swapped", c.KeyFile, c.CertFile, "tls certificate"},
	} {
		opts := accessOptions(t, roleKeys)
		opts.TLSCertFile, opts.TLSKeyFile = tc.cert, tc.key
		if _, err := web.New(opts); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.err)
		}
	}
}
