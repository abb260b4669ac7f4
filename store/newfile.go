package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/tilecast/tilecast"
)

// A power loss during the very first start can leave a state file whose
// first pages never reached the disk: bbolt writes four pages to a new
// file and fdatasyncs them, but the file's size can survive without its
// content (all zeros), or only some sectors arrive. bbolt refuses such a
// file on every start, or dies of SIGBUS on it, and no step of the runbook
// fixes an all-zero file, so a service manager would restart tilecast
// into the same refusal forever (reliability catalogue S4; the bbolt
// issue behind it is etcd-io/etcd#16596). SIGKILL cannot produce this
// state, as the page cache survives it; only a lost page cache can.
//
// Such a file provably holds nothing when every byte in it is either zero
// or the byte bbolt's initialisation writes at that offset: then no
// transaction beyond bbolt's initial two (txid 0 and 1, an empty root
// bucket) ever reached the file, and no tilecast data was ever in it. It
// must also be no larger than a new file gets (newFileMaxSize): a larger
// one, even all zeros, once held data, and its operator should restore a
// backup rather than have the daemon start empty. Of these files, the one
// that starts with all of bbolt's four pages is what bbolt wrote and
// opens (a kill before the first commit): bbolt gets it as it is.

// bbolt's file format, as far as a new file needs it: each page starts
// with a 16-byte header (page id, flags, count, overflow); a meta page's
// header is followed by the meta struct, in the machine's byte order.
// TestNewFileImage pins this against what bbolt writes.
const (
	boltMagic        = 0xED0CDAED
	boltVersion      = 2
	boltPageHeader   = 16
	boltMetaFlag     = 0x04
	boltLeafFlag     = 0x02
	boltFreelistFlag = 0x10
	// The meta struct's fields, as offsets into it: magic, version,
	// pageSize, flags (4 bytes each), the root bucket (its page, its
	// sequence), freelist page, high-water mark, txid, and the checksum,
	// an FNV-64a of everything before it.
	metaPageSize = 8
	metaRoot     = 16
	metaFreelist = 32
	metaPgid     = 40
	metaTxid     = 48
	metaChecksum = 56

	// firstMapping is the size bbolt's first commit grows a new file
	// to, its smallest mapping; a power loss can keep that size without
	// the pages.
	firstMapping = 32 << 10
)

// newFileMaxSize is the most a file can measure before anything but
// bbolt's initialisation was committed to it (TestNewFileImage checks a
// new state file is no larger).
func newFileMaxSize() int64 { return int64(max(4*os.Getpagesize(), firstMapping)) }

// newFileImage returns what bbolt writes to a new file (bbolt's DB.init)
// with the given page size: two meta pages (txid 0 and 1), an empty
// freelist page and an empty leaf page as the root bucket.
func newFileImage(pageSize int) []byte {
	ne := binary.NativeEndian
	buf := make([]byte, 4*pageSize)
	for id := range 2 {
		p := buf[id*pageSize:]
		ne.PutUint64(p, uint64(id))
		ne.PutUint16(p[8:], boltMetaFlag)
		m := p[boltPageHeader:]
		ne.PutUint32(m, boltMagic)
		ne.PutUint32(m[4:], boltVersion)
		ne.PutUint32(m[metaPageSize:], uint32(pageSize))
		ne.PutUint64(m[metaRoot:], 3)
		ne.PutUint64(m[metaFreelist:], 2)
		ne.PutUint64(m[metaPgid:], 4)
		ne.PutUint64(m[metaTxid:], uint64(id))
		h := fnv.New64a()
		h.Write(m[:metaChecksum])
		ne.PutUint64(m[metaChecksum:], h.Sum64())
	}
	ne.PutUint64(buf[2*pageSize:], 2)
	ne.PutUint16(buf[2*pageSize+8:], boltFreelistFlag)
	ne.PutUint64(buf[3*pageSize:], 3)
	ne.PutUint16(buf[3*pageSize+8:], boltLeafFlag)
	return buf
}

// unusableNewFile reports whether f (described by fi) is a new file that
// provably holds nothing and that bbolt did not finish writing (see
// above). It only reads f.
func unusableNewFile(f *os.File, fi fs.FileInfo) (bool, error) {
	// bbolt's page size for new files is the OS's; a file made with
	// another one (copied from another machine) is left to bbolt, as it
	// might hold data this check cannot see.
	img := newFileImage(os.Getpagesize())
	if !fi.Mode().IsRegular() || fi.Size() == 0 || fi.Size() > newFileMaxSize() {
		return false, nil
	}
	b := make([]byte, fi.Size())
	if _, err := f.ReadAt(b, 0); err != nil {
		return false, err // a *PathError: it names the file
	}
	for i, c := range b {
		if c != 0 && (i >= len(img) || c != img[i]) {
			return false, nil
		}
	}
	return len(b) < len(img) || !bytes.Equal(b[:len(img)], img), nil
}

// replaceNewFile handles a small state file before bbolt reads it. If
// the file is an unusable new one (unusableNewFile), a read-write Open
// moves it aside to <name>.unusable-<time>, never deleting it, and opens
// a new file in its place as on a first start; a read-only Open reports
// ErrNoData and changes nothing. ok is false for any other file: Open
// gives it to bbolt as before.
func replaceNewFile(path string, opts Options) (db *DB, ok bool, err error) {
	// The move and the new file belong where the file is, not where a
	// symlink to it is.
	target, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil, false, nil // bbolt says what is wrong
	}
	f, err := os.Open(target)
	if err != nil {
		return nil, false, nil
	}
	defer f.Close() // releases the lock, after the new file is open
	// A first look without the lock, so a file in use by a running
	// daemon gets bbolt's answer (in use), not a wait for the lock.
	fi, err := f.Stat()
	if err != nil {
		return nil, false, nil
	}
	if unusable, err := unusableNewFile(f, fi); err != nil {
		return nil, true, fmt.Errorf("open state %s: check whether it holds data: %w", path, err)
	} else if !unusable {
		return nil, false, nil
	}

	const what = "it is a new file whose first write never reached the disk (a power loss during the first start)"
	if opts.ReadOnly || !lockable {
		next := "the next read-write start (tilecast run) moves it aside and starts with an empty state"
		if !lockable {
			next = "tilecast cannot take bbolt's lock on this platform to move it aside itself: move it aside and start again"
		}
		return nil, true, fmt.Errorf("open state %s: %w: %s; %s. The file was not modified", path, ErrNoData, what, next)
	}
	// Without bbolt's lock two tilecasts starting together could both
	// decide to move the file, and the second would move the first's new
	// one.
	if opts.beforeLock != nil {
		opts.beforeLock()
	}
	if err := lockExclusive(f, opts.timeout()); errors.Is(err, tilecast.ErrStateLocked) {
		return nil, true, fmt.Errorf("open state %s (waited %s): %w", path, opts.timeout(), err)
	} else if err != nil {
		return nil, true, fmt.Errorf("open state %s: lock it to move it aside: %w", path, err)
	}
	// Another tilecast that held the lock first has moved the file aside:
	// open the new one in its place.
	if cur, err := os.Lstat(target); err != nil || !os.SameFile(fi, cur) {
		db, err := open(path, opts)
		return db, true, err
	}
	if fi, err = f.Stat(); err != nil {
		return nil, true, fmt.Errorf("open state %s: %w", path, err)
	}
	if unusable, err := unusableNewFile(f, fi); err != nil || !unusable {
		db, err := open(path, opts) // it changed meanwhile: bbolt decides
		return db, true, err
	}

	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	aside, err := moveAside(target, now())
	if err != nil {
		return nil, true, fmt.Errorf("open state %s: %w: %s, but moving it aside failed: %w", path, ErrNoData, what, err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log.Warn("state file held no data: "+what+"; moved it aside, starting with a new, empty state file",
		"file", target, "moved_to", aside, "size", fi.Size())
	if db, err = open(path, opts); err != nil {
		return nil, true, fmt.Errorf("%w (after moving the file that held no data aside to %s)", err, aside)
	}
	// Without this a power loss could bring back the old name for the
	// unusable file and lose the new one with what it got meanwhile.
	if err := syncDir(filepath.Dir(target)); err != nil {
		_ = db.Close()
		return nil, true, fmt.Errorf("open state %s: make the move to %s and the new file durable: %w", path, aside, err)
	}
	return db, true, nil
}

// moveAside renames path to path.unusable-<t>, adding -2, -3, … rather
// than replace an earlier one, and returns the new name.
func moveAside(path string, t time.Time) (string, error) {
	base := path + ".unusable-" + t.UTC().Format("20060102T150405Z")
	aside := base
	for n := 2; ; n++ {
		_, err := os.Lstat(aside)
		if errors.Is(err, fs.ErrNotExist) {
			break
		}
		if err != nil {
			return "", err
		}
		aside = fmt.Sprintf("%s-%d", base, n)
	}
	if err := os.Rename(path, aside); err != nil {
		return "", err // a *LinkError: it names both paths
	}
	return aside, nil
}

// syncDir makes the entries of dir durable (renames, new files).
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
