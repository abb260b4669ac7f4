package config

import (
	"reflect"
	"strings"
)

// schemaKeys lists every table and key the file may contain, as dotted paths
// without array indexes ("push.class", "feed", "feed.tile.title"), read from
// the raw types' toml tags so that it cannot drift from the decoder.
func schemaKeys() []string {
	var keys []string
	var walk func(prefix string, t reflect.Type)
	walk = func(prefix string, t reflect.Type) {
		for i := range t.NumField() {
			f := t.Field(i)
			if f.Anonymous {
				walk(prefix, f.Type)
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
			path := prefix + name
			keys = append(keys, path)
			ft := f.Type
			for ft.Kind() == reflect.Pointer || ft.Kind() == reflect.Slice {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				walk(path+".", ft)
			}
		}
	}
	walk("", reflect.TypeFor[rawConfig]())
	return keys
}

// suggest returns the known key closest to an unknown one ("shedule" →
// "schedule"), or "" when nothing is close.
func suggest(path string) string {
	// feed[1].shedule → parent "feed", leaf "shedule"
	var b strings.Builder
	depth := 0
	for _, r := range path {
		switch {
		case r == '[':
			depth++
		case r == ']':
			depth--
		case depth == 0:
			b.WriteRune(r)
		}
	}
	plain := b.String()
	parent, leaf := "", plain
	if i := strings.LastIndexByte(plain, '.'); i >= 0 {
		parent, leaf = plain[:i+1], plain[i+1:]
	}
	best, bestDist := "", 3 // at most two edits away
	for _, k := range schemaKeys() {
		name, ok := strings.CutPrefix(k, parent)
		if !ok || strings.Contains(name, ".") {
			continue
		}
		if d := editDistance(leaf, name); d < bestDist {
			best, bestDist = name, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between two short keys.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
