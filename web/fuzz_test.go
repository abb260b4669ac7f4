package web

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/channeluri"
)

// allowedByHand is the tests' allowlist written out independently of
// channeluri.HostAllowed: any subdomain of notify.live.net, or push.example.org.
func allowedByHand(host string) bool {
	const suffix = ".notify.live.net"
	if strings.HasSuffix(host, suffix) && len(host) > len(suffix) {
		return true
	}
	return host == "push.example.org"
}

// FuzzRegister posts arbitrary bodies: the server never answers 5xx and
// never panics, every refusal is a JSON error, and an accepted channel's
// URI is an http(s) URL of at most 2048 bytes whose host is allowed (A7).
func FuzzRegister(f *testing.F) {
	for _, seed := range []string{
		regJSON(goodURI),
		regJSON(goodURI, `,"user":"ann","feeds":["inbox","news"],"device":"d1"`),
		regJSON("HTTPS://DB3.NOTIFY.LIVE.NET.:443/x?y=Z"),
		regJSON("https://notify.live.net.evil.com/x"),
		regJSON("https://evil.com/?h=.notify.live.net"),
		regJSON("https://x@db3.notify.live.net/"),
		regJSON("https://db3.notify.live.net\\@evil.com/"),
		regJSON("https://db3.notify.live.net%2eevil.com/"),
		regJSON("https://[::1]/x"),
		regJSON("https://push.example.org:0/x"),
		regJSON("//db3.notify.live.net/x"),
		regJSON(goodURI, `,"feeds":["inbox"]`),
		regJSON(goodURI, `,"feeds":null,"user":null}`),
		`{"uri":"\u0068ttps://db3.notify.live.net/x"}`,
		`{"URI":"https://db3.notify.live.net/x"}`,
		`{"uri":"https://db3.notify.live.net/x","uri":"https://evil.com/"}`,
		`{"uri":"https://db3.notify.live.net/x"} {}`,
		`[]`, `null`, `"x"`, `{`, ``,
	} {
		f.Add([]byte(seed))
	}
	e := newEnv(f, nil)
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := e.post(t, string(body))
		if rec.Code >= 500 {
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body)
		}
		if rec.Code != http.StatusOK && rec.Code != http.StatusCreated {
			errorOf(t, rec)
			return
		}
		var ch tilecast.Channel
		if err := json.Unmarshal(rec.Body.Bytes(), &ch); err != nil {
			t.Fatalf("accepted answer is not a channel: %v", err)
		}
		u, err := url.Parse(ch.URI)
		if err != nil {
			t.Fatalf("accepted uri %q does not parse: %v", ch.URI, err)
		}
		host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
		switch {
		case len(ch.URI) > tilecast.MaxChannelURI:
			t.Fatalf("accepted a %d-byte uri", len(ch.URI))
		case u.Scheme != "http" && u.Scheme != "https":
			t.Fatalf("accepted scheme %q", u.Scheme)
		case u.User != nil:
			t.Fatalf("accepted userinfo in %q", ch.URI)
		case !allowedByHand(host):
			t.Fatalf("accepted host %q outside the allowlist (uri %q, body %q)", host, ch.URI, body)
		case !isCanonical(ch.URI):
			t.Fatalf("stored uri %q is not canonical", ch.URI)
		}
	})
}

// FuzzSignedAuth sends arbitrary TC-HMAC-SHA256 parameters: never a panic,
// never served (nobody can forge the MAC), always a JSON 401; and whatever
// the parser accepts keeps the scheme's rules.
func FuzzSignedAuth(f *testing.F) {
	ts := strconv.FormatInt(t0.Unix(), 10)
	sig := strings.Repeat("0f", 32)
	for _, seed := range []string{
		"ts=" + ts + ", nonce=nonce-0123456789, sig=" + sig,
		"ts=" + ts + ",nonce=nonce-0123456789,sig=" + strings.ToUpper(sig),
		"ts=" + ts + ", nonce=nonce-0123456789, sig=" + sig + ",",
		"ts=" + ts + ", ts=" + ts + ", nonce=nonce-0123456789, sig=" + sig,
		"ts=-1, nonce=nonce-0123456789, sig=" + sig,
		"ts=9999999999999, nonce=nonce-0123456789, sig=" + sig,
		`ts="` + ts + `", nonce="nonce-0123456789", sig="` + sig + `"`,
		"nonce=" + strings.Repeat("a", 65),
		"sig=" + sig[:63] + "g",
		"=,=,=", ",", "", " ", "\t",
	} {
		f.Add(seed)
	}
	e := newEnv(f, noFailLimit)
	f.Fuzz(func(t *testing.T, params string) {
		if p, err := parseSignedAuth(params); err == nil {
			if len(p.nonce) < minNonce || len(p.nonce) > maxNonce || strings.ContainsFunc(p.nonce, notURLSafe) {
				t.Fatalf("accepted nonce %q", p.nonce)
			}
			if n, err := strconv.ParseInt(p.tsRaw, 10, 64); err != nil || n != p.ts || p.ts < 0 || len(p.tsRaw) > maxTSLen {
				t.Fatalf("accepted ts %q as %d", p.tsRaw, p.ts)
			}
		}
		req := httptest.NewRequest(http.MethodGet, "/v1/status", nil)
		req.Header["Authorization"] = []string{"TC-HMAC-SHA256 " + params}
		rec := httptest.NewRecorder()
		e.handler.ServeHTTP(rec, req)
		if rec.Code != http.StatusUnauthorized {
			t.Fatalf("status %d for %q: %s", rec.Code, params, rec.Body)
		}
		errorOf(t, rec)
	})
}

// isCanonical reports whether u is stored in the form channeluri gives it.
func isCanonical(u string) bool {
	c, err := channeluri.Canonical(u)
	return err == nil && c == u
}
