package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/internal/logtest"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// fileCase is the content of a state file before Open.
type fileCase struct {
	name string
	data []byte
}

// noDataFiles are states a power loss during the first start can leave a
// new state file in: its size without its content, or only some of the
// pages bbolt writes to a new file. bbolt refuses (or, the 3-page one,
// crashes on) every one of them.
func noDataFiles() []fileCase {
	ps := os.Getpagesize()
	img := newFileImage(ps)
	// image returns the first n bytes of a new file with pages zeroed.
	image := func(n int, zeroed ...int) []byte {
		b := bytes.Clone(img[:n])
		for _, p := range zeroed {
			clear(b[p*ps : (p+1)*ps])
		}
		return b
	}
	torn := make([]byte, 4*ps)
	copy(torn, img[:40]) // the first sectors of meta page 0 cut inside its fields
	return []fileCase{
		{"zeros, shorter than a page", make([]byte, 100)},
		{"zeros, 2 pages", make([]byte, 2*ps)},
		{"zeros, 4 pages (a new file's size)", make([]byte, 4*ps)},
		{"zeros, a new file's size after its first commit", make([]byte, int(newFileMaxSize()))},
		{"torn first meta page", torn},
		{"first meta page only", image(4*ps, 1, 2, 3)},
		{"meta pages only", image(4*ps, 2, 3)},
		{"no root page", image(4*ps, 3)},
		{"freelist and root pages only", image(4*ps, 0, 1)},
		{"meta pages, file 2 pages long", image(2 * ps)},
		// bbolt reads the root page past the end of this one: SIGBUS.
		{"3 of the 4 pages, file 3 pages long", image(3 * ps)},
	}
}

// mayHoldDataFiles are files bbolt refuses that are not provably empty:
// Open must keep refusing them with the runbook and leave them alone.
func mayHoldDataFiles(t *testing.T) []fileCase {
	ps := os.Getpagesize()
	garbage := make([]byte, 4*ps)
	copy(garbage, strings.Repeat("tilecast", 8))
	oneByte := make([]byte, 4*ps)
	oneByte[2*ps+100] = 1
	// A real state file with records, both meta pages wiped: the
	// records are still in its other pages.
	realFile := filepath.Join(t.TempDir(), "real.db")
	db, err := Open(realFile, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if _, _, err := db.AddChannel(tilecast.Channel{URI: fmt.Sprintf("http://127.0.0.1/%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	noMeta, err := os.ReadFile(realFile)
	if err != nil {
		t.Fatal(err)
	}
	clear(noMeta[:2*ps])
	return []fileCase{
		{"garbage first, zeros after", garbage},
		{"zeros but for one byte", oneByte},
		{"zeros, longer than a new file gets", make([]byte, int(newFileMaxSize())+ps)},
		{"real file, both meta pages zeroed", noMeta},
	}
}

// needLock skips a test of moving a file aside where Open only reports it.
func needLock(t *testing.T) {
	if !lockable {
		t.Skip("no bbolt-compatible lock on this platform: Open reports instead of moving")
	}
}

// dirFiles returns every file in dir with its content.
func dirFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = string(b)
	}
	return files
}

// The image newfile.go compares files with is what bbolt writes to a new
// file, which the check leaves to bbolt; a new tilecast file is no larger
// than newFileMaxSize and holds data (its schema) in the check's eyes.
func TestNewFileImage(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bolt.db")
	bdb, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := bdb.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := newFileImage(os.Getpagesize())
	if f, err := os.Open(path); err != nil {
		t.Fatal(err)
	} else {
		fi, _ := f.Stat()
		if unusable, err := unusableNewFile(f, fi); err != nil || unusable {
			t.Errorf("unusableNewFile(bbolt's new file) = %v, %v; want false", unusable, err)
		}
		f.Close()
	}
	if len(got) != len(want) {
		t.Fatalf("bbolt wrote %d bytes, image has %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("byte %d (page %d, offset %d): bbolt wrote %#x, image has %#x",
				i, i/os.Getpagesize(), i%os.Getpagesize(), got[i], want[i])
		}
	}

	state := filepath.Join(dir, "state.db")
	db, err := Open(state, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(state)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() > newFileMaxSize() {
		t.Errorf("a new state file has %d bytes, more than newFileMaxSize (%d)", fi.Size(), newFileMaxSize())
	}
	if unusable, err := unusableNewFile(f, fi); err != nil || unusable {
		t.Errorf("unusableNewFile(new state file with its schema) = %v, %v; want false", unusable, err)
	}
}

// S4: a new file that holds no data is moved aside, kept byte for byte,
// and the start goes on with a new file at the current schema, which a
// later start opens as usual.
func TestOpenReplacesNewFileWithoutData(t *testing.T) {
	needLock(t)
	for _, tc := range noDataFiles() {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "state.db")
			if err := os.WriteFile(path, tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			var logs logtest.Buffer
			c := newClock()
			db, err := Open(path, Options{Timeout: 200 * time.Millisecond, Now: c.Now, Logger: textLogger(&logs)})
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			var schema int
			if err := db.bolt.View(func(tx *bolt.Tx) (err error) { schema, err = schemaOf(tx); return err }); err != nil || schema != SchemaVersion() {
				t.Errorf("new file's schema = %d, %v; want %d", schema, err, SchemaVersion())
			}
			ch, _, err := db.AddChannel(tilecast.Channel{URI: "http://127.0.0.1/a"})
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Check(); err != nil {
				t.Error(err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}

			aside := "state.db.unusable-20260301T120000Z"
			files := dirFiles(t, dir)
			if len(files) != 2 || files[aside] != string(tc.data) {
				names := make([]string, 0, len(files))
				for n := range files {
					names = append(names, n)
				}
				t.Errorf("directory holds %v; want state.db and %s with the old content", names, aside)
			}
			for _, want := range []string{"level=WARN", "held no data", "moved_to=" + filepath.Join(dir, aside)} {
				if !strings.Contains(logs.String(), want) {
					t.Errorf("log lacks %q:\n%s", want, logs.String())
				}
			}

			again, err := Open(path, Options{Timeout: 200 * time.Millisecond})
			if err != nil {
				t.Fatalf("second open: %v", err)
			}
			defer again.Close()
			if got, err := again.Channel(ch.ID); err != nil || got.URI != ch.URI {
				t.Errorf("after reopening: channel %+v, %v", got, err)
			}
			if n := len(dirFiles(t, dir)); n != 2 {
				t.Errorf("second open left %d files, want 2", n)
			}
		})
	}
}

// Files bbolt opens as they are stay in place: one of 0 bytes (bbolt
// initialises it) and all of bbolt's new file, as a kill before the first
// commit leaves it, with or without the size that commit grows it to.
func TestOpenUsesNewFileBboltOpens(t *testing.T) {
	img := newFileImage(os.Getpagesize())
	grown := make([]byte, newFileMaxSize())
	copy(grown, img)
	for _, tc := range []fileCase{
		{"0 bytes", []byte{}},
		{"bbolt's new file", img},
		{"bbolt's new file, grown by its first commit", grown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "state.db")
			if err := os.WriteFile(path, tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			var logs logtest.Buffer
			db, err := Open(path, Options{Timeout: 200 * time.Millisecond, Logger: textLogger(&logs)})
			if err != nil {
				t.Fatal(err)
			}
			var schema int
			if err := db.bolt.View(func(tx *bolt.Tx) (err error) { schema, err = schemaOf(tx); return err }); err != nil || schema != SchemaVersion() {
				t.Errorf("schema = %d, %v; want %d", schema, err, SchemaVersion())
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			if files := dirFiles(t, dir); len(files) != 1 {
				t.Errorf("directory holds %d files, want only state.db", len(files))
			}
			if strings.Contains(logs.String(), "moved_to") {
				t.Errorf("file moved aside:\n%s", logs.String())
			}
		})
	}
}

// Anything that might hold data is still refused with the runbook,
// read-write or not, and nothing in its directory changes.
func TestOpenRefusesFileThatMayHoldData(t *testing.T) {
	for _, tc := range mayHoldDataFiles(t) {
		for _, readOnly := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/read-only=%v", tc.name, readOnly), func(t *testing.T) {
				dir := t.TempDir()
				path := filepath.Join(dir, "state.db")
				if err := os.WriteFile(path, tc.data, 0o600); err != nil {
					t.Fatal(err)
				}
				db, err := Open(path, Options{Timeout: 200 * time.Millisecond, ReadOnly: readOnly})
				if err == nil {
					db.Close()
					t.Fatal("open succeeded")
				}
				if !errors.Is(err, ErrCorrupt) || errors.Is(err, ErrNoData) {
					t.Errorf("error %v: want ErrCorrupt, not ErrNoData", err)
				}
				for _, want := range []string{"bbolt check", "surgery revert-meta-page", "backup", path} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not mention %q", err, want)
					}
				}
				if files := dirFiles(t, dir); len(files) != 1 || files["state.db"] != string(tc.data) {
					t.Errorf("directory changed: %d files, state.db unchanged: %v", len(files), files["state.db"] == string(tc.data))
				}
			})
		}
	}
}

// A read-only open (status, outcomes, backup) renames and creates
// nothing: it says what the file is and what will fix it.
func TestOpenReadOnlyReportsNoData(t *testing.T) {
	for _, tc := range append([]fileCase{{"0 bytes", []byte{}}}, noDataFiles()...) {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "state.db")
			if err := os.WriteFile(path, tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			db, err := Open(path, Options{Timeout: 200 * time.Millisecond, ReadOnly: true})
			if err == nil {
				db.Close()
				t.Fatal("read-only open succeeded")
			}
			if !errors.Is(err, ErrNoData) {
				t.Errorf("error %v is not ErrNoData", err)
			}
			for _, want := range []string{path, "tilecast run", "not modified"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
			if files := dirFiles(t, dir); len(files) != 1 || files["state.db"] != string(tc.data) {
				t.Errorf("directory changed: %d files, state.db unchanged: %v", len(files), files["state.db"] == string(tc.data))
			}
		})
	}
}

// A second replacement at the same second keeps the first moved-aside
// file: the new one gets another name.
func TestOpenMoveAsideKeepsEarlierFile(t *testing.T) {
	needLock(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "state.db")
	c := newClock()
	first := make([]byte, 4*os.Getpagesize())
	second := make([]byte, 2*os.Getpagesize())
	for _, data := range [][]byte{first, second} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		db, err := Open(path, Options{Timeout: 200 * time.Millisecond, Now: c.Now})
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
	files := dirFiles(t, dir)
	if files["state.db.unusable-20260301T120000Z"] != string(first) || files["state.db.unusable-20260301T120000Z-2"] != string(second) {
		t.Errorf("moved-aside files: %d files in all; want the first and second kept apart", len(files))
	}
}

// Through a symlink, the file it points to is moved aside next to itself
// and the new file takes its place: the symlink stays and points to it.
func TestOpenNoDataThroughSymlink(t *testing.T) {
	needLock(t)
	linkDir, fileDir := t.TempDir(), t.TempDir()
	target := filepath.Join(fileDir, "state.db")
	link := filepath.Join(linkDir, "state.db")
	zeros := make([]byte, 4*os.Getpagesize())
	if err := os.WriteFile(target, zeros, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Skip("no symlinks here:", err)
	}
	db, err := Open(link, Options{Timeout: 200 * time.Millisecond, Now: newClock().Now})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if dest, err := os.Readlink(link); err != nil || dest != target {
		t.Errorf("symlink now %q, %v; want it to point to %s still", dest, err, target)
	}
	files := dirFiles(t, fileDir)
	if len(files) != 2 || files["state.db.unusable-20260301T120000Z"] != string(zeros) || files["state.db"] == string(zeros) {
		t.Errorf("file's directory: %d files; want the new state.db and the old one moved aside", len(files))
	}
	if entries, _ := os.ReadDir(linkDir); len(entries) != 1 {
		t.Errorf("symlink's directory holds %d entries, want only the symlink", len(entries))
	}
}

// A tilecast that finds the file moved aside by another while it waited
// for the lock opens the other's new file; it does not move that aside.
func TestOpenNoDataMovedByAnother(t *testing.T) {
	needLock(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "state.db")
	zeros := make([]byte, 4*os.Getpagesize())
	if err := os.WriteFile(path, zeros, 0o600); err != nil {
		t.Fatal(err)
	}
	c := newClock()
	var other tilecast.Channel
	db, err := Open(path, Options{Timeout: 200 * time.Millisecond, Now: c.Now, beforeLock: func() {
		// The other tilecast, between this one's look and its lock.
		odb, err := Open(path, Options{Timeout: 200 * time.Millisecond, Now: c.Now})
		if err != nil {
			t.Errorf("other open: %v", err)
			return
		}
		if other, _, err = odb.AddChannel(tilecast.Channel{URI: "http://127.0.0.1/other"}); err != nil {
			t.Error(err)
		}
		if err := odb.Close(); err != nil {
			t.Error(err)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got, err := db.Channel(other.ID); err != nil || got.URI != other.URI {
		t.Errorf("channel the other tilecast added: %+v, %v; want this open to have the other's file", got, err)
	}
	if files := dirFiles(t, dir); len(files) != 2 || files["state.db.unusable-20260301T120000Z"] != string(zeros) {
		t.Errorf("directory holds %d files; want state.db and the one file moved aside", len(files))
	}
}

// Tilecasts starting together on a file that holds no data: one moves it
// aside and runs, the others find the new file in use; none moves the
// new file aside (each would take its own, empty state).
func TestOpenNoDataConcurrent(t *testing.T) {
	needLock(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "state.db")
	if err := os.WriteFile(path, make([]byte, 4*os.Getpagesize()), 0o600); err != nil {
		t.Fatal(err)
	}
	const n = 4
	dbs := make([]*DB, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			dbs[i], errs[i] = Open(path, Options{Timeout: 300 * time.Millisecond, Now: newClock().Now})
		})
	}
	wg.Wait()
	opened := 0
	for i := range n {
		if errs[i] == nil {
			opened++
			if err := dbs[i].Close(); err != nil {
				t.Error(err)
			}
		} else if !errors.Is(errs[i], tilecast.ErrStateLocked) {
			t.Errorf("open %d: %v; want success or ErrStateLocked", i, errs[i])
		}
	}
	files := dirFiles(t, dir)
	if opened != 1 || len(files) != 2 {
		t.Errorf("%d opens succeeded, directory holds %d files; want 1 and 2 (state.db, one moved aside)", opened, len(files))
	}
}

// The lock Open holds while it moves a file aside is the one bbolt takes:
// no tilecast opens the file meanwhile.
func TestLockExclusiveIsBboltsLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	if err := os.WriteFile(path, make([]byte, 100), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	needLock(t)
	if err := lockExclusive(f, time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 100 * time.Millisecond}); !errors.Is(err, berrors.ErrTimeout) {
		t.Errorf("bbolt open while locked: %v; want ErrTimeout", err)
	}
	g, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if err := lockExclusive(g, 100*time.Millisecond); !errors.Is(err, tilecast.ErrStateLocked) {
		t.Errorf("second lock: %v; want ErrStateLocked", err)
	}
	if _, err := Open(path, Options{Timeout: 100 * time.Millisecond}); !errors.Is(err, tilecast.ErrStateLocked) {
		t.Errorf("Open while locked: %v; want ErrStateLocked", err)
	}
	if files := dirFiles(t, filepath.Dir(path)); len(files) != 1 {
		t.Errorf("Open while locked changed the directory: %d files", len(files))
	}
}
