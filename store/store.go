package store

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/tilecast/tilecast"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// DefaultTimeout is how long Open waits for the file lock when Options.Timeout is zero.
const DefaultTimeout = 5 * time.Second

// ErrCorrupt means bbolt could not open or validate the state file. Open
// never tries to repair such a file: the error names the manual recovery steps.
var ErrCorrupt = errors.New("state file is damaged")

// ErrNoData means a read-only Open found a state file that holds nothing:
// empty, or a new file whose first write never reached the disk (a power
// loss during the first start). A read-write Open initialises or replaces
// such a file instead (newfile.go); a read-only one must not.
var ErrNoData = errors.New("state file holds no data")

// ErrInvalidChannel means a channel given to AddChannel cannot be stored
// (empty or oversized URI, NUL bytes in a name). The API maps it to 400.
// It is tilecast.ErrInvalidChannel, which every store returns.
var ErrInvalidChannel = tilecast.ErrInvalidChannel

// recoveryHint is appended to every ErrCorrupt so the operator sees the
// runbook where the daemon stops (reliability.md §1.2, S7).
const recoveryHint = "to recover: stop tilecast and run `bbolt check %[1]s`; " +
	"if it reports errors, copy the file, run `bbolt surgery revert-meta-page` on the COPY " +
	"and `bbolt check` it, then put the repaired copy in place; otherwise restore the latest " +
	"backup (tilecast backup). The file was not modified"

// Options configure Open.
type Options struct {
	// Timeout is how long to wait for the exclusive file lock held by
	// another tilecast; zero means DefaultTimeout.
	Timeout time.Duration
	// Now is the clock (channel creation, ledger pruning, record times);
	// nil means time.Now. Tests inject a fixed clock.
	Now func() time.Time
	// ReadOnly opens the file with a shared lock for operator reads
	// (status, outcomes, backup) while no daemon holds it. No migration runs.
	ReadOnly bool
	// Failpoint, when set, is called inside the write transactions of
	// Commit (tilecast.FailInCommit) and Record (tilecast.FailInRecord)
	// and of each batch of a migration that rewrites the file
	// (tilecast.FailInMigrate), just before they commit. The crash tests
	// make the process exit there (reliability.md S2 b, e): the
	// transaction must then leave no trace. A panic is no crash here:
	// bbolt's Batch recovers it and runs the call again alone; in a
	// migration batch it fails Open, which a later Open resumes.
	Failpoint func(point string)
	// Logger receives what Open does to the file (schema migrations, a
	// recount, moving an unusable new file aside) and the channel
	// changes worth a line (rotations); nil discards it.
	Logger *slog.Logger
	// Progress, when set, is called after each committed batch of a
	// migration that rewrites the file's records (schema 4), with the
	// records visited so far and the total. The daemon extends systemd's
	// start timeout from it (EXTEND_TIMEOUT_USEC), so a large file does
	// not get it killed while it migrates.
	Progress func(done, total int)

	// migrateBatch overrides migrationBatch (tests).
	migrateBatch int
	// beforeLock, when set (tests), runs when Open has found an unusable
	// new file and is about to lock it, where another tilecast may move
	// it aside first.
	beforeLock func()
}

// DB is the tilecast state file. It implements tilecast.Store; every method
// is one bbolt transaction, so a DB is safe for concurrent use.
type DB struct {
	bolt *bolt.DB
	path string
	now  func() time.Time
	log  *slog.Logger

	// beforeCommit, when set (tests only), runs at the end of Commit's
	// transaction; an error aborts the whole transaction.
	beforeCommit func() error
	failpoint    func(point string)

	progress     func(done, total int) // Options.Progress
	migrateBatch int

	sendLogMu sync.Mutex
	sendLog   *SendLog // opened by SendLog, closed by Close
}

// Open opens (creating if needed) the state file at path and brings its
// schema up to date: in one transaction, except for the rewrite of every
// record (schema 4, migrate.go), which runs in batches that a later Open
// resumes if this one is killed.
//
// A file bbolt cannot use is refused with ErrCorrupt and left alone,
// unless it provably holds no data: a new file whose first write never
// reached the disk (newfile.go). A read-write Open moves that aside and
// starts a new file; a read-only one reports it (ErrNoData).
func Open(path string, opts Options) (*DB, error) {
	if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() {
		if fi.Size() == 0 && opts.ReadOnly {
			// bbolt would write a new file's first pages through the
			// read-only descriptor and fail with "bad file descriptor".
			return nil, fmt.Errorf("open state %s: %w: it is empty (0 bytes), a new file never written; "+
				"the next read-write start (tilecast run) initialises it. The file was not modified", path, ErrNoData)
		}
		// Checked before bbolt reads the file, not after it refuses it:
		// bbolt dies of SIGBUS on some of these files (it reads pages
		// past the end of a short one through its mapping), and one it
		// panics on stays mapped, and so locked, in this process.
		if fi.Size() > 0 && fi.Size() <= newFileMaxSize() {
			if db, ok, err := replaceNewFile(path, opts); ok {
				return db, err
			}
		}
	}
	return open(path, opts)
}

// open is Open without the check for an unusable new file.
func open(path string, opts Options) (*DB, error) {
	timeout := opts.timeout()
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	bdb, err := openBolt(path, &bolt.Options{
		Timeout:      timeout,
		ReadOnly:     opts.ReadOnly,
		FreelistType: bolt.FreelistMapType,
	})
	if err != nil {
		switch {
		case errors.Is(err, berrors.ErrTimeout):
			return nil, fmt.Errorf("open state %s (waited %s): %w", path, timeout, tilecast.ErrStateLocked)
		case errors.Is(err, ErrCorrupt), errors.Is(err, berrors.ErrInvalid),
			errors.Is(err, berrors.ErrChecksum), errors.Is(err, berrors.ErrVersionMismatch),
			errors.Is(err, berrors.ErrInvalidMapping):
			return nil, corruptError(path, err)
		}
		return nil, fmt.Errorf("open state %s: %w", path, err)
	}
	// Feed commits go through Batch (see batch): a short window groups
	// the commits of a tick without making a lone commit wait long.
	bdb.MaxBatchDelay = 2 * time.Millisecond
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	db := &DB{bolt: bdb, path: path, now: now, log: log, failpoint: opts.Failpoint,
		progress: opts.Progress, migrateBatch: opts.migrateBatch}
	if err := db.migrate(opts.ReadOnly); err != nil {
		_ = bdb.Close()
		if errors.Is(err, ErrCorrupt) {
			return nil, corruptError(path, err)
		}
		return nil, fmt.Errorf("open state %s: %w", path, err)
	}
	return db, nil
}

// timeout is Options.Timeout, DefaultTimeout when zero.
func (o Options) timeout() time.Duration {
	if o.Timeout <= 0 {
		return DefaultTimeout
	}
	return o.Timeout
}

func corruptError(path string, err error) error {
	if !errors.Is(err, ErrCorrupt) {
		err = fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return fmt.Errorf("open state %s: %w; "+recoveryHint, path, err, path)
}

// openBolt opens the file and turns a bbolt panic on a damaged file (bad
// freelist or page type) into ErrCorrupt, closing the descriptor. That
// releases the lock only if bbolt had not mapped the file yet: on Linux a
// mapping keeps the open file, and with it the lock, until the process
// exits, as a daemon does on this error.
func openBolt(path string, o *bolt.Options) (bdb *bolt.DB, err error) {
	var file *os.File
	o.OpenFile = func(name string, flag int, perm os.FileMode) (*os.File, error) {
		f, err := os.OpenFile(name, flag, perm)
		file = f
		return f, err
	}
	defer func() {
		if r := recover(); r != nil {
			if file != nil {
				_ = file.Close()
			}
			bdb, err = nil, fmt.Errorf("%w: %v", ErrCorrupt, r)
		}
	}()
	// 0600: channel URIs are bearer capabilities for pushing to a device.
	return bolt.Open(path, 0o600, o)
}

// Close closes the file and releases its lock.
func (db *DB) Close() error {
	db.sendLogMu.Lock()
	if db.sendLog != nil {
		_ = db.sendLog.Close() // it holds nothing a restart needs beyond what the OS has
		db.sendLog = nil
	}
	db.sendLogMu.Unlock()
	if err := db.bolt.Close(); err != nil {
		return fmt.Errorf("close state: %w", err)
	}
	return nil
}

// Path returns the state file's path.
func (db *DB) Path() string { return db.path }

// Backup writes a consistent copy of the whole file to w from a read
// transaction (Tx.WriteTo). The transaction lasts as long as w takes: a
// commit that grows the file waits for it (bbolt remaps the file once no
// read transaction is open), and so does every read begun after that
// commit. Give it only a writer as quick as a local file; for anything
// slower, such as a network client, take a Snapshot and send that.
func (db *DB) Backup(w io.Writer) (int64, error) {
	var n int64
	err := db.bolt.View(func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("backup: %w", err)
	}
	return n, nil
}

// Check runs bbolt's exhaustive page check (what `bbolt check` does) in a
// read transaction and returns every problem found, joined.
func (db *DB) Check() error {
	return db.bolt.View(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		if len(errs) > 0 {
			return fmt.Errorf("%w: %w", ErrCorrupt, errors.Join(errs...))
		}
		return nil
	})
}

// migration is one schema step; migrations()[i] brings the file to version
// i+1, in one transaction (apply) or, for a step too large for one, in
// transactions of its own that set the version when done (batched).
type migration struct {
	name    string
	apply   func(tx *bolt.Tx) error
	batched func(db *DB, schema int, quiet bool) error
}

// migrations is the ordered schema history. Append only: a released step
// never changes, because files in the field already ran it.
func migrations() []migration {
	return []migration{
		{name: "create buckets", apply: func(tx *bolt.Tx) error {
			for _, name := range bucketNames() {
				if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
					return fmt.Errorf("create bucket %s: %w", name, err)
				}
			}
			return nil
		}},
		// Record finds an entry from its ID and due time (Record.Due):
		// the index cost a put per enqueue and a get and delete per
		// outcome, ~5 % of a 100k fan-out's CPU with its pages.
		{name: "drop outbox_id", apply: func(tx *bolt.Tx) error {
			if err := tx.DeleteBucket([]byte(bucketOutboxID)); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
				return fmt.Errorf("delete bucket %s: %w", bucketOutboxID, err)
			}
			return nil
		}},
		// Health checks and metrics read counts the store keeps as it
		// writes (counts.go); a file written before them is counted once.
		// The schema version also keeps an older tilecast, which would
		// write without updating them, from opening the file. Its feed
		// states may still be in older forms (migrate_old.go).
		{name: "count records", apply: func(tx *bolt.Tx) error {
			_, err := recountWith(tx, anyStateBroken)
			return err
		}},
		// Every record in the tagged form, URIs canonical, duplicates
		// merged (migrate.go).
		{name: "rewrite records", batched: (*DB).rewriteRecords},
		// The expiry sweep reads the channels that expired from an index
		// (expiry.go) instead of every channel; built from the records,
		// which schema 4 put in the current form.
		{name: "index channel expiry", apply: buildExpiryIndex},
	}
}

// SchemaVersion is the schema this build writes.
func SchemaVersion() int { return len(migrations()) }

const schemaKey = "schema"

func (db *DB) migrate(readOnly bool) (err error) {
	defer func() {
		// A damaged branch page makes bbolt panic while reading; the
		// transaction has been rolled back by then.
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrCorrupt, r)
		}
	}()
	ms := migrations()
	var cur int
	check := func(tx *bolt.Tx) error {
		var err error
		if cur, err = schemaOf(tx); err != nil {
			return err
		}
		if cur > len(ms) {
			return fmt.Errorf("schema version %d is newer than this tilecast supports (%d): run a newer tilecast or restore a backup", cur, len(ms))
		}
		if cur < len(ms) && readOnly {
			return fmt.Errorf("schema version %d needs migrating to %d: open it read-write once", cur, len(ms))
		}
		return nil
	}
	if err := db.bolt.View(check); err != nil || readOnly {
		return err
	}
	quiet := cur == 0 // a new file's steps are no news
	for cur < len(ms) {
		if ms[cur].batched != nil {
			start := cur
			if err := ms[cur].batched(db, cur+1, quiet); err != nil {
				return fmt.Errorf("migration %d (%s): %w", start+1, ms[start].name, err)
			}
			cur++
			continue
		}
		// The steps up to the next batched one run in one transaction.
		err := db.bolt.Update(func(tx *bolt.Tx) error {
			if err := check(tx); err != nil {
				return err
			}
			for ; cur < len(ms) && ms[cur].batched == nil; cur++ {
				start := time.Now()
				if err := ms[cur].apply(tx); err != nil {
					return fmt.Errorf("migration %d (%s): %w", cur+1, ms[cur].name, err)
				}
				if !quiet {
					db.log.Info("state file migrated", "schema", cur+1, "step", ms[cur].name, "duration", time.Since(start))
				}
			}
			return tx.Bucket([]byte(bucketMeta)).Put([]byte(schemaKey), []byte(strconv.Itoa(cur)))
		})
		if err != nil {
			return err
		}
	}
	// Count records removed by hand are counted again rather than serve
	// no counts.
	missing := false
	if err := db.bolt.View(func(tx *bolt.Tx) error {
		_, err := decodeTotals(tx.Bucket([]byte(bucketMeta)).Get([]byte(countsKey)))
		missing = err != nil
		return nil
	}); err != nil || !missing {
		return err
	}
	return db.bolt.Update(func(tx *bolt.Tx) error { return db.ensureCounts(tx, stateBroken) })
}

// schemaOf returns the file's schema version: 0 for a new, empty file.
func schemaOf(tx *bolt.Tx) (int, error) {
	meta := tx.Bucket([]byte(bucketMeta))
	if meta == nil {
		foreign := false
		_ = tx.ForEach(func([]byte, *bolt.Bucket) error { foreign = true; return nil })
		if foreign {
			return 0, errors.New("not a tilecast state file (no meta bucket)")
		}
		return 0, nil
	}
	v := meta.Get([]byte(schemaKey))
	if v == nil {
		return 0, nil
	}
	n, err := strconv.Atoi(string(v))
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%w: bad schema version %q", ErrCorrupt, v)
	}
	return n, nil
}

// view and update run fn with the tilecast buckets of a transaction.
func (db *DB) view(fn func(b *buckets) error) error {
	return db.bolt.View(func(tx *bolt.Tx) error {
		b, err := bucketsOf(tx)
		if err != nil {
			return err
		}
		return fn(b)
	})
}

// viewBucket is view for reads of one bucket: the per-poll reads (feed
// state, seen set) skip looking up the other fourteen.
func (db *DB) viewBucket(name string, fn func(b *bolt.Bucket) error) error {
	return db.bolt.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(name))
		if b == nil {
			return fmt.Errorf("%w: bucket %s is missing", ErrCorrupt, name)
		}
		return fn(b)
	})
}

// batch is update for writers that run concurrently (feed commits): bbolt
// coalesces calls from several goroutines into one transaction, so a tick of
// many feeds pays one fsync pair per group instead of one per feed. fn may
// run more than once (bbolt retries the others alone when one fails), so it
// must not have effects outside the transaction.
func (db *DB) batch(fn func(b *buckets) error) error {
	return db.bolt.Batch(func(tx *bolt.Tx) error {
		b, err := bucketsOf(tx)
		if err != nil {
			return err
		}
		if err := fn(b); err != nil {
			return err
		}
		return b.saveCounts()
	})
}

func (db *DB) update(fn func(b *buckets) error) error {
	return db.bolt.Update(func(tx *bolt.Tx) error {
		b, err := bucketsOf(tx)
		if err != nil {
			return err
		}
		if err := fn(b); err != nil {
			return err
		}
		return b.saveCounts()
	})
}

// hit calls the failpoint hook, if any (see Options.Failpoint).
func (db *DB) hit(point string) {
	if db.failpoint != nil {
		db.failpoint(point)
	}
}
