package web

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"os"
	"strconv"
	"strings"

	"golang.org/x/time/rate"
)

// apiKey is a key of the keys file as the server keeps it: only its
// SHA-256 digest, which has one length, so comparing digests leaks nothing
// about a key's length.
type apiKey struct {
	sum  [32]byte
	role Role
}

// ReloadKeys re-reads the API keys file (the daemon calls it on SIGHUP).
// On error the keys in use stay in place. With no keys file (API disabled)
// it does nothing.
func (s *Server) ReloadKeys() error {
	if s.opts.APIKeysFile == "" {
		return nil
	}
	entries, err := ReadKeyFile(s.opts.APIKeysFile)
	if err != nil {
		return err
	}
	keys := make([]apiKey, len(entries))
	short, admins := 0, 0
	for i, e := range entries {
		keys[i] = apiKey{sum: sha256.Sum256([]byte(e.Key)), role: e.Role}
		if e.Short() {
			short++
		}
		if e.Role == RoleAdmin {
			admins++
		}
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
	s.log.Info("api keys loaded", "file", s.opts.APIKeysFile, "admin", admins, "app", len(keys)-admins)

	// A dropped key loses its bucket; a kept key keeps its state so a
	// reload cannot be used to reset a limit.
	keep := make(map[[32]byte]bool, len(keys))
	for _, k := range keys {
		keep[k.sum] = true
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

// match returns the key that token equals. It compares against every key
// without stopping at a match, so the time taken does not tell which key
// (or which byte) matched.
func (s *Server) match(token string) (apiKey, bool) {
	sum := sha256.Sum256([]byte(token))
	s.keysMu.RLock()
	defer s.keysMu.RUnlock()
	found, idx := 0, 0
	for i := range s.keys {
		eq := subtle.ConstantTimeCompare(sum[:], s.keys[i].sum[:])
		idx = subtle.ConstantTimeSelect(eq, i, idx)
		found |= eq
	}
	if found == 0 {
		return apiKey{}, false
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

// authenticate checks the bearer key of a /v1 request and returns the key.
func (s *Server) authenticate(r *http.Request) (apiKey, *authError) {
	if len(r.Header.Values("Authorization")) > 1 {
		return apiKey{}, &authError{status: http.StatusUnauthorized, failed: true,
			msg: "more than one Authorization header", challenge: []string{`Bearer realm="tilecast"`}}
	}
	token, ok := bearer(r)
	if !ok {
		return apiKey{}, &authError{status: http.StatusUnauthorized, failed: true,
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

// failedAuth counts a request with missing or wrong credentials against its
// source address. When the address is throttled it returns the whole
// seconds to wait and false: answer 429 with Retry-After instead of 401.
// The dashboard's login and bearer paths may call it the same way.
func (s *Server) failedAuth(r *http.Request) (int, bool) {
	return s.failures.allow(r.RemoteAddr, s.now())
}

// allow takes a token from the bucket of the key with digest key at the
// server's clock. When the bucket is empty it returns the whole seconds to
// wait (≥ 1) and takes nothing.
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
