package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/tilecast/tilecast"
)

// Listings (channels, outcomes, dead letters) are paged (design.md §11):
// ?limit= (default tilecast.DefaultPageLimit, at most
// tilecast.MaxPageLimit) and an opaque ?cursor= the previous page
// announced. The body stays a JSON array, so clients that never page keep
// working and see the first page; the next page, when there is one, is
// announced as GitHub's API does it:
//
//	Link: </v1/outcomes?cursor=…&limit=100&feed=news>; rel="next"
//
// The URL is relative (path and query, every other parameter kept), so it
// is right behind a reverse proxy that rewrites the host. The last page
// has no Link.

// pageParams are a listing request's paging parameters.
type pageParams struct {
	limit  int
	cursor string
}

// parsePage reads ?limit= and ?cursor=. The cursor is only checked for
// size here; the store refuses one it did not hand out (badCursor).
func parsePage(q url.Values) (pageParams, *apiError) {
	p := pageParams{limit: tilecast.DefaultPageLimit}
	for _, name := range []string{"limit", "cursor"} {
		if len(q[name]) > 1 {
			return p, refuse(http.StatusBadRequest, "%s is given %d times: give it once", name, len(q[name]))
		}
	}
	if v, ok := q["limit"]; ok {
		n, err := strconv.Atoi(v[0])
		if err != nil || n < 1 || n > tilecast.MaxPageLimit {
			return p, refuse(http.StatusBadRequest, "limit must be a whole number from 1 to %d, got %.32q", tilecast.MaxPageLimit, v[0])
		}
		p.limit = n
	}
	p.cursor = q.Get("cursor") // "" (or left out): the first page
	if len(p.cursor) > maxCursorLen {
		return p, refuse(http.StatusBadRequest, "cursor is %d bytes: not one this server handed out (start again without it)", len(p.cursor))
	}
	return p, nil
}

// maxCursorLen bounds ?cursor= before the store decodes it; the store's
// own cursors are far shorter.
const maxCursorLen = 1024

// listError answers a store error of a listing: a cursor the store
// refuses is the client's 400, anything else a logged 500.
func (s *Server) listError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, tilecast.ErrBadCursor) {
		writeError(w, http.StatusBadRequest, "cursor is not one this server handed out for this listing (start again without it)")
		return
	}
	s.internalError(w, r, err)
}

// nextLink is the Link header value announcing the next page: the
// request's path and query with cursor and limit replaced.
func nextLink(r *http.Request, next string, limit int) string {
	q := r.URL.Query()
	q.Set("cursor", next)
	q.Set("limit", strconv.Itoa(limit))
	u := url.URL{Path: r.URL.Path, RawQuery: q.Encode()}
	return fmt.Sprintf("<%s>; rel=\"next\"", u.String())
}

// writePage answers one page: a JSON array written item by item as it
// is encoded, so the answer costs no second copy of the page, and the
// Link header when next is not "".
func writePage[T any](w http.ResponseWriter, r *http.Request, items []T, next string, limit int) {
	if next != "" {
		w.Header().Set("Link", nextLink(r, next, limit))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write([]byte{'['}); err != nil {
		return // the client went away
	}
	enc := json.NewEncoder(w)
	for i := range items {
		if i > 0 {
			if _, err := w.Write([]byte{','}); err != nil {
				return
			}
		}
		// Encode ends each item with a newline: whitespace between
		// array elements, and one line per item for a human reading it.
		if err := enc.Encode(&items[i]); err != nil {
			return // only our own types are encoded: a write error
		}
	}
	_, _ = w.Write([]byte("]\n"))
}
