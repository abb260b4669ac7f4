package main

import (
	"encoding/json"
	"errors"
	"io"
)

// errStopPaging, returned by an eachPage callback, ends the walk early
// without an error.
var errStopPaging = errors.New("stop paging")

// eachPage walks a paged listing: page returns the records after cursor
// and the next cursor ("" after the last page); each page goes to emit
// before the next is asked for, so a listing of any length is held one
// page at a time.
func eachPage[T any](page func(cursor string) ([]T, string, error), emit func([]T) error) error {
	cursor := ""
	for {
		items, next, err := page(cursor)
		if err != nil {
			return err
		}
		if err := emit(items); err != nil {
			if errors.Is(err, errStopPaging) {
				return nil
			}
			return err
		}
		if next == "" {
			return nil
		}
		cursor = next
	}
}

// jsonArray writes a JSON array one element at a time, formatted as
// printJSON formats a whole slice (two-space indent, "[]" when empty), so
// a listing printed page by page reads the same as one printed at once.
type jsonArray struct {
	w io.Writer
	n int
}

func (a *jsonArray) add(v any) error {
	b, err := json.MarshalIndent(v, "  ", "  ")
	if err != nil {
		return err
	}
	sep := ",\n  "
	if a.n == 0 {
		sep = "[\n  "
	}
	a.n++
	if _, err := io.WriteString(a.w, sep); err != nil {
		return err
	}
	_, err = a.w.Write(b)
	return err
}

func (a *jsonArray) close() error {
	end := "\n]\n"
	if a.n == 0 {
		end = "[]\n"
	}
	_, err := io.WriteString(a.w, end)
	return err
}
