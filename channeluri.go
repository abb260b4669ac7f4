package tilecast

import (
	"fmt"
	"net/url"
	"strings"
)

// MaxChannelURI is the longest channel URI accepted (design.md §2).
const MaxChannelURI = 2048

// CheckChannelURI validates a channel URI for registration: an absolute
// http or https URL of at most MaxChannelURI bytes, with no userinfo, whose
// host matches one of allowed ("host" exactly, or "*.suffix" for any
// subdomain of suffix; compared lowercased, without a trailing dot). It
// returns a specific message for each refusal. Hosts are compared as ASCII;
// an internationalised host must be given in its punycode form.
func CheckChannelURI(raw string, allowed []string) error {
	if len(raw) > MaxChannelURI {
		return fmt.Errorf("channel uri is %d bytes, more than %d", len(raw), MaxChannelURI)
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
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if host == "" {
		return fmt.Errorf("channel uri has no host")
	}
	if !HostAllowed(host, allowed) {
		return fmt.Errorf("%w: host %q is not in push.allowed_hosts", ErrHostNotAllowed, host)
	}
	return nil
}

// ErrHostNotAllowed marks a channel URI whose host is not in push.allowed_hosts.
var ErrHostNotAllowed = fmt.Errorf("host not allowed")

// HostAllowed reports whether host matches a pattern of allowed: an exact
// name, or "*.example.org" for names ending in ".example.org" (not the bare
// suffix, and never a name that merely contains it, such as
// notify.live.net.evil.com).
func HostAllowed(host string, allowed []string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	for _, p := range allowed {
		p = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(p)), ".")
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
