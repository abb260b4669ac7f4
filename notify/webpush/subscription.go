package webpush

import (
	"bytes"
	"crypto/ecdh"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tilecast/tilecast"
)

// Sizes of a subscription's keys (RFC 8291 §2, §3.2).
const (
	// PublicKeyLen is an uncompressed P-256 point: 0x04 || X || Y.
	PublicKeyLen = 65
	// AuthLen is the authentication secret's length.
	AuthLen = 16
)

// MaxSubscriptionJSON bounds the subscription document ParseSubscription
// reads: a browser's is about 400 bytes with an FCM endpoint.
const MaxSubscriptionJSON = 8 << 10

// Subscription is a browser's push subscription: where to send
// (Endpoint, the push service's URL for this one subscription) and the
// keys that encrypt what is sent (RFC 8291). Its JSON form is exactly
// PushSubscription.toJSON()'s: {"endpoint", "expirationTime", "keys":
// {"p256dh", "auth"}}, keys in unpadded base64url.
//
// A Subscription is a capability: whoever holds endpoint and keys can
// send the browser notifications. Never log it; name it by its origin
// (Origin) or by the channel id it is stored under.
type Subscription struct {
	Endpoint string
	// Expires is when the browser said the subscription ends
	// (expirationTime, milliseconds since the epoch); zero: it did not say.
	Expires time.Time
	// P256DH is the browser's ECDH public key, an uncompressed P-256
	// point (PublicKeyLen bytes).
	P256DH []byte
	// Auth is the browser's authentication secret (AuthLen bytes).
	Auth []byte
}

// ParseOptions configure ParseSubscription and Subscription.Check.
type ParseOptions struct {
	// AllowLoopbackHTTP accepts an http endpoint on a loopback host
	// (127.0.0.0/8, ::1, localhost): the emulator's. Push services are
	// https only; a plain http endpoint anywhere else is refused.
	AllowLoopbackHTTP bool
}

// FieldError is a subscription field that is missing or wrong. Field is
// the JSON path the browser uses ("endpoint", "keys.p256dh", …).
type FieldError struct {
	Field string
	Msg   string
	Err   error // the decoder's error, when there was one
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return "subscription: " + e.Msg
	}
	return e.Field + ": " + e.Msg
}

func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// ParseSubscription reads a subscription as the browser's
// PushSubscription.toJSON() (or JSON.stringify of the subscription) gives
// it, and checks it (see Check). Field names are matched exactly (not
// case-insensitively, as encoding/json would); a duplicated or unknown
// top-level field is refused; further entries in "keys" are ignored (the
// spec makes it an open record). The keys may be base64url with or without
// padding. Every error is a *FieldError naming the field, such as
// "keys.p256dh: not a point on P-256"; none carries key material.
func ParseSubscription(data []byte, opts ParseOptions) (Subscription, error) {
	if len(data) > MaxSubscriptionJSON {
		return Subscription{}, fieldErr("", "%d bytes, more than %d", len(data), MaxSubscriptionJSON)
	}
	if !utf8.Valid(data) {
		return Subscription{}, fieldErr("", "not UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var (
		s                      Subscription
		seenEndpoint, seenKeys bool
		p256dh, auth           *string
	)
	err := readObject(dec, "", func(name string) error {
		switch name {
		case "endpoint":
			seenEndpoint = true
			return decodeString(dec, "endpoint", &s.Endpoint)
		case "expirationTime":
			return decodeExpiration(dec, &s.Expires)
		case "keys":
			seenKeys = true
			return readObject(dec, "keys", func(k string) error {
				switch k {
				case "p256dh":
					p256dh = new(string)
					return decodeString(dec, "keys.p256dh", p256dh)
				case "auth":
					auth = new(string)
					return decodeString(dec, "keys.auth", auth)
				}
				var skip json.RawMessage
				return dec.Decode(&skip)
			}, true)
		}
		return fieldErr(name, "unknown field (a subscription has endpoint, expirationTime and keys)")
	}, false)
	if err != nil {
		return Subscription{}, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return Subscription{}, fieldErr("", "data after the subscription object")
	}
	switch {
	case !seenEndpoint:
		return Subscription{}, fieldErr("endpoint", "missing")
	case !seenKeys:
		return Subscription{}, fieldErr("keys", "missing: a subscription for encrypted pushes has keys.p256dh and keys.auth")
	case p256dh == nil:
		return Subscription{}, fieldErr("keys.p256dh", "missing")
	case auth == nil:
		return Subscription{}, fieldErr("keys.auth", "missing")
	}
	if s.P256DH, err = decodeKey("keys.p256dh", *p256dh); err != nil {
		return Subscription{}, err
	}
	if s.Auth, err = decodeKey("keys.auth", *auth); err != nil {
		return Subscription{}, err
	}
	if err := s.Check(opts); err != nil {
		return Subscription{}, err
	}
	return s, nil
}

// readObject reads one JSON object from dec, calling field for each member
// name with the decoder positioned at its value; field must consume the
// value. A repeated name is refused (first-wins and last-wins parsers
// would read two different subscriptions). path names the object in
// errors; open marks a record whose unknown members are skipped (and
// may repeat), as "keys" is.
func readObject(dec *json.Decoder, path string, field func(name string) error, open bool) error {
	what := path
	if what == "" {
		what = "subscription"
	}
	tok, err := dec.Token()
	if err != nil {
		return &FieldError{Field: path, Msg: "not JSON: " + jsonMsg(err), Err: err}
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return fieldErr(path, "want a JSON object, got %s", describe(tok))
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return &FieldError{Field: path, Msg: "not JSON: " + jsonMsg(err), Err: err}
		}
		name, _ := tok.(string)
		full := name
		if path != "" {
			full = path + "." + name
		}
		if seen[name] && (!open || name == "p256dh" || name == "auth") {
			return fieldErr(full, "appears twice in the %s", what)
		}
		seen[name] = true
		if err := field(name); err != nil {
			var fe *FieldError
			if errors.As(err, &fe) {
				return err
			}
			return &FieldError{Field: full, Msg: "not JSON: " + jsonMsg(err), Err: err}
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return &FieldError{Field: path, Msg: "not JSON: " + jsonMsg(err), Err: err}
	}
	return nil
}

// jsonMsg is a decoder error without Go type names.
func jsonMsg(err error) string {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "unexpected end of input"
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

// describe names a JSON token's type for an error.
func describe(tok json.Token) string {
	switch v := tok.(type) {
	case json.Delim:
		if v == '[' {
			return "an array"
		}
		return "an object"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return "something else"
}

func decodeString(dec *json.Decoder, field string, dst *string) error {
	tok, err := dec.Token()
	if err != nil {
		return &FieldError{Field: field, Msg: "not JSON: " + jsonMsg(err), Err: err}
	}
	s, ok := tok.(string)
	if !ok {
		return fieldErr(field, "want a string, got %s", describe(tok))
	}
	*dst = s
	return nil
}

// maxExpiration is the latest expirationTime accepted: year 9999, well
// inside time.Time and int64 milliseconds.
const maxExpiration = 253402300799999

func decodeExpiration(dec *json.Decoder, dst *time.Time) error {
	tok, err := dec.Token()
	if err != nil {
		return &FieldError{Field: "expirationTime", Msg: "not JSON: " + jsonMsg(err), Err: err}
	}
	switch v := tok.(type) {
	case nil:
		*dst = time.Time{}
		return nil
	case json.Number:
		// EpochTimeStamp: milliseconds, an integer in today's spec, a
		// DOMHighResTimeStamp (fractional) in older browsers.
		f, err := v.Float64()
		if err != nil || math.IsNaN(f) || f < 0 || f > maxExpiration {
			return fieldErr("expirationTime", "want null or milliseconds since 1970 (0 to %d), got %s", int64(maxExpiration), v)
		}
		*dst = time.UnixMilli(int64(f)).UTC()
		return nil
	}
	return fieldErr("expirationTime", "want null or a number of milliseconds, got %s", describe(tok))
}

// decodeKey decodes a base64url key, padded or not. Go's decoders skip
// newlines, and a key with one in it is not what the browser sent, so any
// byte outside the alphabet is refused first.
func decodeKey(field, s string) ([]byte, error) {
	if s == "" {
		return nil, fieldErr(field, "empty")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '=') {
			if c == '+' || c == '/' {
				return nil, fieldErr(field, "not base64url: %q at offset %d belongs to standard base64 (the browser sends base64url)", c, i)
			}
			return nil, fieldErr(field, "not base64url: byte 0x%02x at offset %d", c, i)
		}
	}
	enc := base64.RawURLEncoding.Strict()
	if strings.HasSuffix(s, "=") {
		enc = base64.URLEncoding.Strict()
	}
	b, err := enc.DecodeString(s)
	if err != nil {
		return nil, &FieldError{Field: field, Msg: "not base64url: " + err.Error(), Err: err}
	}
	return b, nil
}

// Check validates a subscription: the endpoint (an absolute https URL with
// a host, no userinfo or fragment, at most tilecast.MaxChannelURI bytes;
// http only on a loopback host when opts allow it), P256DH (a point on
// P-256 in uncompressed form) and Auth (AuthLen bytes). Errors are
// *FieldError values named as in the JSON form.
func (s Subscription) Check(opts ParseOptions) error {
	if err := checkEndpoint(s.Endpoint, opts); err != nil {
		return err
	}
	if len(s.P256DH) != PublicKeyLen {
		return fieldErr("keys.p256dh", "%d bytes, want %d (an uncompressed P-256 point)", len(s.P256DH), PublicKeyLen)
	}
	if _, err := ecdh.P256().NewPublicKey(s.P256DH); err != nil {
		return &FieldError{Field: "keys.p256dh", Msg: "not a point on P-256", Err: err}
	}
	if len(s.Auth) != AuthLen {
		return fieldErr("keys.auth", "%d bytes, want %d", len(s.Auth), AuthLen)
	}
	return nil
}

func checkEndpoint(endpoint string, opts ParseOptions) error {
	const f = "endpoint"
	switch {
	case endpoint == "":
		return fieldErr(f, "empty")
	case len(endpoint) > tilecast.MaxChannelURI:
		return fieldErr(f, "%d bytes, more than %d", len(endpoint), tilecast.MaxChannelURI)
	case strings.Contains(endpoint, "#"):
		return fieldErr(f, "must not contain a fragment")
	}
	for i := 0; i < len(endpoint); i++ {
		if c := endpoint[i]; c <= ' ' || c >= 0x7f {
			return fieldErr(f, "byte 0x%02x at offset %d: a push endpoint is a plain ASCII URL", c, i)
		}
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the url.Error repeats the endpoint
		}
		return &FieldError{Field: f, Msg: "not a URL: " + err.Error(), Err: err}
	}
	if u.User != nil {
		return fieldErr(f, "must not contain userinfo")
	}
	if u.Host == "" || u.Hostname() == "" {
		return fieldErr(f, "want an absolute https URL with a host")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !opts.AllowLoopbackHTTP {
			return fieldErr(f, "http is refused: push services are https")
		}
		if !loopbackHost(u.Hostname()) {
			return fieldErr(f, "http is only accepted on a loopback host (the emulator); push services are https")
		}
	default:
		return fieldErr(f, "scheme %q: want https", u.Scheme)
	}
	return nil
}

// loopbackHost reports whether host is localhost or a loopback address.
func loopbackHost(host string) bool {
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	if a, err := netip.ParseAddr(h); err == nil {
		return a.Unmap().IsLoopback()
	}
	return net.ParseIP(h).IsLoopback()
}

// SubscriptionOf returns the subscription a Web Push channel stores: its
// URI is the endpoint, Keys the browser's keys, Expires the
// expirationTime. It does not Check them (the registration did); a
// channel without keys is an error.
func SubscriptionOf(ch *tilecast.Channel) (Subscription, error) {
	if ch.Keys == nil {
		return Subscription{}, fmt.Errorf("webpush: channel %s has no subscription keys (transport %q)", ch.ID, ch.Transport)
	}
	return Subscription{Endpoint: ch.URI, Expires: ch.Expires, P256DH: ch.Keys.P256DH, Auth: ch.Keys.Auth}, nil
}

// PushKeys returns the subscription's keys as a channel stores them
// (tilecast.Channel.Keys).
func (s Subscription) PushKeys() *tilecast.PushKeys {
	return &tilecast.PushKeys{P256DH: bytes.Clone(s.P256DH), Auth: bytes.Clone(s.Auth)}
}

// Channel returns a Web Push channel for the subscription (URI, transport,
// keys, expiry) for the registration to complete with user, feeds and
// device.
func (s Subscription) Channel() tilecast.Channel {
	return tilecast.Channel{URI: s.Endpoint, Transport: tilecast.TransportWebPush, Keys: s.PushKeys(), Expires: s.Expires}
}

// subscriptionJSON is the browser's form, for MarshalJSON.
type subscriptionJSON struct {
	Endpoint       string `json:"endpoint"`
	ExpirationTime *int64 `json:"expirationTime"`
	Keys           struct {
		P256DH string `json:"p256dh"`
		Auth   string `json:"auth"`
	} `json:"keys"`
}

// MarshalJSON writes the subscription as the browser's toJSON() does:
// expirationTime null or milliseconds, keys in unpadded base64url.
func (s Subscription) MarshalJSON() ([]byte, error) {
	var j subscriptionJSON
	j.Endpoint = s.Endpoint
	if !s.Expires.IsZero() {
		ms := s.Expires.UnixMilli()
		j.ExpirationTime = &ms
	}
	j.Keys.P256DH = base64.RawURLEncoding.EncodeToString(s.P256DH)
	j.Keys.Auth = base64.RawURLEncoding.EncodeToString(s.Auth)
	return json.Marshal(j)
}

// Origin returns the origin of a push endpoint, scheme://host[:port] with
// the scheme and host lowercased and a default port left out: the VAPID
// token's audience (RFC 8292 §2), and the key under which tokens are
// cached and VAPID refusals counted.
func Origin(endpoint string) (string, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", fmt.Errorf("endpoint is not a URL: %w", err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", errors.New("endpoint is not an absolute http(s) URL")
	}
	host := strings.ToLower(u.Hostname())
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	port := u.Port()
	if (u.Scheme == "https" && port == "443") || (u.Scheme == "http" && port == "80") {
		port = ""
	}
	if port != "" {
		host += ":" + port
	}
	return u.Scheme + "://" + host, nil
}
