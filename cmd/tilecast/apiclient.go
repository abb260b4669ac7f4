package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/config"
	"github.com/tilecast/tilecast/store"
	"github.com/tilecast/tilecast/web"
)

// lockWait is how long the operator commands wait for the state file's lock
// before concluding that the daemon holds it and using its API instead.
const lockWait = 300 * time.Millisecond

// apiTimeout bounds one API call other than a backup (which is bounded by
// the command's context only: a large file takes what it takes).
const apiTimeout = 30 * time.Second

// ops is what channels, status, outcomes and backup need: the state file
// opened directly, or the running daemon's API when the daemon holds it.
// Both give the same answers, so the commands print the same either way.
//
// Listings come a page at a time (ChannelsPage, OutcomesPage: up to limit
// records after cursor, "" for the first page, and the next page's cursor,
// "" after the last), from the state file as from the API, so a command
// holds one page whatever the size of the state.
type ops interface {
	ChannelsPage(ctx context.Context, f tilecast.ChannelFilter, cursor string, limit int) ([]tilecast.Channel, string, error)
	ChannelByURI(ctx context.Context, uri string) (tilecast.Channel, error)
	// AddChannel stores a channel that passed checkRegistration.
	AddChannel(ctx context.Context, ch tilecast.Channel) (tilecast.Channel, error)
	RemoveChannel(ctx context.Context, id string) error
	Status(ctx context.Context) (statusReport, error)
	// OutcomesPage pages the ledger; an unknown f.Channel without ledger
	// entries is tilecast.ErrNotFound.
	OutcomesPage(ctx context.Context, f tilecast.OutcomeFilter, cursor string, limit int) ([]tilecast.Outcome, string, error)
	Backup(ctx context.Context, w io.Writer) (int64, error)
	Close() error
}

// connect opens the state file (read-only for commands that only read) or,
// when a running daemon holds its lock, the daemon's API.
// loadAndConnect loads the config at path and connects to the state (see connect).
func loadAndConnect(path string, e env, readOnly bool) (*config.Config, ops, error) {
	cfg, err := loadConfig(path)
	if err != nil {
		return nil, nil, err
	}
	o, err := connect(cfg, e, readOnly)
	return cfg, o, err
}

func connect(cfg *config.Config, e env, readOnly bool) (ops, error) {
	if config.IsDatabaseURL(cfg.State) {
		// A database serves every process at once, running daemons
		// included: no need for their API.
		db, err := openDatabase(cfg, newLogger(cfg, e.stderr), nil)
		if err != nil {
			return nil, err
		}
		return &localOps{db: db, cfg: cfg, stderr: e.stderr}, nil
	}
	if readOnly {
		// A read-only open cannot create the file: a fresh install reads
		// as an empty state, like it did before anything ran.
		if _, err := os.Stat(cfg.State); errors.Is(err, os.ErrNotExist) {
			readOnly = false
		}
	}
	db, err := store.Open(cfg.State, store.Options{Timeout: lockWait, ReadOnly: readOnly, Logger: newLogger(cfg, e.stderr)})
	if err == nil {
		return &localOps{db: db, cfg: cfg, stderr: e.stderr}, nil
	}
	if !errors.Is(err, tilecast.ErrStateLocked) {
		return nil, err
	}
	return newAPIClient(cfg)
}

// apiClient calls the running daemon's /v1 API.
type apiClient struct {
	base  string // http://host:port or https://host:port
	key   string
	state string // the state file, for error messages
	hc    *http.Client
}

// newAPIClient reaches the daemon at http.listen with the first admin key
// of http.api_keys_file, over https when the listener has http.tls_cert.
// Its errors say why the API is the only way left.
func newAPIClient(cfg *config.Config) (*apiClient, error) {
	locked := fmt.Sprintf("state file %s is in use by the running tilecast", cfg.State)
	if cfg.HTTP.Listen == "" {
		return nil, fmt.Errorf("%s and its API is disabled (http.listen = \"\"): stop the daemon, or set http.listen and restart it", locked)
	}
	if cfg.HTTP.APIKeysFile == "" {
		return nil, fmt.Errorf("%s and its API is disabled (http.api_keys_file = \"\"): stop the daemon, or configure an API key", locked)
	}
	key, err := adminKey(cfg.HTTP.APIKeysFile)
	if err != nil {
		return nil, fmt.Errorf("%s; to use its API: %w", locked, err)
	}
	host, port, err := net.SplitHostPort(cfg.HTTP.Listen)
	if err != nil {
		return nil, usagef("http.listen %q: %v", cfg.HTTP.Listen, err)
	}
	// A wildcard listen address is reached on loopback; its certificate
	// is expected to name localhost unless http.tls_server_name says.
	name := host
	switch host {
	case "", "0.0.0.0":
		host, name = "127.0.0.1", "localhost"
	case "::":
		host, name = "::1", "localhost"
	}
	// No proxy: the daemon is local, and a proxy from the environment
	// would see the API key.
	tr := &http.Transport{Proxy: nil, DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext}
	scheme := "http"
	if cfg.HTTP.TLSCert != "" {
		scheme = "https"
		tc, err := clientTLS(cfg.HTTP.TLSCAFile, cmp.Or(cfg.HTTP.TLSServerName, name))
		if err != nil {
			return nil, fmt.Errorf("%s; to use its API: %w", locked, err)
		}
		tr.TLSClientConfig = tc
		tr.ForceAttemptHTTP2 = true
	}
	return &apiClient{
		base:  scheme + "://" + net.JoinHostPort(host, port),
		key:   key,
		state: cfg.State,
		hc:    &http.Client{Transport: tr},
	}, nil
}

// clientTLS verifies the daemon's certificate against the system roots
// plus caFile (a CA, or the self-signed certificate itself), for name.
func clientTLS(caFile, name string) (*tls.Config, error) {
	roots, err := x509.SystemCertPool()
	if err != nil {
		roots = x509.NewCertPool() // no system roots here: caFile only
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("http.tls_ca_file: %w", err)
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("http.tls_ca_file %s: no PEM certificate in it", caFile)
		}
	}
	return &tls.Config{RootCAs: roots, ServerName: name, MinVersion: tls.VersionTLS12}, nil
}

// adminKey returns the first admin key (or bare key, which is one) of an
// API keys file: the operator commands read every channel, which an app
// key may not. Its errors never quote a key.
func adminKey(path string) (string, error) {
	keys, err := web.ReadKeyFile(path)
	if err != nil {
		return "", err
	}
	for _, k := range keys {
		if k.Role == web.RoleAdmin {
			return k.Key, nil
		}
	}
	if len(keys) > 0 {
		return "", fmt.Errorf("api keys file %s has only app keys: channels, status, outcomes and backup need an admin key (add a line \"admin KEY\")", path)
	}
	return "", fmt.Errorf("api keys file %s has no key", path)
}

func (c *apiClient) Close() error {
	c.hc.CloseIdleConnections()
	return nil
}

// send makes one request and returns the response when its status is one
// of want; any other status becomes an error from the answer's {"error"}.
func (c *apiClient) send(ctx context.Context, method, path string, body any, want ...int) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, fmt.Errorf("api request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if _, ok := errors.AsType[*tls.CertificateVerificationError](err); ok {
			return nil, fmt.Errorf("state file %s is in use by the running tilecast, and its API's certificate cannot be verified "+
				"(set http.tls_ca_file to its CA or to the self-signed certificate, and http.tls_server_name to the name it carries): %w", c.state, err)
		}
		return nil, fmt.Errorf("state file %s is in use by the running tilecast, and its API failed: %w", c.state, err)
	}
	if slices.Contains(want, resp.StatusCode) {
		return resp, nil
	}
	defer resp.Body.Close()
	var eb struct {
		Error string `json:"error"`
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	msg := strings.TrimSpace(string(raw))
	if json.Unmarshal(raw, &eb) == nil && eb.Error != "" {
		msg = eb.Error
	}
	switch resp.StatusCode {
	case http.StatusBadRequest, http.StatusUnprocessableEntity:
		return nil, usageError{errors.New(msg)}
	case http.StatusNotFound:
		return nil, fmt.Errorf("%s: %w", msg, tilecast.ErrNotFound)
	case http.StatusUnauthorized:
		return nil, fmt.Errorf("api %s refused the first admin key of http.api_keys_file: %s", c.base, msg)
	case http.StatusForbidden:
		return nil, fmt.Errorf("api %s %s: %s (the first admin key of http.api_keys_file is used)", method, path, msg)
	}
	return nil, fmt.Errorf("api %s %s: %s: %s", method, path, resp.Status, msg)
}

// call is send with a JSON answer decoded into out and a bounded duration.
func (c *apiClient) call(ctx context.Context, method, path string, body, out any, want ...int) error {
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	resp, err := c.send(ctx, method, path, body, want...)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("api %s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// getPage GETs one page of a listing at path (whose query it extends with
// cursor and limit) into out and returns the next page's cursor, read
// from the Link header ("" when there is none: the last page).
func (c *apiClient) getPage(ctx context.Context, path string, q url.Values, cursor string, limit int, out any) (string, error) {
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	q.Set("limit", strconv.Itoa(limit))
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	resp, err := c.send(ctx, http.MethodGet, path+"?"+q.Encode(), nil, http.StatusOK)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return "", fmt.Errorf("api GET %s: decode answer: %w", path, err)
	}
	return nextCursor(resp.Header.Values("Link"))
}

// nextCursor returns the cursor of a Link header's rel="next" URL, ""
// when there is none.
func nextCursor(links []string) (string, error) {
	for _, l := range links {
		for _, part := range strings.Split(l, ",") {
			target, params, ok := strings.Cut(strings.TrimSpace(part), ";")
			if !ok || !strings.Contains(params, `rel="next"`) {
				continue
			}
			u, err := url.Parse(strings.Trim(strings.TrimSpace(target), "<>"))
			if err != nil || u.Query().Get("cursor") == "" {
				return "", fmt.Errorf("api: Link header %q: no next page cursor in it", l)
			}
			return u.Query().Get("cursor"), nil
		}
	}
	return "", nil
}

func (c *apiClient) ChannelsPage(ctx context.Context, f tilecast.ChannelFilter, cursor string, limit int) ([]tilecast.Channel, string, error) {
	q := url.Values{}
	if f.User != "" {
		q.Set("user", f.User)
	}
	var chs []tilecast.Channel
	next, err := c.getPage(ctx, "/v1/channels", q, cursor, limit, &chs)
	return chs, next, err
}

// ChannelByURI pages through the channels: the API names a channel to an
// admin key by id, and a URI never goes into a query string.
func (c *apiClient) ChannelByURI(ctx context.Context, uri string) (tilecast.Channel, error) {
	var found *tilecast.Channel
	err := eachPage(func(cursor string) ([]tilecast.Channel, string, error) {
		return c.ChannelsPage(ctx, tilecast.ChannelFilter{}, cursor, tilecast.MaxPageLimit)
	}, func(chs []tilecast.Channel) error {
		for i := range chs {
			if chs[i].URI == uri {
				found = &chs[i]
				return errStopPaging
			}
		}
		return nil
	})
	if err != nil {
		return tilecast.Channel{}, err
	}
	if found == nil {
		return tilecast.Channel{}, fmt.Errorf("channel uri: %w", tilecast.ErrNotFound)
	}
	return *found, nil
}

func (c *apiClient) AddChannel(ctx context.Context, ch tilecast.Channel) (tilecast.Channel, error) {
	reg := struct {
		URI       string   `json:"uri"`
		User      string   `json:"user,omitempty"`
		Feeds     []string `json:"feeds,omitempty"`
		Device    string   `json:"device,omitempty"`
		Transport string   `json:"transport,omitempty"`
	}{ch.URI, ch.User, ch.Feeds, ch.Device, string(ch.Transport)}
	// 201 for a new channel, 200 for a known URI: both are success.
	var out tilecast.Channel
	err := c.call(ctx, http.MethodPost, "/v1/channels", reg, &out, http.StatusCreated, http.StatusOK)
	return out, err
}

func (c *apiClient) RemoveChannel(ctx context.Context, id string) error {
	return c.call(ctx, http.MethodDelete, "/v1/channels/"+url.PathEscape(id), nil, nil, http.StatusNoContent)
}

// apiStatus is the part of GET /v1/status that status prints.
type apiStatus struct {
	Feeds       []tilecast.FeedStatus `json:"feeds"`
	Channels    int                   `json:"channels"`
	OutboxDepth int                   `json:"outbox_depth"`
	DeadLetters int                   `json:"dead_letters"`
	Instances   []tilecast.Instance   `json:"instances"`
}

func (c *apiClient) Status(ctx context.Context) (statusReport, error) {
	var st apiStatus
	if err := c.call(ctx, http.MethodGet, "/v1/status", nil, &st, http.StatusOK); err != nil {
		return statusReport{}, err
	}
	rep := statusReport{
		Stats:     statusCounts{Channels: st.Channels, OutboxDepth: st.OutboxDepth, DeadLetters: st.DeadLetters},
		Feeds:     feedsByKey(st.Feeds),
		Instances: st.Instances,
	}
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	resp, err := c.send(ctx, http.MethodGet, "/v1/deadletters?limit="+strconv.Itoa(statusDeadLetters), nil,
		http.StatusOK, http.StatusNotImplemented)
	if err != nil {
		return rep, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotImplemented {
		// A daemon not wired for it still has a status to show.
		rep.noDeadLetterList = true
		return rep, nil
	}
	if err := json.NewDecoder(resp.Body).Decode(&rep.DeadLetters); err != nil {
		return rep, fmt.Errorf("api GET /v1/deadletters: decode answer: %w", err)
	}
	return rep, nil
}

func (c *apiClient) OutcomesPage(ctx context.Context, f tilecast.OutcomeFilter, cursor string, limit int) ([]tilecast.Outcome, string, error) {
	q := url.Values{"since": {f.Since.UTC().Format(time.RFC3339Nano)}}
	if f.Feed != "" {
		q.Set("feed", f.Feed)
	}
	path := "/v1/outcomes"
	if f.Channel != "" {
		path = "/v1/channels/" + url.PathEscape(f.Channel) + "/outcomes"
	}
	var out []tilecast.Outcome
	next, err := c.getPage(ctx, path, q, cursor, limit, &out)
	return out, next, err
}

func (c *apiClient) Backup(ctx context.Context, w io.Writer) (int64, error) {
	resp, err := c.send(ctx, http.MethodGet, "/v1/backup", nil, http.StatusOK)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("backup over the api: %w", err)
	}
	return n, nil
}

// localOps is the state opened by this process.
type localOps struct {
	db     stateStore
	cfg    *config.Config
	stderr io.Writer
}

func (l *localOps) Close() error { return l.db.Close() }

func (l *localOps) ChannelsPage(_ context.Context, f tilecast.ChannelFilter, cursor string, limit int) ([]tilecast.Channel, string, error) {
	return l.db.ChannelsPage(f, cursor, limit)
}

func (l *localOps) ChannelByURI(_ context.Context, uri string) (tilecast.Channel, error) {
	return l.db.ChannelByURI(uri)
}

// AddChannel stores ch and, for a new channel, queues the current tile
// (tile_on_subscribe) for the daemon to send, as the API does.
func (l *localOps) AddChannel(_ context.Context, ch tilecast.Channel) (tilecast.Channel, error) {
	saved, created, err := l.db.AddChannel(ch)
	if err != nil || !created {
		return saved, err
	}
	bot, err := newBot(l.cfg, l.db, newLogger(l.cfg, l.stderr))
	if err != nil {
		return saved, err
	}
	return saved, bot.Subscribe(saved)
}

func (l *localOps) RemoveChannel(_ context.Context, id string) error { return l.db.RemoveChannel(id) }

func (l *localOps) Status(context.Context) (statusReport, error) {
	return localStatus(l.db, l.cfg.Feeds)
}

func (l *localOps) OutcomesPage(_ context.Context, f tilecast.OutcomeFilter, cursor string, limit int) ([]tilecast.Outcome, string, error) {
	out, next, err := l.db.OutcomesPage(f, cursor, limit)
	if err != nil || f.Channel == "" || cursor != "" || len(out) > 0 {
		return out, next, err
	}
	// As the API: an unknown channel without ledger entries is not found
	// (a removed channel keeps its ledger, which says why it went).
	if _, err := l.db.Channel(f.Channel); err != nil {
		return nil, "", err
	}
	return out, next, nil
}

func (l *localOps) Backup(ctx context.Context, w io.Writer) (int64, error) {
	b, ok := l.db.(*store.DB)
	if !ok {
		return 0, errPGBackup
	}
	return b.Backup(ctxWriter{ctx: ctx, w: w})
}

// ctxWriter stops a long copy when ctx is cancelled.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}
