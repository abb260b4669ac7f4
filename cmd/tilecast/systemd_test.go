package main

import (
	"context"
	"net"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/config"
	"github.com/tilecast/tilecast/internal/logtest"
	"github.com/tilecast/tilecast/store"
)

// TestSystemdNotify runs the daemon with a fake systemd notify socket and
// checks READY=1 after start-up, watchdog pings while it makes progress,
// and STOPPING=1 on shutdown.
func TestSystemdNotify(t *testing.T) {
	got := fakeSystemd(t)

	feed := &growingFeed{}
	feed.add("First")
	fsrv := httptest.NewServer(feed)
	defer fsrv.Close()
	cfg := e2eConfig(t, fsrv.URL)
	d := startDaemon(t, cfg)
	waitFor(t, "READY=1", func() bool { return strings.Contains(got(), "READY=1") })
	waitFor(t, "two watchdog pings", func() bool { return strings.Count(got(), "WATCHDOG=1") >= 2 })
	if strings.Contains(got(), "STOPPING=1") {
		t.Fatal("STOPPING=1 before shutdown")
	}
	if code := d.stop(); code != exitOK {
		t.Fatalf("exit %d", code)
	}
	// STOPPING=1 was sent before run returned, but the reader goroutine
	// may not have taken the datagram off the socket yet.
	waitFor(t, "STOPPING=1", func() bool { return strings.Contains(got(), "STOPPING=1") })
	if i, j := strings.Index(got(), "READY=1"), strings.Index(got(), "WATCHDOG=1"); i > j {
		t.Errorf("a watchdog ping came before READY=1: %s", got())
	}
}

// notifySocket listens on a unix datagram socket as systemd's notify
// socket does and returns its path and the messages received so far.
func notifySocket(t *testing.T) (path string, got func() []string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	var mu sync.Mutex
	var msgs []string
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			mu.Lock()
			msgs = append(msgs, string(buf[:n]))
			mu.Unlock()
		}
	}()
	return path, func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), msgs...) }
}

// fakeSystemd points NOTIFY_SOCKET at a socket of the test's and sets a
// watchdog of 200 ms (a ping every 100 ms); got returns the messages the
// daemon sent so far, joined by "|".
func fakeSystemd(t *testing.T) (got func() string) {
	t.Helper()
	sock, msgs := notifySocket(t)
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", "200000")
	return func() string { return strings.Join(msgs(), "|") }
}

// fakeBeat is a scheduler whose last heartbeat the test sets.
type fakeBeat struct{ at time.Time }

func (f *fakeBeat) LastBeat() time.Time { return f.at }

// TestDaemonHealthGatesOnProgress checks the condition behind /healthz and
// the watchdog: a scheduler that stopped ticking or a deliverer that never
// ran is unhealthy.
func TestDaemonHealthGatesOnProgress(t *testing.T) {
	db, err := store.Open(filepath.Join(t.TempDir(), "state.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cfg := config.Default()
	bot := &tilecast.Bot{Store: db}
	sched := &fakeBeat{}
	lim := defaultHealthLimits(db)

	// Never ticked, deliverer never ran.
	if err := daemonHealth(t.Context(), cfg, sched, bot, db, lim); err == nil || !strings.Contains(err.Error(), "scheduler") {
		t.Errorf("fresh scheduler: %v, want a scheduler error", err)
	}
	sched.at = time.Now()
	if err := daemonHealth(t.Context(), cfg, sched, bot, db, lim); err == nil || !strings.Contains(err.Error(), "deliverer") {
		t.Errorf("no deliverer pass: %v, want a deliverer error", err)
	}
	// A deliverer pass makes it healthy.
	dctx, stop := context.WithCancel(t.Context())
	deliverDone := make(chan struct{})
	go func() { bot.Deliver(dctx); close(deliverDone) }()
	waitFor(t, "healthy", func() bool { return daemonHealth(t.Context(), cfg, sched, bot, db, lim) == nil })
	stop()
	<-deliverDone
	// A cancelled daemon is unhealthy (stopping).
	cctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := daemonHealth(cctx, cfg, sched, bot, db, lim); err == nil {
		t.Error("a stopping daemon reported healthy")
	}
	// An old heartbeat is unhealthy.
	sched.at = time.Now().Add(-2 * time.Minute)
	if err := daemonHealth(t.Context(), cfg, sched, bot, db, lim); err == nil || !strings.Contains(err.Error(), "scheduler") {
		t.Errorf("stale scheduler: %v", err)
	}
}

// TestMigrationProgressExtendsStartTimeout: each batch of a state file
// migration asks systemd to wait longer for start-up and says how far it is.
func TestMigrationProgressExtendsStartTimeout(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	logs := &logtest.Buffer{}
	progress := migrationProgress(newLogger(config.Default(), logs))
	progress(5000, 12000)
	progress(10000, 12000)
	for _, want := range []string{
		"EXTEND_TIMEOUT_USEC=30000000\nSTATUS=migrating the state file: 5000 of 12000 records",
		"EXTEND_TIMEOUT_USEC=30000000\nSTATUS=migrating the state file: 10000 of 12000 records",
	} {
		buf := make([]byte, 512)
		if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
			t.Fatal(err)
		}
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		if got := string(buf[:n]); got != want {
			t.Errorf("notify message %q, want %q", got, want)
		}
	}
	if logs.String() != "" {
		t.Errorf("logged %q", logs.String())
	}
}
