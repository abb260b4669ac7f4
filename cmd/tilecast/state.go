package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/config"
	"github.com/tilecast/tilecast/store"
	"github.com/tilecast/tilecast/store/dump"
	"github.com/tilecast/tilecast/store/postgres"
)

func cmdState(ctx context.Context, e env) error {
	if len(e.args) == 0 || e.args[0] == "-h" || e.args[0] == "--help" {
		fmt.Fprintln(e.stdout, "Usage: tilecast state copy --from FILE|URL --to FILE|URL   (--help for its flags)")
		if len(e.args) == 0 {
			return usagef("state: a subcommand is required")
		}
		return nil
	}
	if e.args[0] != "copy" {
		return usagef("state: unknown subcommand %q (copy)", e.args[0])
	}
	e.args = e.args[1:]
	return cmdStateCopy(ctx, e)
}

// copyStore is what `state copy` needs of a store at either end; both
// stores have it.
type copyStore interface {
	Export(ctx context.Context, fn func(dump.Item) error) error
	Importer() dump.Writer
	Counts() (tilecast.Counts, error)
	FeedStates() (map[tilecast.FeedKey]tilecast.FeedState, error)
	FanOutJobs() ([]tilecast.FanOutJob, error)
	OutcomesPage(f tilecast.OutcomeFilter, cursor string, limit int) ([]tilecast.Outcome, string, error)
	Close() error
}

func cmdStateCopy(ctx context.Context, e env) error {
	fs := newFlags(e, "state copy", "state copy --from FILE|URL --to FILE|URL [--password-file FILE] [--progress 5s]\n\n"+
		"Copies a whole state between stores, in either direction: a bbolt file (a path)\n"+
		"and a PostgreSQL database (postgres://… or postgresql://…), or two of a kind:\n"+
		"channels (IDs, creation times, transports, Web Push keys, devices, delivery\n"+
		"counters), feed states, seen sets, the outbox (entries with their IDs, attempts,\n"+
		"next attempt, creation time and payloads), last tiles, paged deliveries in\n"+
		"progress, dead letters and the delivery ledger.\n\n"+
		"Stop the daemon first: a bbolt file in use by a tilecast is refused (its lock),\n"+
		"and so is a database while any tilecast runs on it. The target must be empty: a\n"+
		"new or empty bbolt file, or a database (or schema, with search_path=SCHEMA in\n"+
		"the URL) with no tilecast state in it; the copy never merges or overwrites.\n"+
		"The source is counted first; progress goes to stderr: a bar on a terminal, else\n"+
		"a line every --progress. At the end the records of each kind in the target are\n"+
		"counted and compared with the source, and the running counts too: any\n"+
		"difference is an error (exit 1). A copy that fails leaves the target partly\n"+
		"written: empty it before trying again.\n\n"+
		"The database password comes from the URL, PGPASSWORD, ~/.pgpass or\n"+
		"--password-file. PostgreSQL keeps times to the microsecond, bbolt to the\n"+
		"nanosecond: times copied from a file are rounded down to the microsecond.\n")
	from := fs.String("from", "", "the state to copy: a bbolt file or a postgres:// URL")
	to := fs.String("to", "", "where to copy it: a new bbolt file or an empty database")
	pwFile := fs.String("password-file", "", "file with the database password (for the URL of --from or --to)")
	every := fs.Duration("progress", 5*time.Second, "how often to print how far the copy got")
	if err := parseFlags(fs, e, e.args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("state copy: unexpected argument %q", fs.Arg(0))
	}
	if *from == "" || *to == "" {
		return usagef("state copy: --from and --to are required")
	}
	if *from == *to || (!config.IsDatabaseURL(*from) && !config.IsDatabaseURL(*to) && sameFile(*from, *to)) {
		return usagef("state copy: --from and --to are the same state")
	}
	if !config.IsDatabaseURL(*from) {
		if _, err := os.Stat(*from); err != nil {
			return usagef("state copy: --from %s: %v", *from, err)
		}
	}
	src, err := openCopyEnd(ctx, *from, *pwFile, true)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := openCopyEnd(ctx, *to, *pwFile, false)
	if err != nil {
		return err
	}
	defer dst.Close()
	if err := checkEmpty(dst); err != nil {
		return usagef("state copy: --to %s: %v", stateName(*to), err)
	}

	start := time.Now()
	// Count the source first (a read, quick next to the writes) so the
	// progress has an end.
	total := dump.Tally{}
	if err := src.Export(ctx, func(it dump.Item) error { total.Add(&it); return nil }); err != nil {
		return fmt.Errorf("state copy: count the source: %w", err)
	}
	copied := dump.Tally{}
	w := dst.Importer()
	p := newProgress(e, "state copy", "records", int64(total.Total()), *every)
	if !p.tty { // a plain line has room for the kinds; a bar does not
		p.extra = func() string { return copied.String() }
	}
	err = src.Export(ctx, func(it dump.Item) error {
		copied.Add(&it)
		p.add(1)
		return w.Write(it)
	})
	if err == nil {
		err = w.Close()
	}
	p.finish()
	if err != nil {
		return fmt.Errorf("state copy: %w (the target is partly written: empty it before trying again)", err)
	}

	// Verify: what the target holds, kind by kind, and its running counts.
	found := dump.Tally{}
	if err := dst.Export(ctx, func(it dump.Item) error { found.Add(&it); return nil }); err != nil {
		return fmt.Errorf("state copy: verify: %w", err)
	}
	if d := copied.Diff(found); d != "" {
		return fmt.Errorf("state copy: the target holds other counts than were copied: %s", d)
	}
	sc, err := src.Counts()
	if err != nil {
		return fmt.Errorf("state copy: verify: %w", err)
	}
	dc, err := dst.Counts()
	if err != nil {
		return fmt.Errorf("state copy: verify: %w", err)
	}
	if !sameCounts(sc, dc) {
		return fmt.Errorf("state copy: running counts differ: source %+v, target %+v", sc, dc)
	}
	fmt.Fprintf(e.stdout, "copied %d records from %s to %s in %s, counts verified: %s\n",
		copied.Total(), stateName(*from), stateName(*to), time.Since(start).Round(time.Millisecond), copied)
	return nil
}

func sameCounts(a, b tilecast.Counts) bool {
	if a.Channels != b.Channels || a.OutboxDepth != b.OutboxDepth || a.DeadLetters != b.DeadLetters || len(a.Broken) != len(b.Broken) {
		return false
	}
	for k, v := range a.Broken {
		if b.Broken[k] != v {
			return false
		}
	}
	return true
}

// openCopyEnd opens one end of a copy, as the only process using it: a
// bbolt file with its lock (read-only for the source), a database with
// the exclusive run lock.
func openCopyEnd(ctx context.Context, state, pwFile string, source bool) (copyStore, error) {
	end := "--to"
	if source {
		end = "--from"
	}
	if config.IsDatabaseURL(state) {
		db, err := postgres.Open(ctx, state, postgres.Options{PasswordFile: pwFile})
		if err != nil {
			return nil, fmt.Errorf("state copy: %s: %w", end, err)
		}
		if err := db.Hold(ctx, true); err != nil {
			db.Close()
			return nil, usagef("state copy: %s: %v", end, err)
		}
		return db, nil
	}
	db, err := store.Open(state, store.Options{Timeout: lockWait, ReadOnly: source})
	if err != nil {
		if errors.Is(err, tilecast.ErrStateLocked) {
			return nil, usagef("state copy: %s: state file %s is in use by a running tilecast: stop it first", end, state)
		}
		return nil, fmt.Errorf("state copy: %s: %w", end, err)
	}
	return db, nil
}

// checkEmpty refuses a target that holds any state.
func checkEmpty(db copyStore) error {
	c, err := db.Counts()
	if err != nil {
		return err
	}
	states, err := db.FeedStates()
	if err != nil {
		return err
	}
	jobs, err := db.FanOutJobs()
	if err != nil {
		return err
	}
	ledger, _, err := db.OutcomesPage(tilecast.OutcomeFilter{}, "", 1)
	if err != nil {
		return err
	}
	if c.Channels+c.OutboxDepth+c.DeadLetters+len(states)+len(jobs)+len(ledger) > 0 {
		return fmt.Errorf("not empty (%d channels, %d outbox entries, %d dead letters, %d feed states, %d paged deliveries, ledger entries: %v): "+
			"copy into a new file or an empty database", c.Channels, c.OutboxDepth, c.DeadLetters, len(states), len(jobs), len(ledger) > 0)
	}
	return nil
}
