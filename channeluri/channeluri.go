// Package channeluri turns a push channel URI into the one form tilecast
// stores, looks up and sends to, and matches hosts against
// push.allowed_hosts.
//
// Two spellings of one URI must be one channel, or a phone gets every
// notification twice; so the store canonicalises every URI it is given
// (store.AddChannel, store.ImportChannels, store.ChannelByURI), and the
// API and the CLI check URIs with the same code before they get there.
//
// It is a package of its own, not part of the root package, because host
// names are compared in their IDNA form and IDNA mapping needs
// golang.org/x/net/idna, which the root package (standard library only)
// does not import. It imports the root only for its limits and sentinels.
package channeluri

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"

	"github.com/tilecast/tilecast"
)

// ErrInvalid marks a URI that is not a usable channel URI; the error's
// message says what is wrong with it.
var ErrInvalid = errors.New("invalid channel uri")

// Limits of a DNS name (RFC 1035 §2.3.4): idna.Lookup does not check them.
const (
	maxLabel = 63
	maxName  = 253
)

// invalidError is a refusal of Canonical: its message is the reason, it
// matches ErrInvalid, and it unwraps to the parser's error if there is one.
type invalidError struct {
	msg string
	err error
}

func (e *invalidError) Error() string {
	if e.err != nil {
		return e.msg + ": " + e.err.Error()
	}
	return e.msg
}

func (e *invalidError) Unwrap() error        { return e.err }
func (e *invalidError) Is(target error) bool { return target == ErrInvalid }

func invalid(err error, format string, args ...any) error {
	return &invalidError{msg: fmt.Sprintf(format, args...), err: err}
}

// Canonical returns raw in canonical form, or an error matching ErrInvalid
// that names what is wrong. A channel URI is an absolute http or https URL
// of at most tilecast.MaxChannelURI bytes (before and after
// canonicalisation) with a host, no userinfo and no fragment (a fragment is
// never sent, so URIs differing only there would be one channel stored
// twice).
//
// The canonical form, following RFC 3986 §6.2.2–6.2.3:
//   - scheme lowercased;
//   - host mapped by IDNA (UTS #46 lookup: case folded, full-width forms
//     and the ideographic full stops 。．｡ mapped to ASCII) into its ASCII
//     (punycode) form, then one trailing dot removed — in whichever form
//     it was written; IP literals in their shortest form;
//   - port checked to be 1–65535 and dropped when it is the scheme's
//     default (80 for http, 443 for https), leading zeros removed;
//   - in path and query, percent-encodings of unreserved characters
//     (A–Z a–z 0–9 - . _ ~) decoded, other percent-encodings' hex digits
//     uppercased, and characters a URI may not carry there (space,
//     non-ASCII, "<>\^`{|}) percent-encoded, as net/http would send them;
//   - an empty path is "/", an empty query ("?" alone) is dropped.
//
// Everything else in path and query is kept byte for byte: push services
// issue them as case-sensitive tokens, and a reserved character and its
// percent-encoding ("+" and "%2B") may mean different things to them.
// Canonical(Canonical(u)) == Canonical(u).
func Canonical(raw string) (string, error) {
	c, _, err := canonical(raw)
	return c, err
}

// canonical is Canonical, also returning the canonical host (without
// brackets or port) for the allowed_hosts check.
func canonical(raw string) (uri, hostname string, err error) {
	if len(raw) > tilecast.MaxChannelURI {
		return "", "", invalid(nil, "channel uri is %d bytes, more than %d", len(raw), tilecast.MaxChannelURI)
	}
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the url.Error repeats the whole URI
		}
		return "", "", invalid(err, "channel uri is not a valid URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" { // url.Parse lowercases the scheme
		return "", "", invalid(nil, "channel uri must be an absolute http or https URL, got scheme %q", u.Scheme)
	}
	if u.User != nil {
		return "", "", invalid(nil, "channel uri must not contain userinfo")
	}
	if u.Host == "" || u.Hostname() == "" {
		return "", "", invalid(nil, "channel uri has no host")
	}
	if strings.Contains(raw, "#") {
		return "", "", invalid(nil, "channel uri must not contain a fragment")
	}
	host, err := canonicalHost(u.Hostname(), strings.HasPrefix(u.Host, "["))
	if err != nil {
		return "", "", err
	}
	hostname = host
	port, err := canonicalPort(u.Scheme, u.Port())
	if err != nil {
		return "", "", err
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	// The path as written: RawPath when it differs from the default
	// encoding of Path, else that default encoding (which is then what
	// was written).
	rawPath := u.RawPath
	if rawPath == "" {
		rawPath = u.EscapedPath()
	}
	path, err := normalise("path", rawPath, false)
	if err != nil {
		return "", "", err
	}
	if path == "" {
		path = "/"
	}
	query, err := normalise("query", u.RawQuery, true)
	if err != nil {
		return "", "", err
	}
	var b strings.Builder
	b.Grow(len(u.Scheme) + 3 + len(host) + len(path) + 1 + len(query))
	b.WriteString(u.Scheme)
	b.WriteString("://")
	b.WriteString(host)
	b.WriteString(path)
	if query != "" {
		b.WriteByte('?')
		b.WriteString(query)
	}
	out := b.String()
	if len(out) > tilecast.MaxChannelURI {
		// An IDN host's punycode or escaped bytes can outgrow the limit.
		return "", "", invalid(nil, "channel uri is %d bytes in canonical form, more than %d", len(out), tilecast.MaxChannelURI)
	}
	return out, hostname, nil
}

// Check is Canonical followed by the push.allowed_hosts check: it returns
// the canonical form of raw, an error matching ErrInvalid, or one wrapping
// tilecast.ErrHostNotAllowed when the host matches no pattern of allowed
// (see HostAllowed).
func Check(raw string, allowed []string) (string, error) {
	c, host, err := canonical(raw)
	if err != nil {
		return "", err
	}
	if !hostAllowed(host, allowed) {
		return "", fmt.Errorf("%w: host %q is not in push.allowed_hosts", tilecast.ErrHostNotAllowed, host)
	}
	return c, nil
}

// HostAllowed reports whether host matches a pattern of allowed: an exact
// name, or "*.example.org" for names ending in ".example.org" (not the bare
// suffix, and never a name that merely contains it, such as
// notify.live.net.evil.com). Host and patterns are compared in the form
// Canonical stores hosts in, so a look-alike Unicode host never matches an
// ASCII pattern and "bücher.example.org" matches "xn--bcher-kva.example.org".
// A host or pattern that is not a valid host name matches nothing.
func HostAllowed(host string, allowed []string) bool {
	h, err := patternHost(host)
	if err != nil {
		return false
	}
	return hostAllowed(h, allowed)
}

// hostAllowed is HostAllowed for a host already in canonical form.
func hostAllowed(host string, allowed []string) bool {
	_, ok := matchPattern(host, allowed)
	return ok
}

// MatchingPattern returns the first pattern of allowed that host matches
// (as HostAllowed matches), as written there.
func MatchingPattern(host string, allowed []string) (string, bool) {
	h, err := patternHost(host)
	if err != nil {
		return "", false
	}
	return matchPattern(h, allowed)
}

// matchPattern is MatchingPattern for a host already in canonical form.
func matchPattern(host string, allowed []string) (string, bool) {
	for _, pattern := range allowed {
		suffix, wild := strings.CutPrefix(strings.TrimSpace(pattern), "*.")
		p, err := patternHost(suffix)
		if err != nil {
			continue
		}
		if wild {
			if strings.HasSuffix(host, "."+p) && len(host) > len(p)+1 {
				return pattern, true
			}
			continue
		}
		if host == p {
			return pattern, true
		}
	}
	return "", false
}

// patternHost is canonicalHost for a host given on its own (a pattern of
// push.allowed_hosts, or HostAllowed's argument): an IPv6 address may come
// with or without brackets.
func patternHost(h string) (string, error) {
	if strings.Contains(h, ":") {
		return canonicalHost(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"), true)
	}
	return canonicalHost(h, false)
}

// canonicalHost returns a host name in its IDNA ASCII form without its
// trailing dot, or an IP address in its shortest form. bracketed says the
// host was written in [ ] (an IPv6 literal).
func canonicalHost(host string, bracketed bool) (string, error) {
	if bracketed {
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is6() {
			return "", invalid(err, "channel uri host [%s] is not an IPv6 address", host)
		}
		if a.Zone() != "" {
			// A zone names an interface of this machine: meaningless
			// to anyone else, and a second spelling of one address.
			return "", invalid(nil, "channel uri host [%s] has an IPv6 zone", host)
		}
		return a.String(), nil
	}
	if !utf8.ValidString(host) {
		return "", invalid(nil, "channel uri host %q is not valid UTF-8", host)
	}
	// Map first, trim after: the trailing dot may be written as any of
	// the full stops IDNA maps to "." (U+3002, U+FF0E, U+FF61).
	h, err := idna.Lookup.ToASCII(host)
	if err == nil {
		// The stored form must map to itself, or the next lookup of
		// the stored URI would find another spelling (or none).
		if again, err2 := idna.Lookup.ToASCII(h); err2 != nil || again != h {
			err = fmt.Errorf("its ASCII form %q does not map to itself", h)
		}
	}
	if err != nil {
		return "", invalid(err, "channel uri host %q is not a valid host name", host)
	}
	h = strings.TrimSuffix(h, ".")
	switch {
	case h == "":
		return "", invalid(nil, "channel uri has no host")
	case len(h) > maxName:
		return "", invalid(nil, "channel uri host %q is %d bytes, more than %d", host, len(h), maxName)
	}
	for label := range strings.SplitSeq(h, ".") {
		switch {
		case label == "":
			return "", invalid(nil, "channel uri host %q has an empty label", host)
		case len(label) > maxLabel:
			return "", invalid(nil, "channel uri host %q has a label of %d bytes, more than %d", host, len(label), maxLabel)
		}
	}
	if a, err := netip.ParseAddr(h); err == nil && a.Is4() {
		return a.String(), nil
	}
	return h, nil
}

// canonicalPort checks a port (digits, as url.Parse leaves it) and returns
// it without leading zeros, or "" for none or the scheme's default.
func canonicalPort(scheme, port string) (string, error) {
	if port == "" {
		return "", nil
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		if len(port) > 12 {
			port = port[:12] + "…"
		}
		return "", invalid(nil, "channel uri port %s is out of range: want 1 to 65535", port)
	}
	if (scheme == "http" && n == 80) || (scheme == "https" && n == 443) {
		return "", nil
	}
	return strconv.Itoa(n), nil
}

// normalise applies Canonical's rules to the path or the query (what
// names which, for the error).
func normalise(what, s string, query bool) (string, error) {
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '%' || !allowed(c, query) {
			clean = false
			break
		}
	}
	if clean {
		return s, nil // the usual case: nothing to copy
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%':
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				end := min(i+3, len(s))
				return "", invalid(nil, "channel uri %s has an invalid percent-encoding %q at byte %d", what, s[i:end], i)
			}
			v := unhex(s[i+1])<<4 | unhex(s[i+2])
			if unreserved(v) {
				b.WriteByte(v)
			} else {
				b.WriteByte('%')
				b.WriteByte(hex[v>>4])
				b.WriteByte(hex[v&15])
			}
			i += 2
		case allowed(c, query):
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	return b.String(), nil
}

// unreserved reports RFC 3986's unreserved characters: their
// percent-encoding means the character itself.
func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// allowed reports the characters a path (or, with query, a query) may
// carry unencoded: unreserved, sub-delims, ":", "@", "/" (and "?").
func allowed(c byte, query bool) bool {
	if unreserved(c) {
		return true
	}
	switch c {
	case '!', '$', '&', '\'', '(', ')', '*', '+', ',', ';', '=', ':', '@', '/':
		return true
	case '?':
		return query
	}
	return false
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// Rules are the registration rules of the [push] section that CheckChannel
// applies.
type Rules struct {
	// AllowedHosts is push.allowed_hosts: the hosts a channel URI may
	// have ("host" or "*.suffix").
	AllowedHosts []string
	// TransportHosts, when it has an entry for a channel's transport,
	// replaces AllowedHosts for that transport's channels (Web Push:
	// [push.webpush] allowed_hosts, the push services of browsers).
	TransportHosts map[tilecast.Transport][]string
	// AllowPrivate is push.allow_private: with it, a WNS channel may also
	// be on any host of AllowedHosts (the emulator, tests), as long as the
	// registration names transport wns itself.
	AllowPrivate bool
}

// CheckChannel checks a registration's URI for its transport and returns
// the URI's canonical form and the transport. t is the transport the
// registration names ("" infers it with tilecast.InferTransport; hasKeys
// says the registration carries Web Push subscription keys). On top of
// Check's rules (a usable URL whose host is in rules.AllowedHosts, or in
// the transport's own list of rules.TransportHosts):
//
//   - wns: https on *.notify.windows.com, where WNS issues every channel
//     and where alone its access token may go. A host listed in
//     AllowedHosts outside that domain is accepted only with
//     AllowPrivate and transport wns named explicitly (nothing infers WNS
//     for it), and may be http.
//   - mpns: not on *.notify.windows.com (WNS would refuse MPNS payloads).
//   - webpush: needs the subscription's keys (the other transports take
//     none) and https; http only on a loopback host with AllowPrivate
//     (the emulator).
//
// A refusal matches ErrInvalid, or wraps tilecast.ErrHostNotAllowed when
// the host is what is wrong, or tilecast.ErrUnknownTransport.
func CheckChannel(raw string, t tilecast.Transport, hasKeys bool, rules Rules) (string, tilecast.Transport, error) {
	explicit := t != ""
	if explicit {
		p, err := tilecast.ParseTransport(string(t))
		if err != nil {
			return "", "", err
		}
		t = p
	}
	c, host, err := canonical(raw)
	if err != nil {
		return "", "", err
	}
	if !explicit {
		t = tilecast.InferTransport(c, hasKeys)
	}
	wnsHost := tilecast.IsWNSHost(host)
	switch t {
	case tilecast.TransportWNS:
		switch {
		case hasKeys:
			return "", "", invalid(nil, "transport wns takes no subscription keys (keys are for webpush)")
		case wnsHost && !strings.HasPrefix(c, "https:"):
			return "", "", invalid(nil, "a wns channel uri must be https")
		case !wnsHost && !(explicit && rules.AllowPrivate):
			return "", "", fmt.Errorf("%w: a wns channel uri must be on *.notify.windows.com, got host %q "+
				"(another host of push.allowed_hosts is accepted only with push.allow_private and \"transport\": \"wns\")",
				tilecast.ErrHostNotAllowed, host)
		}
	case tilecast.TransportMPNS:
		switch {
		case hasKeys:
			return "", "", invalid(nil, "transport mpns takes no subscription keys (keys are for webpush)")
		case wnsHost:
			return "", "", fmt.Errorf("%w: host %q is a WNS host: transport mpns cannot send there (leave transport out, or name wns)",
				tilecast.ErrHostNotAllowed, host)
		}
	case tilecast.TransportWebPush:
		switch {
		case !hasKeys:
			return "", "", invalid(nil, "a webpush subscription needs its keys (p256dh and auth)")
		case !strings.HasPrefix(c, "https:") && !(rules.AllowPrivate && loopback(host)):
			// Push services are https; the emulator's loopback endpoints
			// are the one exception, with push.allow_private.
			return "", "", invalid(nil, "a webpush endpoint must be https (http only on a loopback host, with push.allow_private)")
		}
	}
	allowed, list := rules.AllowedHosts, "push.allowed_hosts"
	if hs, ok := rules.TransportHosts[t]; ok {
		allowed, list = hs, "push."+string(t)+".allowed_hosts"
	}
	if !hostAllowed(host, allowed) {
		return "", "", fmt.Errorf("%w: host %q is not in %s", tilecast.ErrHostNotAllowed, host, list)
	}
	return c, t, nil
}

// loopback reports whether a canonical host is localhost or a loopback
// address.
func loopback(host string) bool {
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}
