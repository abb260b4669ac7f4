package web

// Web Push's browser side, shipped with the daemon: the service worker
// sw.js and an example page at /webpush/ (web/webpush/), and the VAPID
// public key the page subscribes with at GET /v1/webpush/key. None of
// them needs an API key: the files are static and the key is public (it
// is in every subscription's applicationServerKey). Registering the
// subscription (POST /v1/channels) does.

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed webpush
var webPushFiles embed.FS

// WebPushPath is where the example page and sw.js are served.
const WebPushPath = "/webpush/"

// webPushCSP: the page runs its own script and worker and talks only to
// the daemon; tile images may come from any https host.
const webPushCSP = "default-src 'self'; img-src 'self' https: data:; connect-src 'self'; script-src 'self'; " +
	"worker-src 'self'; style-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// webPushKey is the answer of GET /v1/webpush/key.
type webPushKey struct {
	PublicKey string `json:"public_key"` // base64url uncompressed P-256 point
}

func (s *Server) webPushRoutes(mux *http.ServeMux) {
	static, _ := fs.Sub(webPushFiles, "webpush") // cannot fail: the directory is embedded
	files := http.StripPrefix(WebPushPath, http.FileServerFS(static))
	mux.Handle("GET "+WebPushPath, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		// common() set JSON; the file server must set each file's own
		// type (a worker script served as JSON is refused).
		h.Del("Content-Type")
		h.Set("Content-Security-Policy", webPushCSP)
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		files.ServeHTTP(w, r)
	}))
	mux.HandleFunc("GET /v1/webpush/key", s.serveWebPushKey)
}

// serveWebPushKey answers the VAPID public key, or 404 when Web Push is
// not configured. Any origin may read it: apps served elsewhere subscribe
// with it too.
func (s *Server) serveWebPushKey(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Access-Control-Allow-Origin", "*")
	if s.opts.WebPushPublicKey == "" {
		writeError(w, http.StatusNotFound, "web push is not configured: set [push.webpush] vapid_private_key_file and subject")
		return
	}
	writeJSON(w, http.StatusOK, webPushKey{PublicKey: s.opts.WebPushPublicKey})
}
