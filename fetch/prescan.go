package fetch

import (
	"bytes"
	"errors"
	"fmt"
)

// Pre-scan limits. gofeed needs 50–100× the input in memory for documents
// that are deep or wide (reliability.md §2.3); no real feed comes near these
// limits, and a 10k-item RSS feed (about 6 elements an item) passes.
const (
	maxDepth      = 64
	maxElements   = 100_000 // XML elements
	maxAttributes = 100_000 // XML attributes, which gofeed keeps in maps for extensions
	maxJSONNodes  = 200_000 // JSON objects, arrays and members/array values
)

// errTooComplex marks a document refused by the pre-scan.
var errTooComplex = errors.New("document too complex")

// prescan refuses a document that would make gofeed build an outsized tree:
// nested deeper than maxDepth or with more elements (attributes, JSON
// nodes) than the limits. It runs in a few tens of milliseconds for 4 MiB
// and allocates little, far less than the parse it prevents.
func prescan(data []byte) error {
	t := bytes.TrimLeft(data, " \t\r\n\xef\xbb\xbf")
	switch {
	case len(t) == 0:
		return nil
	case t[0] == '{' || t[0] == '[':
		return prescanJSON(t)
	default:
		return prescanXML(data)
	}
}

// xmlLimits is the XML pre-scan's budget; tests scan with small ones.
type xmlLimits struct{ depth, elements, attrs int }

// xmlCounts is what the XML pre-scan has seen when it stops. depth is the
// nesting after the last tag; it goes negative on stray end tags, as the
// tokenizer's count did.
type xmlCounts struct{ depth, elements, attrs int }

// prescanXML counts tags in one pass over the bytes, without a tokenizer:
// the encoding/xml RawToken pass it replaces cost about a fifth of a poll.
// Its tag grammar is a superset of RawToken's with Strict=false, so on any
// input RawToken reads it counts exactly the same, and where RawToken gives
// up on malformed markup it keeps counting. A construct left open at the end
// of the body is left to gofeed, which rejects it on its own.
func prescanXML(data []byte) error {
	_, err := scanXML(data, xmlLimits{maxDepth, maxElements, maxAttributes})
	return err
}

func scanXML(data []byte, lim xmlLimits) (xmlCounts, error) {
	var c xmlCounts
	n := len(data)
	i := 0
	for {
		// Text, including a BOM and whatever encoding.
		k := bytes.IndexByte(data[i:], '<')
		if k < 0 {
			return c, nil
		}
		i += k + 1
		if i >= n {
			return c, nil
		}
		switch data[i] {
		case '/':
			// End tag: a name, spaces, '>'.
			if k = bytes.IndexByte(data[i+1:], '>'); k < 0 {
				return c, nil
			}
			i += k + 2
			c.depth--
			continue
		case '?':
			// Processing instruction or XML declaration. The target name
			// holds no '?', so searching from right after "<?" is the
			// same as RawToken searching from after the target.
			if k = bytes.Index(data[i+1:], []byte("?>")); k < 0 {
				return c, nil
			}
			i += k + 3
			continue
		case '!':
			if i = skipBang(data, i+1); i < 0 {
				return c, nil
			}
			continue
		}
		// Start tag. RawToken wants a name here; any other byte is
		// malformed and is counted as a tag all the same.
		j := skipName(data, i)
		attrs, empty := 0, false
	tag:
		for {
			j = skipSpace(data, j)
			if j >= n {
				return c, nil
			}
			switch b := data[j]; {
			case b == '>':
				j++
				break tag
			case b == '/':
				if j+1 >= n {
					return c, nil
				}
				if data[j+1] == '>' {
					j += 2
					empty = true
					break tag
				}
				j++ // malformed: RawToken stops, we go on
			case isNameByte(b):
				attrs++
				j = skipSpace(data, skipName(data, j))
				if j >= n || data[j] != '=' {
					// Strict=false takes a name without a value.
					continue
				}
				j = skipSpace(data, j+1)
				if j < n && (data[j] == '"' || data[j] == '\'') {
					// Quoted values may hold '>', '/', '=' and '<'.
					if k = bytes.IndexByte(data[j+1:], data[j]); k < 0 {
						return c, nil
					}
					j += k + 2
				} else {
					// Strict=false takes an unquoted value of these bytes
					// (possibly none).
					for j < n && isUnquotedByte(data[j]) {
						j++
					}
				}
			default:
				j++ // malformed: RawToken stops, we go on
			}
		}
		i = j
		// A self-closing tag is a start and an end: checked as entered,
		// depth unchanged after.
		c.elements++
		c.attrs += attrs
		switch {
		case c.depth+1 > lim.depth:
			return c, fmt.Errorf("xml nested deeper than %d: %w", lim.depth, errTooComplex)
		case c.elements > lim.elements:
			return c, fmt.Errorf("more than %d xml elements: %w", lim.elements, errTooComplex)
		case c.attrs > lim.attrs:
			return c, fmt.Errorf("more than %d xml attributes: %w", lim.attrs, errTooComplex)
		}
		if !empty {
			c.depth++
		}
	}
}

// skipBang skips a comment, CDATA section or directive (<!DOCTYPE ...>)
// whose "<!" ends just before data[i], returning the index after it, or -1
// if it runs to the end of data. Their content does not count, even when it
// looks like tags.
func skipBang(data []byte, i int) int {
	rest := data[i:]
	switch {
	case bytes.HasPrefix(rest, []byte("--")):
		k := bytes.Index(rest[2:], []byte("-->"))
		if k < 0 {
			return -1
		}
		return i + 2 + k + 3
	case bytes.HasPrefix(rest, []byte("[CDATA[")):
		k := bytes.Index(rest[7:], []byte("]]>"))
		if k < 0 {
			return -1
		}
		return i + 7 + k + 3
	}
	// A directive, which ends at the first '>' outside quotes, comments
	// and nested <...> pairs (the DOCTYPE internal subset). RawToken takes
	// the byte after "<!" unexamined; so do we, to end where it ends.
	n := len(data)
	j := i + 1
	depth := 0
	for j < n {
		switch b := data[j]; b {
		case '"', '\'':
			k := bytes.IndexByte(data[j+1:], b)
			if k < 0 {
				return -1
			}
			j += k + 2
			continue
		case '>':
			if depth == 0 {
				return j + 1
			}
			depth--
		case '<':
			if bytes.HasPrefix(data[j+1:], []byte("!--")) {
				k := bytes.Index(data[j+4:], []byte("-->"))
				if k < 0 {
					return -1
				}
				j += 4 + k + 3
				continue
			}
			// Anything else opens a nested pair. The bytes RawToken
			// reads while looking for "!--" ('!', '-') mean nothing
			// here, so going on byte by byte ends where it does.
			depth++
		}
		j++
	}
	return -1
}

// skipName returns the index after the name bytes starting at data[i].
// Like RawToken's readName, every byte from 0x80 up counts as a name byte.
func skipName(data []byte, i int) int {
	for i < len(data) && isNameByte(data[i]) {
		i++
	}
	return i
}

func skipSpace(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\r', '\n':
			i++
		default:
			return i
		}
	}
	return i
}

func isNameByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '_' || c == ':' || c == '.' || c == '-' || c >= 0x80
}

// isUnquotedByte reports the bytes encoding/xml accepts in an unquoted
// attribute value when not strict.
func isUnquotedByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '_' || c == ':' || c == '-'
}

// prescanJSON walks the bytes once, tracking strings so that brackets and
// commas inside them do not count. Malformed JSON is left to gofeed.
func prescanJSON(data []byte) error {
	depth, nodes := 0, 0
	inString, escaped := false, false
	for _, c := range data {
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
			nodes++
			if depth > maxDepth {
				return fmt.Errorf("json nested deeper than %d: %w", maxDepth, errTooComplex)
			}
		case '}', ']':
			depth--
		case ',':
			nodes++
		}
		if nodes > maxJSONNodes {
			return fmt.Errorf("more than %d json nodes: %w", maxJSONNodes, errTooComplex)
		}
	}
	return nil
}
