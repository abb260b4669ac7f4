package main

// Helpers for the tests that run the daemon (`tilecast run`) in this
// process against feed servers, push services and emulators on loopback.
// They hold what every such test did the same way; what a test checks
// (exit codes, logs, signals) stays in the test.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tilecast/tilecast/config"
	"github.com/tilecast/tilecast/internal/logtest"
)

// daemonStopTimeout is how long stop waits for the daemon to exit once
// cancelled. Generous: a daemon on PostgreSQL, or with pushes in flight
// on a loaded machine, takes seconds; one that takes this long hangs.
const daemonStopTimeout = time.Minute

// testDaemon is a `tilecast run` started by startDaemon.
type testDaemon struct {
	t    *testing.T
	addr string          // the config's http.listen at start: where call sends requests
	logs *logtest.Buffer // what the daemon logged (its stderr)

	cancel context.CancelFunc
	done   chan int // the exit code, once run returns
	exited bool     // code is known
	code   int
}

// startDaemon runs `tilecast run --config cfg`, with extraArgs appended,
// as the command line would (no stdin, stdout discarded, the log in
// d.logs) and waits until it logs "tilecast running": by then its
// listener is up, it has told systemd READY=1 and it takes SIGHUP as a
// reload (a SIGHUP sent earlier would end the test binary). A daemon that
// exits before then fails the test at once with its log.
//
// The daemon is stopped when the test ends, however it ends, so a failing
// test never leaves one running on its state, port or notify socket; a
// test that checks how the daemon stops, or needs it stopped before its
// own deferred calls run, calls stop itself. A test that needs another
// stdin or stdout calls cmdRun itself; one that needs health limits
// short enough to outlast calls startDaemonLimits.
func startDaemon(t *testing.T, cfg string, extraArgs ...string) *testDaemon {
	t.Helper()
	return startDaemonLimits(t, cfg, nil, extraArgs...)
}

// startDaemonLimits is startDaemon with the daemon's health limits (of
// /healthz and the watchdog) replaced by lim when it is not nil, so that a
// test can see in seconds whether a loop stops making progress.
func startDaemonLimits(t *testing.T, cfg string, lim *healthLimits, extraArgs ...string) *testDaemon {
	t.Helper()
	c, err := config.Load(cfg)
	if err != nil {
		t.Fatalf("the daemon's config: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	d := &testDaemon{t: t, addr: c.HTTP.Listen, logs: &logtest.Buffer{}, cancel: cancel, done: make(chan int, 1)}
	args := append([]string{"run", "--config", cfg}, extraArgs...)
	go func() {
		d.done <- runEnv(ctx, env{args: args, stdin: strings.NewReader(""), stdout: io.Discard, stderr: d.logs, health: lim})
	}()
	t.Cleanup(func() {
		if !d.halt() {
			t.Errorf("daemon did not stop within %s of the test's end", daemonStopTimeout)
		}
	})
	waitFor(t, "daemon start", func() bool {
		select {
		case d.code = <-d.done:
			d.exited = true
			t.Fatalf("the daemon exited %d before it ran:\n%s", d.code, d.logs.String())
		default:
		}
		return strings.Contains(d.logs.String(), "tilecast running")
	})
	return d
}

// stop cancels the daemon's context, which is what SIGTERM does, and
// returns its exit code; a daemon that does not exit within
// daemonStopTimeout fails the test at once, as the state it holds could
// not be checked. Calling stop again returns the same code.
func (d *testDaemon) stop() int {
	d.t.Helper()
	if !d.halt() {
		d.t.Fatal("daemon did not stop")
	}
	return d.code
}

// halt cancels the daemon and waits for its exit code; false if it did
// not exit within daemonStopTimeout.
func (d *testDaemon) halt() bool {
	if d.exited {
		return true
	}
	d.cancel()
	select {
	case d.code = <-d.done:
		d.exited = true
	case <-time.After(daemonStopTimeout):
	}
	return d.exited
}

// call sends a request to the daemon's API; see callAPI.
func (d *testDaemon) call(method, path, body, key string) (int, string) {
	d.t.Helper()
	return callAPI(d.t, d.addr, method, path, body, key)
}

// callAPI sends method path with body to the API at addr, with key as the
// Bearer token unless key is "" (no Authorization header), and returns
// the status and the whole body. A request without an answer fails the
// test: the API is there to answer.
func callAPI(t *testing.T, addr, method, path, body, key string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+addr+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the answer: %v", method, path, err)
	}
	return resp.StatusCode, string(b)
}

// loopbackConfig writes dir/tilecast.toml for a daemon whose feeds and
// push services are the test's servers on loopback: the state in
// dir/state.db, the API on a free loopback address with dir/api-keys
// holding keys (lines of the keys file), and fetching from and pushing to
// private addresses allowed, which the defaults refuse. rest goes on in
// the [push] table (allowed_hosts, if any) and holds the remainder: push
// sections, feeds. It returns the config's path.
func loopbackConfig(t *testing.T, dir, keys, rest string) string {
	t.Helper()
	keysFile := filepath.Join(dir, "api-keys")
	writeTestFile(t, keysFile, keys)
	cfg := filepath.Join(dir, "tilecast.toml")
	writeTestFile(t, cfg, fmt.Sprintf(`state = %q
[http]
listen = %q
api_keys_file = %q
[fetch]
allow_private = true
[push]
allow_private = true
`, filepath.Join(dir, "state.db"), freeAddr(t), keysFile)+rest)
	return cfg
}

// vapidKey makes a new VAPID key pair as an operator does, with `tilecast
// vapid generate --out dir/vapid.pem`, and returns the key file and the
// public key the command printed (what browsers subscribe with).
func vapidKey(t *testing.T, dir string) (file, pub string) {
	t.Helper()
	file = filepath.Join(dir, "vapid.pem")
	code, out, errs := runCLI(t, t.Context(), "vapid", "generate", "--out", file)
	if code != exitOK {
		t.Fatalf("vapid generate: exit %d %s", code, errs)
	}
	return file, strings.TrimSpace(out)
}
