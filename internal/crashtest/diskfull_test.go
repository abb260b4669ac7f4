//go:build crash

package crashtest

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestDiskFull is S5: the state file lives on a 1 MiB tmpfs (root only:
// scripts/crash.sh runs this test only as root) that a filler file fills
// while the daemon runs. Commits then fail with ENOSPC: the error is
// logged, the daemon stays up, nothing of the items that arrive meanwhile
// is delivered (their feed state is not advanced), and once the filler is
// removed every item is delivered and the file passes bbolt's check.
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
	r := newRig(t, bin, rigOptions{phones: 3, concurrency: 2, schedule: "@every 1s", firstRun: "notify", initial: 2, stateDir: mnt})
	off := r.logSize()
	cmd := r.start()
	if !waitFor(10*time.Second, func() bool { return r.logSince(off, "tilecast running") }) {
		t.Fatal("daemon never came up")
	}
	if !waitFor(10*time.Second, func() bool { r.count.mu.Lock(); defer r.count.mu.Unlock(); return len(r.count.got) > 0 }) {
		t.Fatal("nothing delivered before the disk filled")
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
	time.Sleep(3 * time.Second) // a few more ticks on a full disk
	if cmd.ProcessState != nil {
		t.Fatal("daemon exited on a full disk")
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
	r.stop(cmd)
	items := r.drain(t) // restart not needed for recovery, but drain checks everything
	for msg, n := range r.errorSummary() {
		t.Logf("daemon error ×%d: %s", n, msg)
	}
	t.Logf("S5: disk full from item %d to %d; all %d items delivered after space was freed; %d duplicates while full, %d in all",
		atFill, during, items, dupsFull, r.duplicates())
}
