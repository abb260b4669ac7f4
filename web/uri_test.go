package web

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/tilecast/tilecast"
)

func TestCheckChannelURI(t *testing.T) {
	allowed := []string{"*.notify.live.net", "127.0.0.1"}
	tests := []struct {
		uri     string
		wantErr string // "" = accepted
	}{
		{"http://db3.notify.live.net/throttledthirdparty/01.00/AAA", ""},
		{"https://DB3.Notify.Live.Net./unthrottledthirdparty/01.00/AAA", ""},
		{"http://127.0.0.1:8080/throttledthirdparty/01.00/x", ""},
		{"http://notify.live.net/x", "not in push.allowed_hosts"},
		{"http://notify.live.net.evil.com/x", "not in push.allowed_hosts"},
		{"http://evilnotify.live.net/x", "not in push.allowed_hosts"},
		{"http://user:pw@db3.notify.live.net/x", "userinfo"},
		{"ftp://db3.notify.live.net/x", "scheme"},
		{"/relative/path", "scheme"},
		{"http:///nohost", "no host"},
		{"http://db3.notify.live.net/" + strings.Repeat("a", 2048), "more than 2048"},
		{"http://[::1/x", "not a valid URL"},
		// IDNA: a Unicode host is compared in its punycode form.
		{"http://bücher.notify.live.net/x", ""},
		{"http://xn--bcher-kva.notify.live.net/x", ""},
		{"http://db3.n\u043etify.live.net/x", "not in push.allowed_hosts"},          // Cyrillic о
		{"http://db3.notify.live.net\u3002evil.com/x", "not in push.allowed_hosts"}, // ideographic full stop
	}
	for _, tt := range tests {
		err := CheckChannelURI(tt.uri, allowed)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("%q: unexpected error %v", tt.uri, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("%q: error %v, want one containing %q", tt.uri, err, tt.wantErr)
		}
	}
	if err := CheckChannelURI("http://x.evil.com/", allowed); !errors.Is(err, tilecast.ErrHostNotAllowed) {
		t.Errorf("disallowed host error %v does not wrap ErrHostNotAllowed", err)
	}
}

func FuzzCheckChannelURI(f *testing.F) {
	for _, s := range []string{"http://a.notify.live.net/x", "http://notify.live.net.evil.com/", "https://x@y/", ""} {
		f.Add(s)
	}
	allowed := []string{"*.notify.live.net"}
	f.Fuzz(func(t *testing.T, s string) {
		if CheckChannelURI(s, allowed) != nil {
			return
		}
		// Accepted ⇒ the host, in the form it is stored and sent, really is
		// a subdomain of notify.live.net, and canonicalising is stable.
		c := CanonicalURI(s)
		if CanonicalURI(c) != c {
			t.Fatalf("canonical form not stable: %q → %q → %q", s, c, CanonicalURI(c))
		}
		u, err := url.Parse(c)
		if err != nil || u.User != nil {
			t.Fatalf("accepted %q: canonical %q does not parse cleanly (%v)", s, c, err)
		}
		host := u.Hostname()
		for _, r := range host {
			if r > 127 {
				t.Fatalf("accepted %q: stored host %q is not ASCII", s, host)
			}
		}
		if !strings.HasSuffix(host, ".notify.live.net") {
			t.Fatalf("accepted host %q of %q", host, s)
		}
	})
}

func TestHostAllowedUnicodePattern(t *testing.T) {
	if !HostAllowed("xn--bcher-kva.example.org", []string{"bücher.example.org"}) {
		t.Error("a Unicode pattern does not match its punycode host")
	}
	if !HostAllowed("a.xn--bcher-kva.example.org", []string{"*.bücher.example.org"}) {
		t.Error("a Unicode wildcard pattern does not match")
	}
	if HostAllowed("xn--bcher-kva.example.org", []string{"*.bücher.example.org"}) {
		t.Error("a wildcard matched its bare suffix")
	}
}

func TestCanonicalURIUsesASCIIHost(t *testing.T) {
	got := CanonicalURI("HTTP://Bücher.Notify.Live.Net.:80/throttledthirdparty/01.00/AbC")
	if want := "http://xn--bcher-kva.notify.live.net/throttledthirdparty/01.00/AbC"; got != want {
		t.Errorf("CanonicalURI = %q, want %q", got, want)
	}
}
