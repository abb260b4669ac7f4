package postgres

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/tilecast/tilecast"
)

// DefaultLease is how long an outbox entry Due hands to an instance stays
// its own when Options.Lease is zero. The instance's beat (every quarter
// lease) extends the leases it holds, so a live instance keeps them
// however long a send waits; an instance that died loses them a lease
// after its last beat.
const DefaultLease = 2 * time.Minute

// An instance also pulses: it writes its heartbeat alone every
// lease/pulsesPerLease (5 s with DefaultLease), and the others take an
// instance silent for silentPulses of those (20 s) as gone when they
// judge whether its unfinished tick still holds a feed back (ClaimTick).
// The lease is too slow for that: a feed scheduled every minute would
// lose the next tick, and often the one after, to an instance that died.
// Four intervals leave a live instance room for a late or failed pulse
// and a few seconds of clock difference (see ClaimTick) before it is
// taken for gone. A pulse is one single-row write; the sweeps and lease
// extensions keep the quarter-lease beat, so pulsing often costs little.
const (
	pulsesPerLease = 24
	silentPulses   = 4
)

// pulseEvery is the pulse interval of an instance with the given lease
// (its floor only matters to leases of a fraction of a second, in tests).
func pulseEvery(lease time.Duration) time.Duration {
	return max(lease/pulsesPerLease, 10*time.Millisecond)
}

// silence is how long an instance with the given lease may go without a
// heartbeat before its unfinished ticks hold nothing back.
func silence(lease time.Duration) time.Duration {
	return lease * silentPulses / pulsesPerLease
}

// silenceShare is silence as a share of the lease, for SQL that judges
// each instance by its own lease column (ClaimTick, Instances): one value,
// so the two cannot call the same instance alive and gone.
const silenceShare = float64(silentPulses) / pulsesPerLease

// maxTickRun is how long a live instance's unfinished tick holds back the
// next ticks of its feed key: a run longer than that is stuck, or its end
// was not recorded.
const maxTickRun = time.Hour

// Tick rows and heartbeats of stopped instances are kept this long, for
// status and for a look at who ran what.
const (
	tickRetention     = 48 * time.Hour
	instanceRetention = 24 * time.Hour
)

// instance is the part of a DB that one of several daemons sharing the
// database has (Options.Instance).
type instance struct {
	id      string
	lease   time.Duration
	batch   int
	dupFn   func(n int)
	version string

	stop   chan struct{}
	beats  sync.WaitGroup // the heartbeat and pulse loops
	halted sync.Once
	left   sync.Once

	stopListen context.CancelFunc // nil: not listening (no Options.Wake)
	listenDone chan struct{}
	// beatErr and pulseErr are the last beat's and pulse's errors (nil:
	// it got through).
	beatErr, pulseErr errBox
}

// errBox holds an error for concurrent readers.
type errBox struct{ p atomic.Pointer[error] }

func (b *errBox) load() error {
	if p := b.p.Load(); p != nil {
		return *p
	}
	return nil
}

func (b *errBox) store(err error) {
	if err == nil {
		b.p.Store(nil)
		return
	}
	b.p.Store(&err)
}

// join registers the instance (its row in instances), finishes the ticks
// a previous run of the same instance ID left unfinished, and starts the
// heartbeat.
func (db *DB) join(opts Options) error {
	inst := &instance{id: opts.Instance, lease: opts.Lease, batch: opts.LeaseBatch, dupFn: opts.PossibleDuplicates,
		version: opts.Version, stop: make(chan struct{})}
	if inst.lease <= 0 {
		inst.lease = DefaultLease
	}
	if !okText(inst.id) || inst.id == "" {
		return fmt.Errorf("instance name %q: want a non-empty UTF-8 name without NUL", inst.id)
	}
	db.inst = inst
	if err := db.beat(true); err != nil {
		return fmt.Errorf("instance %s: %w", inst.id, err)
	}
	ctx, cancel := db.opCtx()
	defer cancel()
	// This instance runs nothing yet: a tick a previous run of it left
	// open must not hold back the next tick of that feed.
	if _, err := db.pool.Exec(ctx, "UPDATE feed_ticks SET done = $2 WHERE instance = $1 AND done IS NULL", inst.id, db.now()); err != nil {
		return fmt.Errorf("instance %s: open ticks: %w", inst.id, err)
	}
	inst.beats.Go(db.heartbeats)
	inst.beats.Go(db.pulses)
	if opts.Wake != nil {
		var schema string
		if err := db.pool.QueryRow(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
			return fmt.Errorf("instance %s: %w", inst.id, err)
		}
		lctx, stop := context.WithCancel(context.Background())
		inst.stopListen, inst.listenDone = stop, make(chan struct{})
		go db.listen(lctx, schema, opts.Wake)
	}
	return nil
}

// workChannel is the NOTIFY channel of new outbox entries; the payload is
// the schema, since states in different schemas of one database share
// channel names.
const workChannel = "tilecast_work"

// listen calls wake for each notification of new work in schema until
// ctx is done, on a connection of its own (LISTEN holds it), and again
// each time it reconnects after losing it: what was committed meanwhile
// was not announced. A lost connection is retried every few seconds;
// meanwhile the deliverer's polling finds the work.
func (db *DB) listen(ctx context.Context, schema string, wake func()) {
	defer close(db.inst.listenDone)
	cfg := db.pool.Config().ConnConfig.Copy()
	// Named apart from the pool's connections, so an operator (or a test)
	// sees in pg_stat_activity which connection listens for which instance.
	cfg.RuntimeParams["application_name"] = listenerName(cfg.RuntimeParams["application_name"], db.inst.id)
	for first := true; ; first = false {
		err := func() error {
			conn, err := pgx.ConnectConfig(ctx, cfg)
			if err != nil {
				return err
			}
			defer conn.Close(context.Background())
			if _, err := conn.Exec(ctx, "LISTEN "+workChannel); err != nil {
				return err
			}
			if !first {
				wake()
			}
			for {
				n, err := conn.WaitForNotification(ctx)
				if err != nil {
					return err
				}
				if n.Payload == schema {
					wake()
				}
			}
		}()
		if ctx.Err() != nil {
			return
		}
		db.log.Warn("state database: listening for new work failed; polling until it is back", "error", err.Error())
		select {
		case <-ctx.Done():
			return
		case <-time.After(3 * time.Second):
		}
	}
}

// listenerName is the application_name of instance id's listening
// connection: app's, with " listen " and the instance, cut to the 63
// bytes PostgreSQL keeps (at a rune boundary).
func listenerName(app, id string) string {
	n := app + " listen " + id
	for len(n) > 63 {
		_, size := utf8.DecodeLastRuneInString(n)
		n = n[:len(n)-size]
	}
	return n
}

// heartbeats beats (lease extensions, sweeps) every quarter lease until
// leave.
func (db *DB) heartbeats() {
	db.every(max(db.inst.lease/4, 100*time.Millisecond), func() error { return db.beat(false) }, &db.inst.beatErr)
}

// pulses writes the heartbeat alone every pulse interval until leave. It
// is a loop of its own so that a slow beat (its sweeps) never delays it:
// a late pulse could get a live instance taken for gone.
func (db *DB) pulses() {
	db.every(pulseEvery(db.inst.lease), db.pulse, &db.inst.pulseErr)
}

// every calls fn every d until leave, logging when it starts failing and
// when it is back (last holds its previous error).
func (db *DB) every(d time.Duration, fn func() error, last *errBox) {
	inst := db.inst
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-inst.stop:
			return
		case <-t.C:
			err := fn()
			if err != nil && last.load() == nil {
				db.log.Error("state database heartbeat failed", "instance", inst.id, "error", err.Error())
			}
			if err == nil && last.load() != nil {
				db.log.Info("state database heartbeat back", "instance", inst.id)
			}
			last.store(err)
		}
	}
}

// heartbeatSQL writes an instance's row: its heartbeat (pulse), and at
// Open its start time, process and lease too (first).
func heartbeatSQL(first bool) string {
	set := "heartbeat = EXCLUDED.heartbeat"
	if first {
		set += ", started = EXCLUDED.started, host = EXCLUDED.host, pid = EXCLUDED.pid, version = EXCLUDED.version, lease = EXCLUDED.lease"
	}
	return `INSERT INTO instances (id, host, pid, version, started, heartbeat, lease) VALUES ($1, $2, $3, $4, $5, $5, $6)
		ON CONFLICT (id) DO UPDATE SET ` + set
}

// pulse writes the instance's heartbeat and nothing else: the sign of
// life the other instances judge its unfinished ticks by (ClaimTick). An
// upsert, not an update, so an instance whose row went (a clock jump past
// its retention) is back in the table, and its ticks count again.
func (db *DB) pulse() error {
	inst := db.inst
	// A heartbeat that arrives later than the silence is worth nothing.
	ctx, cancel := context.WithTimeout(context.Background(), min(db.timeout, silence(inst.lease)))
	defer cancel()
	host, _ := os.Hostname()
	if _, err := db.pool.Exec(ctx, heartbeatSQL(false), inst.id, host, os.Getpid(), inst.version, db.now(), inst.lease); err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	return nil
}

// beat extends the leases the instance holds and drops tick rows,
// stopped instances and daily cap rows past their retention. first (at
// Open) instead ends the leases a previous run under the same name left
// (it died holding them), and writes the instance's row with its first
// heartbeat. After that only pulses write the heartbeat: with a single
// writer it never goes back, as it could when a slow beat's older time
// landed after a pulse's.
func (db *DB) beat(first bool) error {
	inst := db.inst
	ctx, cancel := context.WithTimeout(context.Background(), min(db.timeout, inst.lease/2))
	defer cancel()
	now := db.now()
	var b pgx.Batch
	if first {
		// Leases under this name now are a previous run's, which died
		// (a stop gives them back): they end now, so Due takes them over
		// at once, as possible duplicates (the owner stays to say so).
		// Extended, they would be held for a process that is gone as long
		// as this one heartbeats; with the end NULL no heartbeat extends
		// them.
		b.Queue("UPDATE outbox SET lease_until = NULL WHERE lease_owner = $1 AND lease_until IS NOT NULL", inst.id)
	} else {
		b.Queue("UPDATE outbox SET lease_until = $2 WHERE lease_owner = $1 AND lease_until IS NOT NULL", inst.id, now.Add(inst.lease))
	}
	b.Queue("DELETE FROM feed_ticks WHERE claimed < $1", now.Add(-tickRetention))
	b.Queue("DELETE FROM instances WHERE heartbeat < $1", now.Add(-instanceRetention))
	b.Queue("DELETE FROM daily_caps WHERE day < $1::date", now.UTC().Add(-capsRetention).Format(time.DateOnly))
	if first {
		host, _ := os.Hostname()
		b.Queue(heartbeatSQL(true), inst.id, host, os.Getpid(), inst.version, now, inst.lease)
	}
	if err := db.pool.SendBatch(ctx, &b).Close(); err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	return nil
}

// leave stops the heartbeat, gives back the leases this instance holds
// (a stop lets its sends finish and be recorded first: what is left was
// never handed to a push service) and removes its row.
func (db *DB) leave() {
	inst := db.inst
	inst.left.Do(func() { db.leaveOnce(inst) })
}

// halt stops the heartbeat and pulse loops and waits for them to end.
func (inst *instance) halt() {
	inst.halted.Do(func() {
		close(inst.stop)
		inst.beats.Wait()
	})
}

func (db *DB) leaveOnce(inst *instance) {
	inst.halt()
	if inst.stopListen != nil {
		inst.stopListen()
		<-inst.listenDone
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var b pgx.Batch
	b.Queue("UPDATE outbox SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1", inst.id)
	// What it gave back is work for the others now.
	b.Queue("SELECT pg_notify('" + workChannel + "', current_schema())")
	b.Queue("DELETE FROM instances WHERE id = $1", inst.id)
	if err := db.pool.SendBatch(ctx, &b).Close(); err != nil {
		db.log.Warn("leave the state database: leases stay until they end", "instance", inst.id, "error", err.Error())
	}
}

// Instance returns this DB's instance name ("" when it is not one of
// several: Options.Instance unset).
func (db *DB) Instance() string {
	if db.inst == nil {
		return ""
	}
	return db.inst.id
}

// Ping reports whether the database answers now (a trivial query within
// timeout), and, after Hold took the shared run lock, whether it may be
// written (no state copy holds it: tilecast.ErrStateLocked), for health
// checks.
func (db *DB) Ping(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := db.pool.Ping(ctx); err != nil {
		if errors.Is(err, tilecast.ErrStateLocked) {
			// It answers, but a state copy has it (prepareConn): no
			// connection may be used until the copy ends.
			return err
		}
		return fmt.Errorf("state database %s unreachable: %w", db.url, err)
	}
	return nil
}

// Instances lists the instances that heartbeat into the database, alive
// or stopped within the last day, by name, with the leases each holds.
// Alive means heard from within the silence (see ClaimTick), as the other
// instances judge it when they take over its feeds: an instance silent
// for longer is reported gone while its outbox leases, which last a
// lease, still count.
func (db *DB) Instances() ([]tilecast.Instance, error) {
	ctx, cancel := db.opCtx()
	defer cancel()
	now := db.now()
	rows, err := db.pool.Query(ctx, `SELECT i.id, i.host, i.pid, i.version, i.started, i.heartbeat,
			i.heartbeat + i.lease * $2::float8 > $1,
			(SELECT count(*) FROM outbox o WHERE o.lease_owner = i.id AND o.lease_until > $1)
		FROM instances i ORDER BY i.id`, now, silenceShare)
	if err != nil {
		return nil, fmt.Errorf("instances: %w", err)
	}
	defer rows.Close()
	var out []tilecast.Instance
	for rows.Next() {
		var in tilecast.Instance
		var leases int64
		if err := rows.Scan(&in.ID, &in.Host, &in.PID, &in.Version, &in.Started, &in.Heartbeat, &in.Alive, &leases); err != nil {
			return nil, fmt.Errorf("instances: %w", err)
		}
		in.Started, in.Heartbeat = in.Started.UTC(), in.Heartbeat.UTC()
		in.Leases = int(leases)
		out = append(out, in)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("instances: %w", err)
	}
	return out, nil
}

// errNoInstance is the error of the calls only an instance may make.
var errNoInstance = errors.New("not opened as an instance (Options.Instance)")

// ClaimTick records that this instance runs the tick of feed key k
// scheduled at at, and reports whether it got it: the first claim of
// (k, at) wins (its primary key), whichever instance's clock was first.
// A tick is refused too while another live instance still runs an
// earlier tick of k (for up to maxTickRun): two runs of a feed at once
// would both diff against the same seen items, enqueue the new ones
// twice, and the later commit of the feed state would win. A tick an
// instance that died left unfinished holds nothing back.
//
// Live means heard from within the silence (silentPulses heartbeats, 20 s
// with DefaultLease), not within the lease: the claim of the next tick is
// made once, at its time, so a dead owner must be told from a slow one by
// then. An instance's last heartbeat is at most a pulse before it died,
// so a feed whose owner died at least the silence before the next tick
// (for a feed every minute: in the first 40 s of the run; a fetch times
// out after 20 s by default) has that tick run by another instance; one
// that died later has the tick after. A live instance pulses from a loop
// of its own, so only an instance that could not write to the database
// for the silence is taken for gone while it runs; should it still
// commit its run later, that run and the next may overlap, which is what
// handing over the next tick at all must risk (a lease-long silence made
// it rarer and lost ticks every time an instance died).
//
// Heartbeats carry the owner's clock and are judged by this instance's
// (the store's clock throughout, which tests set): clocks a few seconds
// apart only take that much from the 15 s (DefaultLease) the silence
// leaves over a pulse, while the claim itself names the tick by its
// scheduled time and so does not depend on clocks at all. The owner's own
// lease sets its silence, since its lease set its pulse.
// It implements tilecast.TickClaimer.
func (db *DB) ClaimTick(k tilecast.FeedKey, at time.Time) (bool, error) {
	if db.inst == nil {
		return false, fmt.Errorf("claim tick: %w", errNoInstance)
	}
	if !okText(k.Feed) || !okText(k.User) {
		return false, fmt.Errorf("claim tick: feed %q, user %q cannot be stored", k.Feed, k.User)
	}
	now := db.now()
	got := false
	err := db.write("", func(t *txn) error {
		got = false
		// Claims of one key one at a time: the check of a running tick
		// and the insert must not interleave with another claim's. (Two
		// keys sharing a lock key only wait for each other.)
		if _, err := t.Exec(t.ctx, "SELECT pg_advisory_xact_lock("+lockKey+")", "tick "+k.Feed+"\n"+k.User); err != nil {
			return err
		}
		// A run of this instance's own is the Bot's to hold back (it
		// does); one whose end was not recorded (TickDone failed) or that
		// has run for an hour holds nothing back, nor one whose instance
		// has been silent (its lease times silenceShare).
		var running bool
		err := t.QueryRow(t.ctx, `SELECT EXISTS (SELECT 1 FROM feed_ticks f JOIN instances i ON i.id = f.instance
			WHERE f.feed = $1 AND f.user_name = $2 AND f.done IS NULL AND f.at <> $3 AND f.instance <> $5
				AND i.heartbeat + i.lease * $7::float8 > $4 AND f.claimed > $6)`,
			k.Feed, k.User, at, now, db.inst.id, now.Add(-maxTickRun), silenceShare).Scan(&running)
		if err != nil || running {
			return err
		}
		tag, err := t.Exec(t.ctx, `INSERT INTO feed_ticks (feed, user_name, at, instance, claimed) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT DO NOTHING`, k.Feed, k.User, at, db.inst.id, now)
		got = err == nil && tag.RowsAffected() == 1
		return err
	})
	if err != nil {
		return false, fmt.Errorf("claim tick: %w", err)
	}
	return got, nil
}

// TickDone marks this instance's run of the tick (k, at) finished.
func (db *DB) TickDone(k tilecast.FeedKey, at time.Time) error {
	if db.inst == nil {
		return fmt.Errorf("tick done: %w", errNoInstance)
	}
	ctx, cancel := db.opCtx()
	defer cancel()
	_, err := db.pool.Exec(ctx, "UPDATE feed_ticks SET done = $5 WHERE feed = $1 AND user_name = $2 AND at = $3 AND instance = $4",
		k.Feed, k.User, at, db.inst.id, db.now())
	if err != nil {
		return fmt.Errorf("tick done: %w", err)
	}
	return nil
}

var _ tilecast.TickClaimer = (*DB)(nil)
