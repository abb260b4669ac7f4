package emulator

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tilecast/tilecast/tileview"
)

//go:embed assets
var assets embed.FS

// pageCSP is the Content-Security-Policy of every answer. The phone view
// loads its own script, style sheets and state; tile images are whatever
// the pushed tile names (as on a phone), so any http(s) image is allowed;
// the only inline script is tileview's onerror handler, allowed by hash;
// style attributes carry iconic tiles' colours. No other site may frame it.
const pageCSP = "default-src 'self'; img-src http: https: data:; style-src 'self' 'unsafe-inline'; " +
	"script-src 'self' 'unsafe-hashes' '" + tileview.OnErrorHash + "'; connect-src 'self'; " +
	"frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// Handler returns the emulator's HTTP handler: the MPNS push endpoints, the
// JSON channel API and the phone view.
//
// The emulator listens on a developer's machine, where any web page the
// developer visits can send it requests. So every request must name the
// emulator in its Host header — an IP literal, localhost or *.localhost,
// the BaseURL's host or one of Options.Hosts — which defeats DNS
// rebinding (the attacker's page would send its own name); and a request
// that changes state (any method but GET, HEAD and OPTIONS) is refused
// when the browser marks it cross-origin (Sec-Fetch-Site, or an Origin
// that is not the emulator's own), by http.CrossOriginProtection. Tools
// such as curl and the daemon's pushes send neither header and pass;
// a page cannot forge them. Both refusals are 403 with a JSON error. Every
// answer carries the dashboard's framing and content-type headers
// (X-Frame-Options, CSP frame-ancestors, nosniff, Referrer-Policy).
func (e *Emulator) Handler() http.Handler {
	mux := http.NewServeMux()
	// Any method: MPNS answers a non-POST with 405, not the mux.
	mux.HandleFunc("/throttledthirdparty/01.00/{token}", e.servePush)
	mux.HandleFunc("/unthrottledthirdparty/01.00/{token}", e.servePush)
	// WNS (wns.go): notify endpoint (any method: WNS answers 405) and tokens.
	mux.HandleFunc(wnsNotifyPath+"{$}", e.serveWNSPush)
	mux.HandleFunc("POST "+WNSClassicTokenPath, e.serveWNSToken)
	mux.HandleFunc("POST "+wnsEntraTokenPath, e.serveWNSToken)

	mux.HandleFunc("POST /channels", e.serveCreate)
	mux.HandleFunc("GET /channels", e.serveList)
	mux.HandleFunc("GET /channels/{token}", e.serveChannel)
	mux.HandleFunc("POST /channels/{token}/expire", e.serveExpire)
	mux.HandleFunc("POST /channels/{token}/behaviour", e.serveBehaviour)
	e.webPushRoutes(mux)

	mux.HandleFunc("GET /{$}", e.servePage)
	mux.HandleFunc("GET /state.json", e.serveState)
	mux.HandleFunc("GET /events", e.serveEvents)
	static, _ := fs.Sub(assets, "assets") // cannot fail: the directory is embedded
	mux.Handle("GET /assets/", http.StripPrefix("/assets/", http.FileServerFS(static)))
	mux.HandleFunc("GET /assets/tileview.css", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
		_, _ = io.WriteString(w, tileview.CSS())
	})
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.log.Warn("cross-origin request refused", "method", r.Method, "path", r.URL.Path, "origin", r.Header.Get("Origin"))
		apiError(w, http.StatusForbidden, errors.New("cross-origin request refused: state changes must come from the emulator's own page or a tool that sends no Origin"))
	}))
	return e.guard(cop.Handler(mux))
}

// guard sets the headers every answer carries and refuses a Host that
// does not name the emulator.
func (e *Emulator) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", pageCSP)
		if !e.hostAllowed(r.Host) {
			e.log.Warn("request for another host refused", "host", r.Host, "method", r.Method, "path", r.URL.Path)
			apiError(w, http.StatusForbidden, fmt.Errorf("host %q is not this emulator's: use an IP address, localhost, or start it with that host allowed", r.Host))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// hostAllowed reports whether a Host header names the emulator: an IP
// literal (a rebinding page cannot make the browser send one for its own
// origin), localhost or a name under it (browsers resolve those to
// loopback themselves), the BaseURL's host, or one of Options.Hosts.
func (e *Emulator) hostAllowed(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"), "."))
	if host == "" {
		return false
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") || e.hosts[host] {
		return true
	}
	e.mu.Lock()
	base := e.baseURL
	e.mu.Unlock()
	u, err := url.Parse(base)
	return err == nil && base != "" && strings.ToLower(strings.TrimSuffix(u.Hostname(), ".")) == host
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func apiError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, map[string]string{"error": err.Error()})
}

// channelRequest is the body of POST /channels and /channels/{token}/behaviour.
type channelRequest struct {
	Transport string `json:"transport"` // "", "mpns" or "webpush" here; "wns" is wnsCreateRequest
	Behaviour string `json:"behaviour"`
	Name      string `json:"name"`
	Params
	webPushRequest // transport "webpush" makes a browser (webpush.go)
}

func decodeRequest(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("decode request: %w", err)
	}
	return nil
}

func (e *Emulator) serveCreate(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		apiError(w, http.StatusBadRequest, fmt.Errorf("read request: %w", err))
		return
	}
	transport, err := requestTransport(body)
	if err != nil {
		apiError(w, http.StatusBadRequest, err)
		return
	}
	switch transport {
	case TransportWNS:
		e.serveCreateWNS(w, r, body)
		return
	case "", "mpns", TransportWebPush: // webpush: channelRequest below (webpush.go)
	default:
		apiError(w, http.StatusBadRequest, fmt.Errorf("unknown transport %q (want mpns, wns or webpush)", transport))
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	var req channelRequest
	if err := decodeRequest(r, &req); err != nil {
		apiError(w, http.StatusBadRequest, err)
		return
	}
	if req.Transport == TransportWebPush {
		e.serveCreateBrowser(w, r, req)
		return
	}
	ch, err := e.createChannel(req.Behaviour, req.Name, "http://"+r.Host, req.Params)
	if err != nil {
		apiError(w, http.StatusBadRequest, err)
		return
	}
	writeJSON(w, http.StatusCreated, ch)
}

func (e *Emulator) serveList(w http.ResponseWriter, _ *http.Request) {
	out := []any{}
	for _, c := range e.Channels() {
		out = append(out, c)
	}
	for _, d := range e.WindowsDevices() {
		out = append(out, d)
	}
	for _, b := range e.Browsers() {
		out = append(out, b)
	}
	writeJSON(w, http.StatusOK, out)
}

func (e *Emulator) serveChannel(w http.ResponseWriter, r *http.Request) {
	if b, ok := e.Browser(r.PathValue("token")); ok {
		writeJSON(w, http.StatusOK, b)
		return
	}
	if e.serveWindowsChannel(w, r, "") {
		return
	}
	s, ok := e.Channel(r.PathValue("token"))
	if !ok {
		apiError(w, http.StatusNotFound, ErrUnknownChannel)
		return
	}
	writeJSON(w, http.StatusOK, s)
}

func (e *Emulator) serveExpire(w http.ResponseWriter, r *http.Request) {
	if e.serveWindowsChannel(w, r, "expire") {
		return
	}
	e.serveSetBehaviour(w, r, channelRequest{Behaviour: Expired})
}

func (e *Emulator) serveBehaviour(w http.ResponseWriter, r *http.Request) {
	if e.serveWindowsChannel(w, r, "behaviour") {
		return
	}
	var req channelRequest
	if err := decodeRequest(r, &req); err != nil {
		apiError(w, http.StatusBadRequest, err)
		return
	}
	e.serveSetBehaviour(w, r, req)
}

func (e *Emulator) serveSetBehaviour(w http.ResponseWriter, r *http.Request, req channelRequest) {
	token := r.PathValue("token")
	if e.isBrowser(token) {
		e.serveBrowserBehaviour(w, token, req)
		return
	}
	var params []Params
	if req.Params != (Params{}) { // omitted params keep the current ones
		params = append(params, req.Params)
	}
	err := e.SetBehaviour(token, req.Behaviour, params...)
	switch {
	case errors.Is(err, ErrUnknownChannel):
		apiError(w, http.StatusNotFound, err)
		return
	case err != nil:
		apiError(w, http.StatusBadRequest, err)
		return
	}
	s, _ := e.Channel(token)
	writeJSON(w, http.StatusOK, s)
}

// The page is a shell: phone.js fetches /state.json and renders the phones,
// then re-renders on every /events message (or every 2 s if SSE fails).
var pageTmpl = template.Must(template.ParseFS(assets, "assets/index.html"))

func (e *Emulator) servePage(w http.ResponseWriter, _ *http.Request) {
	var buf bytes.Buffer
	if err := pageTmpl.Execute(&buf, struct{ Title string }{"tilecast MPNS and WNS emulator"}); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(buf.Bytes())
}

// phoneView is one phone in /state.json: the data plus HTML fragments
// rendered (and escaped) by tileview, which the page inserts as is.
type phoneView struct {
	ChannelState
	TileHTML      string            `json:"tile_html"`
	SecondaryHTML map[string]string `json:"secondary_html"`
	ToastsHTML    string            `json:"toasts_html"`
}

type stateView struct {
	Version  uint64         `json:"version"`
	Phones   []phoneView    `json:"phones"`
	Windows  []windowsView  `json:"windows"`  // wnsview.go
	Browsers []BrowserState `json:"browsers"` // Web Push (webpush.go)
}

func (e *Emulator) serveState(w http.ResponseWriter, _ *http.Request) {
	var err error
	e.mu.Lock()
	version := e.version
	e.mu.Unlock()
	states := e.Channels()
	out := stateView{Version: version, Phones: make([]phoneView, 0, len(states)), Browsers: e.Browsers()}
	for _, s := range states {
		pv := phoneView{ChannelState: s, SecondaryHTML: map[string]string{}}
		var buf bytes.Buffer
		if s.Tile.Kind != "" {
			if err := tileview.RenderTile(&buf, s.Tile.View()); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			pv.TileHTML = buf.String()
		}
		for id, t := range s.Secondary {
			buf.Reset()
			if err := tileview.RenderTile(&buf, t.View()); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			pv.SecondaryHTML[id] = buf.String()
		}
		buf.Reset()
		for _, t := range s.Toasts {
			if err := tileview.RenderToast(&buf, tileview.Toast{Text1: t.Text1, Text2: t.Text2, Param: t.Param, Time: t.Time}); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
		}
		pv.ToastsHTML = buf.String()
		out.Phones = append(out.Phones, pv)
	}
	if out.Windows, err = e.windowsViews(); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, out)
}

// View converts the tile to the shared renderer's model.
func (s TileState) View() tileview.Tile {
	get := func(name string) string {
		for _, m := range []map[string]string{s.Front, s.Back, s.Wide} {
			if v, ok := m[name]; ok {
				return v
			}
		}
		return ""
	}
	t := tileview.Tile{
		Title:                   get("Title"),
		Count:                   s.Count,
		BackgroundImage:         get("BackgroundImage"),
		BackTitle:               get("BackTitle"),
		BackContent:             get("BackContent"),
		BackBackgroundImage:     get("BackBackgroundImage"),
		SmallBackgroundImage:    get("SmallBackgroundImage"),
		WideBackgroundImage:     get("WideBackgroundImage"),
		WideBackContent:         get("WideBackContent"),
		WideBackBackgroundImage: get("WideBackBackgroundImage"),
		IconImage:               get("IconImage"),
		SmallIconImage:          get("SmallIconImage"),
		WideContent:             [3]string{get("WideContent1"), get("WideContent2"), get("WideContent3")},
		BackgroundColor:         get("BackgroundColor"),
	}
	if s.Kind != "Tile" {
		t.Template = s.Kind
	}
	for i := 1; i <= 9; i++ {
		if v := get("CycleImage" + strconv.Itoa(i)); v != "" {
			t.CycleImages = append(t.CycleImages, v)
		}
	}
	return t
}

// serveEvents streams a small server-sent event whenever any channel
// changes. Bursts coalesce, and a stream writes at most every 200 ms, so a
// benchmark pushing thousands per second does not flood the page.
func (e *Emulator) serveEvents(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	ch, cancel := e.subscribe()
	defer cancel()
	send := func() bool {
		e.mu.Lock()
		v := e.version
		e.mu.Unlock()
		if _, err := fmt.Fprintf(w, "event: state\ndata: {\"version\":%d}\n\n", v); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !send() {
		return
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case <-e.done:
			return
		case <-ch:
		}
		if !send() {
			return
		}
		if !sleepCtx(r.Context(), 200*time.Millisecond) {
			return
		}
	}
}
