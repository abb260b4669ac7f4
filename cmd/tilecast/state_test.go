package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/internal/pgtest"
	"github.com/tilecast/tilecast/store"
	"github.com/tilecast/tilecast/store/postgres"
	"github.com/tilecast/tilecast/store/storetest"
)

// A populated bbolt file copied to PostgreSQL and back to another file
// is the same state at every step: every listing, every kind of record,
// the last tiles and the outbox sequence.
func TestStateCopyBothWays(t *testing.T) {
	clk := storetest.NewClock()
	dir := t.TempDir()
	file, back := filepath.Join(dir, "state.db"), filepath.Join(dir, "back.db")
	url := pgtest.New(t)

	db, err := store.Open(file, store.Options{Now: clk.Now, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	storetest.Populate(t, db, clk)
	db.Close()

	code, out, errs := runCLI(t, t.Context(), "state", "copy", "--from", file, "--to", url, "--progress", "1ns")
	if code != exitOK || !strings.Contains(out, "counts verified") || !strings.Contains(errs, "state copy: ") || !strings.Contains(errs, "records of") {
		t.Fatalf("copy to PostgreSQL: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = runCLI(t, t.Context(), "state", "copy", "--from", url, "--to", back)
	if code != exitOK || !strings.Contains(out, "counts verified") {
		t.Fatalf("copy back: exit %d\n%s%s", code, out, errs)
	}

	orig, err := store.Open(file, store.Options{Now: clk.Now, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	pg, err := postgres.Open(context.Background(), url, postgres.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	again, err := store.Open(back, store.Options{Now: clk.Now, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	want := storetest.Take(t, orig)
	if d := want.Diff(storetest.Take(t, pg)); d != "" {
		t.Errorf("PostgreSQL differs from the file:\n%s", d)
	}
	storetest.CheckCopy(t, orig, pg)
	// CheckCopy added the same to both; the second copy still has the first state.
	if d := want.Diff(storetest.Take(t, again)); d != "" {
		t.Errorf("the file copied back differs:\n%s", d)
	}
}

// The target must be empty, the source not in use, the two different.
func TestStateCopyRefuses(t *testing.T) {
	clk := storetest.NewClock()
	dir := t.TempDir()
	file := filepath.Join(dir, "state.db")
	db, err := store.Open(file, store.Options{Now: clk.Now, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.AddChannel(tilecast.Channel{URI: "http://127.0.0.1/a"}); err != nil {
		t.Fatal(err)
	}

	// The file is held (a daemon would hold it like this).
	code, _, errs := runCLI(t, t.Context(), "state", "copy", "--from", file, "--to", filepath.Join(dir, "x.db"))
	if code != exitUsage || !strings.Contains(errs, "in use by a running tilecast") {
		t.Errorf("copy of a file in use: exit %d %s", code, errs)
	}
	db.Close()

	url := pgtest.New(t)
	if code, _, errs := runCLI(t, t.Context(), "state", "copy", "--from", file, "--to", url); code != exitOK {
		t.Fatalf("copy: exit %d %s", code, errs)
	}
	code, _, errs = runCLI(t, t.Context(), "state", "copy", "--from", file, "--to", url)
	if code != exitUsage || !strings.Contains(errs, "not empty (1 channels") {
		t.Errorf("copy into a non-empty database: exit %d %s", code, errs)
	}
	code, _, errs = runCLI(t, t.Context(), "state", "copy", "--from", url, "--to", file)
	if code != exitUsage || !strings.Contains(errs, "not empty") {
		t.Errorf("copy into a non-empty file: exit %d %s", code, errs)
	}
	for _, args := range [][]string{
		{"--from", file, "--to", file},
		{"--from", file},
		{"--from", filepath.Join(dir, "nope.db"), "--to", filepath.Join(dir, "y.db")},
		{"--from", file, "--to", filepath.Join(dir, "y.db"), "extra"},
	} {
		if code, _, errs := runCLI(t, t.Context(), append([]string{"state", "copy"}, args...)...); code != exitUsage {
			t.Errorf("state copy %v: exit %d %s", args, code, errs)
		}
	}
	if code, _, _ := runCLI(t, t.Context(), "state", "move"); code != exitUsage {
		t.Errorf("state move: exit %d", code)
	}
	code, out, _ := runCLI(t, t.Context(), "state", "copy", "--help")
	if code != exitOK || !strings.Contains(out, "--from FILE|URL --to FILE|URL") || !strings.Contains(out, "must be empty") {
		t.Errorf("state copy --help: exit %d\n%s", code, out)
	}
}
