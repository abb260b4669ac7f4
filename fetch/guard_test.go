package fetch

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync/atomic"
	"testing"

	"github.com/tilecast/tilecast"
)

func TestProhibited(t *testing.T) {
	tests := []struct {
		ip   string
		want bool
	}{
		// N1 matrix (reliability.md §2.6).
		{"127.0.0.1", true},
		{"127.255.0.9", true},
		{"::1", true},
		{"::ffff:127.0.0.1", true},
		{"169.254.169.254", true},
		{"fd00:ec2::254", true},
		{"10.0.0.1", true},
		{"10.255.255.255", true},
		{"172.16.0.1", true},
		{"172.31.255.255", true},
		{"192.168.1.1", true},
		{"100.64.0.1", true},
		{"100.127.255.255", true},
		{"0.0.0.0", true},
		{"0.1.2.3", true},
		{"fe80::1", true},
		{"fc00::1", true},
		{"64:ff9b::7f00:1", true},
		{"2002:7f00:1::1", true},
		// The rest of the brief's list.
		{"::", true},
		{"224.0.0.1", true},
		{"239.255.255.250", true},
		{"ff02::1", true},
		{"192.0.0.8", true},
		{"198.18.0.1", true},
		{"198.19.255.255", true},
		{"240.0.0.1", true},
		{"255.255.255.255", true},
		{"::ffff:10.1.2.3", true},
		{"::ffff:169.254.169.254", true},
		{"64:ff9b::a00:1", true},      // NAT64 of 10.0.0.1
		{"64:ff9b::a9fe:a9fe", true},  // NAT64 of 169.254.169.254
		{"2002:c0a8:101::1", true},    // 6to4 of 192.168.1.1
		{"2002:a9fe:a9fe::1", true},   // 6to4 of 169.254.169.254
		{"::127.0.0.1", true},         // IPv4-compatible (deprecated)
		{"fec0::1", true},             // site-local (deprecated)
		{"2001:db8::1", true},         // documentation
		{"2001:0:4136:e378::1", true}, // Teredo
		{"192.0.2.10", true},          // documentation
		{"fe80::1%eth0", true},
		// Public addresses stay allowed.
		{"8.8.8.8", false},
		{"1.1.1.1", false},
		{"93.184.215.14", false},
		{"172.32.0.1", false},  // just past 172.16/12
		{"100.128.0.1", false}, // just past 100.64/10
		{"192.169.0.1", false}, // just past 192.168/16
		{"198.20.0.1", false},  // just past 198.18/15
		{"223.255.255.255", false},
		{"::ffff:8.8.8.8", false},
		{"2606:4700:4700::1111", false},
		{"2a00:1450:4001:82b::200e", false},
		{"64:ff9b::808:808", false}, // NAT64 of 8.8.8.8
		{"2002:808:808::1", false},  // 6to4 of 8.8.8.8
	}
	for _, tt := range tests {
		t.Run(tt.ip, func(t *testing.T) {
			ip := netip.MustParseAddr(tt.ip)
			if got := Prohibited(ip); got != tt.want {
				t.Errorf("Prohibited(%s) = %v, want %v", tt.ip, got, tt.want)
			}
		})
	}
	if !Prohibited(netip.Addr{}) {
		t.Error("the zero Addr must be prohibited (fail closed)")
	}
}

func TestDialGuard(t *testing.T) {
	guard := dialGuard(Prohibited)
	tests := []struct {
		network, address string
		want             netip.Addr // zero: no ProhibitedError expected
		wantErr          bool
	}{
		{"tcp4", "127.0.0.1:80", netip.MustParseAddr("127.0.0.1"), true},
		{"tcp6", "[::ffff:127.0.0.1]:443", netip.MustParseAddr("127.0.0.1"), true},
		{"tcp6", "[::1]:8080", netip.MustParseAddr("::1"), true},
		{"tcp6", "[fe80::1%eth0]:80", netip.MustParseAddr("fe80::1"), true},
		{"tcp4", "169.254.169.254:80", netip.MustParseAddr("169.254.169.254"), true},
		{"tcp4", "localhost:80", netip.Addr{}, true}, // not a literal: fail closed
		{"tcp4", "8.8.8.8:443", netip.Addr{}, false},
		{"tcp6", "[2606:4700:4700::1111]:443", netip.Addr{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.address, func(t *testing.T) {
			err := guard(context.Background(), tt.network, tt.address, nil)
			if (err != nil) != tt.wantErr {
				t.Fatalf("guard(%s) = %v, wantErr %v", tt.address, err, tt.wantErr)
			}
			var pe *ProhibitedError
			if got := errors.As(err, &pe); got != tt.want.IsValid() {
				t.Fatalf("guard(%s) = %v, want ProhibitedError %v", tt.address, err, tt.want.IsValid())
			}
			if pe != nil && pe.Addr != tt.want {
				t.Errorf("ProhibitedError.Addr = %s, want %s", pe.Addr, tt.want)
			}
		})
	}
}

// countingServer starts an httptest server on addr whose listener counts
// accepted connections.
func countingServer(t *testing.T, addr string, h http.Handler) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = &countingListener{Listener: l, n: &n}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &n
}

type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

func wantProhibited(t *testing.T, err error, addr string) {
	t.Helper()
	var fe *tilecast.FetchError
	if !errors.As(err, &fe) {
		t.Fatalf("err = %v (%T), want *tilecast.FetchError", err, err)
	}
	if fe.Status != 0 {
		t.Errorf("Status = %d, want 0", fe.Status)
	}
	var pe *ProhibitedError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v, want a *ProhibitedError inside", err)
	}
	if pe.Addr.String() != addr {
		t.Errorf("ProhibitedError.Addr = %s, want %s", pe.Addr, addr)
	}
}

func TestFetchRefusesLoopback(t *testing.T) {
	srv, accepted := countingServer(t, "127.0.0.1:0", serveFile("rss.xml"))
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	c := New(Options{}) // AllowPrivate false, real policy
	tests := []struct {
		url  string
		addr string
	}{
		{srv.URL + "/feed.xml", "127.0.0.1"},
		{"http://localhost:" + itoa(port) + "/feed.xml", "127.0.0.1"},
		{"http://[::ffff:127.0.0.1]:" + itoa(port) + "/", "127.0.0.1"},
		{"http://[::1]:" + itoa(port) + "/", "::1"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			res, err := c.Fetch(t.Context(), tt.url, tilecast.Validators{})
			if res != nil {
				t.Errorf("result = %+v, want nil", res)
			}
			wantProhibited(t, err, tt.addr)
		})
	}
	if n := accepted.Load(); n != 0 {
		t.Errorf("server accepted %d connections, want 0", n)
	}
}

func TestFetchRefusesRedirectToForbidden(t *testing.T) {
	private, privAccepted := countingServer(t, "127.0.0.1:0", serveFile("rss.xml"))
	public, pubAccepted := countingServer(t, "127.0.0.2:0", http.RedirectHandler(private.URL+"/feed.xml", http.StatusFound))

	c := New(Options{})
	// In this test 127.0.0.2 plays a public host.
	c.prohibited = func(ip netip.Addr) bool { return ip != netip.MustParseAddr("127.0.0.2") && Prohibited(ip) }

	_, err := c.Fetch(t.Context(), public.URL+"/feed.xml", tilecast.Validators{})
	wantProhibited(t, err, "127.0.0.1")
	if n := pubAccepted.Load(); n != 1 {
		t.Errorf("public server accepted %d connections, want 1", n)
	}
	if n := privAccepted.Load(); n != 0 {
		t.Errorf("private server accepted %d connections, want 0", n)
	}

	// The same policy lets a direct fetch of the "public" host through.
	direct, _ := countingServer(t, "127.0.0.2:0", serveFile("rss.xml"))
	if _, err := c.Fetch(t.Context(), direct.URL+"/feed.xml", tilecast.Validators{}); err != nil {
		t.Fatalf("fetch from allowed host: %v", err)
	}
}

func TestAllowPrivate(t *testing.T) {
	srv, accepted := countingServer(t, "127.0.0.1:0", serveFile("rss.xml"))
	c := New(Options{AllowPrivate: true})
	if _, err := c.Fetch(t.Context(), srv.URL+"/feed.xml", tilecast.Validators{}); err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if n := accepted.Load(); n != 1 {
		t.Errorf("accepted %d connections, want 1", n)
	}
}

func TestTransportIgnoresProxyEnv(t *testing.T) {
	t.Setenv("HTTP_PROXY", "http://127.0.0.1:9")
	t.Setenv("HTTPS_PROXY", "http://127.0.0.1:9")
	c := New(Options{})
	tr, ok := c.http.Transport.(*http.Transport)
	if !ok {
		t.Fatalf("transport is %T", c.http.Transport)
	}
	if tr.Proxy != nil {
		t.Error("transport has a Proxy func; proxy env vars would bypass the dial guard")
	}
}
