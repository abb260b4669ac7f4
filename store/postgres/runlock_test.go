package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/internal/logtest"
	"github.com/tilecast/tilecast/internal/pgtest"
	"github.com/tilecast/tilecast/store/dump"
)

// runLockRows selects the rows of pg_locks of the run lock of the schema
// the querying connection uses (lockKey "run": a bigint advisory key, its
// high half in classid and its low half in objid).
const runLockRows = `locktype = 'advisory' AND objsubid = 1
	AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
	AND classid::bigint = (hashtextextended('tilecast run ' || current_schema(), 0) >> 32) & 4294967295
	AND objid::bigint = hashtextextended('tilecast run ' || current_schema(), 0) & 4294967295`

// cutRunLock ends every session that holds the run lock of the state at
// url, as a restart of the server or a cut network would, waiting until
// they are gone, and returns how many it ended.
func cutRunLock(t *testing.T, url string) int64 {
	t.Helper()
	n, _ := sql(t, url, `SELECT count(*) FROM (SELECT pg_terminate_backend(pid, 10000) AS ended
		FROM pg_locks WHERE granted AND `+runLockRows+`) s WHERE ended`).(int64)
	return n
}

// exclusiveRefused reports whether a state copy (the exclusive run lock)
// is refused on the state at url now; one that got it lets it go at once.
func exclusiveRefused(t *testing.T, url string) bool {
	t.Helper()
	c, err := Open(context.Background(), url, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.Hold(context.Background(), true)
	if err != nil && !errors.Is(err, tilecast.ErrStateLocked) {
		t.Fatal(err)
	}
	return err != nil
}

// queueExclusive makes a connection of its own to the state at url wait
// for the exclusive run lock (pg_advisory_lock waits, unlike Hold), as a
// state copy started at the worst moment: the server grants it the
// instant the shared holders are gone, before any of them can take the
// lock again. It returns a channel that is closed once it holds the lock
// and a function that lets the lock go.
func queueExclusive(t *testing.T, url string) (granted <-chan struct{}, release func()) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		_, err := conn.Exec(ctx, "SELECT pg_advisory_lock(hashtextextended('tilecast run ' || current_schema(), 0))")
		if err == nil {
			close(got)
		}
		errc <- err
	}()
	waitUntil(t, "the exclusive lock queued", func() bool {
		n, _ := sql(t, url, "SELECT count(*) FROM pg_locks WHERE NOT granted AND "+runLockRows).(int64)
		return n == 1
	})
	var done bool
	release = func() {
		if done {
			return
		}
		done = true
		select {
		case <-got:
		case <-time.After(20 * time.Second):
			t.Error("the queued exclusive lock was never granted")
		}
		if err := <-errc; err != nil {
			t.Errorf("exclusive lock: %v", err)
		}
		// Unlocked before the session ends, as Close does: the server
		// ends a closed session a moment after the client is done.
		if _, err := conn.Exec(ctx, "SELECT pg_advisory_unlock_all()"); err != nil {
			t.Errorf("unlock: %v", err)
		}
		conn.Close(ctx)
	}
	t.Cleanup(release)
	return got, release
}

// waitUntil polls cond for up to 20 s: generous, so a slow machine is no
// failure, while a condition that never comes fails the test.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A daemon whose connections were cut (the one holding the run lock
// included) takes the run lock again while it runs: a state copy is
// refused again, as before the cut.
func TestRunLockTakenAgainAfterTheConnectionIsCut(t *testing.T) {
	url := pgtest.New(t)
	logs := &logtest.Buffer{}
	a := open(t, url, Options{HoldCheck: 50 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err := a.Hold(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	if !exclusiveRefused(t, url) {
		t.Fatal("a state copy got the run lock while the daemon holds it")
	}
	if n := cutRunLock(t, url); n == 0 {
		t.Fatal("no session held the run lock")
	}
	// The daemon runs on; whatever it does, within a few seconds a state
	// copy must be refused again.
	copies := 0
	deadline := time.Now().Add(20 * time.Second)
	for !exclusiveRefused(t, url) {
		copies++
		if time.Now().After(deadline) {
			t.Fatalf("20 s after the connection was cut, a state copy still gets the run lock (%d did) while the daemon runs", copies)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The daemon did nothing but keep the lock: its check took it again.
	l := logs.String()
	if !strings.Contains(l, "the connection holding the run lock was lost") || !strings.Contains(l, "run lock held again") {
		t.Errorf("log:\n%s\nwant the lost connection and the lock held again", l)
	}
}

// A state copy that got the run lock while the daemon's connections were
// cut (the server grants it the moment they are gone) stops the daemon's
// writes, which fail with tilecast.ErrStateLocked until the copy ends;
// then they go through, and the daemon holds the lock again.
func TestExclusiveHolderStopsTheDaemonsWrites(t *testing.T) {
	url := pgtest.New(t)
	logs := &logtest.Buffer{}
	a := open(t, url, Options{HoldCheck: 50 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err := a.Hold(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.AddChannel(tilecast.Channel{URI: "http://127.0.0.1/before"}); err != nil {
		t.Fatal(err)
	}
	granted, release := queueExclusive(t, url)
	if n := cutRunLock(t, url); n == 0 {
		t.Fatal("no session held the run lock")
	}
	select {
	case <-granted:
	case <-time.After(20 * time.Second):
		t.Fatal("the queued exclusive lock was not granted when the daemon's sessions ended")
	}

	// Each write fails: the first ones on the pool's connections the cut
	// ended (broken pipe), then on new ones, which cannot take the lock.
	refused := 0
	for i := 0; refused < 3; i++ {
		_, _, err := a.AddChannel(tilecast.Channel{URI: fmt.Sprintf("http://127.0.0.1/during-%d", i)})
		if err == nil {
			t.Fatal("a write went through while a state copy holds the database")
		}
		if errors.Is(err, tilecast.ErrStateLocked) {
			refused++
		} else if i >= 10 {
			t.Fatalf("write %d while a state copy holds the database: %v, want tilecast.ErrStateLocked", i, err)
		}
	}
	if err := a.Ping(context.Background(), 5*time.Second); !errors.Is(err, tilecast.ErrStateLocked) || !strings.Contains(err.Error(), "a state copy is running on it") {
		t.Errorf("Ping (health) while a state copy holds the database: %v, want tilecast.ErrStateLocked", err)
	}
	if n := sql(t, url, "SELECT count(*) FROM channels"); n != int64(1) {
		t.Errorf("%v channels after the refused writes, want 1", n)
	}

	waitUntil(t, "the daemon's check refused the lock by the copy", func() bool {
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, "cannot take the run lock again; retrying") && strings.Contains(l, "a state copy is running on it") {
				return true
			}
		}
		return false
	})
	if n := sql(t, url, "SELECT count(*) FROM channels"); n != int64(1) {
		t.Errorf("%v channels while the state copy ran, want 1", n)
	}

	release()
	waitUntil(t, "the lock held again", func() bool { return strings.Contains(logs.String(), "run lock held again") })
	if _, _, err := a.AddChannel(tilecast.Channel{URI: "http://127.0.0.1/after"}); err != nil {
		t.Fatalf("a write after the state copy ended: %v", err)
	}
	if !exclusiveRefused(t, url) {
		t.Error("a state copy got the run lock after the daemon wrote again")
	}
}

// A state copy whose lock was lost with its connection (a tilecast may
// have started and written meanwhile) fails at the end of its export and
// of its import instead of reporting a good copy.
func TestStateCopyFailsWhenItsLockWasLost(t *testing.T) {
	url := pgtest.New(t)
	c := open(t, url, Options{})
	ctx := context.Background()
	if err := c.Hold(ctx, true); err != nil {
		t.Fatal(err)
	}
	if err := c.Export(ctx, func(dump.Item) error { return nil }); err != nil {
		t.Fatalf("export with the lock held: %v", err)
	}
	if n := cutRunLock(t, url); n != 1 {
		t.Fatalf("%d sessions held the run lock, want the copy's", n)
	}
	const want = "the run lock was lost with its connection"
	if err := c.Export(ctx, func(dump.Item) error { return nil }); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("export after the lock was lost: %v, want %q", err, want)
	}
	if err := c.Importer().Close(); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("import after the lock was lost: %v, want %q", err, want)
	}
	// Not taken again: a daemon may run now.
	d := open(t, url, Options{})
	if err := d.Hold(ctx, false); err != nil {
		t.Errorf("a daemon after the copy's lock was lost: %v", err)
	}
}

// A daemon that stopped gives the lock back at once from every
// connection that took it, not when the server notices them closed: a
// state copy started right after the stop gets it.
func TestRunLockFreeRightAfterClose(t *testing.T) {
	url := pgtest.New(t)
	for i := range 20 {
		a, err := Open(context.Background(), url, Options{MaxConns: 4})
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Hold(context.Background(), false); err != nil {
			t.Fatal(err)
		}
		// Writes side by side: several connections of the pool take
		// the lock.
		var wg sync.WaitGroup
		for j := range 3 {
			wg.Go(func() {
				if _, _, err := a.AddChannel(tilecast.Channel{URI: fmt.Sprintf("http://127.0.0.1/%d-%d", i, j)}); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if n, _ := sql(t, url, "SELECT count(*) FROM pg_locks WHERE granted AND "+runLockRows).(int64); n < 2 {
			t.Fatalf("%d sessions hold the run lock, want the kept one and those that wrote", n)
		}
		a.Close()
		if exclusiveRefused(t, url) {
			t.Fatalf("round %d: a state copy right after the daemon stopped was refused", i)
		}
	}
}
