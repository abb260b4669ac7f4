//go:build crash

package crashtest

import (
	"bytes"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/emulator"
	"github.com/tilecast/tilecast/store"
)

// buildBinary compiles cmd/tilecast into a temp dir once per test binary run.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "tilecast")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/tilecast/tilecast/cmd/tilecast")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// feed serves an RSS feed that gains one item per request (one per daemon
// tick) until frozen; it keeps the newest window items. A frozen feed
// gains an item only when the test adds one.
type feed struct {
	*httptest.Server
	mu     sync.Mutex
	n      int // items generated so far: item-1 … item-n
	frozen bool
	window int
	start  time.Time
}

func newFeed(t *testing.T, initial, window int) *feed {
	f := &feed{n: initial, window: window, start: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *feed) serve(w http.ResponseWriter, _ *http.Request) {
	f.mu.Lock()
	if !f.frozen {
		f.n++
	}
	n := f.n
	f.mu.Unlock()
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Crash</title><link>http://127.0.0.1/</link>`)
	for i := n; i >= 1 && i > n-f.window; i-- {
		fmt.Fprintf(&b, "<item><guid>item-%d</guid><title>Story item-%d</title><pubDate>%s</pubDate></item>",
			i, i, f.start.Add(time.Duration(i)*time.Minute).Format(time.RFC1123Z))
	}
	b.WriteString("</channel></rss>")
	w.Header().Set("Content-Type", "application/rss+xml")
	_, _ = io.WriteString(w, b.String())
}

func (f *feed) freeze() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.frozen = true
	return f.n
}

// add makes one more item new (a frozen feed's way to grow) and returns its number.
func (f *feed) add() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	return f.n
}

func (f *feed) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

// delivery is one accepted push as the emulated phone saw it.
type delivery struct {
	token, item, kind string
}

// counter wraps the emulator's handler and counts every push it answered
// 200 Received, per (channel token, item, kind).
type counter struct {
	emu  *emulator.Emulator
	next http.Handler

	mu       sync.Mutex
	got      map[delivery]int
	life     int
	lifeKeys map[delivery]int // key → the last life it was delivered in
	inLife   int              // item deliveries taken in the current life
	summary  int              // pushes without an item marker (summary toasts)
	active   int              // requests being handled
}

// idle reports whether no push is being handled: after a kill, the
// handlers of its last requests must finish before the deliveries of that
// life are counted.
func (c *counter) idle() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.active == 0
}

var itemMarker = regexp.MustCompile(`item-[0-9]+`)

func (c *counter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	c.mu.Lock()
	c.active++
	life := c.life // the life that sent it, even if it ends meanwhile
	c.mu.Unlock()
	defer func() { c.mu.Lock(); c.active--; c.mu.Unlock() }()
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	c.next.ServeHTTP(rec, r)
	if !strings.Contains(r.URL.Path, "thirdparty/01.00/") || rec.status != http.StatusOK ||
		rec.Header().Get("X-NotificationStatus") != "Received" {
		return
	}
	token := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
	kind := r.Header.Get("X-WindowsPhone-Target")
	item := string(itemMarker.Find(body))
	c.mu.Lock()
	defer c.mu.Unlock()
	if item == "" {
		c.summary++
		return
	}
	k := delivery{token, item, kind}
	c.got[k]++
	c.lifeKeys[k] = life
	if life == c.life {
		c.inLife++
	}
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// rig is one crash-test setup: binary, config, state file, feed and phones.
type rig struct {
	t      *testing.T
	bin    string
	dir    string
	state  string
	config string
	feed   *feed
	emu    *emulator.Emulator
	count  *counter
	phones []emulator.Channel
	logs   *os.File
	ca     string // PEM of the emulator's TLS certificate
}

type rigOptions struct {
	phones      int
	concurrency int
	schedule    string
	firstRun    string
	initial     int
	stateDir    string // default: the rig's temp dir
	listen      string // http.listen (GET /metrics, /healthz; no API keys); default: no HTTP server
}

func newRig(t *testing.T, bin string, o rigOptions) *rig {
	t.Helper()
	dir := t.TempDir()
	sd := o.stateDir
	if sd == "" {
		sd = dir
	}
	r := &rig{t: t, bin: bin, dir: dir, state: filepath.Join(sd, "state.db"), config: filepath.Join(dir, "tilecast.toml")}
	r.feed = newFeed(t, o.initial, 200)
	r.emu = emulator.New(emulator.Options{})
	r.count = &counter{emu: r.emu, next: r.emu.Handler(), got: map[delivery]int{}, lifeKeys: map[delivery]int{}}
	// TLS: https channel URIs are authenticated MPNS channels, with no
	// 500-a-day cap on either side, so a long run is not throttled. The
	// daemon trusts the test certificate through SSL_CERT_FILE.
	srv := httptest.NewUnstartedServer(r.count)
	// Killed daemons leave handshakes half done; that is the point here.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	t.Cleanup(r.emu.Close)
	r.emu.SetBaseURL(srv.URL)
	r.ca = filepath.Join(dir, "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(r.ca, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`state = %q
[log]
level = "info"
[http]
listen = %q
api_keys_file = ""
[fetch]
timeout = "5s"
allow_private = true
[push]
timeout = "5s"
concurrency = %d
allow_private = true
allowed_hosts = ["127.0.0.1"]
[[feed]]
name = "crash"
url = %q
schedule = %q
first_run = %q
max_toasts = 20
flood_limit = 1000
image_check = false
[feed.toast]
text1 = "{{.Feed.Title}}"
text2 = "{{.Item.Title}}"
param = "/Item.xaml?id={{.Item.ID}}"
[feed.tile]
template = "flip"
title = "Crash"
back_content = "{{.Item.ID}}"
`, r.state, o.listen, o.concurrency, r.feed.URL+"/feed.xml", o.schedule, o.firstRun)
	if err := os.WriteFile(r.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(r.state, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	chs := make([]tilecast.Channel, 0, o.phones)
	for i := range o.phones {
		ec, err := r.emu.CreateChannel(emulator.Healthy, fmt.Sprintf("phone%d", i), emulator.Params{HTTPS: true})
		if err != nil {
			t.Fatal(err)
		}
		chs = append(chs, tilecast.Channel{URI: ec.URI, Feeds: []string{"crash"}})
		r.phones = append(r.phones, ec)
	}
	// One import, a transaction per batch: thousands of phones register in
	// a moment.
	if added, _, err := db.ImportChannels(chs); err != nil || added != o.phones {
		t.Fatalf("import %d phones: %d added, %v", o.phones, added, err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	logs, err := os.Create(filepath.Join(dir, "daemon.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logs.Close() })
	r.logs = logs
	return r
}

// start runs `tilecast run` with extra environment variables.
func (r *rig) start(env ...string) *exec.Cmd {
	r.t.Helper()
	r.count.mu.Lock()
	r.count.life++
	r.count.inLife = 0
	r.count.mu.Unlock()
	cmd := exec.Command(r.bin, "run", "--config", r.config)
	cmd.Env = append(append(os.Environ(), "SSL_CERT_FILE="+r.ca), env...)
	cmd.Stdout, cmd.Stderr = r.logs, r.logs
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	return cmd
}

// kill sends SIGKILL and reaps the process.
func (r *rig) kill(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
}

// stop sends SIGTERM and waits for a clean exit.
func (r *rig) stop(cmd *exec.Cmd) {
	r.t.Helper()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		r.t.Errorf("daemon did not stop cleanly: %v", err)
	}
}

// exitCode waits for cmd and returns its exit code.
func exitCode(cmd *exec.Cmd) int {
	err := cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// pending opens the state file read-only, runs bbolt's check and returns
// the outbox entries as deliveries (channel token, item, kind).
func (r *rig) pending() (map[delivery]bool, error) {
	db, err := store.Open(r.state, store.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		return nil, err
	}
	defer db.Close()
	if err := db.Check(); err != nil {
		return nil, err
	}
	due, err := db.Due(time.Now().Add(100*365*24*time.Hour), 1<<30, nil)
	if err != nil {
		return nil, err
	}
	out := map[delivery]bool{}
	for _, p := range due {
		tok := p.Channel.URI[strings.LastIndex(p.Channel.URI, "/")+1:]
		kind := "toast"
		if p.Kind == tilecast.KindTile {
			kind = "token"
		}
		out[delivery{tok, p.ItemID, kind}] = true
	}
	return out, nil
}

// waitFor polls cond every 50 ms for up to limit.
func waitFor(limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return cond()
}

// logSize is the daemon log's current length, for logSince.
func (r *rig) logSize() int64 {
	st, err := r.logs.Stat()
	if err != nil {
		return 0
	}
	return st.Size()
}

// logSince reports whether the log written after offset contains s.
func (r *rig) logSince(offset int64, s string) bool {
	b, err := os.ReadFile(r.logs.Name())
	return err == nil && int64(len(b)) >= offset && bytes.Contains(b[offset:], []byte(s))
}

// logHas reports whether the daemon log contains s.
func (r *rig) logHas(s string) bool {
	b, err := os.ReadFile(r.logs.Name())
	return err == nil && bytes.Contains(b, []byte(s))
}

// possibleDups sums the counts of the daemon's "possible duplicates" lines:
// what each start found in the send log of the life before (P12).
func (r *rig) possibleDups() int {
	b, _ := os.ReadFile(r.logs.Name())
	total := 0
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.Contains(line, "possible duplicates") {
			continue
		}
		_, after, ok := strings.Cut(line, " count=")
		if !ok {
			r.t.Errorf("possible duplicates line without a count: %s", line)
			continue
		}
		n, err := strconv.Atoi(strings.Fields(after)[0])
		if err != nil {
			r.t.Errorf("possible duplicates line: %v: %s", err, line)
		}
		total += n
	}
	return total
}

// errorSummary counts the daemon's ERROR log lines by message (text format).
func (r *rig) errorSummary() map[string]int {
	b, _ := os.ReadFile(r.logs.Name())
	out := map[string]int{}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.Contains(line, "level=ERROR") {
			continue
		}
		msg := line
		if i := strings.Index(line, "msg="); i >= 0 {
			msg = line[i:]
			if j := strings.Index(msg, " duration="); j > 0 {
				msg = msg[:j]
			}
			if len(msg) > 160 {
				msg = msg[:160]
			}
		}
		out[msg]++
	}
	return out
}
