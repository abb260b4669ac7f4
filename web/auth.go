package web

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"

	"golang.org/x/time/rate"
)

// ReloadKeys re-reads the API keys file (the daemon calls it on SIGHUP).
// On error the keys in use stay in place. With no keys file (API disabled)
// it does nothing.
func (s *Server) ReloadKeys() error {
	if s.opts.APIKeysFile == "" {
		return nil
	}
	keys, short, err := readKeys(s.opts.APIKeysFile)
	if err != nil {
		return err
	}
	if len(keys) == 0 {
		s.log.Warn("api keys file has no keys: every /v1 request will be refused", "file", s.opts.APIKeysFile)
	}
	if short > 0 {
		// Failed guesses are throttled per address, but a valid guess is
		// still accepted (ratelimit_ip.go): only length protects a key.
		s.log.Warn("api keys file has short keys: use at least 128 random bits", "file", s.opts.APIKeysFile,
			"keys", short, "min_chars", minKeyChars)
	}
	if fi, err := os.Stat(s.opts.APIKeysFile); err == nil && fi.Mode().Perm()&0o077 != 0 {
		s.log.Warn("api keys file is readable by group or others", "file", s.opts.APIKeysFile,
			"mode", fi.Mode().Perm().String())
	}
	s.keysMu.Lock()
	s.keys = keys
	s.keysMu.Unlock()

	// A dropped key loses its bucket; a kept key keeps its state so a
	// reload cannot be used to reset a limit.
	keep := make(map[[32]byte]bool, len(keys))
	for _, k := range keys {
		keep[k] = true
	}
	s.limitMu.Lock()
	for k := range s.limiters {
		if !keep[k] {
			delete(s.limiters, k)
		}
	}
	s.limitMu.Unlock()
	return nil
}

// minKeyChars is the shortest key that can hold 128 random bits (base64).
const minKeyChars = 22

// readKeys reads one key per line; blank lines and lines starting with #
// are ignored. Only SHA-256 digests are kept in memory: they have one
// length, so comparing them leaks nothing about a key's length. short
// counts the keys under minKeyChars.
func readKeys(path string) (keys [][32]byte, short int, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, fmt.Errorf("read api keys file: %w (create it with one key per line, or set http.api_keys_file = \"\" to disable the API)", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		// The error never quotes the line: it is a secret.
		if strings.ContainsFunc(line, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			return nil, 0, fmt.Errorf("api keys file %s:%d: a key must not contain spaces or control characters", path, n)
		}
		if len(line) < minKeyChars {
			short++
		}
		keys = append(keys, sha256.Sum256([]byte(line)))
	}
	if err := sc.Err(); err != nil {
		return nil, 0, fmt.Errorf("read api keys file: %w", err)
	}
	return keys, short, nil
}

// match returns the digest of the key that token equals. It compares
// against every key without stopping at a match, so the time taken does not
// tell which key (or which byte) matched.
func (s *Server) match(token string) ([32]byte, bool) {
	sum := sha256.Sum256([]byte(token))
	s.keysMu.RLock()
	defer s.keysMu.RUnlock()
	found, idx := 0, 0
	for i := range s.keys {
		eq := subtle.ConstantTimeCompare(sum[:], s.keys[i][:])
		idx = subtle.ConstantTimeSelect(eq, i, idx)
		found |= eq
	}
	if found == 0 {
		return [32]byte{}, false
	}
	return s.keys[idx], true
}

// bearer returns the token of an "Authorization: Bearer TOKEN" header.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// authError is a refused authentication.
type authError struct {
	status    int
	msg       string
	challenge []string // WWW-Authenticate values of a 401
	retry     int      // Retry-After seconds, when > 0
	// failed marks missing or wrong credentials: they count against the
	// source address (see ratelimit_ip.go).
	failed bool
}

func (e *authError) write(w http.ResponseWriter) {
	for _, c := range e.challenge {
		w.Header().Add("WWW-Authenticate", c)
	}
	if e.retry > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.retry))
	}
	writeError(w, e.status, e.msg)
}

// authenticate checks the bearer key of a /v1 request and returns the
// key's digest.
func (s *Server) authenticate(r *http.Request) ([32]byte, *authError) {
	if len(r.Header.Values("Authorization")) > 1 {
		return [32]byte{}, &authError{status: http.StatusUnauthorized, failed: true,
			msg: "more than one Authorization header", challenge: []string{`Bearer realm="tilecast"`}}
	}
	token, ok := bearer(r)
	if !ok {
		return [32]byte{}, &authError{status: http.StatusUnauthorized, failed: true,
			msg:       "missing api key: send Authorization: Bearer KEY",
			challenge: []string{`Bearer realm="tilecast"`}}
	}
	key, ok := s.match(token)
	if !ok {
		return key, &authError{status: http.StatusUnauthorized, failed: true, msg: "invalid api key",
			challenge: []string{`Bearer realm="tilecast", error="invalid_token"`}}
	}
	return key, nil
}

// authed guards a /v1 route: API enabled, valid credentials (else the
// source address's failure limit), then the key's rate limit.
func (s *Server) authed(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.opts.APIKeysFile == "" {
			writeError(w, http.StatusServiceUnavailable, "api disabled: set http.api_keys_file")
			return
		}
		key, aerr := s.authenticate(r)
		if aerr != nil {
			if aerr.failed {
				if wait, ok := s.failedAuth(r); !ok {
					aerr = &authError{status: http.StatusTooManyRequests, retry: wait,
						msg: fmt.Sprintf("too many failed authentications from this address: retry in %d s", wait)}
				}
			}
			aerr.write(w)
			return
		}
		if wait, ok := s.allow(key); !ok {
			w.Header().Set("Retry-After", strconv.Itoa(wait))
			writeError(w, http.StatusTooManyRequests, fmt.Sprintf("rate limited: retry in %d s", wait))
			return
		}
		h(w, r)
	})
}

// failedAuth counts a request with missing or wrong credentials against its
// source address. When the address is throttled it returns the whole
// seconds to wait and false: answer 429 with Retry-After instead of 401.
// The dashboard's login and bearer paths may call it the same way.
func (s *Server) failedAuth(r *http.Request) (int, bool) {
	return s.failures.allow(r.RemoteAddr, s.now())
}

// allow takes a token from key's bucket at the server's clock. When the
// bucket is empty it returns the whole seconds to wait (≥ 1) and takes nothing.
func (s *Server) allow(key [32]byte) (int, bool) {
	now := s.now()
	s.limitMu.Lock()
	l := s.limiters[key]
	if l == nil {
		l = rate.NewLimiter(rate.Limit(s.opts.RatePerSecond), s.opts.Burst)
		s.limiters[key] = l
	}
	s.limitMu.Unlock()
	return take(l, now)
}
