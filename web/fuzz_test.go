package web

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"reflect"
	"slices"
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

// isCanonical reports whether u is stored in the form channeluri gives it.
func isCanonical(u string) bool {
	c, err := channeluri.Canonical(u)
	return err == nil && c == u
}

// FuzzParseRegistration feeds arbitrary bodies to the request decoder:
// never a panic; what it accepts is one JSON object whose every key is
// exactly a registration field, and decodes to what encoding/json makes
// of it; what it refuses itself names a key of at most 64 characters.
func FuzzParseRegistration(f *testing.F) {
	for _, seed := range []string{
		regJSON(goodURI, `,"user":"ann","feeds":["inbox","news"],"device":"d1"`),
		`{"URI":"x"}`, `{"uri":"a","uri":"b"}`, `{"u\u017fer":"x"}`, `{"\u0075ri":"x"}`,
		`{"uri":"a","feeds":[{"a":1,"a":2}]}`, `{"uri":"a","feeds":[[],{}]}`,
		`{"uri":"a"} {"uri":"b"}`, `{"uri":1e999}`, `[]`, `null`, `{`, `}`, ``, `{"a":{"b":{"b":1}}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		reg, err := parseRegistration(data)
		if aerr, ok := err.(*apiError); ok {
			if aerr.status != http.StatusBadRequest || len(aerr.msg) > 300 {
				t.Fatalf("refusal %d %q", aerr.status, aerr.msg)
			}
			return
		}
		if err != nil {
			return
		}
		var top map[string]json.RawMessage
		if err := json.Unmarshal(data, &top); err != nil && string(bytes.TrimSpace(data)) != "null" {
			t.Fatalf("accepted %q, which is not one object: %v", data, err)
		}
		for k := range top {
			if !slices.Contains(registrationFields(), k) {
				t.Fatalf("accepted key %q in %q", k, data)
			}
		}
		var want registration
		if err := json.Unmarshal(data, &want); err != nil || !reflect.DeepEqual(reg, want) {
			t.Fatalf("decoded %+v, encoding/json %+v (%v)", reg, want, err)
		}
	})
}
