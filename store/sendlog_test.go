package store

import (
	"bytes"
	"encoding/binary"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// TestSendLog runs a previous "run" against a log file, abandons it the way
// a killed process does (no Close), and checks what the next open counts.
func TestSendLog(t *testing.T) {
	tests := []struct {
		name     string
		run      func(t *testing.T, l *SendLog)
		rotateAt int64
		want     int
	}{
		{"clean run", func(t *testing.T, l *SendLog) {
			must(t, l.Sending(1), l.Sending(2), l.Recorded([]uint64{1, 2}))
		}, 1 << 20, 0},
		{"two sends in flight", func(t *testing.T, l *SendLog) {
			must(t, l.Sending(1), l.Sending(2), l.Sending(3), l.Recorded([]uint64{2}))
		}, 1 << 20, 2},
		{"retried entry sent again", func(t *testing.T, l *SendLog) {
			must(t, l.Sending(7), l.Recorded([]uint64{7}), l.Sending(7))
		}, 1 << 20, 1},
		{"postponed entries were never sending", func(t *testing.T, l *SendLog) {
			must(t, l.Recorded([]uint64{4, 5}), l.Sending(6))
		}, 1 << 20, 1},
		{"rotation keeps the open entries", func(t *testing.T, l *SendLog) {
			for id := uint64(1); id <= 100; id++ {
				must(t, l.Sending(id))
				if id != 50 && id != 99 {
					must(t, l.Recorded([]uint64{id}))
				}
			}
			if l.size >= 100*sendLogRecord {
				t.Errorf("log is %d bytes after 100 sends with rotation at 90: not rotated", l.size)
			}
		}, 90, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.db.sending")
			l, err := openSendLog(path, tt.rotateAt)
			if err != nil {
				t.Fatal(err)
			}
			tt.run(t, l)
			// Killed: the next run opens the file without a Close.
			next, err := openSendLog(path, tt.rotateAt)
			if err != nil {
				t.Fatal(err)
			}
			defer next.Close()
			n, err := next.Unfinished()
			if err != nil || n != tt.want {
				t.Fatalf("Unfinished = %d, %v; want %d", n, err, tt.want)
			}
			if n, _ := next.Unfinished(); n != 0 {
				t.Errorf("second Unfinished = %d, want 0", n)
			}
			// Forgotten for good: a third run finds nothing.
			third, err := openSendLog(path, tt.rotateAt)
			if err != nil {
				t.Fatal(err)
			}
			defer third.Close()
			if n, _ := third.Unfinished(); n != 0 {
				t.Errorf("after Unfinished, the next run counts %d, want 0", n)
			}
		})
	}
}

// TestSendLogKeepsCountUntilAsked: a run that opens the log but crashes
// before asking (or never delivers) must not lose the previous count.
func TestSendLogKeepsCountUntilAsked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db.sending")
	l, err := openSendLog(path, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	must(t, l.Sending(1), l.Sending(2))
	mid, err := openSendLog(path, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	must(t, mid.Sending(3)) // this run sends, then dies before Unfinished
	last, err := openSendLog(path, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer last.Close()
	if n, err := last.Unfinished(); n != 3 || err != nil {
		t.Fatalf("Unfinished = %d, %v; want 3", n, err)
	}
}

// TestSendLogDamagedFile: a torn last record or garbage never stops a start.
func TestSendLogDamagedFile(t *testing.T) {
	for name, data := range map[string][]byte{
		"torn record": {'s', 0, 0, 0, 0, 0, 0, 0, 1, 's', 0, 0, 0},
		"garbage":     []byte("this is not a send log at all"),
		"empty":       {},
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.db.sending")
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			l, err := openSendLog(path, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			n, err := l.Unfinished()
			if err != nil {
				t.Fatal(err)
			}
			if want := len(unfinished(data)); n != want {
				t.Errorf("Unfinished = %d, want %d", n, want)
			}
		})
	}
}

// TestDBSendLog: the DB opens its log once, next to the file, and not for
// a read-only open.
func TestDBSendLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	l1, err := db.SendLog()
	if err != nil {
		t.Fatal(err)
	}
	l2, _ := db.SendLog()
	if l1 != l2 {
		t.Error("SendLog opened twice")
	}
	must(t, l1.Sending(42))
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// Nothing allocated ahead: the file is the one record written.
	if data, err := os.ReadFile(path + ".sending"); err != nil || !bytes.Equal(data, rec('s', 42)) {
		t.Fatalf("send log file: %x, %v; want one record", data, err)
	}
	ro, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if _, err := ro.SendLog(); err == nil {
		t.Error("read-only DB opened a send log")
	}
}

// FuzzSendLogParse: the reader never panics, counts at most one entry per
// record, and reads zero padding and a torn record with type byte 0 (what
// the mapped send log of earlier versions left) as nothing.
func FuzzSendLogParse(f *testing.F) {
	f.Add([]byte{'s', 0, 0, 0, 0, 0, 0, 0, 1, 'r', 0, 0, 0, 0, 0, 0, 0, 1})
	f.Add([]byte("garbage"))
	f.Add(append(rec('s', 1), 0, 0, 0, 0, 0, 0, 0, 0, 2))
	f.Fuzz(func(t *testing.T, data []byte) {
		open := unfinished(data)
		if len(open) > len(data)/sendLogRecord {
			t.Fatalf("%d unfinished from %d bytes", len(open), len(data))
		}
		whole := data[:len(data)/sendLogRecord*sendLogRecord]
		torn := append(slices.Clone(whole), 0, 1, 2, 3, 4, 5, 6, 7, 8)
		padded := append(slices.Clone(torn), make([]byte, 4*sendLogRecord)...)
		if got := unfinished(padded); !maps.Equal(got, open) {
			t.Fatalf("torn record and padding changed the entries: %v, want %v", got, open)
		}
	})
}

// FuzzSendLogOpen: whatever the previous run left, opening counts it, a
// send of this run adds to it, and a crash before Unfinished keeps both.
func FuzzSendLogOpen(f *testing.F) {
	f.Add([]byte{}, uint64(1))
	f.Add(append(rec('s', 1), 's', 0, 0, 0), uint64(2))        // torn tail
	f.Add(append(rec('s', 1), make([]byte, 90)...), uint64(1)) // padded (mapped, earlier versions)
	f.Add(append(rec('s', 1), 0, 0, 0, 0, 0, 0, 0, 0, 3), uint64(4))
	f.Add([]byte("this is not a send log at all"), uint64(5))
	f.Fuzz(func(t *testing.T, data []byte, id uint64) {
		path := filepath.Join(t.TempDir(), "state.db.sending")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		l := openLog(t, path, 90)
		if l.prev != len(unfinished(data)) {
			t.Fatalf("prev = %d, want %d", l.prev, len(unfinished(data)))
		}
		must(t, l.Sending(id))
		want := unfinished(data)
		want[id] = struct{}{}
		// The record lands after the old ones, aligned whatever the tail.
		if got := fileEntries(t, path); !maps.Equal(got, want) {
			t.Fatalf("file holds %v, want %v", got, want)
		}
	})
}

// rec is one record of the log.
func rec(typ byte, id uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{typ}, id)
}

// openLog opens a log at path and closes it when the test ends; a test
// that does not close it before reopening plays a killed process.
func openLog(t testing.TB, path string, rotateAt int64) *SendLog {
	t.Helper()
	l, err := openSendLog(path, rotateAt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// fileEntries reads the log file the way the next run does.
func fileEntries(t testing.TB, path string) map[uint64]struct{} {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return unfinished(data)
}

func idSet(ids ...uint64) map[uint64]struct{} {
	s := map[uint64]struct{}{}
	for _, id := range ids {
		s[id] = struct{}{}
	}
	return s
}

// TestSendLogPreviousFormats: a file left by a killed run, written by
// write(2) (maybe with a torn tail) or by the memory-mapped log of earlier
// versions (zero-padded, maybe a torn record), is counted; this run's
// records go right after the old ones, and a crash before Unfinished keeps
// them all.
func TestSendLogPreviousFormats(t *testing.T) {
	cat := func(bs ...[]byte) []byte { return slices.Concat(bs...) }
	tests := []struct {
		name string
		data []byte
		prev int
		// after is what the file holds once this run sent 100 and died.
		after map[uint64]struct{}
		// at is where that record lands: right after the previous run's
		// last one.
		at int
	}{
		{"write(2)", cat(rec('s', 1), rec('s', 2), rec('r', 1)), 1, idSet(2, 100), 27},
		{"torn tail", cat(rec('s', 1), []byte{'s', 0, 0}), 1, idSet(1, 100), 9},
		{"torn tail after zeros", cat(rec('s', 1), rec(0, 0), []byte{'s', 0, 0}), 1, idSet(1, 100), 9},
		{"torn 'r'", cat(rec('s', 1), rec('s', 2), []byte{'r', 0, 0, 0, 0, 0, 0, 0}), 2, idSet(1, 2, 100), 18},
		{"padded", cat(rec('s', 1), rec('s', 2), make([]byte, 9*50)), 2, idSet(1, 2, 100), 18},
		{"padded, torn record", cat(rec('s', 1), rec(0, 2), make([]byte, 9*50)), 1, idSet(1, 100), 18},
		{"padded, torn record mid-file", cat(rec('s', 1), rec(0, 2), rec('s', 3), make([]byte, 9*3)), 2, idSet(1, 3, 100), 27},
		{"padded, nothing open", cat(rec('s', 1), rec('r', 1), make([]byte, 9*50)), 0, idSet(100), 0},
		{"only zeros", make([]byte, 9*50), 0, idSet(100), 0},
		{"bigger than rotateAt", cat(rec('s', 7), make([]byte, 9*500), rec('s', 8)), 2, idSet(7, 8, 100), 9 * 502},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.db.sending")
			if err := os.WriteFile(path, tt.data, 0o600); err != nil {
				t.Fatal(err)
			}
			// Asked at once: counted, and the file emptied for good.
			first := openLog(t, path, 90)
			if n, err := first.Unfinished(); err != nil || n != tt.prev {
				t.Errorf("Unfinished = %d, %v; want %d", n, err, tt.prev)
			}
			checkEmptied(t, path)

			// Killed before asking: this run's records join the old ones.
			if err := os.WriteFile(path, tt.data, 0o600); err != nil {
				t.Fatal(err)
			}
			l := openLog(t, path, 90)
			if l.prev != tt.prev {
				t.Errorf("previous run: %d unfinished, want %d", l.prev, tt.prev)
			}
			must(t, l.Sending(100))
			if got := fileEntries(t, path); !maps.Equal(got, tt.after) {
				t.Errorf("after a send the file holds %v, want %v", got, tt.after)
			}
			if data, _ := os.ReadFile(path); len(data) != tt.at+sendLogRecord ||
				!slices.Equal(data[tt.at:], rec('s', 100)) {
				t.Errorf("the send did not land at %d as the last record: %x", tt.at, data)
			}
			next := openLog(t, path, 90) // l was killed
			if n, err := next.Unfinished(); err != nil || n != len(tt.after) {
				t.Errorf("next run: Unfinished = %d, %v; want %d", n, err, len(tt.after))
			}
			checkEmptied(t, path)
		})
	}
}

// checkEmptied checks that no old record is left in the file, not even a
// torn one: the file is empty.
func checkEmptied(t *testing.T, path string) {
	t.Helper()
	if data, err := os.ReadFile(path); err != nil || len(data) != 0 {
		t.Errorf("after Unfinished the file holds %x, %v; want it empty", data, err)
	}
}

// TestSendLogRotation pushes 10k IDs in rounds through a log whose
// rotateAt is 100 records: every open entry must survive the rotations,
// closed ones must not, and the file must not keep growing.
func TestSendLogRotation(t *testing.T) {
	const rotateAt = 100 * sendLogRecord
	tests := []struct {
		name     string
		batch    int
		keepOpen func(id uint64) bool // never Recorded
		grows    bool                 // more open than fit in rotateAt
	}{
		{"all recorded", 16, func(uint64) bool { return false }, false},
		{"every 500th open", 7, func(id uint64) bool { return id%500 == 0 }, false},
		{"every 50th open: more than rotateAt holds", 33, func(id uint64) bool { return id%50 == 0 }, true},
		{"one at a time", 1, func(id uint64) bool { return id%1000 == 1 }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.db.sending")
			l := openLog(t, path, rotateAt)
			want := map[uint64]struct{}{}
			var batch []uint64
			for id := uint64(1); id <= 10_000; id++ {
				must(t, l.Sending(id))
				if tt.keepOpen(id) {
					want[id] = struct{}{}
				} else {
					batch = append(batch, id)
				}
				if len(batch) >= tt.batch || id == 10_000 {
					must(t, l.Recorded(batch))
					batch = batch[:0]
				}
				if id%997 == 0 { // at any point, a kill loses nothing open
					open := maps.Clone(want)
					maps.Copy(open, idSet(batch...))
					if got := fileEntries(t, path); !maps.Equal(got, open) {
						t.Fatalf("after id %d the file holds %d entries, want %d", id, len(got), len(open))
					}
				}
			}
			if got := fileEntries(t, path); !maps.Equal(got, want) {
				t.Fatalf("file holds %d entries, want %d", len(got), len(want))
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if grew := fi.Size() > rotateAt; grew != tt.grows {
				t.Errorf("file is %d bytes for %d open entries and rotateAt %d", fi.Size(), len(want), rotateAt)
			}
			next := openLog(t, path, rotateAt) // l was killed
			if n, err := next.Unfinished(); err != nil || n != len(want) {
				t.Fatalf("Unfinished = %d, %v; want %d", n, err, len(want))
			}
		})
	}
}

// TestSendLogRotationKeepsOpenEntries: a rotation rewrites the log with
// exactly the open entries, syncs the new file before it replaces the log
// and the directory after, so the log on disk never lacks an open entry;
// a rotation that fails (here: its temporary name is taken by a directory)
// keeps the old file, loses nothing, and the next one succeeds.
func TestSendLogRotationKeepsOpenEntries(t *testing.T) {
	const rotateAt = 10 * sendLogRecord
	dir := t.TempDir()
	path := filepath.Join(dir, "state.db.sending")
	// A temporary file a crash left in the middle of a rotation.
	if err := os.WriteFile(path+".tmp", rec('s', 999), 0o600); err != nil {
		t.Fatal(err)
	}
	l := openLog(t, path, rotateAt)
	if _, err := os.Stat(path + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("a previous rotation's temporary file is still there: %v", err)
	}
	// Each sync notes what it synced and how big the log file was then:
	// the old log before the rename, the new one (3 records) after.
	type syncAt struct {
		name    string
		dir     bool
		logSize int64
	}
	var synced []syncAt
	l.sync = func(f *os.File) error {
		st, err := f.Stat()
		if err != nil {
			return err
		}
		lst, err := os.Stat(path)
		if err != nil {
			return err
		}
		synced = append(synced, syncAt{filepath.Base(f.Name()), st.IsDir(), lst.Size()})
		return f.Sync()
	}
	open := idSet(1, 2, 3)
	must(t, l.Sending(1), l.Sending(2), l.Sending(3))
	id := uint64(100)
	send := func() {
		must(t, l.Sending(id), l.Recorded([]uint64{id}))
		id++
	}
	for len(synced) == 0 {
		send()
	}
	if len(synced) != 2 || synced[0].name != "state.db.sending.tmp" || synced[0].dir || synced[0].logSize < rotateAt ||
		synced[1].name != filepath.Base(dir) || !synced[1].dir || synced[1].logSize != 3*sendLogRecord {
		t.Errorf("syncs at rotation %+v, want the new file while the old log is in place, then the directory after the rename", synced)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) != 3*sendLogRecord || !maps.Equal(unfinished(data), open) {
		t.Fatalf("after rotation the log holds %x, want exactly entries 1, 2, 3", data)
	}
	if _, err := os.Stat(path + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("temporary file left after rotation: %v", err)
	}

	// A rotation that cannot create its file.
	if err := os.Mkdir(path+".tmp", 0o700); err != nil {
		t.Fatal(err)
	}
	must(t, l.Sending(4))
	open[4] = struct{}{}
	var rotErr error
	for i := 0; i < 20 && rotErr == nil; i++ {
		if err := l.Sending(id); err != nil {
			t.Fatal(err)
		}
		rotErr = l.Recorded([]uint64{id})
		id++
	}
	if rotErr == nil || !strings.Contains(rotErr.Error(), "send log rotate") {
		t.Fatalf("rotation with its temporary name taken: %v, want a rotate error", rotErr)
	}
	if got := fileEntries(t, path); !maps.Equal(got, open) {
		t.Fatalf("after a failed rotation the log holds %v, want %v", got, open)
	}
	must(t, l.Sending(5))
	open[5] = struct{}{}
	if err := os.Remove(path + ".tmp"); err != nil {
		t.Fatal(err)
	}
	synced = nil
	for len(synced) == 0 {
		send()
	}
	if got := fileEntries(t, path); !maps.Equal(got, open) {
		t.Fatalf("after the next rotation the log holds %v, want %v", got, open)
	}
	next := openLog(t, path, rotateAt) // l was killed
	if n, err := next.Unfinished(); err != nil || n != len(open) {
		t.Fatalf("Unfinished = %d, %v; want %d", n, err, len(open))
	}
}

// TestSendLogGrowth: open entries beyond rotateAt are all kept, in this run
// (rotation keeps them) and while the previous run's content must stay (no
// rotation: the file grows); once they are recorded, a rotation brings the
// file back under rotateAt.
func TestSendLogGrowth(t *testing.T) {
	const rotateAt = 100 * sendLogRecord
	path := filepath.Join(t.TempDir(), "state.db.sending")
	l := openLog(t, path, rotateAt)
	var ids []uint64
	for id := uint64(1); id <= 250; id++ {
		must(t, l.Sending(id))
		ids = append(ids, id)
	}
	if got := fileEntries(t, path); len(got) != 250 {
		t.Fatalf("file holds %d entries, want 250", len(got))
	}

	// A killed run's 250 plus this run's 300, before Unfinished: the file
	// may not rotate, so it grows.
	mid := openLog(t, path, rotateAt)
	for id := uint64(1001); id <= 1300; id++ {
		must(t, mid.Sending(id))
	}
	must(t, mid.Recorded([]uint64{1001}))
	if got := fileEntries(t, path); len(got) != 549 {
		t.Fatalf("file holds %d entries, want 549", len(got))
	}
	last := openLog(t, path, rotateAt)
	if n, err := last.Unfinished(); err != nil || n != 549 {
		t.Fatalf("Unfinished = %d, %v; want 549", n, err)
	}

	// This run: grows past rotateAt, then shrinks back.
	for _, id := range ids {
		must(t, last.Sending(id))
	}
	if got := fileEntries(t, path); len(got) != 250 {
		t.Fatalf("file holds %d entries, want 250", len(got))
	}
	must(t, last.Recorded(ids))
	for id := uint64(2000); id < 2300; id++ {
		must(t, last.Sending(id), last.Recorded([]uint64{id}))
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() >= rotateAt {
		t.Errorf("after the entries were recorded: %v, %v; want under %d bytes", fi.Size(), err, rotateAt)
	}
	if got := fileEntries(t, path); len(got) != 0 {
		t.Errorf("file holds %d entries, want none", len(got))
	}
}

// TestSendLogConcurrent: 16 goroutines send and record while the small
// rotateAt makes the log rotate under them (run with -race).
func TestSendLogConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db.sending")
	l := openLog(t, path, 20*sendLogRecord)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range uint64(16) {
		wg.Go(func() {
			var batch []uint64
			for i := range uint64(1000) {
				id := g<<32 | i
				if err := l.Sending(id); err != nil {
					errs <- err
					return
				}
				if i%100 == 7 {
					continue // stays open
				}
				if batch = append(batch, id); len(batch) == int(g%5+1) {
					if err := l.Recorded(batch); err != nil {
						errs <- err
						return
					}
					batch = batch[:0]
				}
			}
			if err := l.Recorded(batch); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	next := openLog(t, path, 20*sendLogRecord)
	if n, err := next.Unfinished(); err != nil || n != 16*10 {
		t.Fatalf("Unfinished = %d, %v; want %d", n, err, 16*10)
	}
}

// TestSendLogClose: Close twice is fine, a closed log refuses writes, and
// what it wrote before is still counted.
func TestSendLogClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db.sending")
	l, err := openSendLog(path, 90)
	if err != nil {
		t.Fatal(err)
	}
	must(t, l.Sending(1), l.Close(), l.Close())
	if l.Sending(2) == nil {
		t.Error("Sending after Close: no error")
	}
	if l.Recorded([]uint64{1}) == nil {
		t.Error("Recorded after Close: no error")
	}
	next := openLog(t, path, 90)
	if n, err := next.Unfinished(); err != nil || n != 1 {
		t.Fatalf("Unfinished = %d, %v; want 1", n, err)
	}
}

// BenchmarkSendLogSending: the cost of one Sending, rotations included
// (1024 entries stay open, as in a fan-out).
func BenchmarkSendLogSending(b *testing.B) {
	l, err := openSendLog(filepath.Join(b.TempDir(), "state.db.sending"), sendLogRotateAt)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	var id uint64
	for b.Loop() {
		id++
		if err := l.Sending(id % 1024); err != nil {
			b.Fatal(err)
		}
	}
}

func must(t testing.TB, errs ...error) {
	t.Helper()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}
