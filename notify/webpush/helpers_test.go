package webpush_test

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tilecast/tilecast/notify/webpush"
)

// interopKeys is testdata/interop/keys.json: throw-away keys made by
// gen-keys.js (node:crypto and npm web-push), shared with the Node
// checkers.
type interopKeys struct {
	Subscription json.RawMessage `json:"subscription"`
	UAPrivateKey string          `json:"uaPrivateKey"`
	VAPID        struct {
		PublicKey  string `json:"publicKey"`
		PrivateKey string `json:"privateKey"`
	} `json:"vapid"`
}

func loadKeys(t testing.TB) interopKeys {
	t.Helper()
	data, err := os.ReadFile("testdata/interop/keys.json")
	if err != nil {
		t.Fatal(err)
	}
	var k interopKeys
	if err := json.Unmarshal(data, &k); err != nil {
		t.Fatal(err)
	}
	return k
}

func mustB64(t testing.TB, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		t.Fatalf("decode %q: %v", s, err)
	}
	return b
}

// browser is a user agent's side of a subscription.
type browser struct {
	priv *ecdh.PrivateKey
	auth []byte
	sub  webpush.Subscription
}

func newBrowser(t testing.TB, endpoint string) *browser {
	t.Helper()
	priv, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	auth := make([]byte, 16)
	rand.Read(auth)
	return &browser{priv: priv, auth: auth, sub: webpush.Subscription{Endpoint: endpoint, P256DH: priv.PublicKey().Bytes(), Auth: auth}}
}

func (b *browser) decrypt(t testing.TB, body []byte) []byte {
	t.Helper()
	plain, err := webpush.Decrypt(body, b.priv, b.auth)
	if err != nil {
		t.Fatalf("decrypt: %v", err)
	}
	return plain
}

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

const testSubject = "mailto:ops@example.com"

// keysSigner signs with the VAPID key of keys.json.
func keysSigner(t testing.TB, now func() time.Time) *webpush.Signer {
	t.Helper()
	key, err := webpush.ParseVAPIDKey([]byte(loadKeys(t).VAPID.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	s, err := webpush.NewSigner(key, testSubject, webpush.SignerOptions{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// vapidClaims checks an Authorization header the way a push service does,
// with golang-jwt rather than the package's own code: "vapid t=JWT,
// k=KEY", ES256 signed by KEY, and returns k and the claims.
func vapidClaims(t testing.TB, header string) (string, jwt.MapClaims) {
	t.Helper()
	rest, ok := strings.CutPrefix(header, "vapid t=")
	if !ok {
		t.Fatalf("Authorization %q is not the vapid scheme", header)
	}
	tok, k, ok := strings.Cut(rest, ", k=")
	if !ok {
		t.Fatalf("Authorization %q has no k=", header)
	}
	pub, err := ecdh.P256().NewPublicKey(mustB64(t, k))
	if err != nil {
		t.Fatalf("k is not a P-256 point: %v", err)
	}
	ecdsaPub, err := ecdsaFromECDH(pub)
	if err != nil {
		t.Fatal(err)
	}
	claims := jwt.MapClaims{}
	parsed, err := jwt.ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return ecdsaPub, nil },
		jwt.WithValidMethods([]string{"ES256"}), jwt.WithoutClaimsValidation())
	if err != nil {
		t.Fatalf("JWT does not verify against k: %v", err)
	}
	if typ := parsed.Header["typ"]; typ != "JWT" {
		t.Errorf("JWT typ = %v, want JWT", typ)
	}
	return k, claims
}

// ecdsaFromECDH turns a P-256 ECDH public key into an ECDSA one (same
// point) for verifying signatures.
func ecdsaFromECDH(pub *ecdh.PublicKey) (*ecdsa.PublicKey, error) {
	return ecdsa.ParseUncompressedPublicKey(elliptic.P256(), pub.Bytes())
}

// readBody returns a request's body without consuming it.
func readBody(t testing.TB, req *http.Request) []byte {
	t.Helper()
	rc, err := req.GetBody()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
