package postgres

import (
	"context"
	"fmt"
	"sync"
)

// The planner judges a statement by the statistics ANALYZE last left for
// its tables, and autovacuum refreshes them only when a table has changed
// by a tenth and it next wakes (a minute by default). A fan-out fills the
// outbox from almost nothing to twice the channels within seconds, and
// the first day's sends fill daily_caps with a row per channel: planned
// from "nearly empty", a lease or a reservation scans the whole table at
// every call, which grows with the table, so a 100k fan-out would cost
// the server the square of its size. So the store analyzes such a table
// itself each time it has doubled (by its own writes, since it opened or
// since its last ANALYZE) — a few times per fan-out, not per page. ANALYZE
// also makes the plans PostgreSQL cached for the table's statements be
// made again.

// analyzeMin is the growth below which a table is left to autovacuum: a
// scan of a thousand rows costs less than an ANALYZE.
const analyzeMin = 1000

// growth counts the rows this DB added to the tables it analyzes.
type growth struct {
	mu      sync.Mutex
	tables  map[string]*tableGrowth
	running bool // an ANALYZE is under way; the others wait for the next growth
}

type tableGrowth struct {
	base  int64 // rows at the last ANALYZE (pg_class.reltuples), -1 before it is read
	added int64 // rows added since
}

// grew records that a committed transaction added n rows to table and
// analyzes it when it has doubled since the planner's statistics were
// made. Errors are logged: statistics are an optimisation.
func (db *DB) grew(table string, n int64) {
	if n <= 0 {
		return
	}
	g := &db.growth
	g.mu.Lock()
	if g.tables == nil {
		g.tables = map[string]*tableGrowth{}
	}
	tg := g.tables[table]
	if tg == nil {
		tg = &tableGrowth{base: -1}
		g.tables[table] = tg
	}
	tg.added += n
	if tg.added < analyzeMin || (tg.base >= 0 && tg.added < tg.base) || g.running {
		g.mu.Unlock()
		return
	}
	g.running = true
	base, added := tg.base, tg.added
	g.mu.Unlock()

	done := func(newBase int64, analyzed bool) {
		g.mu.Lock()
		defer g.mu.Unlock()
		g.running = false
		if analyzed {
			// What others added meanwhile may not be in the statistics:
			// it counts toward the next doubling.
			tg.base, tg.added = newBase, tg.added-added
		} else if newBase >= 0 {
			tg.base = newBase
		}
	}
	ctx, cancel := db.opCtx()
	defer cancel()
	if base < 0 {
		// The first look: what the planner believes now.
		var err error
		if base, err = db.reltuples(ctx, table); err != nil {
			db.log.Warn("read table statistics", "table", table, "error", err.Error())
			done(-1, false)
			return
		}
		if added < base {
			done(base, false)
			return
		}
	}
	rows, err := db.analyze(ctx, table)
	if err != nil {
		db.log.Warn("analyze a table that grew; autovacuum will", "table", table, "error", err.Error())
		done(base, false)
		return
	}
	done(rows, true)
}

// analyze runs ANALYZE on table and returns the rows it now counts.
func (db *DB) analyze(ctx context.Context, table string) (int64, error) {
	if _, err := db.pool.Exec(ctx, "ANALYZE "+table); err != nil {
		return 0, fmt.Errorf("analyze %s: %w", table, err)
	}
	rows, err := db.reltuples(ctx, table)
	if err != nil {
		return 0, fmt.Errorf("analyze %s: %w", table, err)
	}
	return rows, nil
}

// reltuples is the planner's row count of table (pg_class.reltuples; -1,
// never analyzed, reads as 0).
func (db *DB) reltuples(ctx context.Context, table string) (int64, error) {
	var est float64
	if err := db.pool.QueryRow(ctx, "SELECT reltuples FROM pg_class WHERE oid = $1::regclass", table).Scan(&est); err != nil {
		return 0, err
	}
	return max(int64(est), 0), nil
}
