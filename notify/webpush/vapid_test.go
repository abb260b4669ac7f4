package webpush_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tilecast/tilecast/notify/webpush"
)

func pemOf(t *testing.T, typ string, der []byte) string {
	t.Helper()
	return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
}

// TestVAPIDKeyForms loads keys.json's VAPID key (made by npm web-push) in
// every form a key file may hold; each must give web-push's public key.
func TestVAPIDKeyForms(t *testing.T) {
	keys := loadKeys(t)
	d := mustB64(t, keys.VAPID.PrivateKey)
	priv, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), d)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	sec1, err := x509.MarshalECPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	params := "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"
	for name, data := range map[string]string{
		"web-push base64url":         keys.VAPID.PrivateKey,
		"with a trailing newline":    keys.VAPID.PrivateKey + "\n",
		"padded base64url":           base64.URLEncoding.EncodeToString(d),
		"web-push JSON":              fmt.Sprintf(`{"publicKey":%q,"privateKey":%q}`, keys.VAPID.PublicKey, keys.VAPID.PrivateKey),
		"PEM PKCS#8":                 pemOf(t, "PRIVATE KEY", pkcs8),
		"PEM SEC 1":                  pemOf(t, "EC PRIVATE KEY", sec1),
		"openssl ecparam -genkey":    params + pemOf(t, "EC PRIVATE KEY", sec1),
		"web-push JSON, no public":   fmt.Sprintf(`{"privateKey":%q}`, keys.VAPID.PrivateKey),
		"leading and trailing space": "\n  " + keys.VAPID.PrivateKey + "  \n\n",
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "vapid.key")
			if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
				t.Fatal(err)
			}
			k, err := webpush.LoadVAPIDKey(path)
			if err != nil {
				t.Fatal(err)
			}
			if k.PublicKey() != keys.VAPID.PublicKey {
				t.Errorf("public key %s, want web-push's %s", k.PublicKey(), keys.VAPID.PublicKey)
			}
		})
	}
}

func TestVAPIDKeyRefusals(t *testing.T) {
	keys := loadKeys(t)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaDER, _ := x509.MarshalPKCS8PrivateKey(rsaKey)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p384DER, _ := x509.MarshalPKCS8PrivateKey(p384)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherPub, _ := other.PublicKey.Bytes()
	secret := keys.VAPID.PrivateKey
	for name, tc := range map[string]struct{ data, want string }{
		"empty":               {"", "empty"},
		"standard base64":     {strings.ReplaceAll(strings.ReplaceAll(base64.StdEncoding.EncodeToString(make([]byte, 32)), "A", "+"), "=", ""), "standard base64"},
		"auth secret pasted":  {base64.RawURLEncoding.EncodeToString(make([]byte, 16)), "16 bytes"},
		"zero key":            {base64.RawURLEncoding.EncodeToString(make([]byte, 32)), "not a P-256 private key"},
		"RSA PEM":             {pemOf(t, "PRIVATE KEY", rsaDER), "EC P-256"},
		"P-384 PEM":           {pemOf(t, "PRIVATE KEY", p384DER), "P-256"},
		"certificate":         {pemOf(t, "CERTIFICATE", []byte{1, 2, 3}), `"CERTIFICATE"`},
		"mismatched JSON":     {fmt.Sprintf(`{"publicKey":%q,"privateKey":%q}`, base64.RawURLEncoding.EncodeToString(otherPub), secret), "does not belong"},
		"web-push CLI output": {"Public Key:\n" + keys.VAPID.PublicKey + "\nPrivate Key:\n" + secret, "not base64url"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := webpush.ParseVAPIDKey([]byte(tc.data))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			// No form of the private key may reach the error (and so a log).
			for _, s := range []string{secret, secret[:20], base64.StdEncoding.EncodeToString(mustB64(t, secret))[:20]} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error %q contains key material", err)
				}
			}
		})
	}
	dir := t.TempDir()
	if _, err := webpush.LoadVAPIDKey(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: %v", err)
	}
	if _, err := webpush.LoadVAPIDKey(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing file: %v", err)
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, 100<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := webpush.LoadVAPIDKey(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("100 KiB file: %v", err)
	}
}

func TestVAPIDKeyDoesNotPrintSecret(t *testing.T) {
	keys := loadKeys(t)
	k, err := webpush.ParseVAPIDKey([]byte(keys.VAPID.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{fmt.Sprint(k), fmt.Sprintf("%v %+v %#v %s", k, k, k, k)} {
		if strings.Contains(s, keys.VAPID.PrivateKey) || !strings.Contains(s, keys.VAPID.PublicKey) {
			t.Errorf("formatted key %q: want the public key only", s)
		}
	}
}

func TestGenerateKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vapid.pem")
	k, err := webpush.GenerateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := st.Mode().Perm(); mode != 0o600 {
		t.Errorf("key file mode %o, want 600", mode)
	}
	data, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(data), "-----BEGIN PRIVATE KEY-----\n") {
		t.Errorf("key file is not PKCS#8 PEM:\n%s", data)
	}
	back, err := webpush.LoadVAPIDKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if back.PublicKey() != k.PublicKey() || len(mustB64(t, k.PublicKey())) != 65 {
		t.Errorf("reloaded public key %s, generated %s", back.PublicKey(), k.PublicKey())
	}
	if _, err := webpush.GenerateKey(path); err == nil || !strings.Contains(err.Error(), "not overwriting") {
		t.Errorf("second GenerateKey over the file: %v", err)
	}
	again, _ := webpush.LoadVAPIDKey(path)
	if again.PublicKey() != k.PublicKey() {
		t.Error("the refused GenerateKey changed the key file")
	}
}

func TestCheckSubject(t *testing.T) {
	for _, tc := range []struct {
		sub  string
		want string // "" = valid; else a part of the error
	}{
		{"mailto:ops@example.com", ""},
		{"MAILTO:Ops.Team+push@mail.example.co.uk", ""},
		{"mailto:a@xn--bcher-kva.example.org", ""},
		{"https://tilecast.example.org", ""},
		{"https://tilecast.example.org:8443/contact", ""},
		{"", "missing"},
		{"ops@example.com", "want mailto:ops@example.com"},
		{"mailto:mailto:ops@example.com", "written twice"},
		{"mailto:MAILTO:ops@example.com", "written twice"},
		{"mailto:ops.example.com", "no @"},
		{"mailto:@example.com", "nothing before"},
		{"mailto:a@b@example.com", "more than one @"},
		{"mailto:ops@localhost", "reserved"},
		{"mailto:ops@dev.localhost", "reserved"},
		{"mailto:ops@printer.local", "reserved"},
		{"mailto:ops@example.invalid", "reserved"},
		{"mailto:ops@corp.internal", "reserved"},
		{"mailto:ops@example", "reserved"},
		{"mailto:ops@intranet", "no dot"},
		{"mailto:ops@127.0.0.1", "address"},
		{"mailto:ops@[127.0.0.1]", "want one plain address"},
		{"mailto:ops@example.com?subject=hi", "want one plain address"},
		{"mailto:ops@exa_mple.com", "not a valid domain"},
		{"mailto:ops@example.123", "top-level"},
		{"mailto: ops@example.com", "white space"},
		{"mailto:öps@example.com", "non-ASCII"},
		{"https://localhost:8443", "reserved"},
		{"https://192.168.1.10/", "address"},
		{"https://[::1]/", "address"},
		{"https://user@example.org/", "userinfo"},
		{"https:///path", "no host"},
		{"http://example.org", "http is not accepted"},
		{"tel:+4912345", "want mailto:"},
	} {
		err := webpush.CheckSubject(tc.sub)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("CheckSubject(%q) = %v, want nil", tc.sub, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("CheckSubject(%q) = %v, want an error containing %q", tc.sub, err, tc.want)
		}
	}
}

func TestOrigin(t *testing.T) {
	for in, want := range map[string]string{
		"https://fcm.googleapis.com/fcm/send/abc":            "https://fcm.googleapis.com",
		"https://FCM.GoogleAPIs.com:443/fcm/send/abc":        "https://fcm.googleapis.com",
		"https://push.example.net:8443/wpush/v2/x":           "https://push.example.net:8443",
		"http://127.0.0.1:8080/webpush/id":                   "http://127.0.0.1:8080",
		"http://localhost:80/x":                              "http://localhost",
		"https://[2001:db8::1]:9000/x?y":                     "https://[2001:db8::1]:9000",
		"https://web.push.apple.com/QGuQyavXutnMei?x=1#frag": "https://web.push.apple.com",
	} {
		got, err := webpush.Origin(in)
		if err != nil || got != want {
			t.Errorf("Origin(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "fcm.googleapis.com/x", "ftp://x/y", "https://", "://x"} {
		if got, err := webpush.Origin(bad); err == nil {
			t.Errorf("Origin(%q) = %q, want an error", bad, got)
		}
	}
}

// TestSignerToken checks a token as a push service does (golang-jwt,
// not the package's own code): ES256 against k, aud the endpoint's
// origin, exp at most 12 h ahead, sub the subject.
func TestSignerToken(t *testing.T) {
	clk := newClock()
	s := keysSigner(t, clk.Now)
	h, err := s.Authorization("https://push.example.net:8443/wpush/v2/gAAAA")
	if err != nil {
		t.Fatal(err)
	}
	k, claims := vapidClaims(t, h)
	if k != loadKeys(t).VAPID.PublicKey {
		t.Errorf("k = %s, want the VAPID public key", k)
	}
	if claims["aud"] != "https://push.example.net:8443" {
		t.Errorf("aud = %v", claims["aud"])
	}
	if claims["sub"] != testSubject {
		t.Errorf("sub = %v", claims["sub"])
	}
	exp, err := claims.GetExpirationTime()
	if err != nil || exp == nil {
		t.Fatalf("exp: %v", err)
	}
	if ahead := exp.Sub(clk.Now()); ahead <= 11*time.Hour || ahead > 12*time.Hour {
		t.Errorf("exp is %s ahead, want at most 12 h (and near it)", ahead)
	}
	if len(claims) != 3 {
		t.Errorf("claims %v: want exactly aud, exp and sub", claims)
	}
	if _, err := s.Authorization("not a url"); err == nil {
		t.Error("token for a non-URL endpoint")
	}
	if _, err := webpush.NewSigner(s.Key(), "mailto:mailto:x@example.com", webpush.SignerOptions{}); err == nil {
		t.Error("NewSigner accepted a doubled mailto:")
	}
	if _, err := webpush.NewSigner(s.Key(), testSubject, webpush.SignerOptions{Lifetime: 13 * time.Hour}); err == nil {
		t.Error("NewSigner accepted a 13 h lifetime")
	}
}

func TestSignerReusesTokenPerOrigin(t *testing.T) {
	clk := newClock()
	s := keysSigner(t, clk.Now)
	get := func(endpoint string) string {
		t.Helper()
		h, err := s.Authorization(endpoint)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	fcm1 := get("https://fcm.googleapis.com/fcm/send/one")
	if fcm2 := get("https://fcm.googleapis.com/fcm/send/two"); fcm2 != fcm1 {
		t.Error("a second subscription on the same push service got a new token")
	}
	moz := get("https://updates.push.services.mozilla.com/wpush/v2/x")
	if moz == fcm1 {
		t.Error("two push services share a token")
	}
	if _, c := vapidClaims(t, moz); c["aud"] != "https://updates.push.services.mozilla.com" {
		t.Errorf("mozilla token aud %v", c["aud"])
	}
	clk.Advance(10*time.Hour + 59*time.Minute) // 1 h 1 min left: still reused
	if get("https://fcm.googleapis.com/fcm/send/three") != fcm1 {
		t.Error("token renewed with more than an hour left")
	}
	clk.Advance(2 * time.Minute) // 59 min left: renewed
	fresh := get("https://fcm.googleapis.com/fcm/send/four")
	if fresh == fcm1 {
		t.Fatal("token not renewed with less than an hour left")
	}
	_, c := vapidClaims(t, fresh)
	if exp, _ := c.GetExpirationTime(); exp.Sub(clk.Now()) != 12*time.Hour {
		t.Errorf("renewed token's exp is %s ahead", exp.Sub(clk.Now()))
	}
}

// TestSignerConcurrent: under -race, parallel pushes to one service get
// one token.
func TestSignerConcurrent(t *testing.T) {
	s := keysSigner(t, nil)
	var wg sync.WaitGroup
	got := make([]string, 32)
	for i := range got {
		wg.Go(func() {
			h, err := s.Authorization(fmt.Sprintf("https://web.push.apple.com/sub%d", i))
			if err != nil {
				t.Error(err)
			}
			got[i] = h
		})
	}
	wg.Wait()
	for i := range got {
		if got[i] != got[0] {
			t.Fatalf("goroutine %d got another token", i)
		}
	}
}
