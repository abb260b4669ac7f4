package config

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Error is one problem in a config file. Load and Parse return every problem
// at once, joined with errors.Join; use errors.As to tell a config error
// (exit code 2) from anything else.
//
// Its text is "FILE:LINE:COL: KEY: MSG", or "FILE: KEY: MSG" when the
// problem has no position (Line == 0), and the ": KEY" part is left out when
// the problem is not about one key (a TOML syntax error, an unreadable file).
type Error struct {
	File      string
	Line, Col int    // 1-based; 0 when unknown
	Key       string // key path as in "feed[1].tile.title"; "" for the whole file
	Msg       string

	err error // the cause, when there is one, for errors.Is
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", e.Line, e.Col)
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap returns the underlying cause (an *os.PathError, a *toml.DecodeError
// ...), or nil.
func (e *Error) Unwrap() error { return e.err }

// checker turns raw TOML values into typed ones and collects every problem
// with its position.
type checker struct {
	file string
	ix   *index
	errs []*Error
	// creds maps each secret key read from $CREDENTIALS_DIRECTORY to its
	// credential's name (credentials.go).
	creds map[string]string
}

func (c *checker) errorf(key, format string, args ...any) {
	e := &Error{File: c.file, Key: key, Msg: fmt.Sprintf(format, args...)}
	if p, ok := c.ix.lookup(key); ok {
		e.Line, e.Col = p.line, p.col
	}
	c.errs = append(c.errs, e)
}

// where formats the position of key for messages that point elsewhere.
func (c *checker) where(key string) string {
	if p, ok := c.ix.lookup(key); ok {
		return fmt.Sprintf("%s:%d:%d", c.file, p.line, p.col)
	}
	return c.file
}

// err returns the problems sorted by position (those without one last), or nil.
func (c *checker) err() error {
	if len(c.errs) == 0 {
		return nil
	}
	slices.SortStableFunc(c.errs, func(a, b *Error) int {
		switch {
		case a.Line == 0 && b.Line == 0:
			return 0
		case a.Line == 0:
			return 1
		case b.Line == 0:
			return -1
		case a.Line != b.Line:
			return a.Line - b.Line
		}
		return a.Col - b.Col
	})
	errs := make([]error, len(c.errs))
	for i, e := range c.errs {
		errs[i] = e
	}
	return errors.Join(errs...)
}

// tomlType names the TOML type of a decoded value for "expected X, got Y".
func tomlType(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case []any:
		return "an array"
	case map[string]any:
		return "a table"
	}
	return "a date/time"
}

func (c *checker) str(key string, v any, def string) string {
	switch v := v.(type) {
	case nil:
		return def
	case string:
		return v
	}
	c.errorf(key, "expected a string, got %s", tomlType(v))
	return def
}

func (c *checker) boolean(key string, v any, def bool) bool {
	switch v := v.(type) {
	case nil:
		return def
	case bool:
		return v
	}
	c.errorf(key, "expected true or false, got %s", tomlType(v))
	return def
}

// integer accepts an integer in [lo, hi].
func (c *checker) integer(key string, v any, def, lo, hi int) int {
	switch n := v.(type) {
	case nil:
		return def
	case int64:
		if n < int64(lo) || n > int64(hi) {
			c.errorf(key, "%d is out of range: must be %s", n, rangeText(lo, hi))
			return def
		}
		return int(n)
	}
	c.errorf(key, "expected an integer, got %s", tomlType(v))
	return def
}

func rangeText(lo, hi int) string {
	if hi == math.MaxInt {
		return fmt.Sprintf("at least %d", lo)
	}
	return fmt.Sprintf("between %d and %d", lo, hi)
}

// enum accepts one of the allowed strings.
func (c *checker) enum(key string, v any, def string, allowed ...string) string {
	s, ok := v.(string)
	if v == nil {
		return def
	}
	if ok && slices.Contains(allowed, s) {
		return s
	}
	want := `"` + strings.Join(allowed, `", "`) + `"`
	if !ok {
		c.errorf(key, "expected one of %s, got %s", want, tomlType(v))
	} else {
		c.errorf(key, "bad value %q: must be one of %s", s, want)
	}
	return def
}

// duration accepts a Go duration string greater than zero.
func (c *checker) duration(key string, v any, def time.Duration) time.Duration {
	if v == nil {
		return def
	}
	s, ok := v.(string)
	if !ok {
		c.errorf(key, `expected a duration string such as "20s", got %s`, tomlType(v))
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		c.errorf(key, `bad duration %q: want a Go duration such as "20s" or "1h30m"`, s)
		return def
	}
	if d <= 0 {
		c.errorf(key, "duration %q must be greater than zero", s)
		return def
	}
	return d
}

// size accepts an integer number of bytes or a string such as "4MiB".
func (c *checker) size(key string, v any, def, hi int64) int64 {
	var n int64
	switch v := v.(type) {
	case nil:
		return def
	case int64:
		n = v
	case string:
		var err error
		if n, err = parseSize(v); err != nil {
			c.errorf(key, `bad size %q: %v`, v, err)
			return def
		}
	default:
		c.errorf(key, `expected a size such as "4MiB" or a number of bytes, got %s`, tomlType(v))
		return def
	}
	if n <= 0 || n > hi {
		c.errorf(key, "size %d is out of range: must be between 1 and %d bytes", n, hi)
		return def
	}
	return n
}

// parseSize reads "123", "123B", "512KiB", "4MiB" or "1GiB".
func parseSize(s string) (int64, error) {
	digits := strings.TrimRightFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	unit := strings.TrimSpace(s[len(digits):])
	digits = strings.TrimSpace(digits)
	mult := map[string]int64{"": 1, "B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}[unit]
	if mult == 0 {
		return 0, fmt.Errorf(`unknown unit %q: use B, KiB, MiB or GiB`, unit)
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n < 0 {
		return 0, errors.New(`want a whole number of bytes, KiB, MiB or GiB, such as "4MiB"`)
	}
	if n > math.MaxInt64/mult {
		return 0, errors.New("too large")
	}
	return n * mult, nil
}

// strs accepts an array of strings; check, when not nil, vets each element.
func (c *checker) strs(key string, v any, def []string, check func(key, s string)) []string {
	if v == nil {
		return slices.Clone(def)
	}
	arr, ok := v.([]any)
	if !ok {
		c.errorf(key, "expected an array of strings, got %s", tomlType(v))
		return slices.Clone(def)
	}
	out := make([]string, 0, len(arr))
	for i, el := range arr {
		ek := fmt.Sprintf("%s[%d]", key, i)
		s, ok := el.(string)
		if !ok {
			c.errorf(ek, "expected a string, got %s", tomlType(el))
			continue
		}
		if check != nil {
			check(ek, s)
		}
		out = append(out, s)
	}
	return out
}

// imageURL checks an image location written literally (not a template):
// tiles accept absolute http(s) URLs and the phone-local isostore: and
// appdata: schemes. What a template produces is checked when it is rendered.
func (c *checker) imageURL(key, s string) {
	if s == "" || strings.Contains(s, "{{") {
		return
	}
	u, err := url.Parse(s)
	if err == nil {
		switch strings.ToLower(u.Scheme) {
		case "isostore", "appdata":
			return
		case "http", "https":
			if u.Host != "" {
				return
			}
		}
	}
	c.errorf(key, "bad image URL %q: must be an absolute http(s) URL or an isostore: or appdata: path", s)
}

// Problem returns an error about key of the loaded file cfg.Path, at the
// key's position when the file sets it (the file is read again to find
// it), in the form of every other config error. The CLI's check uses it
// for what only running would find: files the daemon reads at start.
func (cfg *Config) Problem(key, format string, args ...any) *Error {
	c := &checker{file: cfg.Path, ix: &index{}}
	if data, err := os.ReadFile(cfg.Path); err == nil {
		c.ix = buildIndex(data)
	}
	c.errorf(key, format, args...)
	return c.errs[0]
}

// Where is the position of key in cfg.Path ("file:line:col"), or the
// file's name when the file does not set the key.
func (cfg *Config) Where(key string) string {
	e := cfg.Problem(key, "")
	if e.Line == 0 {
		return e.File
	}
	return fmt.Sprintf("%s:%d:%d", e.File, e.Line, e.Col)
}
