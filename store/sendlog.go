package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
)

// SendLog is the tilecast.SendLog of a state file: an append-only file next
// to it (state.db.sending) with one 9-byte record per event, 's' + 8-byte
// BE entry ID before a push and 'r' + ID once its outcome is committed.
//
// It lives outside bbolt on purpose: a write to the OS costs a system call,
// while a bbolt transaction per push would cost an fsync pair. That is
// enough for what it answers: a killed process loses nothing the kernel
// already has. A power cut may lose the tail, and then the count of
// possible duplicates comes out low.
//
// The state file's lock covers it: only the process holding the DB opens
// it (DB.SendLog), so it has a single writer.
type SendLog struct {
	mu   sync.Mutex
	path string
	f    *os.File
	size int64
	open map[uint64]struct{} // 's' written, 'r' not yet
	// prev is the previous run's unfinished count, read at open and
	// handed out once by Unfinished.
	prev int
	// rotateAt is the size past which Recorded rewrites the file with only
	// the open entries, so the log stays small however long the daemon runs.
	rotateAt int64
}

const (
	sendLogSuffix   = ".sending"
	sendLogRecord   = 9
	sendLogRotateAt = 1 << 20
)

// SendLog opens (once) the send log of the state file. The file's previous
// content is read and its count kept for Unfinished; the log then starts
// empty. Close closes it with the DB.
func (db *DB) SendLog() (*SendLog, error) {
	db.sendLogMu.Lock()
	defer db.sendLogMu.Unlock()
	if db.sendLog != nil {
		return db.sendLog, nil
	}
	if db.bolt.IsReadOnly() {
		return nil, errors.New("send log: the state file is open read-only")
	}
	l, err := openSendLog(db.path+sendLogSuffix, sendLogRotateAt)
	if err != nil {
		return nil, err
	}
	db.sendLog = l
	return l, nil
}

func openSendLog(path string, rotateAt int64) (*SendLog, error) {
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("send log: %w", err)
	}
	prev := len(unfinished(data))
	// O_APPEND: every write lands at the end, whole.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("send log: %w", err)
	}
	l := &SendLog{path: path, f: f, open: map[uint64]struct{}{}, prev: prev, rotateAt: rotateAt}
	// Keep the old content until Unfinished has been asked: a crash before
	// that must not lose the count.
	l.size = int64(len(data))
	if prev == 0 {
		if err := l.reset(); err != nil {
			_ = f.Close()
			return nil, err
		}
	}
	return l, nil
}

// unfinished returns the IDs with an 's' record and no later 'r' record.
// A torn last record (the process died inside a write) is ignored, as is
// anything that is not a record: the log is a hint, never a reason to
// refuse to start.
func unfinished(data []byte) map[uint64]struct{} {
	open := map[uint64]struct{}{}
	for len(data) >= sendLogRecord {
		id := binary.BigEndian.Uint64(data[1:sendLogRecord])
		switch data[0] {
		case 's':
			open[id] = struct{}{}
		case 'r':
			delete(open, id)
		}
		data = data[sendLogRecord:]
	}
	return open
}

// Unfinished returns how many entries the previous run left sent but not
// recorded, and forgets them. Later calls return 0.
func (l *SendLog) Unfinished() (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.prev
	if n == 0 {
		return 0, nil
	}
	if err := l.reset(); err != nil {
		return 0, err
	}
	l.prev = 0
	return n, nil
}

// reset empties the file and forgets the previous run. Caller holds mu.
func (l *SendLog) reset() error {
	if err := l.f.Truncate(0); err != nil {
		return fmt.Errorf("send log: %w", err)
	}
	l.size = 0
	return nil
}

// Sending notes that entry id is about to be pushed.
func (l *SendLog) Sending(id uint64) error {
	var rec [sendLogRecord]byte
	rec[0] = 's'
	binary.BigEndian.PutUint64(rec[1:], id)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.write(rec[:]); err != nil {
		return err
	}
	l.open[id] = struct{}{}
	return nil
}

// Recorded notes that the outcomes of ids are committed. IDs that were
// never Sending (postponed entries) are skipped.
func (l *SendLog) Recorded(ids []uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	buf := make([]byte, 0, len(ids)*sendLogRecord)
	for _, id := range ids {
		if _, ok := l.open[id]; !ok {
			continue
		}
		buf = append(buf, 'r')
		buf = binary.BigEndian.AppendUint64(buf, id)
	}
	if len(buf) == 0 {
		return nil
	}
	if err := l.write(buf); err != nil {
		return err
	}
	for _, id := range ids {
		delete(l.open, id)
	}
	if l.size >= l.rotateAt && l.prev == 0 {
		return l.rotate()
	}
	return nil
}

// write appends whole records. Caller holds mu.
func (l *SendLog) write(b []byte) error {
	n, err := l.f.Write(b)
	l.size += int64(n)
	if err != nil {
		return fmt.Errorf("send log: %w", err)
	}
	return nil
}

// rotate replaces the file with one holding only the open entries: written
// to a temporary file and renamed over the log, so a crash in between
// leaves one complete version or the other. Caller holds mu.
func (l *SendLog) rotate() error {
	buf := make([]byte, 0, len(l.open)*sendLogRecord)
	for id := range l.open {
		buf = append(buf, 's')
		buf = binary.BigEndian.AppendUint64(buf, id)
	}
	tmp := l.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("send log rotate: %w", err)
	}
	if _, err := f.Write(buf); err != nil {
		_ = f.Close()
		return fmt.Errorf("send log rotate: %w", err)
	}
	if err := os.Rename(tmp, l.path); err != nil {
		_ = f.Close()
		return fmt.Errorf("send log rotate: %w", err)
	}
	_ = l.f.Close()
	l.f, l.size = f, int64(len(buf))
	return nil
}

// Close closes the file. The log stays on disk: a clean stop leaves no
// unfinished entries in it, a crash does.
func (l *SendLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.f.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
		return fmt.Errorf("send log: %w", err)
	}
	return nil
}
