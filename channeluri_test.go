package tilecast

import (
	"errors"
	"strings"
	"testing"
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
	if err := CheckChannelURI("http://x.evil.com/", allowed); !errors.Is(err, ErrHostNotAllowed) {
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
		// Accepted ⇒ the host really is a subdomain of notify.live.net.
		i := strings.Index(s, "://")
		rest := s[i+3:]
		if j := strings.IndexAny(rest, "/?#"); j >= 0 {
			rest = rest[:j]
		}
		if strings.Contains(rest, "@") {
			t.Fatalf("accepted userinfo in %q", s)
		}
		host := strings.ToLower(rest)
		if k := strings.LastIndex(host, ":"); k >= 0 && !strings.HasSuffix(host, "]") {
			host = host[:k]
		}
		host = strings.TrimSuffix(host, ".")
		if !strings.HasSuffix(host, ".notify.live.net") {
			t.Fatalf("accepted host %q of %q", host, s)
		}
	})
}
