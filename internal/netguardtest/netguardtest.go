// Package netguardtest holds the test helpers the SSRF-guard tests of the
// fetcher and the push client share: a server that counts the connections
// it accepts (the proof that nothing reached it), a tripwire policy, and a
// resolver whose DNS server runs in the test process.
package netguardtest

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync/atomic"
	"testing"

	"golang.org/x/net/dns/dnsmessage"

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

// Target is one row of reliability.md's N1 matrix: a URL host and the
// addresses a dial to it may be refused with.
type Target struct {
	Host  string
	Addrs []string
}

// N1 returns the addresses every outbound dial (feed fetch, image check,
// push) must refuse.
func N1() []Target {
	return []Target{
		{"127.0.0.1", []string{"127.0.0.1"}},
		{"localhost", []string{"127.0.0.1", "::1"}},
		{"[::1]", []string{"::1"}},
		{"[::ffff:127.0.0.1]", []string{"127.0.0.1"}},
		{"169.254.169.254", []string{"169.254.169.254"}},
		{"[fd00:ec2::254]", []string{"fd00:ec2::254"}},
		{"10.0.0.1", []string{"10.0.0.1"}},
		{"172.16.0.1", []string{"172.16.0.1"}},
		{"192.168.1.1", []string{"192.168.1.1"}},
		{"100.64.0.1", []string{"100.64.0.1"}},
		{"0.0.0.0", []string{"0.0.0.0"}},
		{"[fe80::1]", []string{"fe80::1"}},
		{"[fc00::1]", []string{"fc00::1"}},
		{"[64:ff9b::7f00:1]", []string{"64:ff9b::7f00:1"}},
		{"[2002:7f00:1::1]", []string{"2002:7f00:1::1"}},
	}
}

// Answer decides a DNS reply: the response code and, for A queries, the
// IPv4 addresses.
type Answer func(q dnsmessage.Question) (dnsmessage.RCode, []netip.Addr)

// Resolver is a Go resolver whose DNS "server" is answer, spoken to over an
// in-memory pipe: no query leaves the process, so tests can give names of
// their own choosing (a feed host per user, a rebinding host) loopback
// addresses without real DNS.
func Resolver(t testing.TB, answer Answer) *net.Resolver {
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
			client, server := net.Pipe()
			go serveDNS(t, server, answer)
			return client, nil
		},
	}
}

// serveDNS answers length-prefixed DNS messages (the stream framing the Go
// resolver uses on a conn that is not a PacketConn) until conn closes.
func serveDNS(t testing.TB, conn net.Conn, answer Answer) {
	defer conn.Close()
	for {
		var n [2]byte
		if _, err := io.ReadFull(conn, n[:]); err != nil {
			return
		}
		buf := make([]byte, binary.BigEndian.Uint16(n[:]))
		if _, err := io.ReadFull(conn, buf); err != nil {
			return
		}
		var p dnsmessage.Parser
		h, err := p.Start(buf)
		if err != nil {
			return
		}
		q, err := p.Question()
		if err != nil {
			return
		}
		rcode, addrs := answer(q)
		b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RCode: rcode})
		b.EnableCompression()
		_ = b.StartQuestions()
		_ = b.Question(q)
		_ = b.StartAnswers()
		for _, a := range addrs {
			rh := dnsmessage.ResourceHeader{Name: q.Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: 0}
			_ = b.AResource(rh, dnsmessage.AResource{A: a.As4()})
		}
		msg, err := b.Finish()
		if err != nil {
			t.Errorf("build dns answer: %v", err)
			return
		}
		binary.BigEndian.PutUint16(n[:], uint16(len(msg)))
		if _, err := conn.Write(append(n[:], msg...)); err != nil {
			return
		}
	}
}
