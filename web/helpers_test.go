package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tilecast/tilecast"
)

// fakeStore is an in-memory Store with the real store's channel rules:
// dedupe by URI and device re-registration replacing the old channel.
type fakeStore struct {
	mu       sync.Mutex
	seq      int
	chans    map[string]tilecast.Channel
	byURI    map[string]string
	byDevice map[string]string
	states   map[tilecast.FeedKey]tilecast.FeedState
	ledger   []tilecast.Outcome
	counts   tilecast.Counts // OutboxDepth and DeadLetters; Channels and Broken come from chans and states
	err      error           // returned by every method when set
	now      func() time.Time
}

func newFakeStore(now func() time.Time) *fakeStore {
	return &fakeStore{
		chans: map[string]tilecast.Channel{}, byURI: map[string]string{}, byDevice: map[string]string{},
		states: map[tilecast.FeedKey]tilecast.FeedState{}, now: now,
	}
}

func (f *fakeStore) AddChannel(ch tilecast.Channel) (tilecast.Channel, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return tilecast.Channel{}, false, f.err
	}
	cur, found := tilecast.Channel{}, false
	if id, ok := f.byURI[ch.URI]; ok {
		cur, found = f.chans[id], true
	}
	if found {
		if cur.Device != "" {
			delete(f.byDevice, cur.Device)
		}
		cur.User, cur.Feeds, cur.Device = ch.User, ch.Feeds, ch.Device
	} else {
		f.seq++
		cur = tilecast.Channel{ID: fmt.Sprintf("ch%04d", f.seq), URI: ch.URI, User: ch.User, Feeds: ch.Feeds,
			Device: ch.Device, Created: f.now()}
	}
	if cur.Device != "" {
		if old, ok := f.byDevice[cur.Device]; ok && old != cur.ID {
			f.remove(old)
		}
		f.byDevice[cur.Device] = cur.ID
	}
	f.chans[cur.ID] = cur
	f.byURI[cur.URI] = cur.ID
	return cur, !found, nil
}

func (f *fakeStore) remove(id string) bool {
	ch, ok := f.chans[id]
	if !ok {
		return false
	}
	delete(f.chans, id)
	delete(f.byURI, ch.URI)
	if ch.Device != "" && f.byDevice[ch.Device] == id {
		delete(f.byDevice, ch.Device)
	}
	return true
}

func (f *fakeStore) Channels(user string) ([]tilecast.Channel, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	var out []tilecast.Channel
	for _, ch := range f.chans {
		if user == "" || ch.User == user {
			out = append(out, ch)
		}
	}
	slices.SortFunc(out, func(a, b tilecast.Channel) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

func (f *fakeStore) Channel(id string) (tilecast.Channel, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return tilecast.Channel{}, f.err
	}
	ch, ok := f.chans[id]
	if !ok {
		return ch, fmt.Errorf("channel %s: %w", id, tilecast.ErrNotFound)
	}
	return ch, nil
}

func (f *fakeStore) RemoveChannel(id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	if !f.remove(id) {
		return fmt.Errorf("channel %s: %w", id, tilecast.ErrNotFound)
	}
	return nil
}

func (f *fakeStore) FeedStates() (map[tilecast.FeedKey]tilecast.FeedState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	out := make(map[tilecast.FeedKey]tilecast.FeedState, len(f.states))
	for k, v := range f.states {
		out[k] = v
	}
	return out, nil
}

func (f *fakeStore) Outcomes(channelID, feed string, since time.Time) ([]tilecast.Outcome, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	var out []tilecast.Outcome
	for _, o := range f.ledger {
		if o.ChannelID == channelID && (feed == "" || o.Feed == feed) && !o.Time.Before(since) {
			out = append(out, o)
		}
	}
	return out, nil
}

func (f *fakeStore) ChannelsPage(cf tilecast.ChannelFilter, cursor string, limit int) ([]tilecast.Channel, string, error) {
	all, err := f.Channels(cf.User) // sorted by ID
	if err != nil {
		return nil, "", err
	}
	return fakePage(all, func(ch tilecast.Channel) string { return ch.ID }, cursor, limit)
}

func (f *fakeStore) OutcomesPage(of tilecast.OutcomeFilter, cursor string, limit int) ([]tilecast.Outcome, string, error) {
	f.mu.Lock()
	if f.err != nil {
		f.mu.Unlock()
		return nil, "", f.err
	}
	ledger := slices.Clone(f.ledger)
	f.mu.Unlock()
	return pageLedger(ledger, of, cursor, limit)
}

// pageLedger pages ledger as the store does: entries passing of, by
// channel and then time.
func pageLedger(ledger []tilecast.Outcome, of tilecast.OutcomeFilter, cursor string, limit int) ([]tilecast.Outcome, string, error) {
	var out []tilecast.Outcome
	for _, o := range ledger {
		if (of.Channel == "" || o.ChannelID == of.Channel) && (of.Feed == "" || o.Feed == of.Feed) && !o.Time.Before(of.Since) {
			out = append(out, o)
		}
	}
	key := func(o tilecast.Outcome) string {
		return o.ChannelID + "\x00" + o.Time.UTC().Format(time.RFC3339Nano) + "\x00" + o.ItemID
	}
	slices.SortStableFunc(out, func(a, b tilecast.Outcome) int { return strings.Compare(key(a), key(b)) })
	return fakePage(out, key, cursor, limit)
}

// fakePage pages items sorted by key; a cursor is "after:" + the last
// key of the previous page, anything else is tilecast.ErrBadCursor.
func fakePage[T any](items []T, key func(T) string, cursor string, limit int) ([]T, string, error) {
	limit = tilecast.PageLimit(limit)
	start := 0
	if cursor != "" {
		after, ok := strings.CutPrefix(cursor, "after:")
		if !ok {
			return nil, "", fmt.Errorf("fake: %w", tilecast.ErrBadCursor)
		}
		start = len(items)
		for i, it := range items {
			if key(it) > after {
				start = i
				break
			}
		}
	}
	end := min(start+limit, len(items))
	next := ""
	if end < len(items) {
		next = "after:" + key(items[end-1])
	}
	return items[start:end], next, nil
}

func (f *fakeStore) Counts() (tilecast.Counts, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return tilecast.Counts{}, f.err
	}
	c := f.counts
	c.Channels = len(f.chans)
	c.Broken = map[string]tilecast.BrokenStates{}
	for k, st := range f.states {
		if !st.Broken {
			continue
		}
		b := c.Broken[k.Feed]
		if k.User == "" {
			b.Global++
		} else {
			b.Users++
		}
		c.Broken[k.Feed] = b
	}
	return c, nil
}

func (f *fakeStore) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.chans)
}

// clock is an injected, settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

const (
	keyOne = "k1-3f9a0c2e7b6d4e1f8a9b0c1d2e3f4a5b"
	keyTwo = "k2-0a1b2c3d4e5f60718293a4b5c6d7e8f9"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// testFeeds is the configured feed set of the tests.
func testFeeds() []tilecast.Feed {
	return []tilecast.Feed{
		{Name: "news", URL: "https://example.org/news.xml", Schedule: "@every 10m"},
		{Name: "weather", URL: "https://example.org/weather.xml", Schedule: "@hourly"},
		{Name: "inbox", URL: "https://api.example.org/users/{user}/feed", Schedule: "*/5 * * * *"},
	}
}

var testAllowed = []string{"*.notify.live.net", "push.example.org"}

type env struct {
	srv      *Server
	store    *fakeStore
	clock    *clock
	keysFile string
	reg      *prometheus.Registry
	handler  http.Handler

	subMu      sync.Mutex
	subscribed []string
}

// newEnv builds a Server on a fake store; edit adjusts the options.
func newEnv(t testing.TB, edit func(*Options)) *env {
	t.Helper()
	e := &env{clock: &clock{t: t0}, reg: prometheus.NewRegistry()}
	e.store = newFakeStore(e.clock.Now)
	e.keysFile = filepath.Join(t.TempDir(), "api-keys")
	writeKeys(t, e.keysFile, "# operator keys\n\n"+keyOne+"\n  "+keyTwo+"  \n")
	opts := Options{
		Store:        e.store,
		Counts:       e.store.Counts,
		Feeds:        testFeeds,
		AllowedHosts: func() []string { return testAllowed },
		APIKeysFile:  e.keysFile,
		Subscribe: func(ch tilecast.Channel) error {
			e.subMu.Lock()
			e.subscribed = append(e.subscribed, ch.ID)
			e.subMu.Unlock()
			return nil
		},
		Registry:      e.reg,
		Logger:        slog.New(slog.DiscardHandler),
		RatePerSecond: 1e6,
		Burst:         1e6,
		// Tests that are not about the failed-login limit send wrong keys
		// freely; the ones that are set their own.
		AuthFailRatePerSecond: 1e6,
		AuthFailBurst:         1e6,
		Now:                   e.clock.Now,
	}
	if edit != nil {
		edit(&opts)
	}
	srv, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	e.srv, e.handler = srv, srv.Handler()
	return e
}

func writeKeys(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// do sends one request with key (none when "") and returns the recorded answer.
func (e *env) do(t testing.TB, method, path, key string, body io.Reader) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, body)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	rec := httptest.NewRecorder()
	e.handler.ServeHTTP(rec, req)
	return rec
}

func (e *env) post(t testing.TB, body string) *httptest.ResponseRecorder {
	t.Helper()
	return e.do(t, http.MethodPost, "/v1/channels", keyOne, strings.NewReader(body))
}

// mustRegister posts a registration and wants status.
func (e *env) mustRegister(t testing.TB, body string, status int) tilecast.Channel {
	t.Helper()
	rec := e.post(t, body)
	if rec.Code != status {
		t.Fatalf("POST %s: status %d, want %d; body %s", body, rec.Code, status, rec.Body)
	}
	var ch tilecast.Channel
	if err := json.Unmarshal(rec.Body.Bytes(), &ch); err != nil {
		t.Fatalf("decode channel: %v (%s)", err, rec.Body)
	}
	return ch
}

func (e *env) subscriptions() []string {
	e.subMu.Lock()
	defer e.subMu.Unlock()
	return slices.Clone(e.subscribed)
}

// errorOf checks the answer is a JSON error and returns its message.
func errorOf(t testing.TB, rec *httptest.ResponseRecorder) string {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var body struct {
		Error string `json:"error"`
	}
	dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil || body.Error == "" {
		t.Fatalf("answer is not a JSON error: %v: %q", err, rec.Body)
	}
	return body.Error
}

func regJSON(uri string, extra ...string) string {
	b, _ := json.Marshal(uri)
	return `{"uri":` + string(b) + strings.Join(extra, "") + `}`
}

var errBoom = errors.New("disk on fire")
