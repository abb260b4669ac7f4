package tilecast

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// UserPlaceholder is what a per-user feed's URL contains where the user goes.
const UserPlaceholder = "{user}"

// ErrBadUser marks a user name refused: at registration (CheckUser) or, for
// one feed, when the name cannot stand where that feed's URL puts it
// (Feed.URLFor). Callers branch on it with errors.Is.
var ErrBadUser = errors.New("bad user name")

// CheckUser reports whether s may be a channel's user: valid UTF-8 (invalid
// bytes are refused, never replaced, so two spellings cannot become one
// user) without control characters, line or paragraph separators or bidi
// controls, which would let a name rewrite the log line or the dashboard
// row it appears in. U+FFFD is refused too: it is what a decoder upstream
// (encoding/json for invalid bytes or a lone surrogate escape) put in place
// of what the client sent, so refusing it is refusing the invalid input
// rather than storing it replaced. "" (no user) is allowed. Length limits
// are the caller's.
func CheckUser(s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: not valid UTF-8", ErrBadUser)
	}
	for i, r := range s {
		switch {
		case r == utf8.RuneError:
			return fmt.Errorf("%w: U+FFFD at byte %d (invalid UTF-8 replaced on the way in?)", ErrBadUser, i)
		case unicode.IsControl(r):
			return fmt.Errorf("%w: control character %U at byte %d", ErrBadUser, r, i)
		case r == '\u2028' || r == '\u2029':
			return fmt.Errorf("%w: line or paragraph separator %U at byte %d", ErrBadUser, r, i)
		case isBidiControl(r):
			return fmt.Errorf("%w: bidi control %U at byte %d", ErrBadUser, r, i)
		}
	}
	return nil
}

// isBidiControl reports the explicit directional formatting characters of
// Unicode's bidi algorithm (UAX #9): ALM, LRM, RLM, the embeddings and
// overrides, and the isolates.
func isBidiControl(r rune) bool {
	return r == '\u061c' || r == '\u200e' || r == '\u200f' ||
		(r >= '\u202a' && r <= '\u202e') || (r >= '\u2066' && r <= '\u2069')
}

// feedURLParts is a feed URL template cut at the delimiters of RFC 3986
// (scheme "://" [userinfo "@"] host [":" port] path ["?" query] ["#"
// fragment]) before anything is substituted, so each {user} is known to
// stand in exactly one component. The placeholder holds none of the
// delimiters, so cutting the template cuts the URL the same way.
type feedURLParts struct {
	scheme, userinfo, host, port, path, query, fragment string
	hasUserinfo, hasPort, hasQuery, hasFragment         bool
}

func splitFeedURL(tmpl string) (feedURLParts, error) {
	var p feedURLParts
	scheme, rest, ok := strings.Cut(tmpl, "://")
	if !ok {
		return p, errors.New("must be an absolute http or https URL")
	}
	p.scheme = scheme
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority, rest := rest[:end], rest[end:]
	if at := strings.LastIndexByte(authority, '@'); at >= 0 {
		p.userinfo, authority, p.hasUserinfo = authority[:at], authority[at+1:], true
	}
	p.host = authority
	if strings.HasPrefix(authority, "[") { // IPv6 literal
		if i := strings.IndexByte(authority, ']'); i >= 0 {
			p.host = authority[:i+1]
			if port, ok := strings.CutPrefix(authority[i+1:], ":"); ok {
				p.port, p.hasPort = port, true
			}
		}
	} else if i := strings.LastIndexByte(authority, ':'); i >= 0 {
		p.host, p.port, p.hasPort = authority[:i], authority[i+1:], true
	}
	rest, p.fragment, p.hasFragment = strings.Cut(rest, "#")
	p.path, p.query, p.hasQuery = strings.Cut(rest, "?")
	return p, nil
}

func (p *feedURLParts) join() string {
	var b strings.Builder
	b.WriteString(p.scheme)
	b.WriteString("://")
	if p.hasUserinfo {
		b.WriteString(p.userinfo)
		b.WriteByte('@')
	}
	b.WriteString(p.host)
	if p.hasPort {
		b.WriteByte(':')
		b.WriteString(p.port)
	}
	b.WriteString(p.path)
	if p.hasQuery {
		b.WriteByte('?')
		b.WriteString(p.query)
	}
	if p.hasFragment {
		b.WriteByte('#')
		b.WriteString(p.fragment)
	}
	return b.String()
}

// CheckFeedURL checks where {user} stands in a feed URL (the config loader
// calls it; a URL without {user} passes). Allowed: anywhere in the path or
// the query, and in the host only as a whole DNS label followed by at
// least two fixed labels ("https://{user}.example.org/feed"), so a user
// can pick a name under the operator's domain but never the domain. Refused:
// the scheme, the userinfo and the port, where no escaping could make a
// user name safe, and the fragment, which is never sent to the server.
func CheckFeedURL(tmpl string) error {
	if !strings.Contains(tmpl, UserPlaceholder) {
		return nil
	}
	p, err := splitFeedURL(tmpl)
	if err != nil {
		return err
	}
	for _, c := range []struct{ name, s string }{
		{"scheme", p.scheme}, {"userinfo", p.userinfo}, {"port", p.port},
		{"fragment (never sent to the server)", p.fragment},
	} {
		if strings.Contains(c.s, UserPlaceholder) {
			return fmt.Errorf("%s is not allowed in the %s", UserPlaceholder, c.name)
		}
	}
	if !strings.Contains(p.host, UserPlaceholder) {
		return nil
	}
	if strings.HasPrefix(p.host, "[") {
		return fmt.Errorf("%s is not allowed in an IP address", UserPlaceholder)
	}
	labels := strings.Split(p.host, ".")
	last := -1
	for i, l := range labels {
		if !strings.Contains(l, UserPlaceholder) {
			continue
		}
		if l != UserPlaceholder {
			return fmt.Errorf("%s in the host must be a whole DNS label, as in %s.example.org, not part of %q", UserPlaceholder, UserPlaceholder, l)
		}
		last = i
	}
	if fixed := len(labels) - last - 1; fixed < 2 || (labels[len(labels)-1] == "" && fixed < 3) {
		return fmt.Errorf("%s in the host needs a fixed domain of at least two labels after it, as in %s.example.org", UserPlaceholder, UserPlaceholder)
	}
	return nil
}

// URLFor returns the URL to fetch for user: the feed's URL with each
// {user} replaced by user escaped for where it stands — path escaping in
// the path (a "/" becomes %2F, so "bob/../admin" stays one segment; a user
// that would make a whole segment "." or ".." is refused), query escaping
// in the query ("bob&key=x" adds no parameter), and in the host only a user
// that is a valid DNS label (letters, digits and inner hyphens, at most 63
// bytes; anything else is refused for this feed). The user must pass
// CheckUser. For a feed without {user} the URL is returned as configured.
// Refusals wrap ErrBadUser; a URL the config loader should have refused
// (CheckFeedURL) is an error too.
func (f *Feed) URLFor(user string) (string, error) {
	if !f.PerUser() {
		return f.URL, nil
	}
	if user == "" {
		return "", fmt.Errorf("feed %s: %w: a per-user feed needs a user", f.Name, ErrBadUser)
	}
	if err := CheckUser(user); err != nil {
		return "", fmt.Errorf("feed %s: %w", f.Name, err)
	}
	if err := CheckFeedURL(f.URL); err != nil {
		return "", fmt.Errorf("feed %s: url: %w", f.Name, err)
	}
	p, err := splitFeedURL(f.URL)
	if err != nil {
		return "", fmt.Errorf("feed %s: url: %w", f.Name, err)
	}
	if strings.Contains(p.host, UserPlaceholder) {
		if !dnsLabel(user) {
			return "", fmt.Errorf("feed %s: %w: %q is not a DNS label (letters, digits, inner hyphens, 1-63 bytes), which the url's host needs",
				f.Name, ErrBadUser, user)
		}
		p.host = strings.ReplaceAll(p.host, UserPlaceholder, user)
	}
	if strings.Contains(p.path, UserPlaceholder) {
		segs := strings.Split(p.path, "/")
		esc := url.PathEscape(user)
		for i, s := range segs {
			if !strings.Contains(s, UserPlaceholder) {
				continue
			}
			segs[i] = strings.ReplaceAll(s, UserPlaceholder, esc)
			if segs[i] == "." || segs[i] == ".." {
				return "", fmt.Errorf("feed %s: %w: %q would be a dot segment of the url's path", f.Name, ErrBadUser, user)
			}
		}
		p.path = strings.Join(segs, "/")
	}
	p.query = strings.ReplaceAll(p.query, UserPlaceholder, url.QueryEscape(user))
	return p.join(), nil
}

// dnsLabel reports whether s is a DNS label by RFC 1123's rules: 1–63 ASCII
// letters, digits and hyphens, not starting or ending with a hyphen.
// Internationalised names would need IDNA, which is not in the standard
// library: their users are refused for host-label feeds.
func dnsLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}
