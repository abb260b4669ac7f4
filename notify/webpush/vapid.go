package webpush

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// maxKeyFile bounds a VAPID key file: a PEM EC key is about 250 bytes.
const maxKeyFile = 64 << 10

// VAPIDKey is the application server's P-256 key pair (RFC 8292): the
// private key signs the VAPID tokens, the public key is what the web app
// passes to pushManager.subscribe as applicationServerKey, so every
// subscription is bound to it. Its String and GoString show only the
// public key, so a key that reaches a log or an error shows nothing
// secret.
type VAPIDKey struct {
	priv *ecdsa.PrivateKey
	pub  []byte // uncompressed point
}

// PublicKey returns the public key as the browser takes it: the
// uncompressed point in unpadded base64url (what GET /v1/webpush/key
// serves and `tilecast vapid generate` prints).
func (k *VAPIDKey) PublicKey() string { return base64.RawURLEncoding.EncodeToString(k.pub) }

// PublicKeyBytes returns a copy of the uncompressed public point.
func (k *VAPIDKey) PublicKeyBytes() []byte { return bytes.Clone(k.pub) }

func (k *VAPIDKey) String() string   { return "VAPID key " + k.PublicKey() }
func (k *VAPIDKey) GoString() string { return "webpush.VAPIDKey{public: " + k.PublicKey() + "}" }

// MarshalPEM returns the private key as a PKCS#8 PEM block.
func (k *VAPIDKey) MarshalPEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k.priv)
	if err != nil {
		return nil, fmt.Errorf("webpush: marshal vapid key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func newVAPIDKey(priv *ecdsa.PrivateKey) (*VAPIDKey, error) {
	if priv.Curve != elliptic.P256() {
		return nil, fmt.Errorf("the key is on %s, VAPID needs P-256", priv.Curve.Params().Name)
	}
	pub, err := priv.PublicKey.Bytes()
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	return &VAPIDKey{priv: priv, pub: pub}, nil
}

// errKeyForms is appended to every key parsing error: what the file may hold.
const errKeyForms = "want the private key as npm web-push prints it (base64url, 43 characters), " +
	`web-push's JSON ({"publicKey":…,"privateKey":…}), or PEM ("PRIVATE KEY" PKCS#8 or "EC PRIVATE KEY" SEC 1)`

// ParseVAPIDKey reads a VAPID private key in any of the forms an operator
// may have it in, so that a move from npm web-push keeps the key every
// existing subscription was made with:
//   - the base64url private key npm web-push prints (32 bytes; 30 and 31
//     byte keys of old web-push versions are left-padded);
//   - web-push's `generate-vapid-keys --json` output, whose publicKey
//     must then match the private key;
//   - PEM: PKCS#8 "PRIVATE KEY" (what GenerateKey writes, and `openssl
//     genpkey`) or SEC 1 "EC PRIVATE KEY" (`openssl ecparam -genkey`; an
//     "EC PARAMETERS" block before it is skipped).
//
// The key must be on P-256. Errors never contain key material.
func ParseVAPIDKey(data []byte) (*VAPIDKey, error) {
	text := bytes.TrimSpace(data)
	switch {
	case len(text) == 0:
		return nil, fmt.Errorf("empty: %s", errKeyForms)
	case bytes.HasPrefix(text, []byte("-----BEGIN")):
		return parsePEMKey(text)
	case text[0] == '{':
		return parseJSONKey(text)
	}
	return parseRawKey(string(text))
}

func parsePEMKey(text []byte) (*VAPIDKey, error) {
	rest := text
	for {
		block, r := pem.Decode(rest)
		if block == nil {
			return nil, fmt.Errorf("no private key in the PEM data: %s", errKeyForms)
		}
		rest = r
		var (
			key any
			err error
		)
		switch block.Type {
		case "EC PARAMETERS":
			continue
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		default:
			return nil, fmt.Errorf("PEM block %q: %s", block.Type, errKeyForms)
		}
		if err != nil {
			return nil, fmt.Errorf("PEM %q: %w", block.Type, err)
		}
		priv, ok := key.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("PEM %q holds a %T, VAPID needs an EC P-256 key", block.Type, key)
		}
		return newVAPIDKey(priv)
	}
}

func parseJSONKey(text []byte) (*VAPIDKey, error) {
	var j struct {
		PublicKey  string `json:"publicKey"`
		PrivateKey string `json:"privateKey"`
	}
	if err := json.Unmarshal(text, &j); err != nil {
		return nil, fmt.Errorf("not web-push's JSON: %s", jsonMsg(err))
	}
	if j.PrivateKey == "" {
		return nil, errors.New("web-push JSON without a privateKey")
	}
	k, err := parseRawKey(j.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("privateKey: %w", err)
	}
	if j.PublicKey != "" && strings.TrimRight(j.PublicKey, "=") != k.PublicKey() {
		return nil, errors.New("publicKey does not belong to privateKey")
	}
	return k, nil
}

func parseRawKey(s string) (*VAPIDKey, error) {
	b, err := decodeKey("", s)
	if err != nil {
		var fe *FieldError
		if errors.As(err, &fe) {
			return nil, fmt.Errorf("%s: %s", fe.Msg, errKeyForms)
		}
		return nil, err
	}
	if len(b) < 30 || len(b) > 32 {
		return nil, fmt.Errorf("%d bytes, want a 32-byte P-256 private key: %s", len(b), errKeyForms)
	}
	if len(b) < 32 {
		b = append(make([]byte, 32-len(b)), b...)
	}
	priv, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), b)
	if err != nil {
		return nil, fmt.Errorf("not a P-256 private key: %w", err)
	}
	return newVAPIDKey(priv)
}

// LoadVAPIDKey reads a key file ([push.webpush] vapid_private_key_file)
// with ParseVAPIDKey. The file must be a regular file of at most 64 KiB.
// Errors name the path, never the contents.
func LoadVAPIDKey(path string) (*VAPIDKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("vapid key %s: %w", path, unwrapPath(err))
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("vapid key %s: %w", path, unwrapPath(err))
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("vapid key %s: not a regular file", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("vapid key %s: %w", path, unwrapPath(err))
	}
	if len(data) > maxKeyFile {
		return nil, fmt.Errorf("vapid key %s: larger than %d bytes, not a key file", path, maxKeyFile)
	}
	k, err := ParseVAPIDKey(data)
	clear(data)
	if err != nil {
		return nil, fmt.Errorf("vapid key %s: %w", path, err)
	}
	return k, nil
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// NewVAPIDKey makes a new P-256 VAPID key in memory: a stand-in signer
// for dry runs and previews without a configured key, and tests. Keys an
// operator keeps are made by GenerateKey.
func NewVAPIDKey() (*VAPIDKey, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("webpush: generate vapid key: %w", err)
	}
	k, err := newVAPIDKey(priv)
	if err != nil {
		return nil, fmt.Errorf("webpush: generate vapid key: %w", err)
	}
	return k, nil
}

// GenerateKey makes a new P-256 VAPID key, writes it to path as PKCS#8 PEM
// with mode 0600, and returns it (print its PublicKey for the web app).
// It refuses to overwrite an existing file: replacing the key orphans
// every subscription made with the old one.
func GenerateKey(path string) (*VAPIDKey, error) {
	k, err := NewVAPIDKey()
	if err != nil {
		return nil, err
	}
	data, err := k.MarshalPEM()
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("webpush: %s exists: not overwriting a VAPID key (every subscription made with it would stop working)", path)
		}
		return nil, fmt.Errorf("webpush: write vapid key: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return nil, fmt.Errorf("webpush: write vapid key: %w", err)
	}
	return k, nil
}

// CheckSubject validates a VAPID subject ([push.webpush] subject, the
// JWT's sub claim) the way Apple's push service does, which is the
// strictest: a "mailto:" URI with one real-looking address, or an "https:"
// URL of a real-looking host. Refused: a bare address (it needs
// "mailto:"), "mailto:" written twice (webpush-go's prefixing produced
// that, and Apple answers 403 BadJwtToken), a missing or repeated "@",
// hosts that cannot be a public site's (localhost, *.localhost, *.local,
// *.invalid, *.test, *.example, *.internal, IP addresses, names without a
// dot), white space and non-ASCII.
func CheckSubject(sub string) error {
	if sub == "" {
		return errors.New("missing: want mailto:you@example.org or https://your.site.example")
	}
	for i := 0; i < len(sub); i++ {
		if c := sub[i]; c <= ' ' || c >= 0x7f {
			return fmt.Errorf("%q: white space, control or non-ASCII byte at offset %d", sub, i)
		}
	}
	lower := strings.ToLower(sub)
	switch {
	case strings.HasPrefix(lower, "mailto:"):
		addr := sub[len("mailto:"):]
		if strings.HasPrefix(strings.ToLower(addr), "mailto:") {
			return fmt.Errorf("%q: mailto: is written twice (Apple refuses it)", sub)
		}
		if strings.ContainsAny(addr, "?,;<>()[]\\\"") {
			return fmt.Errorf("%q: want one plain address after the mailto: prefix", sub)
		}
		local, domain, ok := strings.Cut(addr, "@")
		switch {
		case !ok:
			return fmt.Errorf("%q: no @ in the address", sub)
		case strings.Contains(domain, "@"):
			return fmt.Errorf("%q: more than one @", sub)
		case local == "":
			return fmt.Errorf("%q: nothing before the @", sub)
		}
		if err := publicHost(domain); err != nil {
			return fmt.Errorf("%q: %w", sub, err)
		}
		return nil
	case strings.HasPrefix(lower, "https://"):
		u, err := url.Parse(sub)
		if err != nil {
			return fmt.Errorf("%q: not a URL", sub)
		}
		if u.User != nil {
			return fmt.Errorf("%q: must not contain userinfo", sub)
		}
		if err := publicHost(u.Hostname()); err != nil {
			return fmt.Errorf("%q: %w", sub, err)
		}
		return nil
	case strings.HasPrefix(lower, "http://"):
		return fmt.Errorf("%q: http is not accepted, want an https URL or a mailto address", sub)
	case strings.Contains(sub, "@") && !strings.Contains(sub, ":"):
		return fmt.Errorf("%q: want mailto:%s", sub, sub)
	}
	return fmt.Errorf("%q: want mailto:you@example.org or https://your.site.example", sub)
}

// reservedSuffixes are names that never belong to a public site (RFC 2606,
// RFC 6761, RFC 6762, ICANN's .internal).
var reservedSuffixes = [...]string{"localhost", "local", "invalid", "test", "example", "internal"}

// publicHost checks that a host could be a public site's: a DNS name with
// a dot, valid labels, an alphabetic top-level label, not reserved.
func publicHost(host string) error {
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	if h == "" {
		return errors.New("no host")
	}
	if _, err := netip.ParseAddr(strings.Trim(h, "[]")); err == nil {
		return fmt.Errorf("host %s is an address, want a domain name", host)
	}
	labels := strings.Split(h, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("host %s is not a valid domain name", host)
		}
		for i := 0; i < len(l); i++ {
			if c := l[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("host %s is not a valid domain name", host)
			}
		}
	}
	tld := labels[len(labels)-1]
	for _, r := range reservedSuffixes {
		if tld == r {
			return fmt.Errorf("host %s is not a public name (.%s is reserved)", host, r)
		}
	}
	if len(labels) < 2 {
		return fmt.Errorf("host %s has no dot: want a public domain name", host)
	}
	if len(tld) < 2 || strings.Trim(tld, "abcdefghijklmnopqrstuvwxyz") != "" && !strings.HasPrefix(tld, "xn--") {
		return fmt.Errorf("host %s does not end in a top-level domain", host)
	}
	return nil
}

// Token lifetimes.
const (
	// TokenLifetime is how far ahead a VAPID token's exp is set: RFC 8292
	// allows 24 h, Apple refuses more than a day, and 12 h (npm web-push's
	// default) keeps a margin for clock skew.
	TokenLifetime = 12 * time.Hour
	// maxTokenLifetime is the most SignerOptions.Lifetime may ask: the
	// default is already the longest tilecast signs.
	maxTokenLifetime = TokenLifetime
	// maxCachedOrigins bounds the token cache: push services are a
	// handful of origins, but endpoint hosts come from browsers.
	maxCachedOrigins = 1024
)

// SignerOptions configure NewSigner.
type SignerOptions struct {
	// Lifetime is how far ahead each token's exp lies; 0 means
	// TokenLifetime, which is also the most allowed.
	Lifetime time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Signer makes the VAPID Authorization header of a push: an ES256 JWT with
// aud the endpoint's origin, exp Lifetime ahead and sub the subject, and
// the public key:
//
//	Authorization: vapid t=<jwt>, k=<base64url public key>
//
// A token is signed once per push-service origin and reused until it is
// near its expiry (less than a quarter of its lifetime, at most an hour,
// left), not signed per message. A Signer is safe for concurrent use.
type Signer struct {
	key      *VAPIDKey
	subject  string
	lifetime time.Duration
	renew    time.Duration
	now      func() time.Time

	mu     sync.Mutex
	tokens map[string]cachedToken // origin → header
}

type cachedToken struct {
	header string
	exp    time.Time
}

// NewSigner returns a Signer for key and subject (checked by CheckSubject).
func NewSigner(key *VAPIDKey, subject string, opts SignerOptions) (*Signer, error) {
	if key == nil {
		return nil, errors.New("webpush: no VAPID key")
	}
	if err := CheckSubject(subject); err != nil {
		return nil, fmt.Errorf("webpush: vapid subject %w", err)
	}
	s := &Signer{key: key, subject: subject, lifetime: opts.Lifetime, now: opts.Now, tokens: map[string]cachedToken{}}
	switch {
	case s.lifetime == 0:
		s.lifetime = TokenLifetime
	case s.lifetime < 0 || s.lifetime > maxTokenLifetime:
		return nil, fmt.Errorf("webpush: token lifetime %s: want up to %s", s.lifetime, maxTokenLifetime)
	}
	s.renew = min(time.Hour, s.lifetime/4)
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

// Key returns the signer's key.
func (s *Signer) Key() *VAPIDKey { return s.key }

// Subject returns the sub claim.
func (s *Signer) Subject() string { return s.subject }

// Authorization returns the Authorization header value for a push to
// endpoint, from the cache when a token for its origin has time left.
func (s *Signer) Authorization(endpoint string) (string, error) {
	origin, err := Origin(endpoint)
	if err != nil {
		return "", fmt.Errorf("webpush: vapid: %w", err)
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.tokens[origin]; ok && t.exp.Sub(now) > s.renew {
		return t.header, nil
	}
	exp := now.Add(s.lifetime).Truncate(time.Second)
	tok, err := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
		"aud": origin,
		"exp": exp.Unix(),
		"sub": s.subject,
	}).SignedString(s.key.priv)
	if err != nil {
		return "", fmt.Errorf("webpush: sign vapid token: %w", err)
	}
	if len(s.tokens) >= maxCachedOrigins {
		for o, t := range s.tokens {
			if t.exp.Sub(now) <= s.renew {
				delete(s.tokens, o)
			}
		}
		if len(s.tokens) >= maxCachedOrigins {
			clear(s.tokens)
		}
	}
	h := "vapid t=" + tok + ", k=" + s.key.PublicKey()
	s.tokens[origin] = cachedToken{header: h, exp: exp}
	return h, nil
}
