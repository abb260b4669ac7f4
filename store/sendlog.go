package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
)

// SendLog is the tilecast.SendLog of a state file: a file next to it
// (state.db.sending) with one 9-byte record per event, 's' + 8-byte BE
// entry ID before a push and 'r' + ID once its outcome is committed.
//
// It lives outside bbolt on purpose: a bbolt transaction per push would
// cost an fsync pair. That is enough for what it answers: a killed process
// loses nothing the kernel already has. A power cut may lose the tail, and
// then the count of possible duplicates comes out low.
//
// Why a mapping: a write(2) of 9 bytes per push, under the mutex, was 3.3 %
// of the CPU of a 100k-channel fan-out. On Linux the file is therefore kept
// at a fixed capacity and mapped shared and writable, and a record is a
// copy into the mapping: no system call. A store into a shared file
// mapping is in the page cache as soon as it is made, so it survives the
// process being killed exactly like a write(2) does (and, like it, not a
// power cut). The unused rest of the file is zeros, which read as no
// record (see unfinished). The file's blocks are allocated before it is
// mapped: a full disk is then an error at open or rotation (the log falls
// back to, or stays on, what it can write) rather than a SIGBUS on a store.
// Elsewhere, and when the file cannot be allocated at open, the log keeps
// one write(2) per call; a nil mapping means that path.
//
// The state file's lock covers it: only the process holding the DB opens
// it (DB.SendLog), so it has a single writer, and nobody truncates the file
// under the mapping.
type SendLog struct {
	mu   sync.Mutex
	path string
	f    *os.File
	// m maps the whole file (len(m) is its size) on Linux; nil elsewhere
	// and after Close. Invariant: m[size:] is all zeros, so that emptying
	// the log only has to clear m[:size].
	m    []byte
	size int64               // bytes of records; the next one goes at size
	open map[uint64]struct{} // 's' written, 'r' not yet
	// prev is the previous run's unfinished count, read at open and
	// handed out once by Unfinished.
	prev int
	// rotateAt is the size past which Recorded rewrites the file with only
	// the open entries, so the log stays small however long the daemon runs.
	// With a mapping, it is rounded down to whole records to give capacity.
	rotateAt int64
	// capacity is the size of a mapped file after a rotation, unless the
	// open entries need more: a whole number of records.
	capacity int64
}

const (
	sendLogSuffix   = ".sending"
	sendLogRecord   = 9
	sendLogRotateAt = 256 << 10
	// sendLogCapacity is the mapped file's size, allocated up front: 256
	// KiB in whole records (a rotation every ~14k sends costs a small
	// file write; a bigger file costs disk space on every install).
	sendLogCapacity = sendLogRotateAt / sendLogRecord * sendLogRecord
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
	// No O_APPEND: some systems refuse to map an append-only descriptor
	// writable, and the write(2) path writes at size (WriteAt).
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("send log: %w", err)
	}
	l := &SendLog{path: path, f: f, open: map[uint64]struct{}{}, prev: prev, rotateAt: rotateAt,
		capacity: max(rotateAt/sendLogRecord*sendLogRecord, sendLogRecord)}
	mapped := false
	if sendLogMapped {
		// A file that cannot be mapped (its blocks cannot be allocated:
		// a full disk) falls back to write(2): the log is a hint, never a
		// reason to refuse to start.
		mapped = l.openMapped(data) == nil
	}
	if !mapped {
		// Keep the old content until Unfinished has been asked: a crash
		// before that must not lose the count.
		l.size = int64(len(data))
		if prev == 0 {
			err = l.reset()
		}
	}
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	return l, nil
}

// openMapped maps the file at open. With nothing to keep it starts over,
// zeroed. Otherwise the old content stays until Unfinished has been asked
// (a crash before that must not lose the count) and new records go after
// its last one. That content may come from this code (zero-padded, maybe
// a last record torn with type byte 0) or from the write(2) code (no
// padding, maybe a torn tail shorter than a record).
func (l *SendLog) openMapped(data []byte) error {
	if l.prev == 0 {
		// Truncating to 0 first drops whatever was there, records or not.
		if err := l.f.Truncate(0); err != nil {
			return fmt.Errorf("send log: %w", err)
		}
		return l.remap(l.capacity)
	}
	c := l.capacity
	for c < int64(len(data)) {
		c *= 2
	}
	if err := l.remap(c); err != nil {
		return err
	}
	// A torn tail shorter than a record would shift every later record
	// (the reader steps 9 bytes at a time): zero it.
	whole := len(data) / sendLogRecord * sendLogRecord
	clear(l.m[whole:len(data)])
	end := whole
	for end > 0 && [sendLogRecord]byte(data[end-sendLogRecord:end]) == [sendLogRecord]byte{} {
		end -= sendLogRecord
	}
	l.size = int64(end)
	return nil
}

// unfinished returns the IDs with an 's' record and no later 'r' record.
// A torn last record (the process died inside a write or a copy) is
// ignored, as is anything that is not a record: the log is a hint, never a
// reason to refuse to start. Stepping 9 bytes at a time and skipping
// unknown types is what makes a mapped file work: its unused rest is zero
// bytes, whole records of type 0, and a record the process died copying
// has its type byte, stored last, still 0.
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

// reset empties the log and forgets the previous run. Caller holds mu.
func (l *SendLog) reset() error {
	if l.m != nil {
		// Past size the mapping is zero already (see m).
		clear(l.m[:l.size])
		l.size = 0
		return nil
	}
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
	if l.rotateDue() {
		return l.rotate(0)
	}
	return nil
}

// rotateDue reports whether Recorded should rotate: the file is past
// rotateAt, or the mapping is full. Never while the previous run's content
// is kept (rotate writes only this run's open entries). Caller holds mu.
func (l *SendLog) rotateDue() bool {
	if l.prev != 0 {
		return false
	}
	if l.m != nil {
		return l.size >= int64(len(l.m))
	}
	return l.size >= l.rotateAt
}

// write appends whole records. Caller holds mu.
func (l *SendLog) write(b []byte) error {
	if l.m == nil {
		n, err := l.f.WriteAt(b, l.size)
		l.size += int64(n)
		if err != nil {
			return fmt.Errorf("send log: %w", err)
		}
		return nil
	}
	n := int64(len(b))
	if l.size+n > int64(len(l.m)) {
		if err := l.makeRoom(n); err != nil {
			return err
		}
	}
	dst := l.m[l.size : l.size+n]
	for i := 0; i < len(b); i += sendLogRecord {
		// The ID first, the type last: a process killed in between leaves
		// a record of type 0, which unfinished ignores.
		copy(dst[i+1:i+sendLogRecord], b[i+1:i+sendLogRecord])
		dst[i] = b[i]
	}
	l.size += n
	return nil
}

// makeRoom makes the mapping hold n more bytes: a rotation, or, while the
// previous run's content must stay, a bigger file. Caller holds mu.
func (l *SendLog) makeRoom(n int64) error {
	if l.prev == 0 {
		return l.rotate(n)
	}
	c := int64(len(l.m))
	for c < l.size+n {
		c *= 2
	}
	return l.remap(c)
}

// remap sets the file's size to n, at least its content, and maps it
// anew. The old mapping goes only once the new one is in place, so a
// failure leaves the log as it was. Caller holds mu.
func (l *SendLog) remap(n int64) error {
	if err := l.f.Truncate(n); err != nil {
		return fmt.Errorf("send log: %w", err)
	}
	m, err := mapSendLog(l.f, n)
	if err != nil {
		return fmt.Errorf("send log: map: %w", err)
	}
	if l.m != nil {
		_ = unmapSendLog(l.m) // nothing to do about it but leak the range
	}
	l.m = m
	return nil
}

// rotate replaces the file with one holding only the open entries: written
// to a temporary file and renamed over the log, so a crash in between
// leaves one complete version or the other. A mapped file gets the base
// capacity, or more if the open entries and the n bytes about to be
// written would fill more than half of it: then rotations stay rare
// however many entries are open, and none is ever dropped. Caller holds mu.
func (l *SendLog) rotate(n int64) error {
	buf := make([]byte, 0, len(l.open)*sendLogRecord)
	for id := range l.open {
		buf = append(buf, 's')
		buf = binary.BigEndian.AppendUint64(buf, id)
	}
	mapped := l.m != nil
	tmp := l.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("send log rotate: %w", err)
	}
	var m []byte
	fail := func(err error) error {
		if m != nil {
			_ = unmapSendLog(m)
		}
		_ = f.Close()
		_ = os.Remove(tmp)
		return fmt.Errorf("send log rotate: %w", err)
	}
	if _, err := f.Write(buf); err != nil {
		return fail(err)
	}
	if mapped {
		c := l.capacity
		for c < 2*(int64(len(buf))+n) {
			c *= 2
		}
		if err := f.Truncate(c); err != nil {
			return fail(err)
		}
		if m, err = mapSendLog(f, c); err != nil {
			return fail(err)
		}
	}
	if err := os.Rename(tmp, l.path); err != nil {
		return fail(err)
	}
	if mapped {
		_ = unmapSendLog(l.m)
	}
	_ = l.f.Close()
	l.f, l.m, l.size = f, m, int64(len(buf))
	return nil
}

// Close unmaps and closes the file; a second call does nothing. The log
// stays on disk: a clean stop leaves no unfinished entries in it, a crash
// does.
func (l *SendLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var err error
	if l.m != nil {
		if uerr := unmapSendLog(l.m); uerr != nil {
			err = fmt.Errorf("send log: unmap: %w", uerr)
		}
		l.m = nil // a failed munmap leaves the range alone: never touch it again
	}
	if cerr := l.f.Close(); cerr != nil && !errors.Is(cerr, os.ErrClosed) && err == nil {
		err = fmt.Errorf("send log: %w", cerr)
	}
	return err
}
