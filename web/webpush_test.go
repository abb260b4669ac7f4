package web

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

const testVAPIDPublic = "BK49X9sgLpCZoXLXS1KmJHyJo_ttNXpd84uf2s7nuwq7Y46b6Q5L_RNiKFntwZwyfhXuJtxYZcYgrYE1Lrt3Hhs"

func TestWebPushFiles(t *testing.T) {
	e := newEnv(t, nil)
	for _, tc := range []struct {
		path, ctype, has string
	}{
		{"/webpush/", "text/html; charset=utf-8", `<script src="app.js"></script>`},
		{"/webpush/sw.js", "text/javascript; charset=utf-8", "self.addEventListener('push'"},
		{"/webpush/app.js", "text/javascript; charset=utf-8", "pushManager.subscribe"},
		{"/webpush/page.css", "text/css; charset=utf-8", ".badge"},
	} {
		// No API key: the files are static and public.
		rec := e.do(t, http.MethodGet, tc.path, "", nil)
		if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != tc.ctype || !strings.Contains(rec.Body.String(), tc.has) {
			t.Errorf("GET %s: %d %q, body has %q: %v", tc.path, rec.Code, rec.Header().Get("Content-Type"), tc.has, strings.Contains(rec.Body.String(), tc.has))
		}
		h := rec.Header()
		if !strings.Contains(h.Get("Content-Security-Policy"), "script-src 'self'") || h.Get("X-Content-Type-Options") != "nosniff" ||
			h.Get("X-Frame-Options") != "DENY" {
			t.Errorf("GET %s: headers %v", tc.path, h)
		}
	}
	if rec := e.do(t, http.MethodGet, "/webpush/missing.js", "", nil); rec.Code != http.StatusNotFound {
		t.Errorf("missing file: %d", rec.Code)
	}
	if rec := e.do(t, http.MethodPost, "/webpush/sw.js", "", nil); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST to a file: %d", rec.Code)
	}
	if rec := e.do(t, http.MethodGet, "/webpush", "", nil); rec.Code/100 != 3 || rec.Header().Get("Location") != "/webpush/" {
		t.Errorf("GET /webpush: %d Location %q", rec.Code, rec.Header().Get("Location"))
	}
}

func TestWebPushKeyRoute(t *testing.T) {
	off := newEnv(t, nil)
	rec := off.do(t, http.MethodGet, "/v1/webpush/key", "", nil)
	if rec.Code != http.StatusNotFound || !strings.Contains(rec.Body.String(), "not configured") {
		t.Errorf("without a key: %d %s", rec.Code, rec.Body)
	}
	on := newEnv(t, func(o *Options) { o.WebPushPublicKey = testVAPIDPublic })
	rec = on.do(t, http.MethodGet, "/v1/webpush/key", "", nil)
	var got map[string]string
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || rec.Code != http.StatusOK || got["public_key"] != testVAPIDPublic || len(got) != 1 {
		t.Errorf("with a key: %d %s", rec.Code, rec.Body)
	}
	if rec.Header().Get("Access-Control-Allow-Origin") != "*" || rec.Header().Get("Content-Type") != "application/json" {
		t.Errorf("headers %v", rec.Header())
	}
	// The API keys file is not involved: a disabled API still serves it.
	noAPI := newEnv(t, func(o *Options) { o.WebPushPublicKey = testVAPIDPublic; o.APIKeysFile = "" })
	if rec := noAPI.do(t, http.MethodGet, "/v1/webpush/key", "", nil); rec.Code != http.StatusOK {
		t.Errorf("API disabled: %d", rec.Code)
	}
	if rec := on.do(t, http.MethodPost, "/v1/webpush/key", "", nil); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", rec.Code)
	}
}
