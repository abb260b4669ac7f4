//go:build crash

package crashtest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/store"
)

// TestDiskFull is S5: the state file lives on a 1 MiB tmpfs (root only:
// scripts/crash.sh runs this test only as root) that a filler file fills
// while the daemon runs. Commits then fail with ENOSPC: the error is
// logged and counted in tilecast_store_errors_total, the daemon stays up
// and answers /healthz, and no item is lost (a failed commit leaves the
// feed state as it was, so its items are new again at the next tick).
// Once the filler is removed the same process, not restarted, delivers
// every item to every phone and marks them seen, and the file passes
// bbolt's check.
func TestDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("S5 needs root to mount a tmpfs; scripts/crash.sh leaves it out otherwise")
	}
	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", mnt).Run() })

	bin := buildBinary(t)
	listen := freeAddr(t)
	r := newRig(t, bin, rigOptions{phones: 3, concurrency: 2, schedule: "@every 1s", firstRun: "notify", initial: 2,
		stateDir: mnt, listen: listen})
	off := r.logSize()
	cmd := r.start()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			r.kill(cmd)
		}
	})
	if !waitFor(10*time.Second, func() bool { return r.logSince(off, "tilecast running") }) {
		t.Fatal("daemon never came up")
	}
	if !waitFor(10*time.Second, func() bool { r.count.mu.Lock(); defer r.count.mu.Unlock(); return len(r.count.got) > 0 }) {
		t.Fatal("nothing delivered before the disk filled")
	}
	// Every op is exported, at 0, before anything failed: an alert on
	// increase() sees the first error.
	errsBefore, err := storeErrors(listen)
	if err != nil {
		t.Fatal(err)
	}
	if len(errsBefore) == 0 || sum(errsBefore) != 0 {
		t.Fatalf("tilecast_store_errors_total before the disk filled: %v, want every op at 0", errsBefore)
	}

	filler := filepath.Join(mnt, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 4096)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling: %v", err)
			}
			break
		}
	}
	f.Close()
	atFill := r.feed.count()
	fullOff := r.logSize()
	if !waitFor(15*time.Second, func() bool { return r.logSince(fullOff, "no space left on device") }) {
		t.Error("no ENOSPC error logged while the disk was full")
	}
	var errsFull map[string]float64
	if !waitFor(15*time.Second, func() bool {
		errsFull, err = storeErrors(listen)
		return err == nil && sum(errsFull) > 0
	}) {
		t.Errorf("tilecast_store_errors_total while the disk was full: %v, %v; want a failed write counted", errsFull, err)
	}
	time.Sleep(3 * time.Second) // a few more ticks on a full disk
	// Up: the process answers (a zombie would not), whatever its health.
	status, err := healthz(listen)
	if err != nil {
		t.Fatalf("daemon does not answer /healthz on a full disk: %v", err)
	}
	during := r.feed.count()
	// A send whose outcome cannot be recorded may be repeated once the
	// disk has room again, but not while it is full: at most the sends in
	// flight when it filled.
	dupsFull := r.duplicates()
	if bound := 3 * 2; dupsFull > bound {
		t.Errorf("%d duplicate pushes while the disk was full, want ≤ %d (sends in flight)", dupsFull, bound)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	freed := time.Now()
	// The same process recovers: no restart.
	items, missing, ok := r.awaitAll(60 * time.Second)
	if !ok {
		t.Fatalf("not every item delivered within 60 s of freeing space, without a restart: %d of %d item toasts missing (or a tile not the newest)",
			missing, items*len(r.phones))
	}
	recovered := time.Since(freed)
	// Each failure the daemon logged is counted under its op: a feed
	// run's commit (an ERROR "fetch" line) and a batch of outcomes ("record
	// outcomes; retrying"). No write fails with room on the disk, so the
	// counts are final now.
	errsAfter, err := storeErrors(listen)
	if err != nil {
		t.Fatal(err)
	}
	commitLogged, recordLogged := r.logCount("level=ERROR", "msg=fetch "), r.logCount(`msg="record outcomes; retrying"`)
	if errsAfter["commit"] != float64(commitLogged) || errsAfter["record"] != float64(recordLogged) || sum(errsAfter) == 0 {
		t.Errorf("tilecast_store_errors_total %v; the log has %d failed commits and %d failed records", errsAfter, commitLogged, recordLogged)
	}
	if r.logHas("panic") {
		t.Error("the daemon log mentions a panic")
	}
	stopped = true
	r.stop(cmd)

	// The feed state advanced once the disk had room: every item is seen,
	// nothing waits, and the file passes bbolt's check (pending).
	pending, err := r.pending()
	if err != nil {
		t.Fatalf("state file after the disk was full: %v", err)
	}
	if len(pending) != 0 {
		t.Errorf("%d notifications still waiting after every item was delivered", len(pending))
	}
	db, err := store.Open(r.state, store.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ids := make([]string, items)
	for i := range ids {
		ids[i] = fmt.Sprintf("item-%d", i+1)
	}
	k := tilecast.FeedKey{Feed: "crash"}
	if unseen, err := db.Unseen(k, ids); err != nil || len(unseen) != 0 {
		t.Errorf("items not marked seen after recovery: %v, %v", unseen, err)
	}
	if st, ok, err := db.FeedState(k); err != nil || !ok || st.LastResult != "ok" || st.Failures != 0 {
		t.Errorf("feed state after recovery: %+v, %v, %v; want the last fetch ok", st, ok, err)
	}

	for msg, n := range r.errorSummary() {
		t.Logf("daemon error ×%d: %s", n, msg)
	}
	t.Logf("S5: disk full from item %d to %d (/healthz %d meanwhile); store errors %v; all %d items delivered %s after space was freed, no restart; %d duplicates while full, %d in all",
		atFill, during, status, errsAfter, items, recovered.Round(100*time.Millisecond), dupsFull, r.duplicates())
}

// freeAddr returns a loopback address no one listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// storeErrors scrapes tilecast_store_errors_total from the daemon's
// /metrics, by op.
func storeErrors(listen string) (map[string]float64, error) {
	resp, err := http.Get("http://" + listen + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("/metrics: %s", resp.Status)
	}
	const prefix = `tilecast_store_errors_total{op="`
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), prefix)
		if !ok {
			continue
		}
		op, value, ok := strings.Cut(rest, `"} `)
		if !ok {
			return nil, fmt.Errorf("/metrics: %q", sc.Text())
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return nil, fmt.Errorf("/metrics: %q: %w", sc.Text(), err)
		}
		out[op] = v
	}
	return out, sc.Err()
}

// healthz returns the status code of the daemon's GET /healthz.
func healthz(listen string) (int, error) {
	resp, err := http.Get("http://" + listen + "/healthz")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

func sum(m map[string]float64) float64 {
	s := 0.0
	for _, v := range m {
		s += v
	}
	return s
}

// logCount counts the daemon's log lines that contain every one of subs.
func (r *rig) logCount(subs ...string) int {
	b, _ := os.ReadFile(r.logs.Name())
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		all := true
		for _, s := range subs {
			if !strings.Contains(line, s) {
				all = false
				break
			}
		}
		if all {
			n++
		}
	}
	return n
}
