package mpns

import (
	"net"
	"syscall"
)

// connUsable reports whether an idle connection can carry a request: its
// host has neither closed it nor sent anything unasked (an unsolicited
// "408 Request Timeout" before closing, a TLS close_notify), which would
// otherwise be read as the answer to the next request. One non-blocking
// peek at the socket; net/http learns the same from a reader goroutine per
// connection. On a TLS connection anything pending counts too, since it
// cannot be looked at without reading it: hosts send their post-handshake
// messages (session tickets) before the first answer, which reads them.
func connUsable(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	usable := false
	var b [1]byte
	err = rc.Read(func(fd uintptr) bool {
		_, _, rerr := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		usable = rerr == syscall.EAGAIN || rerr == syscall.EWOULDBLOCK
		return true // never wait for readiness
	})
	return err == nil && usable
}
