package mpns

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/tilecast/tilecast"
)

// Why not net/http's client: a fan-out sends tens of thousands of small
// POSTs over a few kept-alive connections, and net/http's client spends as
// much CPU again as the requests themselves (two goroutines per connection
// and a hand-off between them per request, plus its per-request
// allocations): profiled, it was half of tilecast's CPU per notification,
// twice what this does. This transport writes each request with one write
// in the caller's goroutine and reads the answer there. The answer is
// parsed by net/http's own http.ReadResponse, so the part that faces the
// network stays the standard library's. It speaks HTTP/1.1 only, which is
// all MPNS ever spoke.

// Transport limits.
const (
	// maxAnswerBytes bounds everything read for one answer (interim 1xx
	// answers, header block, the part of the body that is drained): a
	// device or network sending more gets an error, never an unbounded read.
	maxAnswerBytes = 64<<10 + maxResponseBody
	// maxInterim bounds the 1xx answers skipped before the final one.
	maxInterim = 8
	// defaultIdleTimeout is how long an unused connection is kept.
	defaultIdleTimeout = 90 * time.Second
)

// errBadRequest marks a request that cannot be sent as it is (bad URI,
// header injection); sending it again would not help.
var errBadRequest = errors.New("mpns: request cannot be sent")

// target is a parsed channel URI.
type target struct {
	key        string // scheme://host:port: the pool a connection belongs to
	addr       string // host:port to dial
	host       string // Host header
	serverName string // TLS server name
	requestURI string
	tls        bool
}

func parseTarget(uri string) (target, error) {
	if t, ok := quickTarget(uri); ok {
		return t, nil
	}
	return urlTarget(uri)
}

func urlTarget(uri string) (target, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return target{}, fmt.Errorf("%w: bad channel uri: %w", errBadRequest, err)
	}
	var t target
	switch strings.ToLower(u.Scheme) {
	case "http":
	case "https":
		t.tls = true
	default:
		return target{}, fmt.Errorf("%w: channel uri scheme %q not supported", errBadRequest, u.Scheme)
	}
	hostname := u.Hostname()
	if hostname == "" {
		return target{}, fmt.Errorf("%w: channel uri %q has no host", errBadRequest, uri)
	}
	port := u.Port()
	if port == "" {
		port = "80"
		if t.tls {
			port = "443"
		}
	}
	t.addr = net.JoinHostPort(hostname, port)
	t.host = strings.TrimSuffix(u.Host, ":")
	if !httpguts.ValidHostHeader(t.host) {
		return target{}, fmt.Errorf("%w: channel uri host %q is not valid", errBadRequest, t.host)
	}
	t.serverName = hostname
	t.requestURI = u.RequestURI()
	for _, c := range []byte(t.requestURI) {
		if c <= ' ' || c >= 0x7f {
			return target{}, fmt.Errorf("%w: channel uri %q has a space or control byte in its path", errBadRequest, uri)
		}
	}
	t.setKey()
	return t, nil
}

func (t *target) setKey() {
	t.key = "http://" + t.addr
	if t.tls {
		t.key = "https://" + t.addr
	}
}

// quickTarget parses the common channel URI (lower-case scheme, a plain
// host name or IPv4 address, an optional port, a path and query of plain
// characters) without url.Parse, which was a twentieth of a push's CPU.
// Anything else is declined and goes to url.Parse; what it accepts it
// parses as that path does (FuzzQuickTarget).
func quickTarget(uri string) (target, bool) {
	var t target
	rest, ok := strings.CutPrefix(uri, "http://")
	if !ok {
		if rest, ok = strings.CutPrefix(uri, "https://"); !ok {
			return target{}, false
		}
		t.tls = true
	}
	slash := strings.IndexByte(rest, '/')
	if slash <= 0 {
		return target{}, false
	}
	t.host, t.requestURI = rest[:slash], rest[slash:]
	t.serverName, t.addr = t.host, ""
	if colon := strings.IndexByte(t.host, ':'); colon >= 0 {
		t.serverName = t.host[:colon]
		port := t.host[colon+1:]
		if port == "" || len(port) > 5 || strings.Trim(port, "0123456789") != "" {
			return target{}, false
		}
		t.addr = t.host
	}
	if t.serverName == "" || strings.Trim(t.serverName, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") != "" {
		return target{}, false
	}
	if t.addr == "" {
		t.addr = t.host + ":80"
		if t.tls {
			t.addr = t.host + ":443"
		}
	}
	query := false
	for _, c := range []byte(t.requestURI) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("-._~/$&+,:;=@", c) >= 0:
		case c == '?':
			query = true
		case query && strings.IndexByte("!'()*", c) >= 0:
		default:
			return target{}, false
		}
	}
	t.setKey()
	return t, true
}

// checkRequest refuses what appendRequest must not write: header names
// and values that would inject lines, and headers that would change how
// the request is framed on a connection shared by every channel of a host.
func checkRequest(req *tilecast.Request, userAgent string) error {
	if userAgent != "" && !httpguts.ValidHeaderFieldValue(userAgent) {
		return fmt.Errorf("%w: invalid User-Agent %q", errBadRequest, userAgent)
	}
	for _, h := range req.Headers {
		if strings.EqualFold(h.Name, "Transfer-Encoding") || strings.EqualFold(h.Name, "Connection") {
			return fmt.Errorf("%w: header %s is not allowed", errBadRequest, h.Name)
		}
		if !httpguts.ValidHeaderFieldName(h.Name) || !httpguts.ValidHeaderFieldValue(h.Value) {
			return fmt.Errorf("%w: invalid header %q", errBadRequest, h.Name)
		}
	}
	return nil
}

// appendRequest writes the whole request, checked by checkRequest: the
// encoder's headers in the encoder's order (the order the mpns module sent
// them) with their names as written, Content-Length from the body, then
// the body.
func appendRequest(b []byte, t *target, req *tilecast.Request, userAgent string) []byte {
	b = append(b, "POST "...)
	b = append(b, t.requestURI...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, t.host...)
	b = append(b, "\r\n"...)
	header := func(name, value string) {
		b = append(b, name...)
		b = append(b, ": "...)
		b = append(b, value...)
		b = append(b, "\r\n"...)
	}
	if userAgent != "" {
		header("User-Agent", userAgent)
	}
	length := strconv.Itoa(len(req.Body))
	wroteLength := false
	for _, h := range req.Headers {
		switch {
		case strings.EqualFold(h.Name, "Host"):
			continue // from the URI
		case strings.EqualFold(h.Name, "User-Agent") && userAgent != "":
			continue
		case strings.EqualFold(h.Name, "Content-Length"):
			if !wroteLength {
				header(h.Name, length) // at the encoder's place, from the body
				wroteLength = true
			}
			continue
		}
		header(h.Name, h.Value)
	}
	if !wroteLength {
		header("Content-Length", length)
	}
	b = append(b, "\r\n"...)
	return append(b, req.Body...)
}

// transport is a pool of kept-alive HTTP/1.1 connections per host.
type transport struct {
	dial        func(ctx context.Context, network, addr string) (net.Conn, error)
	tlsConf     *tls.Config
	maxIdleHost int // idle connections kept per host
	maxIdle     int // idle connections kept in all
	idleTimeout time.Duration

	mu        sync.Mutex
	idle      map[string][]*pconn
	nIdle     int
	lastSweep time.Time
}

// pconn is one connection and its buffers.
type pconn struct {
	key    string
	raw    net.Conn // the TCP connection under conn (connUsable)
	conn   net.Conn
	lim    limitReader
	br     *bufio.Reader
	wbuf   []byte
	idleAt time.Time
}

func (pc *pconn) close() { _ = pc.conn.Close() }

// limitReader is the connection as the answer parser sees it: at most n
// more bytes, and a count of what one answer read.
type limitReader struct {
	r    io.Reader
	n    int64
	read int64
}

var errAnswerTooLarge = errors.New("answer too large")

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errAnswerTooLarge
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	l.read += int64(n)
	return n, err
}

// answer is what Push needs of a response.
type answer struct {
	status int
	header http.Header
}

// roundTrip sends req (checked by checkRequest) to t and reads the answer.
// deadline bounds the whole exchange (dial, TLS, write, read); ctx cancels
// it.
func (tr *transport) roundTrip(ctx context.Context, t *target, req *tilecast.Request, userAgent string, deadline time.Time) (answer, error) {
	for attempt := 0; ; attempt++ {
		pc, reused, err := tr.conn(ctx, t, deadline, attempt > 0)
		if err != nil {
			return answer{}, err
		}
		a, nothingRead, err := tr.exchange(ctx, pc, t, req, userAgent, deadline)
		if err == nil {
			return a, nil
		}
		// A kept-alive connection the host closed just now (or, where
		// connUsable cannot tell, any time) fails at once with nothing
		// answered; try once more on a new connection. The request was
		// not processed then (a host that answers nothing before closing
		// would get the same request again from the outbox's retry anyway).
		if !reused || !nothingRead || attempt > 0 || ctx.Err() != nil || isTimeout(err) {
			return answer{}, err
		}
	}
}

// exchange writes the request on pc and reads the answer. pc goes back to
// the pool if the answer left it clean, else it is closed.
func (tr *transport) exchange(ctx context.Context, pc *pconn, t *target, req *tilecast.Request, userAgent string, deadline time.Time) (a answer, nothingRead bool, err error) {
	pc.wbuf = appendRequest(pc.wbuf[:0], t, req, userAgent)
	if err := pc.conn.SetDeadline(deadline); err != nil {
		pc.close()
		return answer{}, true, err
	}
	// A cancelled ctx ends the exchange by moving the deadline to the past.
	stop := context.AfterFunc(ctx, func() { _ = pc.conn.SetDeadline(time.Unix(1, 0)) })
	keep := false
	defer func() {
		if !stop() && ctx.Err() != nil {
			keep = false // the deadline was moved; the connection is spoilt
		}
		if keep {
			tr.put(pc)
		} else {
			pc.close()
		}
	}()
	pc.lim.n, pc.lim.read = maxAnswerBytes, 0
	if _, err := pc.conn.Write(pc.wbuf); err != nil {
		return answer{}, true, err
	}
	// Wait for the answer's first bytes; the common answer arrives whole
	// and is read from the buffer by quickAnswer.
	if _, err := pc.br.Peek(1); err != nil {
		return answer{}, pc.lim.read == 0, err
	}
	if a, closing, ok := quickAnswer(pc.br); ok {
		keep = !closing && pc.br.Buffered() == 0
		return a, false, nil
	}
	var resp *http.Response
	for i := 0; ; i++ {
		resp, err = http.ReadResponse(pc.br, nil)
		if err != nil {
			return answer{}, pc.lim.read == 0, err
		}
		// Interim answers (100 Continue, 103 Early Hints) precede the
		// real one; 101 would switch protocols and is final.
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
		if i == maxInterim {
			return answer{}, false, fmt.Errorf("more than %d interim answers", maxInterim)
		}
	}
	// MPNS says everything in the status line and headers; the body is
	// drained so that the connection can carry the next request, unless
	// it is longer than any MPNS answer, which is not worth reading.
	n, err := io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBody+1))
	if err == nil && n <= maxResponseBody {
		_ = resp.Body.Close()
		keep = !resp.Close && pc.br.Buffered() == 0 && resp.StatusCode != http.StatusSwitchingProtocols
	}
	return answer{status: resp.StatusCode, header: resp.Header}, false, nil
}

// conn returns an idle connection to t's host or, if there is none or
// fresh is set, dials one.
func (tr *transport) conn(ctx context.Context, t *target, deadline time.Time, fresh bool) (pc *pconn, reused bool, err error) {
	if !fresh {
		if pc := tr.get(t.key); pc != nil {
			return pc, true, nil
		}
	}
	dctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	raw, err := tr.dial(dctx, "tcp", t.addr)
	if err != nil {
		return nil, false, err
	}
	c := raw
	if t.tls {
		cfg := tr.tlsConf.Clone()
		cfg.ServerName = t.serverName
		cfg.NextProtos = []string{"http/1.1"}
		tc := tls.Client(raw, cfg)
		if err := tc.HandshakeContext(dctx); err != nil {
			_ = raw.Close()
			return nil, false, fmt.Errorf("tls handshake: %w", err)
		}
		c = tc
	}
	pc = &pconn{key: t.key, raw: raw, conn: c}
	pc.lim.r = c
	pc.br = bufio.NewReaderSize(&pc.lim, 4<<10)
	return pc, false, nil
}

// get takes the most recently used idle connection of key, dropping the
// ones idle too long or no longer usable.
func (tr *transport) get(key string) *pconn {
	for {
		pc := tr.pop(key)
		if pc == nil {
			return nil
		}
		if time.Since(pc.idleAt) < tr.idleTimeout && connUsable(pc.raw) {
			return pc
		}
		pc.close()
	}
}

func (tr *transport) pop(key string) *pconn {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	list := tr.idle[key]
	if len(list) == 0 {
		return nil
	}
	pc := list[len(list)-1]
	list[len(list)-1] = nil
	if list = list[:len(list)-1]; len(list) == 0 {
		delete(tr.idle, key)
	} else {
		tr.idle[key] = list
	}
	tr.nIdle--
	return pc
}

// put keeps pc for the next request to its host, within the pool's limits.
func (tr *transport) put(pc *pconn) {
	now := time.Now()
	pc.idleAt = now
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if now.Sub(tr.lastSweep) > tr.idleTimeout/2 {
		tr.lastSweep = now
		tr.sweepLocked(now.Add(-tr.idleTimeout))
	}
	if len(tr.idle[pc.key]) >= tr.maxIdleHost || tr.nIdle >= tr.maxIdle {
		pc.close()
		return
	}
	if tr.idle == nil {
		tr.idle = make(map[string][]*pconn)
	}
	tr.idle[pc.key] = append(tr.idle[pc.key], pc)
	tr.nIdle++
}

// sweepLocked closes the idle connections unused since before, so that
// hosts no longer pushed to do not hold sockets forever.
func (tr *transport) sweepLocked(before time.Time) {
	for key, list := range tr.idle {
		kept := list[:0]
		for _, pc := range list {
			if pc.idleAt.Before(before) {
				pc.close()
				tr.nIdle--
				continue
			}
			kept = append(kept, pc)
		}
		clear(list[len(kept):])
		if len(kept) == 0 {
			delete(tr.idle, key)
		} else {
			tr.idle[key] = kept
		}
	}
}

// closeIdle closes every idle connection.
func (tr *transport) closeIdle() {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.sweepLocked(time.Now().Add(time.Hour))
}

func isTimeout(err error) bool {
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded)
}
