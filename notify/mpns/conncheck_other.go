//go:build !linux

package mpns

import "net"

// connUsable cannot peek at the socket here; a connection the host closed
// is found when the request fails, and the request is tried once more on a
// new connection (transport.roundTrip). What a host sends unasked to an
// idle connection (an unsolicited 408) would be read as the next answer:
// tilecast's supported platform is Linux, where conncheck_linux.go peeks.
func connUsable(net.Conn) bool { return true }
