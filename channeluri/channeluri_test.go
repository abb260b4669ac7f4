package channeluri

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/tilecast/tilecast"
)

// Every row: a spelling and the canonical form it must come out as, or
// the refusal (a substring of the error). Rows that share a want are the
// spellings that must dedup to one channel.
func TestCanonical(t *testing.T) {
	const mpns = "https://db3.notify.live.net/throttledthirdparty/01.00/AQHgBxKx-_Xv8cSY"
	tests := []struct {
		name, in, want, wantErr string
	}{
		{"canonical already", mpns, mpns, ""},
		// Scheme and host case.
		{"upper scheme", "HTTPS://db3.notify.live.net/throttledthirdparty/01.00/AQHgBxKx-_Xv8cSY", mpns, ""},
		{"mixed host", "https://DB3.Notify.Live.NET/throttledthirdparty/01.00/AQHgBxKx-_Xv8cSY", mpns, ""},
		{"path case kept", "https://db3.notify.live.net/ThrottledThirdParty/01.00/aqhg", "https://db3.notify.live.net/ThrottledThirdParty/01.00/aqhg", ""},
		{"query case kept", "https://db5.notify.windows.com/?token=AwYAAAB%2bQ", "https://db5.notify.windows.com/?token=AwYAAAB%2BQ", ""},
		// Default ports, other ports.
		{"https 443", "https://db3.notify.live.net:443/throttledthirdparty/01.00/AQHgBxKx-_Xv8cSY", mpns, ""},
		{"http 80", "http://db3.notify.live.net:80/x", "http://db3.notify.live.net/x", ""},
		{"http 443 kept", "http://db3.notify.live.net:443/x", "http://db3.notify.live.net:443/x", ""},
		{"https 80 kept", "https://db3.notify.live.net:80/x", "https://db3.notify.live.net:80/x", ""},
		{"leading zeros", "https://db3.notify.live.net:0443/x", "https://db3.notify.live.net/x", ""},
		{"leading zeros other", "http://127.0.0.1:08080/x", "http://127.0.0.1:8080/x", ""},
		{"empty port", "https://db3.notify.live.net:/x", "https://db3.notify.live.net/x", ""},
		{"port 1", "http://127.0.0.1:1/x", "http://127.0.0.1:1/x", ""},
		{"port 65535", "http://127.0.0.1:65535/x", "http://127.0.0.1:65535/x", ""},
		{"port 0", "http://127.0.0.1:0/x", "", "port 0 is out of range"},
		{"port 00", "http://127.0.0.1:00/x", "", "port 00 is out of range"},
		{"port 65536", "http://127.0.0.1:65536/x", "", "port 65536 is out of range"},
		{"port huge", "http://127.0.0.1:99999999999999999999999/x", "", "port 999999999999… is out of range"},
		// Trailing dots in every form IDNA maps to ".".
		{"trailing dot", "https://db3.notify.live.net./x", "https://db3.notify.live.net/x", ""},
		{"trailing U+3002", "https://db3.notify.live.net\u3002/x", "https://db3.notify.live.net/x", ""},
		{"trailing U+FF0E", "https://db3.notify.live.net\uff0e/x", "https://db3.notify.live.net/x", ""},
		{"trailing U+FF61", "https://db3.notify.live.net\uff61/x", "https://db3.notify.live.net/x", ""},
		{"trailing dot and port", "https://db3.notify.live.net.:443/x", "https://db3.notify.live.net/x", ""},
		{"trailing U+3002 and port", "https://db3.notify.live.net\u3002:8443/x", "https://db3.notify.live.net:8443/x", ""},
		{"inner U+3002", "https://db3\u3002notify.live.net/x", "https://db3.notify.live.net/x", ""},
		{"two trailing dots", "https://db3.notify.live.net../x", "", "empty label"},
		{"dot then U+3002", "https://db3.notify.live.net.\u3002/x", "", "empty label"},
		{"empty inner label", "https://db3..live.net/x", "", "empty label"},
		{"only a dot", "https://./x", "", "no host"},
		{"only U+3002", "https://\u3002/x", "", "no host"},
		// IDN hosts: stored in punycode, whichever way they were written.
		{"unicode host", "https://bücher.example.org/x", "https://xn--bcher-kva.example.org/x", ""},
		{"unicode host upper", "https://BÜCHER.example.org/x", "https://xn--bcher-kva.example.org/x", ""},
		{"punycode upper", "https://XN--BCHER-KVA.example.org/x", "https://xn--bcher-kva.example.org/x", ""},
		{"percent-encoded unicode host", "https://b%C3%BCcher.example.org/x", "https://xn--bcher-kva.example.org/x", ""},
		{"full-width host", "https://\uff44\uff42\uff13.notify.live.net/x", "https://db3.notify.live.net/x", ""},
		{"bad punycode", "https://xn--a.example.org/x", "", "not a valid host name"},
		{"invalid utf-8", "http://\xb50/x", "", "not valid UTF-8"},
		{"disallowed rune", "https://a_b.example.org/x", "", "not a valid host name"},
		{"label too long", "https://" + strings.Repeat("a", 64) + ".example.org/x", "", "label of 64 bytes"},
		// IP literals.
		{"ipv4", "http://127.0.0.1:8080/x", "http://127.0.0.1:8080/x", ""},
		{"full-width ipv4", "http://\uff11\uff12\uff17.0.0.1/x", "http://127.0.0.1/x", ""},
		{"ipv6 long form", "http://[0:0:0:0:0:0:0:1]:80/x", "http://[::1]/x", ""},
		{"ipv6 upper", "http://[FE80::AB]:8080/x", "http://[fe80::ab]:8080/x", ""},
		{"ipv6 zone", "http://[fe80::1%25eth0]/x", "", "zone"},
		{"ipv4 in brackets", "http://[127.0.0.1]/x", "", "not a valid URL"},
		// Percent-encoding in path and query.
		{"lower hex", "https://h.example/a%2fb?t=%2b%3d", "https://h.example/a%2Fb?t=%2B%3D", ""},
		{"encoded unreserved", "https://h.example/%7Euser/%41%62c-%5F%2E?x=%7e", "https://h.example/~user/Abc-_.?x=~", ""},
		{"reserved stays encoded", "https://h.example/x?t=a%2Bb+c", "https://h.example/x?t=a%2Bb+c", ""},
		{"space", "https://h.example/a b?c d", "https://h.example/a%20b?c%20d", ""},
		{"non-ascii path", "https://h.example/é?q=é", "https://h.example/%C3%A9?q=%C3%A9", ""},
		{"bad escape in query", "https://h.example/x?t=%zz", "", `query has an invalid percent-encoding "%zz" at byte 2`},
		{"short escape in query", "https://h.example/x?t=%2", "", `invalid percent-encoding "%2"`},
		{"bad escape in path", "https://h.example/x%zz", "", "not a valid URL"},
		// Empty path and query.
		{"no path", "https://h.example", "https://h.example/", ""},
		{"no path, query", "https://h.example?x=1", "https://h.example/?x=1", ""},
		{"empty query", "https://h.example/x?", "https://h.example/x", ""},
		// Refusals.
		{"userinfo", "https://user:pw@h.example/x", "", "userinfo"},
		{"empty userinfo", "https://@h.example/x", "", "userinfo"},
		{"ftp", "ftp://h.example/x", "", "scheme"},
		{"relative", "/relative/path", "", "scheme"},
		{"no host", "http:///nohost", "", "no host"},
		{"opaque", "http:h.example", "", "no host"},
		{"fragment", "https://h.example/x#frag", "", "fragment"},
		{"empty fragment", "https://h.example/x#", "", "fragment"},
		{"too long", "https://h.example/" + strings.Repeat("a", 2048), "", "more than 2048"},
		{"too long in canonical form", "https://h.example/" + strings.Repeat("é", 700), "", "in canonical form, more than 2048"},
		{"broken ipv6", "http://[::1/x", "", "not a valid URL"},
		{"control char", "http://h.example/\x00", "", "not a valid URL"},
		{"empty", "", "", "scheme"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Canonical(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Canonical(%q) = %q, %v; want an error containing %q", tt.in, got, err, tt.wantErr)
				}
				if !errors.Is(err, ErrInvalid) {
					t.Errorf("error %v does not match ErrInvalid", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Canonical(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
			if again, err := Canonical(got); err != nil || again != got {
				t.Errorf("not stable: %q → %q (%v)", got, again, err)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	allowed := []string{"*.notify.live.net", "127.0.0.1", "::1"}
	tests := []struct {
		uri     string
		want    string
		wantErr string // "" = accepted
	}{
		{"http://db3.notify.live.net/throttledthirdparty/01.00/AAA", "http://db3.notify.live.net/throttledthirdparty/01.00/AAA", ""},
		{"https://DB3.Notify.Live.Net./unthrottledthirdparty/01.00/AAA", "https://db3.notify.live.net/unthrottledthirdparty/01.00/AAA", ""},
		{"http://127.0.0.1:8080/throttledthirdparty/01.00/x", "http://127.0.0.1:8080/throttledthirdparty/01.00/x", ""},
		{"http://[::1]:8080/x", "http://[::1]:8080/x", ""},
		{"http://notify.live.net/x", "", "not in push.allowed_hosts"},
		{"http://notify.live.net.evil.com/x", "", "not in push.allowed_hosts"},
		{"http://evilnotify.live.net/x", "", "not in push.allowed_hosts"},
		{"http://user:pw@db3.notify.live.net/x", "", "userinfo"},
		{"ftp://db3.notify.live.net/x", "", "scheme"},
		{"http://127.0.0.1:0/x", "", "port 0"},
		// IDNA: a Unicode host is compared in its punycode form.
		{"http://bücher.notify.live.net/x", "http://xn--bcher-kva.notify.live.net/x", ""},
		{"http://xn--bcher-kva.notify.live.net/x", "http://xn--bcher-kva.notify.live.net/x", ""},
		{"http://db3.n\u043etify.live.net/x", "", "not in push.allowed_hosts"},          // Cyrillic о
		{"http://db3.notify.live.net\u3002evil.com/x", "", "not in push.allowed_hosts"}, // ideographic full stop
		{"http://db3.notify.live.net\u3002/x", "http://db3.notify.live.net/x", ""},
	}
	for _, tt := range tests {
		got, err := Check(tt.uri, allowed)
		switch {
		case tt.wantErr == "" && (err != nil || got != tt.want):
			t.Errorf("Check(%q) = %q, %v; want %q", tt.uri, got, err, tt.want)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("Check(%q): error %v, want one containing %q", tt.uri, err, tt.wantErr)
		}
	}
	_, err := Check("http://x.evil.com/", allowed)
	if !errors.Is(err, tilecast.ErrHostNotAllowed) || errors.Is(err, ErrInvalid) {
		t.Errorf("disallowed host error %v: want ErrHostNotAllowed, not ErrInvalid", err)
	}
	if _, err := Check("http://db3.notify.live.net/x", nil); !errors.Is(err, tilecast.ErrHostNotAllowed) {
		t.Errorf("no allowed hosts: %v, want ErrHostNotAllowed", err)
	}
}

func TestHostAllowed(t *testing.T) {
	tests := []struct {
		host    string
		allowed []string
		want    bool
	}{
		{"xn--bcher-kva.example.org", []string{"bücher.example.org"}, true},
		{"a.xn--bcher-kva.example.org", []string{"*.bücher.example.org"}, true},
		{"xn--bcher-kva.example.org", []string{"*.bücher.example.org"}, false}, // not the bare suffix
		{"DB3.Notify.Live.Net.", []string{"*.notify.live.net"}, true},
		{"db3.notify.live.net\u3002", []string{"*.notify.live.net"}, true},
		{"notify.live.net.evil.com", []string{"*.notify.live.net"}, false},
		{"db3.notify.live.net", []string{" *.notify.live.net "}, true},
		{"::1", []string{"[::1]"}, true},
		{"[0::1]", []string{"::1"}, true},
		{"127.0.0.1", []string{"127.0.0.1"}, true},
		{"127.0.0.2", []string{"127.0.0.1"}, false},
		{"a_b.example.org", []string{"*.example.org"}, false}, // not a host name
		{"x.example.org", []string{"*.a_b.org", "x.example.org"}, true},
		{"x.example.org", nil, false},
	}
	for _, tt := range tests {
		if got := HostAllowed(tt.host, tt.allowed); got != tt.want {
			t.Errorf("HostAllowed(%q, %q) = %v, want %v", tt.host, tt.allowed, got, tt.want)
		}
	}
}

func TestMatchingPattern(t *testing.T) {
	tests := []struct {
		host    string
		allowed []string
		want    string // "" for no match
	}{
		{"wns2-par02p.notify.windows.com", []string{"fcm.googleapis.com", "*.notify.windows.com"}, "*.notify.windows.com"},
		{"FCM.googleapis.com.", []string{"fcm.googleapis.com", "*.notify.windows.com"}, "fcm.googleapis.com"},
		{"db3.notify.live.net", []string{" *.notify.live.net "}, " *.notify.live.net "}, // as written
		{"x.example.org", []string{"*.a_b.org", "x.example.org", "*.example.org"}, "x.example.org"},
		{"notify.windows.com", []string{"*.notify.windows.com"}, ""},
		{"a_b.example.org", []string{"*.example.org"}, ""},
	}
	for _, tt := range tests {
		got, ok := MatchingPattern(tt.host, tt.allowed)
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("MatchingPattern(%q, %q) = %q, %v; want %q", tt.host, tt.allowed, got, ok, tt.want)
		}
		if HostAllowed(tt.host, tt.allowed) != ok {
			t.Errorf("HostAllowed(%q, %q) disagrees with MatchingPattern", tt.host, tt.allowed)
		}
	}
}

func FuzzCanonical(f *testing.F) {
	for _, s := range []string{
		"http://a.notify.live.net/x", "http://notify.live.net.evil.com/", "https://x@y/", "",
		"HTTPS://DB3.Notify.Live.NET\u3002:0443/a%7e?b=%2f", "http://[::1]:80/", "https://b%C3%BCcher.notify.live.net/%zz",
	} {
		f.Add(s)
	}
	allowed := []string{"*.notify.live.net"}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := Canonical(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Canonical(%q) error %v does not match ErrInvalid", s, err)
			}
			return
		}
		if again, err := Canonical(c); err != nil || again != c {
			t.Fatalf("canonical form not stable: %q → %q → %q (%v)", s, c, again, err)
		}
		u, err := url.Parse(c)
		if err != nil || u.User != nil || u.Fragment != "" || len(c) > tilecast.MaxChannelURI {
			t.Fatalf("accepted %q: canonical %q does not parse cleanly (%v)", s, c, err)
		}
		for i := 0; i < len(c); i++ {
			if c[i] <= ' ' || c[i] >= 0x7f {
				t.Fatalf("accepted %q: canonical %q has byte %#x", s, c, c[i])
			}
		}
		checked, err := Check(s, allowed)
		if err != nil {
			if !errors.Is(err, tilecast.ErrHostNotAllowed) {
				t.Fatalf("Check(%q) = %v after Canonical accepted it", s, err)
			}
			return
		}
		// Accepted ⇒ the host, in the form it is stored and sent, really is
		// a subdomain of notify.live.net.
		if checked != c || !strings.HasSuffix(u.Hostname(), ".notify.live.net") {
			t.Fatalf("Check(%q) accepted %q, host %q", s, checked, u.Hostname())
		}
	})
}

// Every registration rule of CheckChannel: the inferred or named
// transport, and the refusals with the sentinel each wraps.
func TestCheckChannel(t *testing.T) {
	const (
		wnsURI  = "https://wns2-par02p.notify.windows.com/w/?token=BQYAAAB%2bQ"
		mpnsURI = "https://db3.notify.live.net/throttledthirdparty/01.00/AQHg"
		emuURI  = "http://127.0.0.1:8461/w/?token=abc"
	)
	def := Rules{AllowedHosts: []string{"*.notify.live.net", "*.notify.windows.com"}}
	emu := Rules{AllowedHosts: []string{"*.notify.live.net", "*.notify.windows.com", "127.0.0.1"}, AllowPrivate: true}
	tests := []struct {
		name    string
		uri     string
		t       tilecast.Transport
		keys    bool
		rules   Rules
		want    tilecast.Transport
		wantURI string
		wantErr string
		is      error
	}{
		{name: "wns inferred", uri: wnsURI, rules: def, want: tilecast.TransportWNS,
			wantURI: "https://wns2-par02p.notify.windows.com/w/?token=BQYAAAB%2BQ"},
		{name: "wns named, any case", uri: wnsURI, t: "WNS", rules: def, want: tilecast.TransportWNS},
		{name: "wns host upper case", uri: "https://DB5.Notify.Windows.COM/?token=a", rules: def, want: tilecast.TransportWNS},
		{name: "mpns inferred", uri: mpnsURI, rules: def, want: tilecast.TransportMPNS},
		{name: "mpns named", uri: mpnsURI, t: tilecast.TransportMPNS, rules: def, want: tilecast.TransportMPNS},
		{name: "keys are web push, even on a windows host", uri: wnsURI, keys: true,
			rules: def, want: tilecast.TransportWebPush},
		{name: "emulator named wns", uri: emuURI, t: tilecast.TransportWNS, rules: emu, want: tilecast.TransportWNS},
		{name: "emulator infers mpns", uri: "http://127.0.0.1:8461/throttledthirdparty/01.00/x", rules: emu,
			want: tilecast.TransportMPNS},

		{name: "wns over http", uri: "http://db5.notify.windows.com/?token=a", rules: def, wantErr: "must be https", is: ErrInvalid},
		{name: "wns over http even when listed and private", uri: "http://db5.notify.windows.com/?token=a",
			t: tilecast.TransportWNS, rules: emu, wantErr: "must be https", is: ErrInvalid},
		{name: "wns named on another host", uri: mpnsURI, t: tilecast.TransportWNS, rules: def,
			wantErr: "must be on *.notify.windows.com", is: tilecast.ErrHostNotAllowed},
		{name: "emulator wns without allow_private", uri: emuURI, t: tilecast.TransportWNS,
			rules: Rules{AllowedHosts: emu.AllowedHosts}, wantErr: "push.allow_private", is: tilecast.ErrHostNotAllowed},
		{name: "look-alike host", uri: "https://notify.windows.com.evil.example/?token=a", t: tilecast.TransportWNS,
			rules: def, wantErr: "must be on *.notify.windows.com", is: tilecast.ErrHostNotAllowed},
		{name: "bare suffix", uri: "https://notify.windows.com/?token=a", t: tilecast.TransportWNS,
			rules: def, wantErr: "must be on *.notify.windows.com", is: tilecast.ErrHostNotAllowed},
		{name: "mpns named on a wns host", uri: wnsURI, t: tilecast.TransportMPNS, rules: def,
			wantErr: "is a WNS host", is: tilecast.ErrHostNotAllowed},
		{name: "wns host not allowed", uri: wnsURI, rules: Rules{AllowedHosts: []string{"*.notify.live.net"}},
			wantErr: "not in push.allowed_hosts", is: tilecast.ErrHostNotAllowed},
		{name: "keys with wns", uri: wnsURI, t: tilecast.TransportWNS, keys: true, rules: def,
			wantErr: "takes no subscription keys", is: ErrInvalid},
		{name: "web push without keys", uri: wnsURI, t: tilecast.TransportWebPush, rules: def,
			wantErr: "needs its keys", is: ErrInvalid},
		{name: "unknown transport", uri: wnsURI, t: "apns", rules: def, wantErr: "unknown transport",
			is: tilecast.ErrUnknownTransport},
		{name: "bad uri", uri: "ftp://db5.notify.windows.com/", rules: def, wantErr: "scheme", is: ErrInvalid},
		// A transport's own host list replaces push.allowed_hosts for it.
		{name: "web push on its own list", uri: "https://fcm.googleapis.com/fcm/send/x", keys: true,
			rules: Rules{AllowedHosts: def.AllowedHosts, TransportHosts: map[tilecast.Transport][]string{
				tilecast.TransportWebPush: {"fcm.googleapis.com"}}}, want: tilecast.TransportWebPush},
		{name: "web push on the emulator", uri: "http://127.0.0.1:8461/webpush/abc", keys: true, rules: emu,
			want: tilecast.TransportWebPush},
		{name: "web push over http", uri: "http://fcm.googleapis.com/fcm/send/x", keys: true,
			rules: Rules{AllowedHosts: []string{"fcm.googleapis.com"}, AllowPrivate: true}, wantErr: "must be https", is: ErrInvalid},
		{name: "web push on the emulator without allow_private", uri: "http://127.0.0.1:8461/webpush/abc", keys: true,
			rules: Rules{AllowedHosts: emu.AllowedHosts}, wantErr: "must be https", is: ErrInvalid},
		{name: "web push off its own list", uri: "https://db3.notify.live.net/x", keys: true,
			rules: Rules{AllowedHosts: def.AllowedHosts, TransportHosts: map[tilecast.Transport][]string{
				tilecast.TransportWebPush: {"fcm.googleapis.com"}}},
			wantErr: "not in push.webpush.allowed_hosts", is: tilecast.ErrHostNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			uri, got, err := CheckChannel(tt.uri, tt.t, tt.keys, tt.rules)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, tt.is) {
					t.Fatalf("CheckChannel = %q, %q, %v; want an error with %q matching %v", uri, got, err, tt.wantErr, tt.is)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("CheckChannel = %q, %q, %v; want transport %q", uri, got, err, tt.want)
			}
			if tt.wantURI != "" && uri != tt.wantURI {
				t.Errorf("uri = %q, want %q", uri, tt.wantURI)
			}
		})
	}
}
