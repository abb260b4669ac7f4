package fetch

import (
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/internal/netguardtest"
	"github.com/tilecast/tilecast/netguard"
)

// loopback2 is 127.0.0.2, which plays a public host in these tests.
var loopback2 = netip.MustParseAddr("127.0.0.2")

func wantProhibited(t *testing.T, err error, addrs ...string) {
	t.Helper()
	var fe *tilecast.FetchError
	if !errors.As(err, &fe) {
		t.Fatalf("err = %v (%T), want *tilecast.FetchError", err, err)
	}
	if fe.Status != 0 {
		t.Errorf("Status = %d, want 0", fe.Status)
	}
	var pe *netguard.ProhibitedError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v, want a *netguard.ProhibitedError inside", err)
	}
	for _, a := range addrs {
		if pe.Addr.String() == a {
			return
		}
	}
	t.Errorf("ProhibitedError.Addr = %s, want one of %v", pe.Addr, addrs)
}

// TestFetchRefusesN1 runs the N1 matrix (reliability.md §2.6) through the
// fetch client: every address is refused at dial time with a typed error,
// and the loopback listener the local ones point at accepts nothing.
func TestFetchRefusesN1(t *testing.T) {
	srv, accepted := netguardtest.CountingServer(t, "127.0.0.1:0", serveFile("rss.xml"))
	port := strconv.Itoa(srv.Listener.Addr().(*net.TCPAddr).Port)
	c := New(Options{Policy: netguardtest.Tripwire(t), Timeout: 10 * time.Second})
	tests := netguardtest.N1()
	for _, tt := range tests {
		t.Run(tt.Host, func(t *testing.T) {
			res, err := c.Fetch(t.Context(), "http://"+tt.Host+":"+port+"/feed.xml", tilecast.Validators{})
			if res != nil {
				t.Errorf("result = %+v, want nil", res)
			}
			wantProhibited(t, err, tt.Addrs...)
		})
	}
	if n := accepted.Load(); n != 0 {
		t.Errorf("server accepted %d connections, want 0", n)
	}

	// The allowed side: a policy that admits 127.0.0.2 reaches it.
	pub, pubAccepted := netguardtest.CountingServer(t, "127.0.0.2:0", serveFile("rss.xml"))
	allow := New(Options{Policy: netguardtest.Tripwire(t, loopback2)})
	if _, err := allow.Fetch(t.Context(), pub.URL+"/feed.xml", tilecast.Validators{}); err != nil {
		t.Fatalf("fetch from the allowed address: %v", err)
	}
	if n := pubAccepted.Load(); n != 1 {
		t.Errorf("allowed server accepted %d connections, want 1", n)
	}
}

func TestFetchRefusesRedirectToPrivate(t *testing.T) {
	private, privAccepted := netguardtest.CountingServer(t, "127.0.0.1:0", serveFile("rss.xml"))
	public, pubAccepted := netguardtest.CountingServer(t, "127.0.0.2:0", http.RedirectHandler(private.URL+"/feed.xml", http.StatusFound))

	c := New(Options{Policy: netguardtest.Tripwire(t, loopback2)})
	_, err := c.Fetch(t.Context(), public.URL+"/feed.xml", tilecast.Validators{})
	wantProhibited(t, err, "127.0.0.1")
	if n := pubAccepted.Load(); n != 1 {
		t.Errorf("public server accepted %d connections, want 1", n)
	}
	if n := privAccepted.Load(); n != 0 {
		t.Errorf("private server accepted %d connections, want 0", n)
	}
}

// rebindingResolver is a resolver (netguardtest.Resolver: nothing leaves
// the process) that answers A queries for name with first, the first time,
// and with then ever after — a DNS rebinding attack. Other names get
// NXDOMAIN, AAAA queries an empty answer.
func rebindingResolver(t *testing.T, name string, first, then netip.Addr) (*net.Resolver, *atomic.Int64) {
	t.Helper()
	var queries atomic.Int64
	fqdn := dnsmessage.MustNewName(name + ".")
	return netguardtest.Resolver(t, func(q dnsmessage.Question) (dnsmessage.RCode, []netip.Addr) {
		if q.Name != fqdn {
			return dnsmessage.RCodeNameError, nil
		}
		if q.Type != dnsmessage.TypeA {
			return dnsmessage.RCodeSuccess, nil
		}
		if queries.Add(1) == 1 {
			return dnsmessage.RCodeSuccess, []netip.Addr{first}
		}
		return dnsmessage.RCodeSuccess, []netip.Addr{then}
	}), &queries
}

// TestFetchRefusesDNSRebinding: the feed host first resolves to a "public"
// address and is fetched; the next fetch, on a fresh connection, resolves
// to 127.0.0.1 and is refused at the dial, with nothing accepted there.
func TestFetchRefusesDNSRebinding(t *testing.T) {
	public, pubAccepted := netguardtest.CountingServer(t, "127.0.0.2:0", serveFile("rss.xml"))
	port := public.Listener.Addr().(*net.TCPAddr).Port
	_, privAccepted := netguardtest.CountingServer(t, "127.0.0.1:"+strconv.Itoa(port), serveFile("rss.xml"))

	resolver, queries := rebindingResolver(t, "feed.rebind.test", loopback2, netip.MustParseAddr("127.0.0.1"))
	c := New(Options{Policy: netguardtest.Tripwire(t, loopback2), Resolver: resolver})
	u := "http://feed.rebind.test:" + strconv.Itoa(port) + "/feed.xml"
	if _, err := c.Fetch(t.Context(), u, tilecast.Validators{}); err != nil {
		t.Fatalf("first fetch (public answer): %v", err)
	}
	c.http.CloseIdleConnections() // the next fetch must dial (and resolve) again
	_, err := c.Fetch(t.Context(), u, tilecast.Validators{})
	wantProhibited(t, err, "127.0.0.1")
	if n := queries.Load(); n < 2 {
		t.Errorf("%d A queries, want at least 2", n)
	}
	if n := pubAccepted.Load(); n != 1 {
		t.Errorf("public server accepted %d connections, want 1", n)
	}
	if n := privAccepted.Load(); n != 0 {
		t.Errorf("private server accepted %d connections, want 0", n)
	}
}

func TestAllowPrivate(t *testing.T) {
	srv, accepted := netguardtest.CountingServer(t, "127.0.0.1:0", serveFile("rss.xml"))
	c := New(Options{AllowPrivate: true})
	if _, err := c.Fetch(t.Context(), srv.URL+"/feed.xml", tilecast.Validators{}); err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if n := accepted.Load(); n != 1 {
		t.Errorf("accepted %d connections, want 1", n)
	}
}

// TestProxyEnvIgnored (N3): with HTTP_PROXY and HTTPS_PROXY pointing at a
// loopback listener, fetches go direct and the proxy sees nothing.
func TestProxyEnvIgnored(t *testing.T) {
	proxy, proxied := netguardtest.CountingServer(t, "127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "proxied", http.StatusBadGateway)
	}))
	t.Setenv("HTTP_PROXY", proxy.URL)
	t.Setenv("HTTPS_PROXY", proxy.URL)
	t.Setenv("http_proxy", proxy.URL)
	t.Setenv("https_proxy", proxy.URL)
	t.Setenv("NO_PROXY", "")
	t.Setenv("no_proxy", "")
	target, _ := netguardtest.CountingServer(t, "127.0.0.2:0", serveFile("rss.xml"))

	c := New(Options{Policy: netguardtest.Tripwire(t, loopback2)})
	if _, err := c.Fetch(t.Context(), target.URL+"/feed.xml", tilecast.Validators{}); err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	// The guard still applies: a loopback target is refused, not proxied.
	_, err := c.Fetch(t.Context(), "http://127.0.0.1:1/feed.xml", tilecast.Validators{})
	wantProhibited(t, err, "127.0.0.1")
	if n := proxied.Load(); n != 0 {
		t.Errorf("proxy accepted %d connections, want 0", n)
	}
	// net/http reads the proxy variables once per process, so a test that
	// runs after another read them could pass by luck: check the wiring too.
	if tr, ok := c.http.Transport.(*http.Transport); !ok || tr.Proxy != nil {
		t.Error("transport has a Proxy func; proxy env vars would bypass the dial guard")
	}
}
