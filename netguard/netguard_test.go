package netguard

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// n1 is the SSRF matrix of reliability.md §2.6 (N1) plus the rest of the
// IANA special-purpose ranges; want is whether Prohibited refuses it.
var n1 = []struct {
	ip   string
	want bool
}{
	// N1 as listed.
	{"127.0.0.1", true},
	{"::1", true},
	{"::ffff:127.0.0.1", true},
	{"169.254.169.254", true},
	{"fd00:ec2::254", true},
	{"10.0.0.1", true},
	{"172.16.0.1", true},
	{"192.168.1.1", true},
	{"100.64.0.1", true},
	{"0.0.0.0", true},
	{"fe80::1", true},
	{"fc00::1", true},
	{"64:ff9b::7f00:1", true},
	{"2002:7f00:1::1", true},
	// Range edges and the rest of the registry.
	{"127.255.0.9", true},
	{"10.255.255.255", true},
	{"172.31.255.255", true},
	{"100.127.255.255", true},
	{"0.1.2.3", true},
	{"::", true},
	{"224.0.0.1", true},
	{"239.255.255.250", true},
	{"ff02::1", true},
	{"192.0.0.8", true},
	{"192.0.2.10", true},
	{"192.88.99.1", true},
	{"198.18.0.1", true},
	{"198.19.255.255", true},
	{"198.51.100.7", true},
	{"203.0.113.9", true},
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
	{"3fff::1", true},             // documentation
	{"2001:0:4136:e378::1", true}, // Teredo
	{"fe80::1%eth0", true},
	// Public addresses stay allowed.
	{"8.8.8.8", false},
	{"1.1.1.1", false},
	{"93.184.215.14", false},
	{"172.32.0.1", false}, // just past 172.16/12
	{"172.15.255.255", false},
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

func TestProhibited(t *testing.T) {
	for _, tt := range n1 {
		t.Run(tt.ip, func(t *testing.T) {
			if got := Prohibited(netip.MustParseAddr(tt.ip)); got != tt.want {
				t.Errorf("Prohibited(%s) = %v, want %v", tt.ip, got, tt.want)
			}
		})
	}
	if !Prohibited(netip.Addr{}) {
		t.Error("the zero Addr must be prohibited (fail closed)")
	}
}

func TestControl(t *testing.T) {
	tests := []struct {
		network, address string
		policy           Policy
		want             netip.Addr // zero: no ProhibitedError expected
		wantErr          bool
	}{
		{"tcp4", "127.0.0.1:80", nil, netip.MustParseAddr("127.0.0.1"), true},
		{"tcp6", "[::ffff:127.0.0.1]:443", nil, netip.MustParseAddr("127.0.0.1"), true},
		{"tcp6", "[::1]:8080", nil, netip.MustParseAddr("::1"), true},
		{"tcp6", "[fe80::1%eth0]:80", nil, netip.MustParseAddr("fe80::1"), true},
		{"tcp4", "169.254.169.254:80", nil, netip.MustParseAddr("169.254.169.254"), true},
		{"tcp4", "localhost:80", nil, netip.Addr{}, true}, // not a literal: fail closed
		{"tcp4", "", nil, netip.Addr{}, true},
		{"tcp4", "8.8.8.8:443", nil, netip.Addr{}, false},
		{"tcp6", "[2606:4700:4700::1111]:443", nil, netip.Addr{}, false},
		{"tcp4", "8.8.8.8:443", func(netip.Addr) bool { return true }, netip.MustParseAddr("8.8.8.8"), true},
		{"tcp4", "127.0.0.2:80", publicLoopback2, netip.Addr{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.address, func(t *testing.T) {
			err := Control(tt.policy)(context.Background(), tt.network, tt.address, nil)
			if (err != nil) != tt.wantErr {
				t.Fatalf("control(%s) = %v, wantErr %v", tt.address, err, tt.wantErr)
			}
			var pe *ProhibitedError
			if got := errors.As(err, &pe); got != tt.want.IsValid() {
				t.Fatalf("control(%s) = %v, want ProhibitedError %v", tt.address, err, tt.want.IsValid())
			}
			if pe != nil && pe.Addr != tt.want {
				t.Errorf("ProhibitedError.Addr = %s, want %s", pe.Addr, tt.want)
			}
		})
	}
}

// publicLoopback2 is the test policy of reliability.md §2.6: 127.0.0.2
// plays a public host, everything else is judged by Prohibited.
func publicLoopback2(ip netip.Addr) bool {
	return ip != netip.MustParseAddr("127.0.0.2") && Prohibited(ip)
}

// countingListener listens on addr and counts accepted connections.
func countingListener(t *testing.T, addr string) (net.Listener, *atomic.Int64) {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	var n atomic.Int64
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			c.Close()
		}
	}()
	return l, &n
}

func TestDialerRefusesBeforeConnect(t *testing.T) {
	l, accepted := countingListener(t, "127.0.0.1:0")
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	d := Dialer(&net.Dialer{Timeout: 5 * time.Second}, nil)
	for _, addr := range []string{"127.0.0.1:" + port, "localhost:" + port, "[::ffff:127.0.0.1]:" + port} {
		c, err := d.DialContext(t.Context(), "tcp", addr)
		if err == nil {
			c.Close()
			t.Fatalf("dial %s succeeded", addr)
		}
		var pe *ProhibitedError
		if !errors.As(err, &pe) {
			t.Errorf("dial %s: %v, want a *ProhibitedError", addr, err)
		}
	}
	if n := accepted.Load(); n != 0 {
		t.Errorf("listener accepted %d connections, want 0", n)
	}

	// The same dialer with a policy that admits 127.0.0.2 connects there.
	l2, accepted2 := countingListener(t, "127.0.0.2:0")
	c, err := Dialer(nil, publicLoopback2).DialContext(t.Context(), "tcp", l2.Addr().String())
	if err != nil {
		t.Fatalf("dial allowed address: %v", err)
	}
	c.Close()
	// Accept runs in its own goroutine; wait for it to count.
	for accepted2.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	if n := accepted.Load(); n != 0 {
		t.Errorf("refused listener accepted %d connections", n)
	}
}

func TestProhibitedErrorMessage(t *testing.T) {
	e := &ProhibitedError{Addr: netip.MustParseAddr("10.0.0.1")}
	if got := e.Error(); got == "" || !strings.Contains(got, "10.0.0.1") {
		t.Errorf("Error() = %q", got)
	}
}

func FuzzProhibited(f *testing.F) {
	for _, tt := range n1 {
		f.Add(netip.MustParseAddr(tt.ip).AsSlice())
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ip, ok := netip.AddrFromSlice(b)
		if !ok {
			return
		}
		got := Prohibited(ip)
		// An IPv4-mapped address is judged exactly like its IPv4 address.
		if ip.Is4In6() && got != Prohibited(ip.Unmap()) {
			t.Fatalf("Prohibited(%s) = %v, unmapped %v", ip, got, !got)
		}
		// Loopback, private, link-local, multicast, unspecified: always refused.
		u := ip.Unmap()
		if (u.IsLoopback() || u.IsPrivate() || u.IsLinkLocalUnicast() || u.IsMulticast() || u.IsUnspecified()) && !got {
			t.Fatalf("Prohibited(%s) = false", ip)
		}
	})
}
