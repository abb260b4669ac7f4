package web

import (
	"fmt"
	"net/url"
	"strings"

	"golang.org/x/net/idna"

	"github.com/tilecast/tilecast"
)

// CheckChannelURI validates a channel URI for registration: an absolute
// http or https URL of at most tilecast.MaxChannelURI bytes, with no
// userinfo, whose host matches one of allowed ("host" exactly, or
// "*.suffix" for any subdomain of suffix). Hosts and patterns are compared
// in their IDNA ASCII form, lowercased, without a trailing dot, so a
// look-alike Unicode host never matches an ASCII pattern. It returns a
// specific message for each refusal.
func CheckChannelURI(raw string, allowed []string) error {
	if len(raw) > tilecast.MaxChannelURI {
		return fmt.Errorf("channel uri is %d bytes, more than %d", len(raw), tilecast.MaxChannelURI)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("channel uri is not a valid URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("channel uri must be an absolute http or https URL, got scheme %q", u.Scheme)
	}
	if u.User != nil {
		return fmt.Errorf("channel uri must not contain userinfo")
	}
	if u.Hostname() == "" {
		return fmt.Errorf("channel uri has no host")
	}
	host, err := asciiHost(u.Hostname())
	if err != nil {
		return fmt.Errorf("channel uri host %q is not a valid host name: %w", u.Hostname(), err)
	}
	if !HostAllowed(host, allowed) {
		return fmt.Errorf("%w: host %q is not in push.allowed_hosts", tilecast.ErrHostNotAllowed, host)
	}
	return nil
}

// asciiHost returns host in its IDNA ASCII (punycode) form, lowercased,
// without a trailing dot. IP literals pass through.
func asciiHost(host string) (string, error) {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if strings.Contains(host, ":") { // IPv6 literal
		return host, nil
	}
	return idna.Lookup.ToASCII(host)
}

// HostAllowed reports whether host matches a pattern of allowed: an exact
// name, or "*.example.org" for names ending in ".example.org" (not the bare
// suffix, and never a name that merely contains it, such as
// notify.live.net.evil.com). Both sides are compared in IDNA ASCII form.
func HostAllowed(host string, allowed []string) bool {
	host, err := asciiHost(host)
	if err != nil {
		return false
	}
	for _, p := range allowed {
		p = strings.TrimSpace(p)
		wild := strings.HasPrefix(p, "*.")
		p, err := asciiHost(strings.TrimPrefix(p, "*."))
		if err != nil {
			continue
		}
		if wild {
			p = "*." + p
		}
		if suffix, ok := strings.CutPrefix(p, "*."); ok {
			if strings.HasSuffix(host, "."+suffix) && len(host) > len(suffix)+1 {
				return true
			}
			continue
		}
		if host == p {
			return true
		}
	}
	return false
}
