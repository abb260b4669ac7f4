package config

import (
	"bytes"
	"slices"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// pos is a 1-based line and column (in bytes) in the config file.
type pos struct{ line, col int }

// index maps key paths as error messages spell them ("feed[1].tile.title")
// to where they are written. go-toml's decoder knows positions only for its
// own errors, so validation after decoding looks them up here. at holds the
// value's position (a table's header), byPos maps any recorded key or value
// position back to its path, which turns go-toml's index-less keys
// ("feed.tile.zz") into indexed ones.
type index struct {
	at     map[string]pos
	byPos  map[pos]string
	tables map[string]bool // paths written as a [table] header
	lines  []int           // offset where each line starts, for positions in O(log n)
}

// buildIndex walks the document's expressions. It must only be called on a
// document that go-toml already decoded without a syntax error; on a parse
// error it simply stops, leaving what it found so far.
func buildIndex(data []byte) *index {
	ix := &index{at: map[string]pos{}, byPos: map[pos]string{}, tables: map[string]bool{}, lines: []int{0}}
	for i, b := range data {
		if b == '\n' {
			ix.lines = append(ix.lines, i+1)
		}
	}
	var p unstable.Parser
	p.Reset(data)
	arrays := map[string]int{} // array-of-tables path → elements seen so far
	table := ""
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			path := ""
			var first pos
			it := e.Key()
			for n := 0; it.Next(); n++ {
				k := it.Node()
				if n == 0 {
					first = ix.shape(k.Raw)
				}
				path = joinKey(path, string(k.Data))
				if it.IsLast() && e.Kind == unstable.ArrayTable {
					i := arrays[path]
					arrays[path] = i + 1
					path += "[" + strconv.Itoa(i) + "]"
				} else if i, ok := arrays[path]; ok {
					// [feed.tile] after [[feed]] names the last feed.
					path += "[" + strconv.Itoa(i-1) + "]"
				}
			}
			ix.record(path, first, first)
			if e.Kind == unstable.Table {
				ix.tables[path] = true
			}
			table = path
		case unstable.KeyValue:
			ix.keyValue(&p, table, e)
		}
	}
	return ix
}

// keyValue records a key = value expression (also inside inline tables).
func (ix *index) keyValue(p *unstable.Parser, prefix string, kv *unstable.Node) {
	path := prefix
	var keyPos pos
	var lastKey *unstable.Node
	it := kv.Key()
	for n := 0; it.Next(); n++ {
		k := it.Node()
		if n == 0 {
			keyPos = ix.shape(k.Raw)
		}
		lastKey = k
		path = joinKey(path, string(k.Data))
	}
	v := kv.Value()
	valPos := keyPos
	if v.Kind == unstable.Array && lastKey != nil {
		// Array nodes carry no range: find the '[' after the key.
		end := int(lastKey.Raw.Offset + lastKey.Raw.Length)
		if i := bytes.IndexByte(p.Data()[end:], '['); i >= 0 {
			valPos = ix.offset(end + i)
		}
	} else if v.Raw.Length > 0 {
		valPos = ix.shape(v.Raw)
	}
	ix.record(path, keyPos, valPos)
	ix.value(p, path, v, valPos)
}

// value records the elements of arrays and the keys of inline tables.
func (ix *index) value(p *unstable.Parser, path string, v *unstable.Node, at pos) {
	switch v.Kind {
	case unstable.Array:
		it := v.Children()
		for i := 0; it.Next(); i++ {
			el := it.Node()
			elPos := at
			if el.Raw.Length > 0 {
				elPos = ix.shape(el.Raw)
			}
			elPath := path + "[" + strconv.Itoa(i) + "]"
			ix.record(elPath, elPos, elPos)
			ix.value(p, elPath, el, elPos)
		}
	case unstable.InlineTable:
		it := v.Children()
		for it.Next() {
			if kv := it.Node(); kv.Kind == unstable.KeyValue {
				ix.keyValue(p, path, kv)
			}
		}
	}
}

func (ix *index) record(path string, keyPos, valPos pos) {
	if _, dup := ix.at[path]; !dup {
		ix.at[path] = valPos
	}
	ix.byPos[keyPos] = path
	ix.byPos[valPos] = path
}

func (ix *index) shape(r unstable.Range) pos {
	return ix.offset(int(r.Offset))
}

// offset converts a byte offset to a 1-based line and byte column.
func (ix *index) offset(off int) pos {
	line, _ := slices.BinarySearch(ix.lines, off+1) // first line starting after off
	return pos{line, off - ix.lines[line-1] + 1}
}

// lookup returns where path is written or, failing that, where its nearest
// enclosing table or array is (a missing key is reported at its table).
func (ix *index) lookup(path string) (pos, bool) {
	for path != "" {
		if p, ok := ix.at[path]; ok {
			return p, true
		}
		path = parentKey(path)
	}
	return pos{}, false
}

// parentKey strips the last ".key" or "[i]" of a path.
func parentKey(path string) string {
	if strings.HasSuffix(path, "]") {
		if i := strings.LastIndexByte(path, '['); i >= 0 {
			return path[:i]
		}
	}
	if i := lastDot(path); i >= 0 {
		return path[:i]
	}
	return ""
}

// lastDot finds the last '.' outside a quoted key part.
func lastDot(path string) int {
	last, quoted := -1, false
	for i := 0; i < len(path); i++ {
		switch path[i] {
		case '\\':
			if quoted {
				i++
			}
		case '"':
			quoted = !quoted
		case '.':
			if !quoted {
				last = i
			}
		}
	}
	return last
}

// isBare reports whether a key part can be written without quotes.
func isBare(part string) bool {
	if part == "" {
		return false
	}
	for _, r := range part {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// joinKey appends one key part, quoting it when TOML would need quotes.
func joinKey(path, part string) string {
	if !isBare(part) {
		part = strconv.Quote(part)
	}
	if path == "" {
		return part
	}
	return path + "." + part
}
