package wns_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/notify/wns"
)

// answer is one scripted answer of the fake server.
type answer struct {
	status  int
	headers map[string]string
	body    string
	hold    <-chan struct{} // when set, the answer waits for it to close
}

// seen is one request the fake server received.
type seen struct {
	path    string
	query   string
	header  http.Header
	body    string
	isToken bool
}

// fakeWNS plays a token endpoint (/token) and WNS (/wns/) on loopback.
// Answers are taken from the scripts in order; an empty script answers
// with the default (a token, or 200 received).
type fakeWNS struct {
	t   *testing.T
	srv *httptest.Server

	mu         sync.Mutex
	tokenQueue []answer
	pushQueue  []answer
	tokenN     int // token answers issued by default: token-1, token-2, …
	reqs       []seen
	// pushFn, when set, decides push answers instead of the queue.
	pushFn func(s seen) answer
}

func newFakeWNS(t *testing.T) *fakeWNS {
	f := &fakeWNS{t: t}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeWNS) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s := seen{path: r.URL.Path, query: r.URL.RawQuery, header: r.Header.Clone(), body: string(body), isToken: r.URL.Path == "/token"}
	f.mu.Lock()
	f.reqs = append(f.reqs, s)
	var a answer
	switch {
	case s.isToken && len(f.tokenQueue) > 0:
		a, f.tokenQueue = f.tokenQueue[0], f.tokenQueue[1:]
	case s.isToken:
		f.tokenN++
		a = tokenAnswer("token-"+itoa(f.tokenN), 3600)
	case f.pushFn != nil:
		fn := f.pushFn
		f.mu.Unlock()
		a = fn(s)
		f.mu.Lock()
	case len(f.pushQueue) > 0:
		a, f.pushQueue = f.pushQueue[0], f.pushQueue[1:]
	default:
		a = answer{status: 200, headers: map[string]string{"X-WNS-Status": "received", "X-WNS-Msg-ID": "1ACE34A9B9F8D7C1"}}
	}
	f.mu.Unlock()
	if a.hold != nil {
		select {
		case <-a.hold:
		case <-r.Context().Done():
			return
		}
	}
	for k, v := range a.headers {
		w.Header()[k] = []string{v}
	}
	w.WriteHeader(a.status)
	_, _ = io.WriteString(w, a.body)
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func tokenAnswer(tok string, expires any) answer {
	b, _ := json.Marshal(map[string]any{"access_token": tok, "token_type": "bearer", "expires_in": expires})
	return answer{status: 200, headers: map[string]string{"Content-Type": "application/json"}, body: string(b)}
}

func (f *fakeWNS) queueTokens(a ...answer) {
	f.mu.Lock()
	f.tokenQueue = append(f.tokenQueue, a...)
	f.mu.Unlock()
}

func (f *fakeWNS) queuePushes(a ...answer) {
	f.mu.Lock()
	f.pushQueue = append(f.pushQueue, a...)
	f.mu.Unlock()
}

func (f *fakeWNS) requests() []seen {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seen(nil), f.reqs...)
}

// counts returns how many token and push requests arrived.
func (f *fakeWNS) counts() (tokens, pushes int) {
	for _, r := range f.requests() {
		if r.isToken {
			tokens++
		} else {
			pushes++
		}
	}
	return tokens, pushes
}

func (f *fakeWNS) channel() *tilecast.Channel {
	return &tilecast.Channel{ID: "c1", URI: f.srv.URL + "/wns/?token=AwYAAABq7aDo%2bKx1%2f4Lk2Nw5xyz%3d"}
}

// The credentials of the goldens.
const (
	goldenClientID = "ms-app://s-1-15-2-1234567890-123456789-1234567890-123456789-1234567890-123456789-1234567890"
	goldenSecret   = "FAKE+secret/With=Chars"
)

type setup struct {
	clk    *clock
	log    *bytes.Buffer
	tokens *wns.TokenSource
	client *wns.Client
}

// newSetup builds a TokenSource and a Client against f, logging JSON to a
// buffer the test can search. mod may adjust the options.
func newSetup(t *testing.T, f *fakeWNS, mod func(*wns.Credentials, *wns.TokenOptions, *wns.ClientOptions)) *setup {
	t.Helper()
	s := &setup{clk: newClock(), log: &bytes.Buffer{}}
	logger := slog.New(slog.NewJSONHandler(&lockedWriter{w: s.log}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	creds := wns.Credentials{ClientID: goldenClientID, Secret: []byte(goldenSecret), TokenURL: f.srv.URL + "/token"}
	topts := wns.TokenOptions{AllowHTTP: true, Now: s.clk.Now, Logger: logger, Timeout: 10 * time.Second}
	copts := wns.ClientOptions{AllowedHosts: []string{"127.0.0.1"}, AllowPrivate: true, Now: s.clk.Now, Logger: logger,
		Timeout: 10 * time.Second, UserAgent: "tilecast-test"}
	if mod != nil {
		mod(&creds, &topts, &copts)
	}
	var err error
	if s.tokens, err = wns.NewTokenSource(creds, topts); err != nil {
		t.Fatal(err)
	}
	copts.Tokens = s.tokens
	if s.client, err = wns.NewClient(copts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.client.Close)
	return s
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func toastNote() *tilecast.Notification {
	return &tilecast.Notification{ID: 1, ChannelID: "c1", Feed: "news", Kind: tilecast.KindToast,
		Payload: []byte(`<toast><visual><binding template="ToastText01"><text id="1">Hi</text></binding></visual></toast>`)}
}

func (s *setup) push(t *testing.T, f *fakeWNS, n *tilecast.Notification) tilecast.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return s.client.Push(ctx, f.channel(), n, 0)
}

func (s *setup) logText() string {
	return strings.TrimSpace(s.log.String())
}
