package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/store"
)

// ledgerStore pages a fixed ledger and remembers what it was asked.
type ledgerStore struct {
	*fakeStore
	ledger []tilecast.Outcome
	gotArg tilecast.OutcomeFilter
}

func (l *ledgerStore) OutcomesPage(f tilecast.OutcomeFilter, cursor string, limit int) ([]tilecast.Outcome, string, error) {
	l.gotArg = f
	return pageLedger(l.ledger, f, cursor, limit)
}

func TestOpsRoutesNeedAKey(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.Backup = func(context.Context) (io.ReadCloser, int64, error) {
			return io.NopCloser(strings.NewReader("snapshot")), 8, nil
		}
		o.DeadLetters = func(string, int) ([]DeadLetter, string, error) { return nil, "", nil }
	})
	for _, path := range []string{"/v1/backup", "/v1/outcomes", "/v1/deadletters"} {
		for _, key := range []string{"", "wrong"} {
			if rec := e.do(t, http.MethodGet, path, key, nil); rec.Code != http.StatusUnauthorized {
				t.Errorf("GET %s with key %q: %d, want 401", path, key, rec.Code)
			}
		}
		if rec := e.do(t, http.MethodGet, path, keyOne, nil); rec.Code != http.StatusOK {
			t.Errorf("GET %s with a key: %d %s", path, rec.Code, rec.Body)
		}
		if rec := e.do(t, http.MethodPost, path, keyOne, nil); rec.Code != http.StatusMethodNotAllowed {
			t.Errorf("POST %s: %d, want 405", path, rec.Code)
		}
	}
}

func TestOpsRoutesNotWired(t *testing.T) {
	e := newEnv(t, nil)
	for _, path := range []string{"/v1/backup", "/v1/deadletters"} {
		rec := e.do(t, http.MethodGet, path, keyOne, nil)
		if rec.Code != http.StatusNotImplemented || !strings.Contains(errorOf(t, rec), "not available") {
			t.Errorf("GET %s without the option: %d %s", path, rec.Code, rec.Body)
		}
	}
}

// backupEnv opens a real state file in dir with one channel and a server
// whose backups are that store's snapshots, tracked in snaps.
func backupEnv(t *testing.T, dir string) (*store.DB, tilecast.Channel, *snapshots, *env) {
	t.Helper()
	db, err := store.Open(filepath.Join(dir, "state.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ch, _, err := db.AddChannel(tilecast.Channel{URI: "https://db3.notify.live.net/x/1", User: "ana"})
	if err != nil {
		t.Fatal(err)
	}
	snaps := &snapshots{}
	e := newEnv(t, func(o *Options) { o.Backup = snaps.track(db.Snapshot) })
	return db, ch, snaps, e
}

// The snapshot of a real store over HTTP is a state file that opens and checks.
func TestBackupRealStore(t *testing.T) {
	dir := t.TempDir()
	_, ch, snaps, e := backupEnv(t, dir)
	rec := e.do(t, http.MethodGet, "/v1/backup", keyOne, nil)
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/octet-stream" {
		t.Fatalf("GET /v1/backup: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	if cd := rec.Header().Get("Content-Disposition"); !strings.Contains(cd, "attachment") {
		t.Errorf("Content-Disposition %q", cd)
	}
	if cl := rec.Header().Get("Content-Length"); cl != fmt.Sprint(rec.Body.Len()) {
		t.Errorf("Content-Length %q, body %d bytes", cl, rec.Body.Len())
	}
	snaps.waitClosed(t)
	copyPath := filepath.Join(dir, "copy.db")
	if err := os.WriteFile(copyPath, rec.Body.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	cp, err := store.Open(copyPath, store.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("open the snapshot: %v", err)
	}
	defer cp.Close()
	if err := cp.Check(); err != nil {
		t.Errorf("snapshot check: %v", err)
	}
	if got, err := cp.Channel(ch.ID); err != nil || got.URI != ch.URI {
		t.Errorf("snapshot channel = %+v, %v", got, err)
	}
}

// A failure before the answer starts is a JSON 500; after it, the
// connection is cut so the client cannot take a short body for a whole
// file. Either way the snapshot taken is closed.
func TestBackupFailure(t *testing.T) {
	tests := []struct {
		name    string
		snapErr error  // what Backup returns
		body    string // what the snapshot yields before its read fails
		status  int    // 0: the transfer must fail
	}{
		{"no snapshot", errors.New("disk full"), "", http.StatusInternalServerError},
		{"read fails midway", nil, strings.Repeat("x", 64<<10), 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var snaps snapshots
			e := newEnv(t, func(o *Options) {
				o.Backup = snaps.track(func(context.Context) (io.ReadCloser, int64, error) {
					if tc.snapErr != nil {
						return nil, 0, tc.snapErr
					}
					r := io.MultiReader(strings.NewReader(tc.body), iotest.ErrReader(errors.New("disk read error")))
					return io.NopCloser(r), 1 << 20, nil
				})
			})
			srv := httptest.NewServer(e.handler)
			defer srv.Close()
			resp, err := srv.Client().Do(backupRequest(t, srv.URL))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, readErr := io.ReadAll(resp.Body)
			if tc.status != 0 {
				var eb errorBody
				if resp.StatusCode != tc.status || json.Unmarshal(body, &eb) != nil || eb.Error == "" {
					t.Errorf("answer %d %q, want %d with a JSON error", resp.StatusCode, body, tc.status)
				}
				return
			}
			if readErr == nil {
				t.Errorf("read the whole body (%d bytes) without an error: a cut transfer must not look complete", len(body))
			}
			snaps.waitClosed(t)
		})
	}
}

// A client that goes away mid-transfer, or stops reading for longer than
// WriteTimeout, is cut off and the snapshot (disk space the size of the
// state file) is closed. The old route lifted the write deadline, so a
// client that stopped reading held the answer open forever.
func TestBackupClientGoneOrStalled(t *testing.T) {
	for _, tc := range []struct {
		name string
		read func(net.Conn) // what the client does after sending the request
	}{
		{"disconnects", func(c net.Conn) {
			_, _ = io.ReadFull(c, make([]byte, 4096)) // the answer has started
			_ = c.Close()
		}},
		{"stops reading", func(net.Conn) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Far more than loopback's socket buffers take, so the
			// handler is still writing when the client stops.
			var snaps snapshots
			e := newEnv(t, func(o *Options) {
				o.WriteTimeout = 200 * time.Millisecond
				o.Backup = snaps.track(func(context.Context) (io.ReadCloser, int64, error) {
					return io.NopCloser(io.LimitReader(zeros{}, 1<<30)), 1 << 30, nil
				})
			})
			srv := httptest.NewServer(e.handler)
			defer srv.Close()
			c, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := fmt.Fprintf(c, "GET /v1/backup HTTP/1.1\r\nHost: tilecast\r\nAuthorization: Bearer %s\r\n\r\n", keyOne); err != nil {
				t.Fatal(err)
			}
			tc.read(c)
			snaps.waitClosed(t)
		})
	}
}

// The regression of reliability catalogue S9: a backup client that stops
// reading mid-answer must not hold the store's read transaction, or every
// commit that grows the file (bbolt remaps it once no read transaction is
// open) and every read begun after it (Counts: /healthz, the systemd
// watchdog) waits for the client. Before the snapshot was spooled, the
// commits below stalled until the client was let go.
func TestBackupStalledClientDoesNotBlockCommits(t *testing.T) {
	db, ch, snaps, e := backupEnv(t, t.TempDir())
	req := httptest.NewRequest(http.MethodGet, "/v1/backup", nil)
	req.Header.Set("Authorization", "Bearer "+keyOne)
	sw := &stallWriter{ResponseRecorder: httptest.NewRecorder(), started: make(chan struct{}), release: make(chan struct{})}
	release := sync.OnceFunc(func() { close(sw.release) })
	served := make(chan struct{})
	go func() {
		defer close(served)
		e.handler.ServeHTTP(sw, req)
	}()
	defer func() { release(); <-served }() // before db.Close
	select {
	case <-sw.started:
	case <-served:
		t.Fatalf("the backup ended before sending: %d %s", sw.Code, sw.Body)
	case <-time.After(10 * time.Second):
		t.Fatal("the backup did not start sending in 10 s")
	}

	// within runs fn while the client sits on the answer and fails the
	// test, letting the client go, if fn has not returned in 10 s:
	// generous, fn takes milliseconds; only a stall behind the client
	// takes that long.
	within := func(stall string, fn func() error) {
		t.Helper()
		done := make(chan error, 1)
		go func() { done <- fn() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			release()
			<-done
			t.Fatal(stall + " blocked for 10 s behind a backup client that stopped reading")
		}
	}
	// A few MB of distinct payloads grow the file far past its first
	// mappings: each growth is a remap.
	within("commits that grow the file", func() error {
		filler := strings.Repeat("x", 1000)
		for i := range 40 {
			ns := make([]tilecast.Notification, 50)
			for j := range ns {
				item := fmt.Sprint(i*len(ns) + j)
				ns[j] = tilecast.Notification{ChannelID: ch.ID, Feed: "news", ItemID: item, Kind: tilecast.KindToast,
					Payload: []byte(item + filler)}
			}
			if err := db.Enqueue(ns); err != nil {
				return err
			}
		}
		return nil
	})
	within("Counts (/healthz, the watchdog)", func() error {
		c, err := db.Counts()
		if err == nil && c.OutboxDepth != 40*50 {
			err = fmt.Errorf("outbox depth %d after the commits, want %d", c.OutboxDepth, 40*50)
		}
		return err
	})

	// Let the client read: the answer is the state as it was at the
	// request, whole and valid.
	release()
	<-served
	if cl := sw.Header().Get("Content-Length"); sw.Code != http.StatusOK || cl != fmt.Sprint(sw.Body.Len()) {
		t.Fatalf("answer %d, Content-Length %q, body %d bytes", sw.Code, cl, sw.Body.Len())
	}
	copyPath := filepath.Join(t.TempDir(), "copy.db")
	if err := os.WriteFile(copyPath, sw.Body.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	cp, err := store.Open(copyPath, store.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("open the snapshot: %v", err)
	}
	defer cp.Close()
	if err := cp.Check(); err != nil {
		t.Errorf("snapshot check: %v", err)
	}
	if c, err := cp.Counts(); err != nil || c.Channels != 1 || c.OutboxDepth != 0 {
		t.Errorf("snapshot counts %+v, %v; want the channel and none of the later commits", c, err)
	}
	snaps.waitClosed(t)
}

// stallWriter is a client that stopped reading: its first Write blocks
// until release.
type stallWriter struct {
	*httptest.ResponseRecorder
	started, release chan struct{}
	once             sync.Once
}

func (w *stallWriter) Write(p []byte) (int, error) {
	w.once.Do(func() { close(w.started) })
	<-w.release
	return w.ResponseRecorder.Write(p)
}

// snapshots counts the snapshots a BackupFunc hands out and those the
// handler closed: an unclosed one is disk space the size of the state
// file (store.DB.Snapshot frees it on Close; the store's tests show that).
type snapshots struct{ taken, closed atomic.Int32 }

func (c *snapshots) track(f BackupFunc) BackupFunc {
	return func(ctx context.Context) (io.ReadCloser, int64, error) {
		r, n, err := f(ctx)
		if err != nil {
			return r, n, err
		}
		c.taken.Add(1)
		return closeCounter{r, &c.closed}, n, nil
	}
}

// waitClosed fails t unless a snapshot is taken and every snapshot
// taken is closed within 10 s: the handler may still be starting, or
// finishing, when the client has done its part.
func (c *snapshots) waitClosed(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); c.taken.Load() == 0 || c.closed.Load() != c.taken.Load(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d snapshots closed 10 s after the client went", c.closed.Load(), c.taken.Load())
		}
	}
}

type closeCounter struct {
	io.ReadCloser
	n *atomic.Int32
}

func (c closeCounter) Close() error { c.n.Add(1); return c.ReadCloser.Close() }

// zeros reads as an endless run of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func backupRequest(t *testing.T, base string) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/v1/backup", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+keyOne)
	return req
}

func TestAllOutcomes(t *testing.T) {
	ls := &ledgerStore{ledger: []tilecast.Outcome{
		{Time: t0.Add(-48 * time.Hour), ChannelID: "a", Feed: "news", Action: tilecast.ActionDelivered},
		{Time: t0.Add(-2 * time.Hour), ChannelID: "b", Feed: "news", Action: tilecast.ActionRetry},
		{Time: t0.Add(-1 * time.Hour), ChannelID: "a", Feed: "weather", Action: tilecast.ActionFailed},
	}}
	e := newEnv(t, func(o *Options) {
		ls.fakeStore = o.Store.(*fakeStore)
		o.Store = ls
	})
	tests := []struct {
		query  string
		status int
		want   []string // channel/feed of each entry
		since  time.Time
	}{
		// By channel, then oldest first.
		{"", 200, []string{"a/news", "a/weather", "b/news"}, t0.Add(-DefaultOutcomesSince)},
		{"?since=24h", 200, []string{"a/weather", "b/news"}, t0.Add(-24 * time.Hour)},
		{"?since=24h&feed=news", 200, []string{"b/news"}, t0.Add(-24 * time.Hour)},
		{"?since=" + t0.Add(-90*time.Minute).Format(time.RFC3339), 200, []string{"a/weather"}, t0.Add(-90 * time.Minute)},
		{"?feed=nosuch", 200, []string{}, t0.Add(-DefaultOutcomesSince)},
		{"?since=-1h", 400, nil, time.Time{}},
		{"?since=yesterday", 400, nil, time.Time{}},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			rec := e.do(t, http.MethodGet, "/v1/outcomes"+tc.query, keyOne, nil)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			if tc.status != 200 {
				errorOf(t, rec)
				return
			}
			var got []tilecast.Outcome
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || got == nil {
				t.Fatalf("decode %s: %v (want a JSON list, never null)", rec.Body, err)
			}
			var ids []string
			for _, o := range got {
				ids = append(ids, o.ChannelID+"/"+o.Feed)
			}
			if strings.Join(ids, ",") != strings.Join(tc.want, ",") {
				t.Errorf("entries %v, want %v", ids, tc.want)
			}
			if ls.gotArg.Channel != "" || !ls.gotArg.Since.Equal(tc.since) {
				t.Errorf("store asked for channel %q since %v, want every channel since %v", ls.gotArg.Channel, ls.gotArg.Since, tc.since)
			}
		})
	}
}

func TestDeadLettersRoute(t *testing.T) {
	type ask struct {
		cursor string
		limit  int
	}
	var asked []ask
	e := newEnv(t, func(o *Options) {
		o.DeadLetters = func(cursor string, limit int) ([]DeadLetter, string, error) {
			asked = append(asked, ask{cursor, limit})
			if limit == 7 {
				return nil, "", errBoom
			}
			if cursor == "bad" {
				return nil, "", fmt.Errorf("dead letters: %w", tilecast.ErrBadCursor)
			}
			out := make([]DeadLetter, min(limit, 3))
			for i := range out {
				out[i] = DeadLetter{Notification: tilecast.Notification{ID: uint64(i + 1), ChannelID: "c"},
					Outcome: tilecast.Outcome{Action: tilecast.ActionDropped}}
			}
			next := ""
			if limit < 3 {
				next = "more"
			}
			return out, next, nil
		}
	})
	tests := []struct {
		query  string
		status int
		n      int
		asked  []ask
		link   string
	}{
		{"", 200, 3, []ask{{"", tilecast.DefaultPageLimit}}, ""},
		{"?limit=2", 200, 2, []ask{{"", 2}}, `</v1/deadletters?cursor=more&limit=2>; rel="next"`},
		{"?limit=1000&cursor=abc", 200, 3, []ask{{"abc", 1000}}, ""},
		{"?limit=0", 400, 0, nil, ""},
		{"?limit=1001", 400, 0, nil, ""},
		{"?limit=x", 400, 0, nil, ""},
		{"?cursor=bad", 400, 0, []ask{{"bad", tilecast.DefaultPageLimit}}, ""},
		{"?limit=7", 500, 0, []ask{{"", 7}}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			asked = nil
			rec := e.do(t, http.MethodGet, "/v1/deadletters"+tc.query, keyOne, nil)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			if !slices.Equal(asked, tc.asked) {
				t.Errorf("DeadLetters called with %v, want %v", asked, tc.asked)
			}
			if got := rec.Header().Get("Link"); got != tc.link {
				t.Errorf("Link %q, want %q", got, tc.link)
			}
			if tc.status != 200 {
				if msg := errorOf(t, rec); tc.status == 500 && strings.Contains(msg, errBoom.Error()) {
					t.Errorf("500 leaks the store error: %q", msg)
				}
				return
			}
			var got []DeadLetter
			dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
			if err := dec.Decode(&got); err != nil || len(got) != tc.n {
				t.Errorf("got %d dead letters (%v), want %d", len(got), err, tc.n)
			}
		})
	}
}

// store.DeadLetter converts to DeadLetter, as the daemon wiring does.
var _ = func(d store.DeadLetter) DeadLetter { return DeadLetter(d) }
