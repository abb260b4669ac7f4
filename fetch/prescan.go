package fetch

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
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

// prescanXML counts with RawToken, which neither checks nesting nor
// resolves namespaces. A body the tokenizer cannot read to the end is left
// to gofeed, which rejects it on its own.
func prescanXML(data []byte) error {
	d := xml.NewDecoder(bytes.NewReader(data))
	d.Strict = false
	// Counting tags needs no decoding, and a bogus charset label is
	// gofeed's error to report.
	d.CharsetReader = func(_ string, r io.Reader) (io.Reader, error) { return r, nil }
	depth, elements, attrs := 0, 0, 0
	for {
		tok, err := d.RawToken()
		if err != nil {
			return nil
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			depth++
			elements++
			attrs += len(tok.Attr)
			switch {
			case depth > maxDepth:
				return fmt.Errorf("xml nested deeper than %d: %w", maxDepth, errTooComplex)
			case elements > maxElements:
				return fmt.Errorf("more than %d xml elements: %w", maxElements, errTooComplex)
			case attrs > maxAttributes:
				return fmt.Errorf("more than %d xml attributes: %w", maxAttributes, errTooComplex)
			}
		case xml.EndElement:
			depth--
		}
	}
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
