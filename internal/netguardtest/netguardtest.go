// Package netguardtest holds the test helpers the SSRF-guard tests of the
// fetcher and the push client share: a server that counts the connections
// it accepts (the proof that nothing reached it) and a tripwire policy.
package netguardtest

import (
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync/atomic"
	"testing"

	"github.com/tilecast/tilecast/netguard"
)

// CountingServer starts an httptest server on addr whose listener counts
// accepted connections.
func CountingServer(t testing.TB, addr string, h http.Handler) (*httptest.Server, *atomic.Int64) {
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

// Tripwire is the production policy, except that it admits allow and fails
// the test (still refusing) should netguard.Prohibited ever admit another
// address, so a regression cannot send traffic off the machine.
func Tripwire(t testing.TB, allow ...netip.Addr) netguard.Policy {
	return func(ip netip.Addr) bool {
		for _, a := range allow {
			if ip == a {
				return false
			}
		}
		if netguard.Prohibited(ip) {
			return true
		}
		t.Errorf("policy admitted %s", ip)
		return true
	}
}
