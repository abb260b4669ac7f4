package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/tilecast/tilecast/config"
	"github.com/tilecast/tilecast/store"
)

// errPGBackup is backup's answer for a PostgreSQL state.
var errPGBackup = errors.New("backup: the state is a PostgreSQL database: back it up with pg_dump " +
	"(e.g. pg_dump --format=custom --file=tilecast.dump DBNAME; pg_restore restores it), " +
	"or copy it to a bbolt file with `tilecast state copy`")

func cmdBackup(ctx context.Context, e env) error {
	fs := newFlags(e, "backup", "backup --config FILE DEST\n\n"+
		"Writes a consistent snapshot of the state file to DEST: first to DEST.tmp,\n"+
		"which is synced, opened and checked like `bbolt check`, then renamed to DEST.\n"+
		"Progress goes to stderr (a bar on a terminal, else a line every 5 s).\n"+
		"The daemon keeps running meanwhile. For a PostgreSQL state (state = \"postgres://…\")\n"+
		"use pg_dump instead: this command exits with code 2 saying so."+daemonNote)
	cfgPath := fs.String("config", "", "config file (TOML)")
	if err := parseFlags(fs, e, e.args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("backup: give one DEST file")
	}
	dest := fs.Arg(0)
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	if config.IsDatabaseURL(cfg.State) {
		return usageError{errPGBackup}
	}
	if sameFile(dest, cfg.State) || sameFile(dest+".tmp", cfg.State) {
		return usagef("backup: %s is the state file itself", dest)
	}
	if _, err := os.Stat(cfg.State); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("backup: state file %s does not exist", cfg.State)
	}
	o, err := connect(cfg, e, true)
	if err != nil {
		return err
	}
	defer o.Close()
	start := time.Now()
	var size int64 // the snapshot is about the file's size: the bar's end
	if st, err := os.Stat(cfg.State); err == nil {
		size = st.Size()
	}
	p := newProgress(e, "backup", "bytes", size, 0)
	n, err := writeBackup(ctx, o, dest, p)
	if err == nil {
		p.setTotal(n) // the file's size was an estimate: a bar ends full
	}
	p.finish()
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "backup %s: %d bytes, checked, in %s\n", dest, n, time.Since(start).Round(time.Millisecond))
	return nil
}

// writeBackup writes the snapshot to dest.tmp, syncs and checks it, and
// renames it to dest, so dest is only ever a whole, valid state file.
// The bytes written are counted into p.
func writeBackup(ctx context.Context, o ops, dest string, p *progress) (n int64, err error) {
	tmp := dest + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600) // channel URIs are capabilities
	if err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if n, err = o.Backup(ctx, progressWriter{f, p}); err != nil {
		return n, fmt.Errorf("backup: %w", err)
	}
	if err = f.Sync(); err != nil {
		return n, fmt.Errorf("backup: sync %s: %w", tmp, err)
	}
	if err = f.Close(); err != nil {
		return n, fmt.Errorf("backup: close %s: %w", tmp, err)
	}
	if err = checkStateFile(tmp); err != nil {
		return n, fmt.Errorf("backup: the snapshot does not check (kept nothing): %w", err)
	}
	if err = os.Rename(tmp, dest); err != nil {
		return n, fmt.Errorf("backup: %w", err)
	}
	// The rename is durable once the directory is synced.
	if d, derr := os.Open(filepath.Dir(dest)); derr == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return n, nil
}

// checkStateFile opens path read-only as a state file and runs Check.
func checkStateFile(path string) error {
	db, err := store.Open(path, store.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return err
	}
	cerr := db.Check()
	if err := db.Close(); err != nil && cerr == nil {
		cerr = err
	}
	return cerr
}

// sameFile reports whether a and b name the same existing file, or the
// same path when a does not exist yet.
func sameFile(a, b string) bool {
	fa, errA := os.Stat(a)
	fb, errB := os.Stat(b)
	if errA == nil && errB == nil {
		return os.SameFile(fa, fb)
	}
	pa, err1 := filepath.Abs(a)
	pb, err2 := filepath.Abs(b)
	return err1 == nil && err2 == nil && pa == pb
}
