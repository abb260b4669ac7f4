package store

import (
	"os"
	"path/filepath"
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
	if _, err := os.Stat(path + ".sending"); err != nil {
		t.Fatalf("send log file: %v", err)
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

func FuzzSendLogParse(f *testing.F) {
	f.Add([]byte{'s', 0, 0, 0, 0, 0, 0, 0, 1, 'r', 0, 0, 0, 0, 0, 0, 0, 1})
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, data []byte) {
		open := unfinished(data)
		if len(open) > len(data)/sendLogRecord {
			t.Fatalf("%d unfinished from %d bytes", len(open), len(data))
		}
	})
}

func must(t *testing.T, errs ...error) {
	t.Helper()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}
