package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tilecast/tilecast/internal/logtest"
	"github.com/tilecast/tilecast/internal/pgtest"
	"github.com/tilecast/tilecast/store/postgres"
)

// lockDaemon is `tilecast run` on a database reached through a proxy
// (viaProxy), with its /healthz at addr and its log in logs.
type lockDaemon struct {
	addr string
	logs *logtest.Buffer
}

// startLockDaemon runs the daemon, fetching a feed every second, until
// the test ends.
func startLockDaemon(t *testing.T, viaProxy string) *lockDaemon {
	t.Helper()
	// The schema first, so the test may read its tables at once.
	db, err := postgres.Open(t.Context(), viaProxy, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	feed := &growingFeed{}
	feed.add("First")
	fsrv := httptest.NewServer(feed)
	t.Cleanup(fsrv.Close)
	d := &lockDaemon{addr: freeAddr(t), logs: &logtest.Buffer{}}
	cfg := e2eConfigAPI(t, fsrv.URL, viaProxy, d.addr)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- cmdRun(ctx, env{args: []string{"--config", cfg, "--instance", "lock-1"}, stdin: strings.NewReader(""),
			stdout: io.Discard, stderr: d.logs})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run: %v\n%s", err, d.logs.String())
			}
		case <-time.After(time.Minute):
			t.Error("the daemon did not stop")
		}
	})
	return d
}

// health returns the status of the daemon's /healthz and its body.
func (d *lockDaemon) health(t *testing.T) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + d.addr + "/healthz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// dbInt runs a query returning one integer on the database at url.
func dbInt(t *testing.T, url, q string, args ...any) int64 {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int64
	if err := conn.QueryRow(ctx, q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// ticksSince counts the feed ticks claimed (written) after since.
func ticksSince(t *testing.T, url string, since time.Time) int64 {
	return dbInt(t, url, "SELECT count(*) FROM feed_ticks WHERE claimed > $1", since)
}

// runLockRows selects the rows of pg_locks of the run lock of the schema
// the querying connection uses (a bigint advisory key: its high half in
// classid, its low half in objid).
const runLockRows = `locktype = 'advisory' AND objsubid = 1
	AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
	AND classid::bigint = (hashtextextended('tilecast run ' || current_schema(), 0) >> 32) & 4294967295
	AND objid::bigint = hashtextextended('tilecast run ' || current_schema(), 0) & 4294967295`

// copyRefused runs `state copy` from the database at url (not through the
// proxy) and reports the failure unless it is refused for a running
// tilecast.
func copyRefused(t *testing.T, url, when string) {
	t.Helper()
	to := filepath.Join(t.TempDir(), "copy.db")
	code, out, errs := runCLI(t, t.Context(), "state", "copy", "--from", url, "--to", to, "--progress", "1h")
	if code != exitUsage || !strings.Contains(errs, "a tilecast runs on it") {
		t.Errorf("state copy %s, while the daemon runs: exit %d, want it refused (%d, a tilecast runs on it):\n%s%s",
			when, code, exitUsage, out, errs)
	}
}

// A daemon whose database connections were all cut (the proxy drops them
// and refuses new ones for a while) holds the run lock again once it
// works again: `state copy` is refused as before the outage, not run
// under a daemon that writes.
func TestStateCopyRefusedAfterADatabaseOutage(t *testing.T) {
	dbURL := pgtest.New(t)
	proxy, viaProxy := newDBProxy(t, dbURL)
	startLockDaemon(t, viaProxy)
	waitFor(t, "a tick", func() bool { return ticksSince(t, dbURL, time.Time{}) > 0 })
	copyRefused(t, dbURL, "before the outage")

	proxy.unplug()
	// The server saw the daemon's sessions end: the lock went with them.
	waitFor(t, "the run lock gone with the cut connections", func() bool {
		return dbInt(t, dbURL, "SELECT count(*) FROM pg_locks WHERE "+runLockRows) == 0
	})
	proxy.plug()
	back := time.Now()
	waitFor(t, "a tick written after the outage", func() bool { return ticksSince(t, dbURL, back) > 0 })
	copyRefused(t, dbURL, "after the outage")
}

// A state copy that got the run lock during an outage (it waited for it,
// and the server granted it the moment the daemon's sessions ended) stops
// the daemon's writes when the database is back: no tick is written and
// /healthz is 503 until the copy ends; then the daemon writes again, is
// healthy, and holds the lock again.
func TestStateCopyDuringADatabaseOutageStopsTheDaemon(t *testing.T) {
	dbURL := pgtest.New(t)
	proxy, viaProxy := newDBProxy(t, dbURL)
	d := startLockDaemon(t, viaProxy)
	waitFor(t, "a tick", func() bool { return ticksSince(t, dbURL, time.Time{}) > 0 })

	// The "state copy": a session of its own waiting for the exclusive lock.
	ctx := context.Background()
	cp, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close(ctx)
	granted := make(chan error, 1)
	go func() {
		_, err := cp.Exec(ctx, "SELECT pg_advisory_lock(hashtextextended('tilecast run ' || current_schema(), 0))")
		granted <- err
	}()
	waitFor(t, "the copy waiting for the lock", func() bool {
		return dbInt(t, dbURL, "SELECT count(*) FROM pg_locks WHERE NOT granted AND "+runLockRows) == 1
	})
	proxy.unplug()
	select {
	case err := <-granted:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the copy did not get the lock when the daemon's sessions ended")
	}
	copying := time.Now()
	proxy.plug()

	// The daemon's next tick meets the copy's lock.
	waitFor(t, "the daemon refused, or writing", func() bool {
		return strings.Contains(d.logs.String(), "a state copy is running on it") || ticksSince(t, dbURL, copying) > 0
	})
	if n := ticksSince(t, dbURL, copying); n > 0 {
		t.Fatalf("the daemon wrote %d ticks while a state copy held the database\n%s", n, d.logs.String())
	}
	// 503 throughout; it names the copy once the pool is past the
	// connections the outage cut (each fails a call as unreachable).
	waitFor(t, "/healthz 503 naming the state copy", func() bool {
		code, body := d.health(t)
		if code != http.StatusServiceUnavailable {
			t.Fatalf("/healthz while a state copy holds the database: %d %s, want 503", code, body)
		}
		return strings.Contains(body, "state copy")
	})
	time.Sleep(1500 * time.Millisecond) // a tick later (every second): still nothing written
	if n := ticksSince(t, dbURL, copying); n > 0 {
		t.Fatalf("the daemon wrote %d ticks while a state copy held the database\n%s", n, d.logs.String())
	}

	// The copy ends (its session with it).
	if _, err := cp.Exec(ctx, "SELECT pg_advisory_unlock_all()"); err != nil {
		t.Fatal(err)
	}
	done := time.Now()
	waitFor(t, "a tick written after the copy ended", func() bool { return ticksSince(t, dbURL, done) > 0 })
	waitFor(t, "/healthz 200 again", func() bool { code, _ := d.health(t); return code == http.StatusOK })
	copyRefused(t, dbURL, "after the copy")
}
