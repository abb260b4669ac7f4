package web

import (
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

// DefaultDeadLetters and MaxDeadLetters bound GET /v1/deadletters?limit=.
const (
	DefaultDeadLetters = 20
	MaxDeadLetters     = 1000
)

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

// allOutcomes answers the delivery ledger of every channel, oldest first:
// ?feed= narrows it, ?since= as for a channel's outcomes.
func (s *Server) allOutcomes(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	since, aerr := parseSince(q.Get("since"), s.now())
	if aerr != nil {
		writeError(w, aerr.status, aerr.msg)
		return
	}
	out, err := s.opts.Store.Outcomes("", q.Get("feed"), since)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	if out == nil {
		out = []tilecast.Outcome{}
	}
	writeJSON(w, http.StatusOK, out)
}

// deadLetters answers the newest dead letters, ?limit= of them.
func (s *Server) deadLetters(w http.ResponseWriter, r *http.Request) {
	if s.opts.DeadLetters == nil {
		writeError(w, http.StatusNotImplemented, "dead letters are not available in this server")
		return
	}
	limit := DefaultDeadLetters
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxDeadLetters {
			writeError(w, http.StatusBadRequest, "limit must be a number from 1 to "+strconv.Itoa(MaxDeadLetters))
			return
		}
		limit = n
	}
	out, err := s.opts.DeadLetters(limit)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	if out == nil {
		out = []DeadLetter{}
	}
	writeJSON(w, http.StatusOK, out)
}

// BackupFunc writes a snapshot of the state file to w and returns its size.
type BackupFunc func(w io.Writer) (int64, error)
