package wns

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tilecast/tilecast/netguard"
)

// Token endpoints and scopes of the two flows (protocols.md §3.1).
const (
	// ClassicTokenURL is the Live (UWP) flow's endpoint; its client_id is
	// the app's package SID (ms-app://s-1-15-2-…).
	ClassicTokenURL = "https://login.live.com/accesstoken.srf"
	ClassicScope    = "notify.windows.com"
	// EntraTokenURL is the Entra ID (Windows App SDK) flow's endpoint for
	// a tenant; its client_id is the Azure app registration's id.
	EntraTokenURL = "https://login.microsoftonline.com/%s/oauth2/v2.0/token"
	// EntraScope is the v2.0 scope; the stray trailing "/" of one
	// Microsoft sample is not used (protocols.md §3.1, CONFLICT).
	EntraScope = "https://wns.windows.com/.default"
)

// Token defaults.
const (
	// DefaultTokenTimeout bounds one token request.
	DefaultTokenTimeout = 30 * time.Second
	// DefaultTokenLifetime is assumed when a token answer has no usable
	// expires_in; a 401 renews it earlier if WNS disagrees.
	DefaultTokenLifetime = time.Hour
	// MaxTokenLifetime caps expires_in (Microsoft issues ~24 h tokens).
	MaxTokenLifetime = 48 * time.Hour
	// DefaultTokenRetryBase and DefaultTokenRetryMax bound the backoff
	// between failed token requests: 2 s, doubling, at most 5 min.
	DefaultTokenRetryBase = 2 * time.Second
	DefaultTokenRetryMax  = 5 * time.Minute
	// renewMargin is how long before expiry a token is renewed (at most a
	// fifth of its lifetime, for short-lived test tokens).
	renewMargin = 5 * time.Minute
	// sharedPeek is how often a source backing off after a failed
	// request looks in the shared cache for a token another instance
	// got (a statement, not a request to the endpoint).
	sharedPeek = 5 * time.Second
)

// maxTokenAnswer bounds the token endpoint's answer read.
const maxTokenAnswer = 64 << 10

// maxSecretFile bounds a client secret file: secrets are short.
const maxSecretFile = 4 << 10

// Credentials identify tilecast to WNS. Tenant chooses the flow: set, the
// Entra ID flow (ClientID is the Azure app id); empty, the classic flow
// (ClientID is the package SID).
type Credentials struct {
	ClientID string
	// Secret is the client secret (read by the caller, e.g. with
	// ReadSecret). It is copied; it never appears in a log line or an
	// error string.
	Secret   []byte
	Tenant   string
	TokenURL string // overrides the flow's endpoint (emulator, tests); "" uses it
}

// Endpoint returns the token URL and scope the credentials use.
func (c Credentials) Endpoint() (tokenURL, scope string) {
	if c.Tenant != "" {
		tokenURL, scope = fmt.Sprintf(EntraTokenURL, url.PathEscape(c.Tenant)), EntraScope
	} else {
		tokenURL, scope = ClassicTokenURL, ClassicScope
	}
	if c.TokenURL != "" {
		tokenURL = c.TokenURL
	}
	return tokenURL, scope
}

// TokenOptions configure a TokenSource. The zero value is usable.
type TokenOptions struct {
	// HTTPClient sends the token requests; nil means NewTokenClient with
	// its defaults. It is not the push client: the token endpoint is
	// Microsoft's, not a channel URI a device gave, so it is not behind
	// the push guard unless the caller builds it so.
	HTTPClient *http.Client
	// Timeout bounds each token request; 0 means DefaultTokenTimeout.
	Timeout time.Duration
	// AllowHTTP accepts an http:// token URL (the emulator, tests). By
	// default the URL must be https: it carries the client secret.
	AllowHTTP bool
	// RetryBase and RetryMax bound the backoff after failed token
	// requests; 0 means the defaults.
	RetryBase, RetryMax time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger is told about token requests and failures (never the secret
	// or the token); nil discards.
	Logger *slog.Logger
	// Shared, when set, is a token cache the instances sharing one state
	// use (design.md §10): before a token request the source takes a
	// token another instance saved there, if it is not due for renewal,
	// and a token it obtains is saved there. nil: each source requests
	// its own tokens.
	Shared TokenCache
}

// TokenCache keeps the access tokens of credentials for several
// processes: the PostgreSQL store implements it. key names the
// credentials (a hash of client id and token URL, never the secret).
// The token is a bearer secret for WNS: an implementation keeps it out of
// its errors and logs.
type TokenCache interface {
	// LoadWNSToken returns the token saved under key, its expiry and when
	// it is due for renewal; "" when there is none that has not expired.
	LoadWNSToken(ctx context.Context, key string) (token string, expires, renewAt time.Time, err error)
	// SaveWNSToken saves a token just obtained under key (unless a token
	// saved there expires later).
	SaveWNSToken(ctx context.Context, key, token string, expires, renewAt time.Time) error
	// DropWNSToken deletes the token saved under key if it is token (WNS
	// refused it), and only then: a newer one another process saved
	// meanwhile must stay.
	DropWNSToken(ctx context.Context, key, token string) error
}

// tokenKey is the TokenCache key of credentials: a SHA-256 of the client
// id and token URL. The secret is not part of it; a new secret for the
// same client gets tokens for the same client.
func tokenKey(c Credentials) string {
	tokenURL, _ := c.Endpoint()
	sum := sha256.Sum256([]byte(c.ClientID + "\n" + tokenURL))
	return hex.EncodeToString(sum[:])
}

// TokenClientOptions configure NewTokenClient.
type TokenClientOptions struct {
	// Guard puts the token requests behind the push guard (netguard),
	// refusing loopback and private addresses; off by default, as the
	// endpoint is configured by the operator, not sent by a device.
	Guard  bool
	Policy netguard.Policy // with Guard: nil means netguard.Prohibited
	// RootCAs verifies the endpoint; nil means the system roots.
	RootCAs *x509.CertPool
}

// NewTokenClient returns an http.Client for token requests: proxies from
// the environment (a corporate proxy to login.microsoftonline.com is
// normal), TLS 1.2 or newer, and redirects not followed (a redirect
// would carry the secret elsewhere).
func NewTokenClient(o TokenClientOptions) *http.Client {
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	if o.Guard {
		netguard.Dialer(dialer, o.Policy)
	}
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         dialer.DialContext,
		TLSClientConfig:     &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: o.RootCAs},
		ForceAttemptHTTP2:   true,
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     90 * time.Second,
	}
	if o.Guard {
		tr.Proxy = nil // the guard must see the endpoint's own address
	}
	return &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// TokenSource gets the WNS access token of one set of credentials and
// shares it among all sends: one request while any number of sends wait
// for it, the token reused until shortly before it expires (then renewed
// in the background while sends go on with the old one), and renewed at
// once when a send reports it refused (Invalidate). After a failed request
// it waits (2 s doubling to 5 min) before the next, and sends meanwhile
// get the last error at once (with a shared cache, once every 5 s a send
// first looks there for a token another instance got). It is safe for
// concurrent use.
type TokenSource struct {
	clientID string
	secret   []byte
	tokenURL string
	scope    string
	hc       *http.Client
	timeout  time.Duration
	base     time.Duration
	maxWait  time.Duration
	now      func() time.Time
	log      *slog.Logger
	shared   TokenCache
	key      string // in shared

	mu       sync.Mutex
	bad      string // the token last invalidated: dropped from shared, never taken from it again
	tok      string
	expires  time.Time
	renewAt  time.Time
	fetching chan struct{} // non-nil while a request runs; closed when it ends
	fails    int           // consecutive failed requests
	lastErr  error
	nextTry  time.Time // after a failure, no request before this
	peekAt   time.Time // meanwhile, no look in the shared cache before this
}

// NewTokenSource returns a TokenSource for c. It makes no request until a
// token is first asked for.
func NewTokenSource(c Credentials, o TokenOptions) (*TokenSource, error) {
	if c.ClientID == "" {
		return nil, errors.New("wns: no client id")
	}
	if len(c.Secret) == 0 {
		return nil, errors.New("wns: no client secret")
	}
	tokenURL, scope := c.Endpoint()
	u, err := url.Parse(tokenURL)
	if err != nil || u.Host == "" || (u.Scheme != "https" && !(o.AllowHTTP && u.Scheme == "http")) {
		return nil, fmt.Errorf("wns: token url %q: want an absolute https URL", tokenURL)
	}
	s := &TokenSource{
		clientID: c.ClientID,
		secret:   bytes.Clone(c.Secret),
		tokenURL: tokenURL,
		scope:    scope,
		hc:       o.HTTPClient,
		timeout:  o.Timeout,
		base:     o.RetryBase,
		maxWait:  o.RetryMax,
		now:      o.Now,
		log:      o.Logger,
		shared:   o.Shared,
		key:      tokenKey(c),
	}
	if s.hc == nil {
		s.hc = NewTokenClient(TokenClientOptions{})
	}
	if s.timeout <= 0 {
		s.timeout = DefaultTokenTimeout
	}
	if s.base <= 0 {
		s.base = DefaultTokenRetryBase
	}
	if s.maxWait <= 0 {
		s.maxWait = DefaultTokenRetryMax
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("component", "wns")
	return s, nil
}

// URL is the token endpoint the source uses.
func (s *TokenSource) URL() string { return s.tokenURL }

// TokenError is a failed token request. RetryAt is the earliest time the
// source asks again.
type TokenError struct {
	Err     error
	RetryAt time.Time
}

func (e *TokenError) Error() string { return e.Err.Error() }
func (e *TokenError) Unwrap() error { return e.Err }

// Token returns a valid access token, requesting one if there is none,
// or waiting for the request already under way. The request itself is not
// bound to ctx (another send may be waiting for it); ctx only bounds the
// wait. A failure is a *TokenError.
func (s *TokenSource) Token(ctx context.Context) (string, error) {
	s.mu.Lock()
	for {
		now := s.now()
		if s.tok != "" && now.Before(s.expires) {
			if !now.Before(s.renewAt) && s.fetching == nil && !now.Before(s.nextTry) {
				s.startLocked(false) // renew in the background; this send uses the old one
			}
			tok := s.tok
			s.mu.Unlock()
			return tok, nil
		}
		if s.fetching == nil {
			switch {
			case !now.Before(s.nextTry):
				s.startLocked(false)
			case s.shared != nil && !now.Before(s.peekAt):
				// Backing off after a failed request: another
				// instance may have got a token meanwhile.
				s.peekAt = now.Add(sharedPeek)
				s.startLocked(true)
			default:
				err := &TokenError{Err: s.lastErr, RetryAt: s.nextTry}
				s.mu.Unlock()
				return "", err
			}
		}
		done := s.fetching
		s.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
			return "", fmt.Errorf("wns: waiting for an access token: %w", ctx.Err())
		}
		s.mu.Lock()
		if s.tok == "" && s.fetching == nil && s.lastErr != nil && s.now().Before(s.nextTry) {
			err := &TokenError{Err: s.lastErr, RetryAt: s.nextTry}
			s.mu.Unlock()
			return "", err
		}
	}
}

// Invalidate drops tok if it is still the current token, because WNS
// refused it (401): the next Token requests a new one. A token already
// replaced is left alone, so that many sends refused with the same stale
// token cause one request.
func (s *TokenSource) Invalidate(tok string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if tok != "" && s.tok == tok {
		s.tok = ""
		s.expires = time.Time{}
		s.bad = tok // the next request drops it from the shared cache
	}
}

// Degraded reports whether the token endpoint's last answer was a failure
// (sends go on with a still-valid token as long as there is one), and why.
func (s *TokenSource) Degraded() (bool, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fails == 0 {
		return false, ""
	}
	return true, fmt.Sprintf("wns token endpoint failing (%d in a row, next try %s): %v",
		s.fails, s.nextTry.UTC().Format(time.RFC3339), s.lastErr)
}

// startLocked starts getting the next token (renew); cacheOnly, only
// from the shared cache, with no request.
func (s *TokenSource) startLocked(cacheOnly bool) {
	done := make(chan struct{})
	s.fetching = done
	go s.renew(done, s.bad, s.tok, cacheOnly)
}

// renew gets the next token: from the shared cache when another instance
// saved one that is not due for renewal (and is neither bad, the token
// WNS refused, nor cur, the one being renewed), else with a request. A
// new token is saved to the shared cache before done is closed: once a
// Token call returns it, the other instances find it.
func (s *TokenSource) renew(done chan struct{}, bad, cur string, cacheOnly bool) {
	var save func()
	defer func() {
		if save != nil {
			save()
		}
		close(done)
	}()
	if s.shared != nil && s.fromShared(bad, cur) {
		return
	}
	if cacheOnly {
		s.mu.Lock()
		s.fetching = nil
		s.mu.Unlock()
		return
	}
	tok, life, err := s.fetch()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fetching = nil
	now := s.now()
	if err != nil {
		s.fails++
		s.lastErr = err
		wait := s.maxWait
		if s.fails <= 30 {
			wait = min(s.base*time.Duration(1<<(s.fails-1)), s.maxWait)
		}
		s.nextTry = now.Add(wait)
		s.log.Warn("wns access token request failed", "url", s.tokenURL, "failures", s.fails,
			"retry_in", wait, "error", err.Error())
		return
	}
	if s.fails > 0 {
		s.log.Info("wns token endpoint recovered", "url", s.tokenURL, "failures", s.fails)
	}
	s.fails, s.lastErr, s.nextTry = 0, nil, time.Time{}
	s.tok, s.bad = tok, ""
	s.expires = now.Add(life)
	s.renewAt = s.expires.Add(-min(renewMargin, life/5))
	s.log.Info("wns access token obtained", "url", s.tokenURL, "expires_in", life)
	if s.shared != nil {
		expires, renewAt := s.expires, s.renewAt
		save = func() {
			ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
			defer cancel()
			if err := s.shared.SaveWNSToken(ctx, s.key, tok, expires, renewAt); err != nil {
				s.log.Warn("wns access token not shared with the other instances", "url", s.tokenURL, "error", err.Error())
			}
		}
	}
}

// fromShared drops bad from the shared cache (compare and delete: a newer
// token stays) and takes the token there if it is good for a while yet,
// reporting whether it did. A failing cache is logged and leaves the
// source to request its own token.
func (s *TokenSource) fromShared(bad, cur string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	if bad != "" {
		if err := s.shared.DropWNSToken(ctx, s.key, bad); err != nil {
			s.log.Warn("wns refused access token not dropped from the shared cache", "url", s.tokenURL, "error", err.Error())
		}
	}
	tok, expires, renewAt, err := s.shared.LoadWNSToken(ctx, s.key)
	if err != nil {
		s.log.Warn("wns shared access token unavailable: requesting one", "url", s.tokenURL, "error", err.Error())
		return false
	}
	now := s.now()
	if tok == "" || tok == bad || tok == cur || !now.Before(renewAt) || !now.Before(expires) {
		return false
	}
	for i := 0; i < len(tok); i++ {
		if c := tok[i]; c <= ' ' || c >= 0x7f {
			return false // not a token a header can carry: request a good one
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fetching = nil
	if s.fails > 0 {
		s.log.Info("wns token endpoint failures end: another instance obtained a token", "url", s.tokenURL, "failures", s.fails)
	}
	s.fails, s.lastErr, s.nextTry = 0, nil, time.Time{}
	s.tok, s.bad = tok, ""
	s.expires, s.renewAt = expires, renewAt
	s.log.Info("wns access token taken from the shared cache", "url", s.tokenURL, "expires_in", expires.Sub(now).Round(time.Second))
	return true
}

// tokenAnswer is the JSON both flows answer with.
type tokenAnswer struct {
	AccessToken string          `json:"access_token"`
	TokenType   string          `json:"token_type"`
	ExpiresIn   json.RawMessage `json:"expires_in"` // a number, or a string in the Entra sample
	Error       string          `json:"error"`
	Description string          `json:"error_description"`
}

// fetch makes one token request. Errors never contain the secret: the
// request carries it only in its body, and whatever the endpoint echoes
// back is redacted.
func (s *TokenSource) fetch() (string, time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	// The classic endpoint's parameters in wns 0.5.4's order, so that the
	// body matches its capture byte for byte (url.Values would sort them).
	body := "grant_type=client_credentials&client_id=" + url.QueryEscape(s.clientID) +
		"&client_secret=" + url.QueryEscape(string(s.secret)) + "&scope=" + url.QueryEscape(s.scope)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.tokenURL, strings.NewReader(body))
	if err != nil {
		return "", 0, s.errorf("build request: %v", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := s.hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", 0, s.errorf("%v", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenAnswer+1))
	if err != nil {
		return "", 0, s.errorf("http %d: read answer: %v", resp.StatusCode, err)
	}
	if len(data) > maxTokenAnswer {
		return "", 0, s.errorf("http %d: answer over %d bytes", resp.StatusCode, maxTokenAnswer)
	}
	var a tokenAnswer
	jsonErr := json.Unmarshal(data, &a)
	if resp.StatusCode != http.StatusOK {
		reason := ""
		switch {
		case jsonErr == nil && a.Error != "":
			reason = a.Error
			if a.Description != "" {
				reason += ": " + a.Description
			}
		case len(data) > 0:
			reason = string(data)
		}
		if reason == "" {
			return "", 0, s.errorf("http %d", resp.StatusCode)
		}
		return "", 0, s.errorf("http %d: %s", resp.StatusCode, reason)
	}
	if jsonErr != nil {
		return "", 0, s.errorf("answer is not the token JSON: %v", jsonErr)
	}
	if a.AccessToken == "" {
		return "", 0, s.errorf("answer has no access_token")
	}
	for i := 0; i < len(a.AccessToken); i++ {
		if c := a.AccessToken[i]; c <= ' ' || c >= 0x7f {
			return "", 0, s.errorf("access_token has a character a header cannot carry")
		}
	}
	if a.TokenType != "" && !strings.EqualFold(a.TokenType, "bearer") {
		return "", 0, s.errorf("token_type %q, want bearer", clean(a.TokenType, 40))
	}
	return a.AccessToken, lifetime(a.ExpiresIn), nil
}

// lifetime reads expires_in, a number of seconds or a string holding one.
func lifetime(raw json.RawMessage) time.Duration {
	v := strings.Trim(strings.TrimSpace(string(raw)), `"`)
	secs, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || secs <= 0 || math.IsNaN(secs) {
		return DefaultTokenLifetime
	}
	if secs >= MaxTokenLifetime.Seconds() {
		return MaxTokenLifetime
	}
	return time.Duration(secs * float64(time.Second))
}

// errorf builds a token error naming the endpoint, with the secret (as
// sent and URL-encoded) cut out of whatever the endpoint or the network
// error said, and control characters removed.
func (s *TokenSource) errorf(format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if sec := string(s.secret); sec != "" {
		msg = strings.ReplaceAll(msg, sec, "[redacted]")
		msg = strings.ReplaceAll(msg, url.QueryEscape(sec), "[redacted]")
	}
	return fmt.Errorf("wns token endpoint %s: %s", s.tokenURL, clean(msg, 300))
}

// ReadSecret reads a client secret file (push.wns.client_secret_file):
// its bytes without trailing white space (the newline an editor adds). An
// empty file is an error. The error names the file, never its content.
func ReadSecret(path string) ([]byte, error) {
	fail := func(err error) error {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is named once, below
		}
		return fmt.Errorf("wns client secret %s: %w", path, err)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fail(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fail(err)
	}
	if !st.Mode().IsRegular() {
		return nil, fail(errors.New("not a regular file"))
	}
	data, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return nil, fail(err)
	}
	if len(data) > maxSecretFile {
		return nil, fail(fmt.Errorf("over %d bytes, not a secret", maxSecretFile))
	}
	data = bytes.TrimRight(data, " \t\r\n")
	if len(data) == 0 {
		return nil, fail(errors.New("empty"))
	}
	return data, nil
}
