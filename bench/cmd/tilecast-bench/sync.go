package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// cmdSync is `sync`: what a commit's pages cost the disk, apart from
// bbolt. Each commit writes N pages at random offsets of a 256 MiB file
// (or N consecutive ones), fdatasyncs, writes one meta page at the start
// and fdatasyncs again, the order of bbolt's Tx.Commit. It prints the wall
// time and this process's CPU per commit, so a change of pages per commit
// can be judged by what the disk makes of it.
func cmdSync(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("sync", flag.ExitOnError)
	dir := fs.String("dir", "", "directory for the file (default: a temp dir on disk)")
	ns := fs.String("n", "1,5,10,25", "pages per commit")
	sizes := fs.String("page", "4096,16384", "page sizes in bytes")
	reps := fs.Int("commits", 100, "commits per row")
	_ = fs.Parse(args)
	counts, err := ints(*ns)
	if err != nil {
		return err
	}
	pageSizes, err := ints(*sizes)
	if err != nil {
		return err
	}
	if *reps < 1 || slices.Min(counts) < 1 {
		return fmt.Errorf("sync: -commits and every -n must be at least 1")
	}
	cleanup, err := defaultDir(dir)
	if err != nil {
		return err
	}
	defer cleanup()
	const fileSize = 256 << 20
	f, err := os.OpenFile(filepath.Join(*dir, "sync.bin"), os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	// Allocated up front, as bbolt grows its file ahead, so that no commit
	// measures the file system extending the file.
	if err := f.Truncate(fileSize); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	fmt.Println("| page size | pages per commit | placement | wall per commit | CPU per commit |\n|---|---|---|---|---|")
	for _, psz := range pageSizes {
		if psz < 4096 || fileSize/psz < 2*slices.Max(counts) {
			return fmt.Errorf("page size %d: want 4096 or more and far fewer pages than the file holds", psz)
		}
		page := make([]byte, psz)
		slots := fileSize/psz - 1 // page 0 is the meta page
		for _, scattered := range []bool{true, false} {
			for _, n := range counts {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				t0, c0 := time.Now(), cpuNow(0).self
				for range *reps {
					base := 1 + rand.IntN(slots-n)
					for i := range n {
						slot := base + i
						if scattered {
							slot = 1 + rand.IntN(slots)
						}
						if _, err := f.WriteAt(page, int64(slot)*int64(psz)); err != nil {
							return err
						}
					}
					if err := fdatasync(f); err != nil {
						return err
					}
					if _, err := f.WriteAt(page[:4096], 0); err != nil {
						return err
					}
					if err := fdatasync(f); err != nil {
						return err
					}
				}
				place := "consecutive"
				if scattered {
					place = "scattered"
				}
				per := func(d time.Duration) time.Duration { return (d / time.Duration(*reps)).Round(time.Microsecond) }
				fmt.Printf("| %d | %d | %s | %s | %s |\n", psz, n, place, per(time.Since(t0)), per(cpuNow(0).self-c0))
			}
		}
	}
	return nil
}
