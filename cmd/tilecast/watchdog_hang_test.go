package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tilecast/tilecast/internal/logtest"
)

// envDaemonChild makes this test binary `tilecast` itself: a test that
// needs a daemon in a process of its own (its own NOTIFY_SOCKET, a
// goroutine that never returns) runs the test binary with it set and the
// daemon's arguments.
const envDaemonChild = "TILECAST_TEST_DAEMON_CHILD"

// init runs before TestMain, so a child is the daemon and nothing else
// (no PostgreSQL cluster, no tests).
func init() {
	if os.Getenv(envDaemonChild) != "1" {
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// watchdogFetchTimeout is the children's fetch.timeout: the health check
// calls a fetch stuck once it has run 2 × fetch.timeout + 1 minute.
const watchdogFetchTimeout = time.Second

// watchdogChild is a daemon in a child process under a fake systemd with
// a watchdog of 200 ms (a ping every 100 ms when healthy).
type watchdogChild struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has ended
	listen string
	logs   *logtest.Buffer
	got    func() []string
}

func (c *watchdogChild) pings() int {
	n := 0
	for _, m := range c.got() {
		if m == "WATCHDOG=1" {
			n++
		}
	}
	return n
}

func (c *watchdogChild) ready() bool {
	for _, m := range c.got() {
		if strings.Contains(m, "READY=1") {
			return true
		}
	}
	return false
}

// healthz returns the status and body of the child's GET /healthz.
func (c *watchdogChild) healthz() (int, string, error) {
	resp, err := http.Get("http://" + c.listen + "/healthz")
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// startWatchdogChild runs `tilecast run` on feedURL in a child process
// with TILECAST_FAILPOINT=failpoint ("" for none); the test's end kills
// it if it still runs.
func startWatchdogChild(t *testing.T, feedURL, failpoint string) *watchdogChild {
	t.Helper()
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	listen := ln.Addr().String()
	ln.Close()
	cfgPath := filepath.Join(dir, "tilecast.toml")
	cfg := fmt.Sprintf(`state = %q
[http]
listen = %q
api_keys_file = ""
[fetch]
timeout = %q
allow_private = true
[push]
allow_private = true
allowed_hosts = ["127.0.0.1"]
[[feed]]
name = "news"
url = "%s/news.xml"
schedule = "@every 1s"
[feed.toast]
text1 = "{{.Feed.Title}}"
text2 = "{{.Item.Title}}"
`, filepath.Join(dir, "state.db"), listen, watchdogFetchTimeout.String(), feedURL)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	sock, got := notifySocket(t)
	c := &watchdogChild{listen: listen, logs: &logtest.Buffer{}, got: got, exited: make(chan struct{})}
	c.cmd = exec.Command(os.Args[0], "run", "--config", cfgPath)
	c.cmd.Env = append(os.Environ(), envDaemonChild+"=1", "NOTIFY_SOCKET="+sock, "WATCHDOG_USEC=200000",
		"TILECAST_FAILPOINT="+failpoint)
	c.cmd.Stdout, c.cmd.Stderr = c.logs, c.logs
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = c.cmd.Wait(); close(c.exited) }()
	t.Cleanup(func() {
		_ = c.cmd.Process.Kill()
		<-c.exited
		if t.Failed() {
			t.Logf("daemon log (failpoint %q):\n%s", failpoint, c.logs.String())
		}
	})
	return c
}

// TestWatchdogStopsWhenAFetchHangs is reliability.md D3 without systemd:
// a feed run that hangs for good (TILECAST_FAILPOINT=after-fetch:hang,
// the goroutine blocks after its fetch while the process lives on) stops
// the systemd watchdog pings once it has run longer than the health
// check allows (2 × fetch.timeout + 1 minute), and /healthz answers 503
// naming it, while a daemon beside it that does not hang keeps pinging
// and stays healthy. Until then the stuck daemon pings: the pings follow
// the loops' progress, not the mere existence of the process.
//
// It takes over a minute: the limit is fixed in run.go (loopHealth).
func TestWatchdogStopsWhenAFetchHangs(t *testing.T) {
	if testing.Short() {
		t.Skip("waits over a minute for a hung fetch to pass the health check's limit")
	}
	t.Parallel()
	feed := &growingFeed{}
	feed.add("First")
	fsrv := httptest.NewServer(feed)
	defer fsrv.Close()

	healthy := startWatchdogChild(t, fsrv.URL, "")
	hung := startWatchdogChild(t, fsrv.URL, "after-fetch:hang")
	waitLong := func(what string, limit time.Duration, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(limit)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("no %s within %s", what, limit)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitLong("READY=1 from both daemons", time.Minute, func() bool { return healthy.ready() && hung.ready() })
	waitLong("hang at the failpoint", time.Minute, func() bool {
		return strings.Contains(hung.logs.String(), "failpoint after-fetch hit 1: hang")
	})
	// The hung run has not passed its limit yet: both daemons ping.
	p0 := hung.pings()
	waitLong("watchdog pings from the hung daemon before its limit", 30*time.Second, func() bool { return hung.pings() >= p0+3 })

	limit := 2*watchdogFetchTimeout + time.Minute
	waitLong("503 from the hung daemon's /healthz", limit+2*time.Minute, func() bool {
		code, _, err := hung.healthz()
		return err == nil && code == http.StatusServiceUnavailable
	})
	if _, body, _ := hung.healthz(); !strings.Contains(body, "a fetch has been running") {
		t.Errorf("/healthz of the hung daemon: %s; want the stuck fetch named", body)
	}
	// The health check fails for good now (the run never ends): a ping
	// decided before the 503 may still be on its way; none after.
	time.Sleep(time.Second)
	hungBefore, healthyBefore := hung.pings(), healthy.pings()
	time.Sleep(3 * time.Second) // 30 watchdog periods of 100 ms
	if n := hung.pings() - hungBefore; n != 0 {
		t.Errorf("the hung daemon pinged the watchdog %d times after /healthz said 503", n)
	}
	if n := healthy.pings() - healthyBefore; n < 2 {
		t.Errorf("the healthy daemon pinged the watchdog %d times in 3 s, want it to go on", n)
	}
	if code, body, err := healthy.healthz(); err != nil || code != http.StatusOK {
		t.Errorf("/healthz of the healthy daemon: %d %s %v", code, body, err)
	}
	if !strings.Contains(hung.logs.String(), "watchdog not pinged: no progress") {
		t.Error("the hung daemon did not log why it stopped pinging")
	}
	// Alive all along: it answered /healthz, and has not exited.
	select {
	case <-hung.exited:
		t.Error("the hung daemon exited")
	default:
	}
}
