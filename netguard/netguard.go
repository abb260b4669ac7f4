// Package netguard decides which IP addresses an outbound connection to an
// untrusted URL (a feed, a redirect target, a tile image, a push channel)
// may reach, and enforces that decision at dial time.
//
// The check runs in net.Dialer.ControlContext, after name resolution and
// before connect, so it covers DNS names, redirects and DNS rebinding alike:
// whatever a name resolves to on this particular dial is what is checked,
// and a refused address never sees a SYN. A proxy would hide the real
// target from the check, so transports using a guarded dialer must set
// Proxy to nil.
package netguard

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"syscall"
)

// ProhibitedError is returned by a guarded dial that would reach an address
// the policy refuses.
type ProhibitedError struct {
	Addr netip.Addr
}

func (e *ProhibitedError) Error() string {
	return fmt.Sprintf("prohibited address %s (loopback, private or reserved; allow_private is off)", e.Addr)
}

// Policy reports whether an address must not be dialled. Prohibited is the
// production policy; tests substitute one that admits a loopback address as
// "public".
type Policy func(netip.Addr) bool

// Ranges that are never a public server. IPv4 follows the IANA
// special-purpose registry; IPv6 is handled by allowing only global unicast
// (2000::/3) minus its special blocks, after the transition forms that embed
// an IPv4 address have been unwrapped.
var (
	prohibited4 = [...]netip.Prefix{
		netip.MustParsePrefix("0.0.0.0/8"),       // "this network", includes unspecified
		netip.MustParsePrefix("10.0.0.0/8"),      // private
		netip.MustParsePrefix("100.64.0.0/10"),   // carrier-grade NAT
		netip.MustParsePrefix("127.0.0.0/8"),     // loopback
		netip.MustParsePrefix("169.254.0.0/16"),  // link-local, cloud metadata
		netip.MustParsePrefix("172.16.0.0/12"),   // private
		netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
		netip.MustParsePrefix("192.0.2.0/24"),    // documentation
		netip.MustParsePrefix("192.88.99.0/24"),  // deprecated 6to4 relay anycast
		netip.MustParsePrefix("192.168.0.0/16"),  // private
		netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
		netip.MustParsePrefix("198.51.100.0/24"), // documentation
		netip.MustParsePrefix("203.0.113.0/24"),  // documentation
		netip.MustParsePrefix("224.0.0.0/4"),     // multicast
		netip.MustParsePrefix("240.0.0.0/4"),     // reserved, includes broadcast
	}
	global6     = netip.MustParsePrefix("2000::/3")
	nat64       = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour   = netip.MustParsePrefix("2002::/16")
	prohibited6 = [...]netip.Prefix{
		netip.MustParsePrefix("2001::/23"),     // IETF protocol assignments, incl. Teredo (obfuscated IPv4)
		netip.MustParsePrefix("2001:db8::/32"), // documentation
		netip.MustParsePrefix("3fff::/20"),     // documentation
	}
)

// Prohibited reports whether ip must not be dialled when private targets are
// not allowed: loopback, private, link-local, CGNAT, unique-local, unspecified,
// multicast, reserved and documentation ranges, and any IPv6 form that embeds
// such an IPv4 address (IPv4-mapped, NAT64 64:ff9b::/96, 6to4 2002::/16).
// The zero Addr is prohibited: the guard fails closed.
func Prohibited(ip netip.Addr) bool {
	if !ip.IsValid() {
		return true
	}
	ip = ip.WithZone("").Unmap()
	if ip.Is4() {
		for _, p := range prohibited4 {
			if p.Contains(ip) {
				return true
			}
		}
		return false
	}
	b := ip.As16()
	switch {
	case nat64.Contains(ip):
		// A NAT64 gateway forwards to the embedded IPv4 address.
		return Prohibited(netip.AddrFrom4([4]byte(b[12:16])))
	case sixToFour.Contains(ip):
		// 2002:AABB:CCDD::/48 routes to the IPv4 address AA.BB.CC.DD.
		return Prohibited(netip.AddrFrom4([4]byte(b[2:6])))
	case !global6.Contains(ip):
		// Everything else outside global unicast: ::/8 (unspecified,
		// loopback, IPv4-compatible), fc00::/7, fe80::/10, ff00::/8, …
		return true
	}
	for _, p := range prohibited6 {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// Control returns a net.Dialer.ControlContext that refuses, with a
// *ProhibitedError, every address for which policy returns true (nil means
// Prohibited). Set it as ControlContext, not Control: a dialer ignores
// Control when ControlContext is set.
func Control(policy Policy) func(ctx context.Context, network, address string, c syscall.RawConn) error {
	if policy == nil {
		policy = Prohibited
	}
	return func(_ context.Context, network, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			// Fail closed: the dialer always hands over a literal ip:port.
			return fmt.Errorf("guard %s %q: %w", network, address, err)
		}
		ip := ap.Addr().WithZone("").Unmap()
		if policy(ip) {
			return &ProhibitedError{Addr: ip}
		}
		return nil
	}
}

// Dialer returns d (a new zero Dialer when nil) with ControlContext set to
// Control(policy). It modifies and returns d.
func Dialer(d *net.Dialer, policy Policy) *net.Dialer {
	if d == nil {
		d = &net.Dialer{}
	}
	d.ControlContext = Control(policy)
	return d
}
