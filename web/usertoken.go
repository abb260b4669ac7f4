package web

// User tokens (issue 15): an app key ships inside the app, so anyone can
// register a channel under any user name with it. Apps whose users sign in
// can close that: their own backend signs a short-lived JWT whose sub is
// the user, the app sends it in X-User-Token, and tilecast accepts a user
// in an app-key registration only with such a token. golang-jwt does the
// parsing and signature checks; this file pins the one algorithm the
// configured key allows, so a token can never choose how it is checked
// (an HS256 token "signed" with an RSA public key, or alg none).

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// UserTokenHeader carries the user token of a registration.
const UserTokenHeader = "X-User-Token"

// User token limits.
const (
	// MinUserTokenSecret is the shortest HS256 secret accepted: RFC 7518
	// §3.2 asks for a key at least as long as the hash output.
	MinUserTokenSecret = 32
	// MinUserTokenRSABits is the smallest RSA key accepted.
	MinUserTokenRSABits = 2048
	// UserTokenLeeway is the clock skew allowed between the app's backend
	// and tilecast when checking exp (and nbf, iat when present).
	UserTokenLeeway = 30 * time.Second
	// maxKeyFile bounds a key file read: a secret or a PEM public key.
	maxKeyFile = 64 << 10
	// maxUserToken bounds the header's length before it is parsed.
	maxUserToken = 8 << 10
)

// UserTokenKey verifies user tokens: an HS256 secret or an RS256 or ES256
// public key, each accepting only its own algorithm.
type UserTokenKey struct {
	alg string // "HS256", "RS256" or "ES256"
	key any    // []byte, *rsa.PublicKey or *ecdsa.PublicKey
}

// Alg returns the one JWT algorithm the key accepts.
func (k *UserTokenKey) Alg() string { return k.alg }

// LoadUserTokenKey reads http.user_token_key_file (secretFile: its bytes
// are the HS256 secret, one trailing newline trimmed) or
// http.user_token_public_key_file (publicKeyFile: a PEM RSA or P-256
// public key, which pins RS256 or ES256). With both empty it returns nil:
// user tokens are off. Its errors name the file, never its contents.
func LoadUserTokenKey(secretFile, publicKeyFile string) (*UserTokenKey, error) {
	switch {
	case secretFile != "" && publicKeyFile != "":
		return nil, errors.New("user tokens: set user_token_key_file or user_token_public_key_file, not both")
	case secretFile != "":
		data, err := readKeyFile(secretFile)
		if err != nil {
			return nil, fmt.Errorf("user token key file: %w", err)
		}
		data = bytes.TrimSuffix(data, []byte("\n"))
		data = bytes.TrimSuffix(data, []byte("\r"))
		if len(data) < MinUserTokenSecret {
			return nil, fmt.Errorf("user token key file %s: the HS256 secret is %d bytes, want at least %d", secretFile, len(data), MinUserTokenSecret)
		}
		return &UserTokenKey{alg: jwt.SigningMethodHS256.Alg(), key: data}, nil
	case publicKeyFile != "":
		data, err := readKeyFile(publicKeyFile)
		if err != nil {
			return nil, fmt.Errorf("user token public key file: %w", err)
		}
		k, err := parsePublicKey(data)
		if err != nil {
			return nil, fmt.Errorf("user token public key file %s: %w", publicKeyFile, err)
		}
		return k, nil
	}
	return nil, nil
}

// readKeyFile reads a small regular file.
func readKeyFile(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	if st.Size() > maxKeyFile {
		return nil, fmt.Errorf("%s: %d bytes, more than a key file holds (%d)", path, st.Size(), maxKeyFile)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("%s: %w", path, pe.Err)
		}
		return nil, err
	}
	return data, nil
}

// parsePublicKey reads one PEM public key and pins its algorithm by its
// type: RSA (at least MinUserTokenRSABits) is RS256, ECDSA on P-256 is
// ES256; anything else is refused.
func parsePublicKey(data []byte) (*UserTokenKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block: want a -----BEGIN PUBLIC KEY----- block")
	}
	var pub any
	var err error
	switch block.Type {
	case "PUBLIC KEY":
		pub, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %.40q: want PUBLIC KEY (a private key or certificate does not belong here)", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("parse public key: %w", err)
	}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if bits := k.N.BitLen(); bits < MinUserTokenRSABits {
			return nil, fmt.Errorf("RSA key of %d bits, want at least %d", bits, MinUserTokenRSABits)
		}
		return &UserTokenKey{alg: jwt.SigningMethodRS256.Alg(), key: k}, nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("ECDSA key on %s: ES256 needs P-256", k.Curve.Params().Name)
		}
		return &UserTokenKey{alg: jwt.SigningMethodES256.Alg(), key: k}, nil
	}
	return nil, fmt.Errorf("%T key: want an RSA (RS256) or P-256 ECDSA (ES256) public key", pub)
}

// Verify checks that token is signed with the key's algorithm and key,
// has an exp in the future and names user as its sub. Its error is one
// fixed sentence: it never echoes the token or its claims.
func (k *UserTokenKey) Verify(token, user string, now time.Time) error {
	if token == "" {
		return errors.New("no " + UserTokenHeader + " header")
	}
	if len(token) > maxUserToken {
		return fmt.Errorf("the token is longer than %d bytes", maxUserToken)
	}
	_, err := jwt.ParseWithClaims(token, &jwt.RegisteredClaims{},
		func(*jwt.Token) (any, error) { return k.key, nil },
		jwt.WithValidMethods([]string{k.alg}),
		jwt.WithExpirationRequired(),
		jwt.WithSubject(user),
		jwt.WithLeeway(UserTokenLeeway),
		jwt.WithTimeFunc(func() time.Time { return now }),
	)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, jwt.ErrTokenMalformed):
		return errors.New("the token is not a well-formed JWT")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return fmt.Errorf("the token is not signed with this server's %s key", k.alg)
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return errors.New("the token lacks exp or sub")
	case errors.Is(err, jwt.ErrTokenExpired):
		return errors.New("the token has expired")
	case errors.Is(err, jwt.ErrTokenInvalidSubject):
		return errors.New("the token's sub is another user")
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return errors.New("the token is not valid yet")
	}
	return errors.New("the token is invalid")
}

// reloadUserTokenKey (re)reads the user token key file named in Options;
// on error the key in use stays.
func (s *Server) reloadUserTokenKey() error {
	k, err := LoadUserTokenKey(s.opts.UserTokenKeyFile, s.opts.UserTokenPublicKeyFile)
	if err != nil {
		return err
	}
	s.userKey.Store(k)
	return nil
}

// checkUserToken applies the user token rule to a registration: with user
// tokens on, an app key that names a user must send a token for that user.
// Admin keys, and registrations without a user, are not held to it.
func (s *Server) checkUserToken(r *http.Request, role Role, user string) error {
	k := s.userKey.Load()
	if k == nil || role != RoleApp || user == "" {
		return nil
	}
	vals := r.Header.Values(UserTokenHeader)
	if len(vals) > 1 {
		return errors.New("more than one " + UserTokenHeader + " header")
	}
	token := ""
	if len(vals) == 1 {
		token = vals[0]
	}
	return k.Verify(token, user, s.now())
}
