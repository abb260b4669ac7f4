package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Snapshot copies a consistent snapshot of the state file (what Backup
// writes) to a temporary file in the state file's directory and returns
// it open for reading from its start, with its size; the caller must
// Close it. The read transaction ends before Snapshot returns, which is
// the point: a commit that grows the file makes bbolt remap it, the remap
// waits for every read transaction to end and every later read waits for
// the remap, so a snapshot streamed straight to a client that reads
// slowly, or not at all, would stall every commit and read behind it
// (reliability catalogue S9). The local copy takes as long as the disk
// needs, not as long as the client wants.
//
// The copy costs disk space equal to the state file until Close. It goes
// next to the state file, not to os.TempDir: that filesystem was sized
// for the state, while /tmp is often a tmpfs in memory. Cancelling ctx
// stops the copy.
func (db *DB) Snapshot(ctx context.Context) (io.ReadCloser, int64, error) {
	// The leading dot keeps the copy out of casual listings and globs of
	// *.db; the pattern names what it is when it outlives a crash on a
	// system that cannot unlink an open file.
	return spool(ctx, filepath.Dir(db.path), "."+filepath.Base(db.path)+".backup-*", db.Backup)
}

// spool runs write into a new temporary file in dir, named after pattern
// as for os.CreateTemp, and returns the file rewound with the bytes
// written. On any error nothing of the file is left.
func spool(ctx context.Context, dir, pattern string, write func(io.Writer) (int64, error)) (_ io.ReadCloser, _ int64, err error) {
	f, err := os.CreateTemp(dir, pattern) // 0600: the copy holds the channel URIs, capabilities
	if err != nil {
		return nil, 0, fmt.Errorf("snapshot: %w", err)
	}
	s := &spoolFile{f: f, name: f.Name()}
	// Unlinked at once where the OS allows it (Unix): the open file keeps
	// its data, and its space comes back on Close or when the process
	// dies, however it dies. Elsewhere Close removes it by name.
	if os.Remove(s.name) == nil {
		s.name = ""
	}
	defer func() {
		if err != nil {
			_ = s.Close() // the error that matters is err
		}
	}()
	n, err := write(ctxWriter{ctx: ctx, w: f})
	if err != nil {
		// bbolt words some write errors with %s, which loses ctx's: say
		// it again so that callers can tell a cancel from a failure.
		if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
			err = fmt.Errorf("%w: %w", cerr, err)
		}
		return nil, 0, fmt.Errorf("snapshot to %s: %w", dir, err)
	}
	if _, err = f.Seek(0, io.SeekStart); err != nil {
		return nil, 0, fmt.Errorf("snapshot: rewind: %w", err)
	}
	return s, n, nil
}

// spoolFile is a spooled snapshot; Close closes and, when it still has a
// name, removes it.
type spoolFile struct {
	f    *os.File
	name string // "" once unlinked
}

func (s *spoolFile) Read(p []byte) (int, error) { return s.f.Read(p) }

func (s *spoolFile) Close() error {
	err := s.f.Close()
	if s.name != "" {
		if rerr := os.Remove(s.name); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			err = errors.Join(err, fmt.Errorf("remove snapshot: %w", rerr))
		}
		s.name = ""
	}
	return err
}

// ctxWriter fails its writes once ctx is done, so a cancelled snapshot
// stops within one write instead of copying the rest of the file.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}
