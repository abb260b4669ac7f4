package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// SendLog is the tilecast.SendLog of a state file: a file next to it
// (state.db.sending) with one 9-byte record per event, 's' + 8-byte BE
// entry ID before a push and 'r' + ID once its outcome is committed.
//
// It lives outside bbolt on purpose: a bbolt transaction per push would
// cost an fsync pair. Each record is one write(2) to a file opened for
// appending, so a killed process loses nothing it wrote: the data is in
// the kernel. A power cut may lose what was written since the last
// rotation (which syncs), and then the count of possible duplicates comes
// out low.
//
// The state file's lock covers it: only the process holding the DB opens
// it (DB.SendLog), so it has a single writer.
type SendLog struct {
	mu   sync.Mutex
	path string
	f    *os.File            // opened O_APPEND; nil after Close
	size int64               // bytes in the file, whole records
	open map[uint64]struct{} // 's' written, 'r' not yet
	// prev is the previous run's unfinished count, read at open and
	// handed out once by Unfinished.
	prev int
	// rotateAt is the size past which Recorded rewrites the file with only
	// the open entries, so the log stays small however long the daemon runs.
	rotateAt int64
	// sync makes a file's content (or a directory's entries) durable;
	// (*os.File).Sync, replaced by tests that watch rotation.
	sync func(*os.File) error
}

const (
	sendLogSuffix   = ".sending"
	sendLogRecord   = 9
	sendLogRotateAt = 256 << 10 // a rotation every ~14k sends
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
	// A rotation the previous run did not finish left its temporary file;
	// the log itself is whole (the rename is the switch).
	_ = os.Remove(path + ".tmp")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("send log: %w", err)
	}
	l := &SendLog{path: path, f: f, open: map[uint64]struct{}{}, prev: len(unfinished(data)),
		rotateAt: rotateAt, sync: (*os.File).Sync}
	// With nothing to keep the log starts over. Otherwise the old content
	// stays until Unfinished has been asked (a crash before that must not
	// lose the count), cut after its last record: a torn tail shorter than
	// a record would shift every record appended after it (the reader steps
	// 9 bytes at a time), and zero records (the unused rest of a file
	// written by the memory-mapped send log of earlier versions) hold
	// nothing.
	end := 0
	if l.prev > 0 {
		end = len(data) / sendLogRecord * sendLogRecord
		for end > 0 && [sendLogRecord]byte(data[end-sendLogRecord:end]) == [sendLogRecord]byte{} {
			end -= sendLogRecord
		}
	}
	if int64(end) != int64(len(data)) {
		if err := f.Truncate(int64(end)); err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("send log: %w", err)
		}
	}
	l.size = int64(end)
	return l, nil
}

// unfinished returns the IDs with an 's' record and no later 'r' record.
// A torn last record (the process died inside a write) is ignored, as is
// anything that is not a record: the log is a hint, never a reason to
// refuse to start. Stepping 9 bytes at a time and skipping unknown types
// also reads the files of earlier versions, which wrote through a mapping:
// their unused rest is zero bytes, whole records of type 0, and a record
// the process died copying has its type byte, stored last, still 0.
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
	if l.f == nil {
		return 0, errSendLogClosed
	}
	// The previous run's records go, this run's open entries stay.
	if err := l.rotate(); err != nil {
		return 0, err
	}
	l.prev = 0
	return n, nil
}

var errSendLogClosed = errors.New("send log: closed")

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
	if l.rotateDue() {
		return l.rotate()
	}
	return nil
}

// rotateDue reports whether Recorded should rotate: the file is past
// rotateAt and at least half of it is records of closed entries, so that
// however many entries are open a rotation comes only after as many bytes
// again were written. Never while the previous run's content is kept
// (Unfinished rotates then). Caller holds mu.
func (l *SendLog) rotateDue() bool {
	return l.prev == 0 && l.size >= max(l.rotateAt, 2*int64(len(l.open))*sendLogRecord)
}

// write appends whole records with one write(2). A short write (a full
// disk) is cut off again, so the records after it stay aligned. Caller
// holds mu.
func (l *SendLog) write(b []byte) error {
	if l.f == nil {
		return errSendLogClosed
	}
	n, err := l.f.Write(b)
	if err != nil {
		if n > 0 {
			_ = l.f.Truncate(l.size) // best effort: a misaligned tail costs only the count
		}
		return fmt.Errorf("send log: %w", err)
	}
	l.size += int64(n)
	return nil
}

// rotate replaces the file with one holding only the open entries. The new
// file is written and synced under a temporary name, renamed over the log,
// and the directory synced: whatever the crash (or power cut) around it,
// the log is the old file or the complete new one, and once rotate returns
// the new one is on disk. Each open entry is therefore always in the log
// file, so none can be lost. A failure leaves the old file in use. Caller
// holds mu.
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
	fail := func(err error) error {
		_ = f.Close()
		_ = os.Remove(tmp)
		return fmt.Errorf("send log rotate: %w", err)
	}
	if _, err := f.Write(buf); err != nil {
		return fail(err)
	}
	if err := l.sync(f); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, l.path); err != nil {
		return fail(err)
	}
	// From here the new file is the log: switch to it even if the
	// directory cannot be synced (the rename is then only in the kernel,
	// as every record is).
	_ = l.f.Close()
	l.f, l.size = f, int64(len(buf))
	if err := l.syncDir(); err != nil {
		return fmt.Errorf("send log rotate: %w", err)
	}
	return nil
}

// syncDir makes the rename of a rotation durable.
func (l *SendLog) syncDir() error {
	d, err := os.Open(filepath.Dir(l.path))
	if err != nil {
		return err
	}
	err = l.sync(d)
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Close closes the file; a second call does nothing, and a closed log
// refuses writes. The log stays on disk: a clean stop leaves no unfinished
// entries in it, a crash does.
func (l *SendLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	if err != nil {
		return fmt.Errorf("send log: %w", err)
	}
	return nil
}
