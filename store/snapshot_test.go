package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
)

// A snapshot that nobody reads holds no read transaction: commits that
// grow the file (each growth is a remap, which waits for every read
// transaction) and reads begun after them go on, and the snapshot is the
// state as it was when taken, whole and valid.
func TestSnapshotHoldsNoReadTransaction(t *testing.T) {
	db, _ := mustOpen(t)
	ch := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/snap"})
	snap, size, err := db.Snapshot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	before, err := os.Stat(db.Path())
	if err != nil {
		t.Fatal(err)
	}

	done := make(chan error, 1)
	go func() {
		filler := strings.Repeat("x", 1000)
		for i := range 40 {
			ns := make([]tilecast.Notification, 50)
			for j := range ns {
				ns[j] = toast(ch, "news", fmt.Sprint(i*len(ns)+j))
				ns[j].Payload = []byte(ns[j].ItemID + filler)
			}
			if err := db.Enqueue(ns); err != nil {
				done <- err
				return
			}
		}
		c, err := db.Counts()
		if err == nil && c.OutboxDepth != 40*50 {
			err = fmt.Errorf("outbox depth %d, want %d", c.OutboxDepth, 40*50)
		}
		done <- err
	}()
	// Generous: the work takes milliseconds; only a stall takes 10 s.
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		_ = snap.Close()
		t.Fatal("commits and Counts blocked for 10 s behind an unread snapshot")
	}
	if after, err := os.Stat(db.Path()); err != nil || after.Size() <= 2*before.Size() {
		t.Fatalf("the state file did not grow past its first mapping (%d to %d bytes, %v): the test proves nothing",
			before.Size(), after.Size(), err)
	}

	restored := restore(t, snap, size)
	if c, err := restored.Counts(); err != nil || c.Channels != 1 || c.OutboxDepth != 0 {
		t.Errorf("snapshot counts %+v, %v; want the channel and none of the later commits", c, err)
	}
}

// A snapshot leaves nothing behind: no file while it is open (it is
// unlinked at once), none and no open descriptor once closed, and none
// when taking it fails or is cancelled. The copy is private (0600).
func TestSnapshotLeavesNothing(t *testing.T) {
	db, _ := mustOpen(t)
	addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/snap"})
	dir := filepath.Dir(db.Path())

	t.Run("read and closed", func(t *testing.T) {
		snap, size, err := db.Snapshot(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		fi, err := snap.(*spoolFile).f.Stat()
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("spooled copy: %v, mode %v; want 0600", err, fi.Mode().Perm())
		}
		if names := spoolNames(t, dir); len(names) > 0 {
			t.Errorf("the spooled copy has a name while open: %v", names)
		}
		restore(t, snap, size)
		if err := snap.Close(); err != nil {
			t.Fatal(err)
		}
		if left := spoolLeft(t, dir); len(left) > 0 {
			t.Errorf("left after Close: %v", left)
		}
	})
	t.Run("closed unread", func(t *testing.T) {
		snap, _, err := db.Snapshot(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if err := snap.Close(); err != nil {
			t.Fatal(err)
		}
		if left := spoolLeft(t, dir); len(left) > 0 {
			t.Errorf("left after Close: %v", left)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if snap, _, err := db.Snapshot(ctx); !errors.Is(err, context.Canceled) {
			if snap != nil {
				_ = snap.Close()
			}
			t.Errorf("Snapshot with a cancelled context: %v, want context.Canceled", err)
		}
		if left := spoolLeft(t, dir); len(left) > 0 {
			t.Errorf("left after a cancelled snapshot: %v", left)
		}
	})
	t.Run("copy fails midway", func(t *testing.T) {
		broken := errors.New("disk full")
		write := func(w io.Writer) (int64, error) {
			n, _ := io.WriteString(w, strings.Repeat("x", 64<<10))
			return int64(n), broken
		}
		if snap, _, err := spool(t.Context(), dir, ".state.db.backup-*", write); !errors.Is(err, broken) {
			if snap != nil {
				_ = snap.Close()
			}
			t.Errorf("spool of a failing copy: %v, want %v", err, broken)
		}
		if left := spoolLeft(t, dir); len(left) > 0 {
			t.Errorf("left after a failed copy: %v", left)
		}
	})
	t.Run("no directory for the copy", func(t *testing.T) {
		missing := filepath.Join(dir, "gone")
		if _, _, err := spool(t.Context(), missing, ".state.db.backup-*", db.Backup); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("spool into a missing directory: %v, want ErrNotExist", err)
		}
	})
}

// restore writes size bytes of snap to a file and opens it checked.
func restore(t *testing.T, snap io.Reader, size int64) *DB {
	t.Helper()
	b, err := io.ReadAll(snap)
	if err != nil || int64(len(b)) != size {
		t.Fatalf("read the snapshot: %d bytes of %d, %v", len(b), size, err)
	}
	path := filepath.Join(t.TempDir(), "restored.db")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("open the snapshot: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if err := db.Check(); err != nil {
		t.Errorf("check the snapshot: %v", err)
	}
	return db
}

// spoolNames lists the spooled copies in dir by name.
func spoolNames(t *testing.T, dir string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, ".*.backup-*"))
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// spoolLeft lists what is left of spooled copies in dir: their names and,
// on Linux, this process's descriptors still open on them, which the
// early unlink keeps out of dir's listing.
func spoolLeft(t *testing.T, dir string) []string {
	t.Helper()
	left := spoolNames(t, dir)
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return left // not Linux: the names are all there is to see
	}
	for _, fd := range fds {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); err == nil &&
			strings.HasPrefix(target, dir) && strings.Contains(target, ".backup-") {
			left = append(left, "open: "+target)
		}
	}
	return left
}
