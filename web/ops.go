package web

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/tilecast/tilecast"
)

// Operator routes: what `tilecast backup`, `status` and `outcomes` call
// while the daemon holds the state file. They need an admin key (Routes).

// DeadLetter is a notification given up on with its last outcome. Its
// fields match store.DeadLetter, so the daemon converts with DeadLetter(d).
type DeadLetter struct {
	Notification tilecast.Notification `json:"notification"`
	Outcome      tilecast.Outcome      `json:"outcome"`
}

// backup sends a consistent snapshot of the state file. Backup copies it
// out of the state file first (store.DB.Snapshot), so the read
// transaction has ended before the first byte goes to the client: a
// client that reads slowly, or stops reading, delays no commit and no
// read of the daemon. The size is known, so the answer has a
// Content-Length; a failure after the header aborts the connection, so
// the client sees a broken transfer rather than a short file that looks
// complete.
func (s *Server) backup(w http.ResponseWriter, r *http.Request) {
	if s.opts.Backup == nil {
		writeError(w, http.StatusNotImplemented, "backup is not available in this server")
		return
	}
	snap, size, err := s.opts.Backup(r.Context())
	if err != nil {
		if r.Context().Err() != nil {
			s.log.Info("backup over http cancelled: the client went away", "err", err)
		} else {
			s.log.Error("backup over http failed", "err", err)
		}
		// Even to a client that is likely gone: an empty 200 would read
		// as a backup.
		writeError(w, http.StatusInternalServerError, "internal error")
		return
	}
	defer func() {
		// The snapshot holds disk space the size of the state file; the
		// deferred call runs on the abort below too.
		if err := snap.Close(); err != nil {
			s.log.Warn("backup over http: close the snapshot", "err", err)
		}
	}()
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", `attachment; filename="state.db"`)
	h.Set("Content-Length", strconv.FormatInt(size, 10))
	n, err := s.sendSnapshot(w, snap, size)
	if err != nil {
		s.log.Warn("backup over http cut short", "bytes", n, "size", size, "err", err)
		panic(http.ErrAbortHandler)
	}
	s.log.Info("backup sent over http", "bytes", n)
}

// backupChunk is what sendSnapshot writes under one write deadline.
const backupChunk = 32 << 10

// sendSnapshot copies size bytes of snap to w. A large file over a slow
// link outlasts WriteTimeout, so instead of one deadline for the whole
// answer each chunk gets WriteTimeout of its own: a client that keeps
// reading can take as long as it needs, while one that has stopped is
// cut off after WriteTimeout and gives back the snapshot's disk space.
// A ResponseWriter without deadlines (tests' recorders) is written to
// without them.
func (s *Server) sendSnapshot(w http.ResponseWriter, snap io.Reader, size int64) (int64, error) {
	rc := http.NewResponseController(w)
	buf := make([]byte, backupChunk)
	var n int64
	for n < size {
		k, rerr := io.ReadFull(snap, buf[:min(int64(len(buf)), size-n)])
		if rerr != nil {
			return n, fmt.Errorf("read the snapshot: %w", rerr)
		}
		_ = rc.SetWriteDeadline(time.Now().Add(s.opts.WriteTimeout)) // unsupported: no deadline
		k, werr := w.Write(buf[:k])
		n += int64(k)
		if werr != nil {
			return n, fmt.Errorf("send the snapshot: %w", werr)
		}
	}
	return n, nil
}

// allOutcomes answers a page of the delivery ledger of every channel,
// by channel and then oldest first: ?feed= narrows it, ?since= as for a
// channel's outcomes.
func (s *Server) allOutcomes(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	since, aerr := parseSince(q.Get("since"), s.now())
	var page pageParams
	if aerr == nil {
		page, aerr = parsePage(q)
	}
	if aerr != nil {
		writeError(w, aerr.status, aerr.msg)
		return
	}
	out, next, err := s.opts.Store.OutcomesPage(tilecast.OutcomeFilter{Feed: q.Get("feed"), Since: since}, page.cursor, page.limit)
	if err != nil {
		s.listError(w, r, err)
		return
	}
	writePage(w, r, out, next, page.limit)
}

// deadLetters answers a page of dead letters, newest first.
func (s *Server) deadLetters(w http.ResponseWriter, r *http.Request) {
	if s.opts.DeadLetters == nil {
		writeError(w, http.StatusNotImplemented, "dead letters are not available in this server")
		return
	}
	page, aerr := parsePage(r.URL.Query())
	if aerr != nil {
		writeError(w, aerr.status, aerr.msg)
		return
	}
	out, next, err := s.opts.DeadLetters(page.cursor, page.limit)
	if err != nil {
		s.listError(w, r, err)
		return
	}
	writePage(w, r, out, next, page.limit)
}

// BackupFunc takes a consistent snapshot of the state file for GET
// /v1/backup and returns it with its size; the handler closes it. Reading
// it must hold nothing of the store's, because the client sets the pace:
// store.DB.Snapshot copies the file out of its read transaction first.
// It should stop early when ctx (the request's) is cancelled.
type BackupFunc func(ctx context.Context) (io.ReadCloser, int64, error)
