package web_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/tilecast/tilecast/web"
)

// writeFile writes data to a new file in dir and returns its path.
func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func publicPEM(t *testing.T, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func sign(t *testing.T, m jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestUserTokens: with user tokens on, an app-key registration naming a
// user needs a JWT for that user signed with the configured key and
// algorithm, with exp; every other token is 403 and stores nothing.
func TestUserTokens(t *testing.T) {
	dir := t.TempDir()
	secret := []byte("a-secret-of-at-least-thirty-two-bytes!!")
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaPEM := publicPEM(t, &rsaKey.PublicKey)
	now := time.Now()
	valid := jwt.MapClaims{"sub": "ann", "exp": now.Add(5 * time.Minute).Unix()}
	expired := jwt.MapClaims{"sub": "ann", "exp": now.Add(-5 * time.Minute).Unix()}
	otherUser := jwt.MapClaims{"sub": "bob", "exp": now.Add(5 * time.Minute).Unix()}
	noExp := jwt.MapClaims{"sub": "ann"}
	none := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, valid)

	for _, cfg := range []struct {
		name       string
		edit       func(*web.Options)
		good       string // a valid token for ann
		wrongKey   string // signed by another key of the same kind
		alg        string // a token of another algorithm
		forged     string // HS256 "signed" with the public key bytes (alg confusion); "" for HS256
		expired    string
		otherUser  string
		missingExp string
	}{
		{
			name: "HS256",
			edit: func(o *web.Options) {
				o.UserTokenKeyFile = writeFile(t, dir, "hs", append(append([]byte{}, secret...), '\n'))
			},
			good:       sign(t, jwt.SigningMethodHS256, secret, valid),
			wrongKey:   sign(t, jwt.SigningMethodHS256, []byte("another-secret-of-thirty-two-bytes!!"), valid),
			alg:        sign(t, jwt.SigningMethodHS512, secret, valid),
			expired:    sign(t, jwt.SigningMethodHS256, secret, expired),
			otherUser:  sign(t, jwt.SigningMethodHS256, secret, otherUser),
			missingExp: sign(t, jwt.SigningMethodHS256, secret, noExp),
		},
		{
			name:       "RS256",
			edit:       func(o *web.Options) { o.UserTokenPublicKeyFile = writeFile(t, dir, "rsa.pem", rsaPEM) },
			good:       sign(t, jwt.SigningMethodRS256, rsaKey, valid),
			wrongKey:   sign(t, jwt.SigningMethodES256, ecKey, valid),
			alg:        sign(t, jwt.SigningMethodRS512, rsaKey, valid),
			forged:     sign(t, jwt.SigningMethodHS256, rsaPEM, valid),
			expired:    sign(t, jwt.SigningMethodRS256, rsaKey, expired),
			otherUser:  sign(t, jwt.SigningMethodRS256, rsaKey, otherUser),
			missingExp: sign(t, jwt.SigningMethodRS256, rsaKey, noExp),
		},
		{
			name: "ES256",
			edit: func(o *web.Options) {
				o.UserTokenPublicKeyFile = writeFile(t, dir, "ec.pem", publicPEM(t, &ecKey.PublicKey))
			},
			good:       sign(t, jwt.SigningMethodES256, ecKey, valid),
			wrongKey:   sign(t, jwt.SigningMethodRS256, rsaKey, valid),
			alg:        sign(t, jwt.SigningMethodHS256, secret, valid),
			forged:     sign(t, jwt.SigningMethodHS256, publicPEM(t, &ecKey.PublicKey), valid),
			expired:    sign(t, jwt.SigningMethodES256, ecKey, expired),
			otherUser:  sign(t, jwt.SigningMethodES256, ecKey, otherUser),
			missingExp: sign(t, jwt.SigningMethodES256, ecKey, noExp),
		},
	} {
		t.Run(cfg.name, func(t *testing.T) {
			e := newAccessEnv(t, roleKeys, cfg.edit)
			n := 0
			post := func(key, user string, hdr ...string) answer {
				n++
				body := `{"uri":"https://db3.notify.live.net/throttledthirdparty/01.00/u` + strings.Repeat("x", n) + `"`
				if user != "" {
					body += `,"user":"` + user + `"`
				}
				return e.do(t, http.MethodPost, "/v1/channels", key, body+"}", hdr...)
			}
			for _, tc := range []struct {
				name, token, msg string
			}{
				{"missing header", "", "no X-User-Token header"},
				{"expired", cfg.expired, "expired"},
				{"wrong sub", cfg.otherUser, "another user"},
				{"missing exp", cfg.missingExp, "lacks exp"},
				{"wrong key", cfg.wrongKey, "not signed with this server's " + cfg.name + " key"},
				{"wrong alg", cfg.alg, "not signed with this server's " + cfg.name + " key"},
				{"alg confusion", cfg.forged, "not signed with this server's " + cfg.name + " key"},
				{"alg none", none, "not signed with this server's " + cfg.name + " key"},
				{"garbage", "not.a.jwt", "not a well-formed JWT"},
			} {
				if tc.name == "alg confusion" && tc.token == "" {
					continue
				}
				var hdr []string
				if tc.token != "" {
					hdr = []string{web.UserTokenHeader, tc.token}
				}
				a := post(appKey, "ann", hdr...)
				var refused struct{ Error, Role string }
				if a.code != http.StatusForbidden || json.Unmarshal(a.body, &refused) != nil || !strings.Contains(refused.Error, tc.msg) {
					t.Errorf("%s: %d %s; want 403 with %q", tc.name, a.code, a.body, tc.msg)
				}
				if tc.token != "" && strings.Contains(e.logs.String(), tc.token) {
					t.Errorf("%s: the token reached the log", tc.name)
				}
			}
			if chs, err := e.db.Channels(""); err != nil || len(chs) != 0 {
				t.Fatalf("refused registrations stored %v, %v", chs, err)
			}
			if a := post(appKey, "ann", web.UserTokenHeader, cfg.good); a.code != http.StatusCreated {
				t.Errorf("valid token: %d %s", a.code, a.body)
			}
			if a := post(appKey, "ann", web.UserTokenHeader, cfg.good, web.UserTokenHeader, cfg.good); a.code != http.StatusForbidden {
				t.Errorf("two token headers: %d %s", a.code, a.body)
			}
			// No user, or an admin key: no token needed.
			if a := post(appKey, ""); a.code != http.StatusCreated {
				t.Errorf("app key without a user: %d %s", a.code, a.body)
			}
			if a := post(adminKey, "ann"); a.code != http.StatusCreated {
				t.Errorf("admin key without a token: %d %s", a.code, a.body)
			}
			assertNoSecrets(t, e.logs.String(), adminKey, appKey, cfg.good)
		})
	}
}

// TestUserTokensOff: without a user token key, an app key may name a user
// as before.
func TestUserTokensOff(t *testing.T) {
	e := newAccessEnv(t, roleKeys, nil)
	a := e.do(t, http.MethodPost, "/v1/channels", appKey, `{"uri":"https://db3.notify.live.net/throttledthirdparty/01.00/off","user":"ann"}`)
	if a.code != http.StatusCreated {
		t.Errorf("%d %s", a.code, a.body)
	}
}

// TestLoadUserTokenKey: the key files are checked when loaded.
func TestLoadUserTokenKey(t *testing.T) {
	dir := t.TempDir()
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(p384)
	for _, tc := range []struct {
		name           string
		secret, public string
		alg, err       string
	}{
		{"off", "", "", "", ""},
		{"both", "a", "b", "", "not both"},
		{"short secret", writeFile(t, dir, "short", []byte("0123456789012345678901234567890\n")), "", "", "31 bytes, want at least 32"},
		{"secret with CRLF", writeFile(t, dir, "crlf", []byte("01234567890123456789012345678901\r\n")), "", "HS256", ""},
		{"missing secret", filepath.Join(dir, "nope"), "", "", "no such file"},
		{"small RSA", "", writeFile(t, dir, "small.pem", publicPEM(t, &small.PublicKey)), "", "1024 bits"},
		{"P-384", "", writeFile(t, dir, "p384.pem", publicPEM(t, &p384.PublicKey)), "", "ES256 needs P-256"},
		{"private key", "", writeFile(t, dir, "priv.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), "", "want PUBLIC KEY"},
		{"not PEM", "", writeFile(t, dir, "junk.pem", []byte("junk")), "", "no PEM block"},
		{"a directory", "", dir, "", "not a regular file"},
	} {
		k, err := web.LoadUserTokenKey(tc.secret, tc.public)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.err)
			}
		case err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.alg == "" && k != nil, tc.alg != "" && (k == nil || k.Alg() != tc.alg):
			t.Errorf("%s: key %v, want alg %q", tc.name, k, tc.alg)
		}
	}
}
