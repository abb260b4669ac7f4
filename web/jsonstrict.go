package web

import (
	"bytes"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
)

// encoding/json matches object keys to struct fields case-insensitively
// ("URI" fills uri) and lets a repeated key overwrite the first. A client
// that sends either is confused, and a proxy or a second parser in front of
// tilecast may read the other value (a parser-differential hole), so the
// API refuses both: checkKeys walks the body's tokens once before it is
// decoded.

// jsonFields returns the JSON names of t's fields as their tags spell them.
func jsonFields(t reflect.Type) []string {
	var names []string
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			names = append(names, name)
		}
	}
	return names
}

// frame is one open object or array of the token walk.
type frame struct {
	object  bool
	wantKey bool            // object: the next string token is a key
	keys    map[string]bool // object: the keys seen so far
}

// checkKeys walks the first JSON value of data and refuses a key repeated
// within one object (at any depth) and, in the top-level object, a key
// that is not exactly one of fields. A syntax error ends the walk without
// a refusal: the decoder that runs next reports it with its position.
func checkKeys(data []byte, fields []string) *apiError {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber() // numbers are only skipped; never round them
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.object && top.wantKey {
			key, ok := tok.(string)
			if !ok { // the closing '}'
				stack = stack[:len(stack)-1]
				if len(stack) == 0 {
					return nil
				}
				stack[len(stack)-1].valueDone()
				continue
			}
			if top.keys[key] {
				return refuse(http.StatusBadRequest, "duplicate field %.64q: each field may appear once", key)
			}
			top.keys[key] = true
			if len(stack) == 1 && !exactField(key, fields) {
				return unknownField(key, fields)
			}
			top.wantKey = false
			continue
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{object: true, wantKey: true, keys: map[string]bool{}})
			continue
		case json.Delim('['):
			stack = append(stack, &frame{})
			continue
		case json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		// A value (scalar or closed array) is done.
		if len(stack) == 0 {
			return nil
		}
		stack[len(stack)-1].valueDone()
	}
}

// valueDone records that a value of f has been read.
func (f *frame) valueDone() {
	if f.object {
		f.wantKey = true
	}
}

func exactField(key string, fields []string) bool {
	for _, f := range fields {
		if key == f {
			return true
		}
	}
	return false
}

// unknownField is the refusal of a key the request type does not have,
// including one that differs from a field only in case.
func unknownField(key string, fields []string) *apiError {
	return refuse(http.StatusBadRequest, "unknown field %.64q: want %s (names are case-sensitive)", key, strings.Join(fields, ", "))
}
