package web

// Signed requests: an alternative to the bearer key for /v1 clients that do
// not want to send the key itself, only proof that they hold it.
//
// A client sends
//
//	Authorization: TC-HMAC-SHA256 ts=<unix seconds>, nonce=<nonce>, sig=<hex>
//
// where
//
//   - ts is the client's clock in decimal Unix seconds (digits only, at most
//     12); the server refuses a request more than SignatureWindow (5 min)
//     from its own clock;
//   - nonce is 16 to 64 characters from A–Z a–z 0–9 '-' '_', fresh for every
//     request, so two identical requests in the same second sign differently;
//   - sig is the lowercase (uppercase is accepted) hex HMAC-SHA256, keyed
//     with the 32-byte SHA-256 digest of the API key, of
//
//     METHOD "\n" TARGET "\n" ts "\n" nonce "\n" hex(SHA-256(body))
//
//     METHOD is the request method as sent ("POST"); TARGET is the path and
//     query exactly as on the request line, percent-encoding unchanged
//     ("/v1/channels?user=ann"); ts and nonce are the strings of the header;
//     the body hash is lowercase hex (an empty body hashes to e3b0c442…b855).
//
// The MAC key is the key's digest rather than the key because the server
// keeps only digests; the digest is therefore as secret as the key.
// Parameters are separated by commas with optional spaces, each appears
// exactly once, values are not quoted and unknown parameters are refused.
//
// The server reads the body (at most MaxBody bytes, else 413) before it
// verifies, tries the digest of every configured key, then remembers the
// signature until it leaves the window: a second request with the same
// signature is 401 even if it arrives over another connection. The memory is
// bounded (Options.ReplayCacheSize); when it is full of signatures still in
// their window the server answers 503 with Retry-After rather than grow or
// forget one early, since forgetting would let that request be replayed.
// A signed request refused by the key's rate limit (429) is not remembered,
// so the client may send it again after Retry-After while it is in the window.

import (
	"bytes"
	"container/heap"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Signed request settings.
const (
	// SignatureScheme is the Authorization scheme of a signed request.
	SignatureScheme = "TC-HMAC-SHA256"
	// SignatureWindow is how far a signed request's ts may be from the
	// server's clock, either way; a signature is remembered that long.
	SignatureWindow = 5 * time.Minute
	// DefaultReplayCacheSize is how many signatures are remembered when
	// Options.ReplayCacheSize is not set: a key at the default rate limit
	// signs at most 20/s × 600 s = 12,000 within a window.
	DefaultReplayCacheSize = 1 << 16
)

const (
	minNonce = 16
	maxNonce = 64
	maxTSLen = 12 // Unix seconds until the year 33658
)

// signedAuth is a parsed TC-HMAC-SHA256 authorization.
type signedAuth struct {
	ts    int64
	tsRaw string // as sent: it is what the client signed
	nonce string
	sig   [sha256.Size]byte
}

// parseSignedAuth parses the parameters after the scheme. Its errors name
// what is wrong but never quote a value.
func parseSignedAuth(params string) (signedAuth, error) {
	var p signedAuth
	var haveTS, haveNonce, haveSig bool
	for part := range strings.SplitSeq(params, ",") {
		part = strings.Trim(part, " \t")
		name, val, ok := strings.Cut(part, "=")
		if part == "" || !ok {
			return p, errors.New("want ts=…, nonce=…, sig=… separated by commas")
		}
		switch name {
		case "ts":
			if haveTS {
				return p, errors.New("ts given twice")
			}
			haveTS = true
			if val == "" || len(val) > maxTSLen || strings.ContainsFunc(val, func(r rune) bool { return r < '0' || r > '9' }) {
				return p, fmt.Errorf("ts must be Unix seconds: 1 to %d digits", maxTSLen)
			}
			p.ts, _ = strconv.ParseInt(val, 10, 64) // cannot fail: at most 12 digits
			p.tsRaw = val
		case "nonce":
			if haveNonce {
				return p, errors.New("nonce given twice")
			}
			haveNonce = true
			if len(val) < minNonce || len(val) > maxNonce || strings.ContainsFunc(val, notURLSafe) {
				return p, fmt.Errorf("nonce must be %d to %d characters of A-Z a-z 0-9 - _", minNonce, maxNonce)
			}
			p.nonce = val
		case "sig":
			if haveSig {
				return p, errors.New("sig given twice")
			}
			haveSig = true
			if len(val) != hex.EncodedLen(sha256.Size) {
				return p, fmt.Errorf("sig must be %d hex digits", hex.EncodedLen(sha256.Size))
			}
			if _, err := hex.Decode(p.sig[:], []byte(val)); err != nil {
				return p, fmt.Errorf("sig must be %d hex digits", hex.EncodedLen(sha256.Size))
			}
		default:
			return p, fmt.Errorf("unknown parameter %.32q: want ts, nonce and sig", name)
		}
	}
	switch {
	case !haveTS:
		return p, errors.New("no ts")
	case !haveNonce:
		return p, errors.New("no nonce")
	case !haveSig:
		return p, errors.New("no sig")
	}
	return p, nil
}

func notURLSafe(r rune) bool {
	return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_')
}

// signingTarget is the path and query as the client sent them. A request
// line in absolute form ("GET http://host/v1/status") signs only its path
// and query too.
func signingTarget(r *http.Request) string {
	if strings.HasPrefix(r.RequestURI, "/") {
		return r.RequestURI
	}
	return r.URL.RequestURI()
}

// stringToSign is what the client's MAC covers (see the file comment).
func stringToSign(method, target, ts, nonce string, body []byte) []byte {
	sum := sha256.Sum256(body)
	var b bytes.Buffer
	b.Grow(len(method) + len(target) + len(ts) + len(nonce) + 4 + hex.EncodedLen(len(sum)))
	for _, s := range []string{method, "\n", target, "\n", ts, "\n", nonce, "\n", hex.EncodeToString(sum[:])} {
		b.WriteString(s)
	}
	return b.Bytes()
}

// matchSignature returns the digest of the key whose MAC of msg is sig. Like
// match it computes and compares the MAC of every key without stopping, so
// the time does not tell which key (or which byte of sig) matched.
// subtle.ConstantTimeCompare is what hmac.Equal calls; its int result
// selects the key without a branch.
func (s *Server) matchSignature(msg []byte, sig [sha256.Size]byte) ([32]byte, bool) {
	s.keysMu.RLock()
	defer s.keysMu.RUnlock()
	found, idx := 0, 0
	for i := range s.keys {
		m := hmac.New(sha256.New, s.keys[i][:])
		m.Write(msg)
		eq := subtle.ConstantTimeCompare(m.Sum(nil), sig[:])
		idx = subtle.ConstantTimeSelect(eq, i, idx)
		found |= eq
	}
	if found == 0 {
		return [32]byte{}, false
	}
	return s.keys[idx], true
}

// verifySigned authenticates a TC-HMAC-SHA256 request: parse, clock window,
// body, MAC, then the replay cache. On success the body is readable again
// for the handler, and release forgets the signature (for a request that
// is then refused before it does anything).
func (s *Server) verifySigned(w http.ResponseWriter, r *http.Request, params string) (key [32]byte, release func(), aerr *authError) {
	p, err := parseSignedAuth(params)
	if err != nil {
		return key, nil, signedFailure("malformed " + SignatureScheme + " authorization: " + err.Error())
	}
	now := s.now().Unix()
	window := int64(SignatureWindow / time.Second)
	if skew := now - p.ts; skew > window {
		return key, nil, signedFailure(fmt.Sprintf("signature ts is %d s behind the server's clock; at most %d s is accepted", skew, window))
	} else if skew < -window {
		return key, nil, signedFailure(fmt.Sprintf("signature ts is %d s ahead of the server's clock; at most %d s is accepted", -skew, window))
	}
	body, aerr := readBody(w, r)
	if aerr != nil {
		return key, nil, aerr
	}
	key, ok := s.matchSignature(stringToSign(r.Method, signingTarget(r), p.tsRaw, p.nonce, body), p.sig)
	if !ok {
		return key, nil, signedFailure("invalid signature")
	}
	switch wait, res := s.replay.claim(p.sig, p.ts+window, now); res {
	case claimSeen:
		return key, nil, signedFailure("replayed request: this signature was already used")
	case claimFull:
		s.log.Warn("signed request refused: replay cache full", "size", s.replay.max)
		return key, nil, &authError{status: http.StatusServiceUnavailable,
			msg: fmt.Sprintf("too many signed requests in the last %d s: retry in %d s", 2*window, wait), retry: wait}
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	return key, func() { s.replay.release(p.sig) }, nil
}

func signedFailure(msg string) *authError {
	return &authError{status: http.StatusUnauthorized, msg: msg, failed: true,
		challenge: []string{SignatureScheme + ` realm="tilecast"`}}
}

// readBody reads the whole body, at most MaxBody bytes. A read that fails
// for another reason (the client stalled past ReadTimeout, or hung up) is
// 400: nothing was verified, so nothing runs.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, *authError) {
	tooLarge := &authError{status: http.StatusRequestEntityTooLarge,
		msg: fmt.Sprintf("request body is larger than %d bytes", MaxBody)}
	if r.ContentLength > MaxBody {
		w.Header().Set("Connection", "close") // do not read it to reuse the connection
		return nil, tooLarge
	}
	if r.Body == nil {
		return nil, nil
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			w.Header().Set("Connection", "close")
			return nil, tooLarge
		}
		return nil, &authError{status: http.StatusBadRequest, msg: "could not read the request body"}
	}
	return body, nil
}

// replayCache remembers the signatures of accepted signed requests until
// their ts leaves the window. A min-heap by expiry makes dropping the
// expired ones cheap on every claim; the map answers "seen?".
type replayCache struct {
	max  int
	mu   sync.Mutex
	seen map[[sha256.Size]byte]*replayEntry
	heap replayHeap
}

type replayEntry struct {
	sig [sha256.Size]byte
	exp int64 // Unix seconds after which the signature's ts is out of the window
	idx int   // position in the heap
}

type claimResult int

const (
	claimOK claimResult = iota
	claimSeen
	claimFull
)

func newReplayCache(max int) *replayCache {
	return &replayCache{max: max, seen: map[[sha256.Size]byte]*replayEntry{}}
}

// claim records sig, valid until exp, at Unix time now. It refuses a sig
// already recorded, and when the cache is full of unexpired signatures it
// returns the seconds until the oldest expires.
func (c *replayCache) claim(sig [sha256.Size]byte, exp, now int64) (int, claimResult) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.heap) > 0 && c.heap[0].exp < now {
		delete(c.seen, heap.Pop(&c.heap).(*replayEntry).sig)
	}
	if _, ok := c.seen[sig]; ok {
		return 0, claimSeen
	}
	if len(c.seen) >= c.max {
		return int(max(1, c.heap[0].exp-now+1)), claimFull
	}
	e := &replayEntry{sig: sig, exp: exp}
	heap.Push(&c.heap, e)
	c.seen[sig] = e
	return 0, claimOK
}

// release forgets sig, claimed by a request that was then refused.
func (c *replayCache) release(sig [sha256.Size]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.seen[sig]; ok {
		heap.Remove(&c.heap, e.idx)
		delete(c.seen, sig)
	}
}

func (c *replayCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}

// replayHeap is a container/heap of entries, soonest expiry first.
type replayHeap []*replayEntry

func (h replayHeap) Len() int           { return len(h) }
func (h replayHeap) Less(i, j int) bool { return h[i].exp < h[j].exp }
func (h replayHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}
func (h *replayHeap) Push(x any) {
	e := x.(*replayEntry)
	e.idx = len(*h)
	*h = append(*h, e)
}
func (h *replayHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return e
}
