package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tilecast/tilecast"
)

// DefaultTimeout bounds one store call (a query or a transaction with its
// retries) when Options.Timeout is zero: a database that stops answering
// becomes an error, not a daemon that hangs.
const DefaultTimeout = 2 * time.Minute

// DefaultHoldCheck is how often the connection holding the shared run
// lock is checked when Options.HoldCheck is zero: it matters only for how
// soon a state copy is refused again after that connection was lost, not
// for what the daemon writes meanwhile (see prepareConn).
const DefaultHoldCheck = 5 * time.Second

// holdPingTimeout bounds one check of the run lock's connection: one that
// does not answer by then is taken for lost.
const holdPingTimeout = 5 * time.Second

// Options configure Open.
type Options struct {
	// Now is the clock (channel creation, ledger pruning, record times);
	// nil means time.Now.
	Now func() time.Time
	// Failpoint, when set, is called inside the transactions of Commit
	// (tilecast.FailInCommit) and Record (tilecast.FailInRecord), after
	// their last write and before they commit. The crash tests make the
	// process exit there: the server then rolls the transaction back.
	Failpoint func(point string)
	// Logger receives what Open does to the schema (migrations) and the
	// channel changes worth a line (rotations); nil discards it.
	Logger *slog.Logger
	// Progress, when set, is called after each schema migration with the
	// migrations applied so far and the number to apply.
	Progress func(done, total int)
	// PasswordFile names a file whose content (trailing newline removed)
	// is the password ([store] password_file). Without it the password is
	// the URL's, or PGPASSWORD's, or ~/.pgpass's (pgx reads those).
	PasswordFile string
	// Timeout bounds each call; zero means DefaultTimeout.
	Timeout time.Duration
	// MaxConns is the size of the connection pool; zero means pgxpool's
	// default (4, or the number of CPUs if more).
	MaxConns int32

	// Instance, when set, names this process among the daemons sharing
	// the database (design.md §10): it heartbeats into the instances
	// table, Due leases the entries it returns to it (FOR UPDATE SKIP
	// LOCKED) for Lease, extended every quarter lease, and ClaimTick works.
	// Unset, Due leases nothing (tools, tests) but still passes over
	// entries another instance holds.
	Instance string
	// Lease is how long a lease lasts unless extended; zero means
	// DefaultLease. The heartbeat (every 24th of it) and the silence after
	// which the others take the instance's unfinished feed ticks for a dead
	// one's (a sixth) follow from it.
	Lease time.Duration
	// LeaseBatch caps the entries one Due leases (0: its limit). Leases
	// a dead instance leaves are counted as possible duplicates, so the
	// daemon keeps them near its send window (2 × push.concurrency).
	LeaseBatch int
	// PossibleDuplicates, when set, is told how many entries Due took
	// over whose lease ended without an outcome recorded (an instance
	// died, or this one before a restart): each may have reached its
	// device already and goes out again.
	PossibleDuplicates func(n int)
	// Version is the tilecast version an instance's row shows.
	Version string
	// HoldCheck is how often the connection holding the shared run lock
	// (Hold) is checked, and the lock taken again on another connection
	// when it was lost; zero means DefaultHoldCheck.
	HoldCheck time.Duration
	// Wake, when set (with Instance), is called when another process
	// committed new outbox entries (LISTEN/NOTIFY), and after the
	// listening connection was lost and is back; the daemon wakes its
	// deliverer, which otherwise polls.
	Wake func()
}

// DB is tilecast's state in a PostgreSQL database. It implements
// tilecast.Store; it is safe for concurrent use, and several processes
// may use one database (each call is one transaction).
type DB struct {
	pool    *pgxpool.Pool
	url     string // redacted: for messages
	now     func() time.Time
	log     *slog.Logger
	timeout time.Duration
	hitFn   func(point string)
	stats   *tracer

	// garbage is set when entries were deleted: payload rows may be left
	// that no entry references (NextDue clears them when the outbox is
	// empty, PruneLedger always).
	garbage atomic.Bool

	// The run lock (Hold). holdMode is what Hold took (holdNone, holdShared,
	// holdExclusive); with holdShared, every connection of the pool takes
	// the shared lock too before it is used (prepareConn), and keepHold
	// replaces hold when it is lost.
	holdMu    sync.Mutex
	hold      *pgxpool.Conn // the connection holding the run lock; nil while lost
	holdMode  atomic.Int32
	holdEvery time.Duration
	holdStop  context.CancelFunc // ends keepHold
	holdDone  chan struct{}      // closed when keepHold returned

	inst *instance // nil unless Options.Instance

	growth growth // rows added to the tables the store analyzes itself (analyze.go)
}

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migration is one schema step: an embedded SQL file NNN_name.sql.
type migration struct {
	version int
	name    string
	sql     string
}

// migrations returns the schema history in order. Append only: a
// released file never changes, because databases in the field ran it.
func migrations() ([]migration, error) {
	ents, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, e := range ents {
		num, name, ok := strings.Cut(strings.TrimSuffix(e.Name(), ".sql"), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v != len(out)+1 {
			return nil, fmt.Errorf("migration file %s: want %03d_name.sql", e.Name(), len(out)+1)
		}
		b, err := fs.ReadFile(migrationFiles, "migrations/"+e.Name())
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: name, sql: string(b)})
	}
	return out, nil
}

// SchemaVersion is the schema this build writes.
func SchemaVersion() int {
	ms, err := migrations()
	if err != nil {
		return 0
	}
	return len(ms)
}

// IsURL reports whether state (the config's `state`) names a PostgreSQL
// database rather than a bbolt file.
func IsURL(state string) bool {
	return strings.HasPrefix(state, "postgres://") || strings.HasPrefix(state, "postgresql://")
}

// Redact returns the URL u with any password replaced, for logs and
// messages: a password is never shown.
func Redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		// Unparsable: show the scheme at most.
		if i := strings.Index(u, "://"); i >= 0 {
			return u[:i+3] + "…"
		}
		return "(a database URL)"
	}
	if p.User != nil {
		if _, ok := p.User.Password(); ok {
			p.User = url.UserPassword(p.User.Username(), "xxxxx")
		}
	}
	q := p.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		p.RawQuery = q.Encode()
	}
	return p.String()
}

// HasPassword reports whether the URL carries a password (in its user
// info or as a password parameter), which `check` warns about.
func HasPassword(u string) bool {
	p, err := url.Parse(u)
	if err != nil {
		return false
	}
	if p.User != nil {
		if _, ok := p.User.Password(); ok {
			return true
		}
	}
	return p.Query().Has("password")
}

// Open connects to the database at dbURL (postgres:// or postgresql://),
// and brings its schema up to date under an advisory lock, each migration
// in a transaction with its row in tilecast_schema. A database whose
// schema is newer than this build is refused, naming both versions.
func Open(ctx context.Context, dbURL string, opts Options) (*DB, error) {
	red := Redact(dbURL)
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		// pgx's message may quote the URL: say what is wrong without it.
		return nil, fmt.Errorf("state %s: not a valid PostgreSQL URL", red)
	}
	if opts.PasswordFile != "" {
		b, err := os.ReadFile(opts.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("store.password_file: %w", err)
		}
		pw := strings.TrimRight(string(b), "\r\n")
		if pw == "" {
			return nil, fmt.Errorf("store.password_file %s is empty", opts.PasswordFile)
		}
		cfg.ConnConfig.Password = pw
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	st := &tracer{}
	cfg.ConnConfig.Tracer = st
	if cfg.ConnConfig.RuntimeParams == nil {
		cfg.ConnConfig.RuntimeParams = map[string]string{}
	}
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = "tilecast"
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	holdEvery := opts.HoldCheck
	if holdEvery <= 0 {
		holdEvery = DefaultHoldCheck
	}
	db := &DB{url: red, now: now, log: log, timeout: timeout, hitFn: opts.Failpoint, stats: st, holdEvery: holdEvery}
	cfg.PrepareConn = db.prepareConn
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("state %s: %w", red, err)
	}
	db.pool = pool
	if err := db.migrate(ctx, opts.Progress); err != nil {
		pool.Close()
		return nil, fmt.Errorf("state %s: %w", red, err)
	}
	if opts.Instance != "" {
		if err := db.join(opts); err != nil {
			pool.Close()
			return nil, fmt.Errorf("state %s: %w", red, err)
		}
	}
	return db, nil
}

// Close leaves the instances (releasing the leases this instance holds),
// releases the run lock (Hold) and closes the pool.
func (db *DB) Close() error {
	if db.inst != nil {
		db.leave()
	}
	// keepHold stops first (outside holdMu, which its checks take).
	db.holdMu.Lock()
	stop, done := db.holdStop, db.holdDone
	db.holdMu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
	db.holdMu.Lock()
	// Unlocked here, not when the server notices the connections closed:
	// a state copy started right after a stop must find it free. With the
	// shared lock every idle connection of the pool holds it too.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	shared := db.holdMode.Swap(holdNone) == holdShared
	if db.hold != nil {
		_, _ = db.hold.Exec(ctx, "SELECT pg_advisory_unlock_all()")
		db.hold.Release()
		db.hold = nil
	}
	if shared {
		for _, c := range db.pool.AcquireAllIdle(ctx) {
			if c.Conn().PgConn().CustomData()[runLockMark] == true {
				_, _ = c.Exec(ctx, "SELECT pg_advisory_unlock_all()")
				delete(c.Conn().PgConn().CustomData(), runLockMark)
			}
			c.Release()
		}
	}
	cancel()
	db.holdMu.Unlock()
	db.pool.Close()
	return nil
}

// URL returns the database URL without its password.
func (db *DB) URL() string { return db.url }

// Statements returns how many SQL statements (queries, batched queries,
// COPYs, BEGIN and COMMIT) this DB has sent since Open: a benchmark
// divides it by the notifications it sent.
func (db *DB) Statements() uint64 { return db.stats.statements.Load() }

// lockKey is the advisory lock key of what (e.g. "migrate") for the
// schema the connection uses: several tilecast states may share one
// database in different schemas.
const lockKey = "hashtextextended('tilecast ' || $1 || ' ' || current_schema(), 0)"

func (db *DB) migrate(ctx context.Context, progress func(done, total int)) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock("+lockKey+")", "migrate"); err != nil {
		return fmt.Errorf("schema lock: %w", err)
	}
	defer conn.Exec(context.Background(), "SELECT pg_advisory_unlock("+lockKey+")", "migrate")
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS tilecast_schema (
		version    integer PRIMARY KEY,
		name       text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("schema version table: %w", err)
	}
	var cur int
	if err := conn.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM tilecast_schema").Scan(&cur); err != nil {
		return fmt.Errorf("schema version: %w", err)
	}
	if cur > len(ms) {
		return fmt.Errorf("database schema version %d is newer than this tilecast supports (%d): run a newer tilecast", cur, len(ms))
	}
	quiet := cur == 0 // a new database's steps are no news
	total := len(ms) - cur
	for i, m := range ms[cur:] {
		start := time.Now()
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO tilecast_schema (version, name) VALUES ($1, $2)", m.version, m.name)
			return err
		})
		if err != nil {
			return fmt.Errorf("migration %d (%s): %w", m.version, m.name, err)
		}
		if !quiet {
			db.log.Info("state database migrated", "schema", m.version, "step", m.name, "duration", time.Since(start))
		}
		if progress != nil {
			progress(i+1, total)
		}
	}
	return nil
}

// Run lock modes (DB.holdMode).
const (
	holdNone = iota
	holdShared
	holdExclusive
)

// runLockMark is the key, in a connection's CustomData, that says its
// session holds the shared run lock.
const runLockMark = "tilecast run lock"

// Hold takes the run lock for the life of the DB: shared by the processes
// that run the Bot (run, once), exclusive for `state copy`, which must
// have the database to itself. A lock another process holds in the other
// mode is tilecast.ErrStateLocked at once.
//
// A session's advisory lock ends with its session, and a connection can
// be lost at any time (a cut network, a restart of the server). So with
// the shared lock every connection the DB uses takes it too, before its
// first use (prepareConn): nothing is written on a connection whose
// session does not hold it, and while a state copy holds the database
// every call fails with tilecast.ErrStateLocked. And Hold keeps one
// connection of the pool holding it even while the DB is idle, checked
// every Options.HoldCheck and replaced when lost (keepHold), so that a
// state copy is refused while this process runs. The exclusive lock is
// never taken again once lost (a tilecast may have written meanwhile):
// the copy's Export and import then fail (stillHeld).
func (db *DB) Hold(ctx context.Context, exclusive bool) error {
	db.holdMu.Lock()
	defer db.holdMu.Unlock()
	if db.holdMode.Load() != holdNone {
		return nil
	}
	if exclusive {
		conn, err := db.pool.Acquire(ctx)
		if err != nil {
			return fmt.Errorf("run lock: %w", err)
		}
		var ok bool
		if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock("+lockKey+")", "run").Scan(&ok); err != nil {
			conn.Release()
			return fmt.Errorf("run lock: %w", err)
		}
		if !ok {
			conn.Release()
			return fmt.Errorf("database %s: a tilecast runs on it (stop it first): %w", db.url, tilecast.ErrStateLocked)
		}
		db.hold = conn // a session lock: held as long as this connection is
		db.holdMode.Store(holdExclusive)
		return nil
	}
	// From here on every connection takes the lock before it is used;
	// this one, kept, holds it for as long as its session lasts.
	db.holdMode.Store(holdShared)
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		db.holdMode.Store(holdNone)
		if errors.Is(err, tilecast.ErrStateLocked) {
			return err
		}
		return fmt.Errorf("run lock: %w", err)
	}
	db.hold = conn
	kctx, stop := context.WithCancel(context.Background())
	db.holdStop, db.holdDone = stop, make(chan struct{})
	go db.keepHold(kctx)
	return nil
}

// prepareConn is the pool's PrepareConn: while the DB holds the shared run
// lock, a connection is handed out only once its own session holds the
// shared lock too. A session lock lasts as long as its session, so no
// state copy (the exclusive lock) runs while such a connection is used,
// whatever became of the connection Hold keeps; and a connection made
// while a copy runs, after an outage cut the others, cannot take it: the
// call fails with tilecast.ErrStateLocked instead of writing under the
// copy.
func (db *DB) prepareConn(ctx context.Context, c *pgx.Conn) (bool, error) {
	if db.holdMode.Load() != holdShared {
		return true, nil
	}
	data := c.PgConn().CustomData()
	if data[runLockMark] == true {
		return true, nil
	}
	var ok bool
	if err := c.QueryRow(ctx, "SELECT pg_try_advisory_lock_shared("+lockKey+")", "run").Scan(&ok); err != nil {
		// A broken connection, or ctx ended: not one to hand out.
		return false, fmt.Errorf("run lock: %w", err)
	}
	if !ok {
		// Kept in the pool: it tries again when it is next handed out,
		// rather than a new connection for each call while the copy runs.
		return true, fmt.Errorf("database %s: a state copy is running on it: %w", db.url, tilecast.ErrStateLocked)
	}
	data[runLockMark] = true
	return true, nil
}

// keepHold checks the connection that keeps the shared run lock every
// holdEvery, and when it was lost takes the lock again on another one,
// until ctx ends (Close). Each change is logged once.
func (db *DB) keepHold(ctx context.Context) {
	defer close(db.holdDone)
	t := time.NewTicker(db.holdEvery)
	defer t.Stop()
	var failed error // the last failed attempt to take it again; nil: held
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		lost, err := db.checkHold(ctx)
		if ctx.Err() != nil {
			return
		}
		if lost != nil {
			db.log.Warn("state database: the connection holding the run lock was lost; taking the lock again", "error", lost.Error())
		}
		switch {
		case err == nil && (failed != nil || lost != nil):
			db.log.Info("state database: run lock held again")
		case err != nil && (failed == nil || errors.Is(err, tilecast.ErrStateLocked) != errors.Is(failed, tilecast.ErrStateLocked)):
			db.log.Error("state database: cannot take the run lock again; retrying", "error", err.Error())
		}
		failed = err
	}
}

// checkHold makes sure a connection holds the shared run lock for the DB:
// the one it has if that answers, else (lost is why) a connection of the
// pool, which takes the lock before it is handed out (prepareConn); err
// is why it has none.
func (db *DB) checkHold(stop context.Context) (lost, err error) {
	db.holdMu.Lock()
	defer db.holdMu.Unlock()
	wait := min(db.timeout, holdPingTimeout)
	ctx, cancel := context.WithTimeout(stop, wait)
	defer cancel()
	if db.hold != nil {
		lost = db.hold.Ping(ctx)
		if lost == nil {
			return nil, nil
		}
		if stop.Err() != nil {
			// Close: the connection is its to unlock and release.
			return nil, stop.Err()
		}
		if errors.Is(lost, context.DeadlineExceeded) {
			// The session may live on, but it is no longer one to count on.
			lost = fmt.Errorf("no answer in %s: %w", wait, lost)
		}
		// Its session ends, and the lock it held with it (if the server
		// had not ended it already).
		drop(db.hold)
		db.hold = nil
	}
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return lost, err
	}
	// The pool pings only a connection idle for a second or more: one the
	// same cut ended may come back, marked as holding the lock.
	if err := conn.Ping(ctx); err != nil {
		drop(conn)
		return lost, fmt.Errorf("run lock: %w", err)
	}
	db.hold = conn
	return lost, nil
}

// drop closes a connection of the pool and releases it, so that it leaves
// the pool.
func drop(c *pgxpool.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = c.Conn().Close(ctx)
	c.Release()
}

// stillHeld returns an error unless the exclusive run lock Hold took has
// been held ever since: its connection still answers (a session lock
// ends only with its session, and it is never taken again). Without the
// exclusive lock it returns nil.
func (db *DB) stillHeld(ctx context.Context) error {
	if db.holdMode.Load() != holdExclusive {
		return nil
	}
	db.holdMu.Lock()
	defer db.holdMu.Unlock()
	if db.hold == nil {
		return nil // closed
	}
	ctx, cancel := context.WithTimeout(ctx, min(db.timeout, holdPingTimeout))
	defer cancel()
	if err := db.hold.Ping(ctx); err != nil {
		return fmt.Errorf("database %s: the run lock was lost with its connection, so a tilecast may have written meanwhile: %w", db.url, err)
	}
	return nil
}

// hit calls the failpoint hook, if any.
func (db *DB) hit(point string) {
	if db.hitFn != nil && point != "" {
		db.hitFn(point)
	}
}

func (db *DB) opCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), db.timeout)
}

// txn is one write transaction with the count changes it makes.
type txn struct {
	pgx.Tx
	ctx     context.Context
	delta   countDelta
	garbage bool // entries were deleted (payloads may be left unreferenced)
	notify  bool // entries were added: NOTIFY the listening instances
}

// maxRetries is how often a transaction that lost a deadlock or a unique
// race (two writers adding the same waiting tile) is run again.
const maxRetries = 5

// write runs fn in a transaction, adds its count changes, calls the
// failpoint (point, "" for none) and commits. fn runs again, from the
// start, when the transaction lost a deadlock or a unique race; it must
// have no effect outside the transaction.
func (db *DB) write(point string, fn func(t *txn) error) error {
	ctx, cancel := db.opCtx()
	defer cancel()
	for attempt := 0; ; attempt++ {
		t := &txn{ctx: ctx}
		err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
			t.Tx = tx
			if err := fn(t); err != nil {
				return err
			}
			if err := t.saveCounts(); err != nil {
				return err
			}
			db.hit(point)
			return nil
		})
		if err != nil && attempt < maxRetries && retryable(err) {
			continue
		}
		if err == nil && t.garbage {
			db.garbage.Store(true)
		}
		if err == nil {
			db.grew("outbox", t.delta.outbox)
			db.grew("channels", t.delta.channels)
		}
		return err
	}
}

// retryable reports whether err is a transaction a retry may get through.
func retryable(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	switch pe.Code {
	case "40P01", "40001", "23505": // deadlock, serialization, unique violation
		return true
	}
	return false
}

// lockChannels serialises the transactions that change which channels
// exist or what identifies them (registrations, removals): a
// registration reads the channels of a URI and of a device and then
// writes, and must not interleave with another doing the same.
func (t *txn) lockChannels() error {
	_, err := t.Exec(t.ctx, "SELECT pg_advisory_xact_lock("+lockKey+")", "channels")
	return err
}

// tracer counts statements for Statements.
type tracer struct{ statements atomic.Uint64 }

func (s *tracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	s.statements.Add(1)
	return ctx
}
func (s *tracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (s *tracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return ctx
}
func (s *tracer) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {
	s.statements.Add(1)
}
func (s *tracer) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}
func (s *tracer) TraceCopyFromStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceCopyFromStartData) context.Context {
	s.statements.Add(1)
	return ctx
}
func (s *tracer) TraceCopyFromEnd(context.Context, *pgx.Conn, pgx.TraceCopyFromEndData) {}

// okText reports whether s can be a PostgreSQL text value: valid UTF-8
// without NUL. A name that cannot be stored names nothing stored.
func okText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

// distinct returns ss without duplicates, in first-seen order.
func distinct(ss []string) []string {
	out := make([]string, 0, len(ss))
	seen := make(map[string]struct{}, len(ss))
	for _, s := range ss {
		if _, ok := seen[s]; !ok {
			seen[s] = struct{}{}
			out = append(out, s)
		}
	}
	return out
}
