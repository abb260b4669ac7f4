package notify

import (
	"errors"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Ellipsis marks text that was cut.
const Ellipsis = "…"

// Sanitize removes what XML 1.0 cannot carry: C0 control characters other
// than tab, newline and carriage return, U+FFFE and U+FFFF, and bytes that
// are not valid UTF-8 (which includes encoded surrogates). The mpns module
// sent such characters through and produced XML the service rejected with a
// 400. A clean string is returned as is, without allocating.
func Sanitize(s string) string {
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b < 0x20 && b != '\t' && b != '\n' && b != '\r' {
				return sanitizeFrom(s, i)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if !xmlChar(r, n) {
			return sanitizeFrom(s, i)
		}
		i += n
	}
	return s
}

func sanitizeFrom(s string, i int) string {
	var b strings.Builder
	b.Grow(len(s))
	b.WriteString(s[:i])
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		if xmlChar(r, n) {
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// xmlChar reports whether the rune r, decoded from n bytes, is an XML 1.0
// Char. A RuneError of width 1 is an invalid byte; a literal U+FFFD is fine.
func xmlChar(r rune, n int) bool {
	switch {
	case r == utf8.RuneError && n == 1:
		return false
	case r < 0x20:
		return r == '\t' || r == '\n' || r == '\r'
	case r == 0xFFFE || r == 0xFFFF:
		return false
	case r >= 0xD800 && r <= 0xDFFF:
		return false
	}
	return true
}

// xmlLen is the length of s after the four-character XML escaping that the
// MPNS payload uses (& < > " only). The truncation plan is computed with it;
// Fit re-encodes to confirm, so an encoder that escapes more still converges.
func xmlLen(s string) int {
	n := len(s)
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '&':
			n += 4
		case '<', '>':
			n += 3
		case '"':
			n += 5
		}
	}
	return n
}

// cutEscaped shortens s so that, with the ellipsis appended, its escaped
// length is at most max. It cuts on a rune boundary and drops trailing
// white space before the ellipsis. max below the ellipsis' own length
// yields just the ellipsis.
func cutEscaped(s string, max int) string {
	budget := max - len(Ellipsis)
	end, used := 0, 0
	for end < len(s) {
		_, n := utf8.DecodeRuneInString(s[end:])
		w := n
		switch s[end] {
		case '&':
			w = 5
		case '<', '>':
			w = 4
		case '"':
			w = 6
		}
		if used+w > budget {
			break
		}
		used += w
		end += n
	}
	return strings.TrimRightFunc(s[:end], unicode.IsSpace) + Ellipsis
}

// Truncate returns s cut to at most n runes, the ellipsis included, when it
// is longer than n runes. It is the template function truncate.
func Truncate(n int, s string) string {
	if n <= 0 {
		return ""
	}
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	count := 0
	for i := range s {
		if count == n-1 {
			return strings.TrimRightFunc(s[:i], unicode.IsSpace) + Ellipsis
		}
		count++
	}
	return s
}

// parseCount turns count template output into the value sent: trimmed,
// an integer clamped to 0–99. ok is false for empty or non-integer output,
// which leaves the element out rather than failing the whole tile.
func parseCount(s string) (string, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", false
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		// A number too large for int is still a number: clamp it.
		if errors.Is(err, strconv.ErrRange) {
			if s[0] == '-' {
				return "0", true
			}
			return "99", true
		}
		return "", false
	}
	switch {
	case n < 0:
		return "0", true
	case n > 99:
		return "99", true
	}
	if len(s) <= 2 && (len(s) == 1 || s[0] != '0') && s[0] != '+' {
		return s, true // already canonical: no allocation
	}
	return strconv.Itoa(n), true
}
