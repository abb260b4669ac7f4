package web

import (
	"io"
	"net/http"
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

// backup streams a consistent snapshot of the state file. The size is not
// known before the read transaction starts, so the body is chunked; a
// failure after the first byte aborts the connection, so the client sees
// a broken transfer rather than a short file that looks complete.
func (s *Server) backup(w http.ResponseWriter, r *http.Request) {
	if s.opts.Backup == nil {
		writeError(w, http.StatusNotImplemented, "backup is not available in this server")
		return
	}
	// A large file over a slow link outlasts WriteTimeout; the snapshot
	// holds only a read transaction, so lifting the deadline is harmless.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", `attachment; filename="state.db"`)
	cw := &countingWriter{w: w}
	n, err := s.opts.Backup(cw)
	if err != nil {
		s.log.Error("backup over http failed", "bytes", n, "err", err)
		if cw.n == 0 {
			h.Del("Content-Disposition")
			writeError(w, http.StatusInternalServerError, "internal error")
			return
		}
		panic(http.ErrAbortHandler)
	}
	s.log.Info("backup sent over http", "bytes", n)
}

// countingWriter counts the bytes passed on to w, so backup knows whether
// the answer has started.
type countingWriter struct {
	w http.ResponseWriter
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil // would send the 200 header with nothing to show for it
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
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

// BackupFunc writes a snapshot of the state file to w and returns its size.
type BackupFunc func(w io.Writer) (int64, error)
