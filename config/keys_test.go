package config

import (
	"bufio"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// exampleKeys returns the sections and keys written in a TOML example,
// counting commented-out lines ("# cycle_images = [...]") as documented:
// a key that a sensible example cannot set (a cycle-only field next to an
// iconic tile) is still shown with its syntax. "[[feed]]" counts as "feed".
func exampleKeys(text string) map[string]bool {
	header := regexp.MustCompile(`^\s*#?\s*\[\[?\s*([a-z0-9_.]+)\s*\]\]?\s*(#.*)?$`)
	assign := regexp.MustCompile(`^\s*#?\s*([a-z0-9_]+)\s*=`)
	found := map[string]bool{}
	section := ""
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		if m := header.FindStringSubmatch(line); m != nil {
			section = m[1]
			found[section] = true
			continue
		}
		if m := assign.FindStringSubmatch(line); m != nil {
			key := m[1]
			if section != "" {
				key = section + "." + key
			}
			found[key] = true
		}
	}
	return found
}

func missingKeys(text string) []string {
	found := exampleKeys(text)
	var missing []string
	for _, k := range schemaKeys() {
		if !found[k] {
			missing = append(missing, k)
		}
	}
	return missing
}

// TestExampleDocumentsEveryKey keeps config.example.toml from going stale:
// every key the decoder accepts must appear in it.
func TestExampleDocumentsEveryKey(t *testing.T) {
	data, err := os.ReadFile("../config.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	if missing := missingKeys(string(data)); len(missing) > 0 {
		t.Errorf("config.example.toml does not document: %s", strings.Join(missing, ", "))
	}
}

// TestMissingKeysNotices proves the check above can fail.
func TestMissingKeysNotices(t *testing.T) {
	data, err := os.ReadFile("../config.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(data), "max_attempts = 10", "", 1)
	text = strings.ReplaceAll(text, "wide_content3 =", "wide_content_3 =")
	got := missingKeys(text)
	want := []string{"push.max_attempts", "feed.tile.wide_content3"}
	if !slices.Equal(got, want) {
		t.Errorf("missingKeys = %v, want %v", got, want)
	}
}

func TestSchemaKeys(t *testing.T) {
	keys := schemaKeys()
	for _, k := range []string{"state", "log.level", "push.client_key", "defaults.broken_after",
		"feed", "feed.name", "feed.schedule", "feed.tile_on_subscribe", "feed.toast.param",
		"feed.tile.cycle_images", "feed.tile.wide_content3"} {
		if !slices.Contains(keys, k) {
			t.Errorf("schemaKeys lacks %q", k)
		}
	}
	if slices.Contains(keys, "feed.rawDefaults") || slices.Contains(keys, "") {
		t.Errorf("schemaKeys has an embedded struct as a key: %v", keys)
	}
}

func TestSuggest(t *testing.T) {
	tests := map[string]string{
		"stat":                      "state",
		"feed[3].shedule":           "schedule",
		"feed[0].tile.backcontent":  "back_content",
		"push.max_attempt":          "max_attempts",
		"feed[0].tost":              "toast",
		"metrics":                   "",
		"feed[0].tile.wide.content": "",
		"log.colour":                "",
	}
	for in, want := range tests {
		if got := suggest(in); got != want {
			t.Errorf("suggest(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestIsFieldPath(t *testing.T) {
	tests := map[string]bool{
		"tile.back_content":      true,
		"toast.text1":            true,
		"tile.cycle_images[2]":   true,
		"template":               false,
		"tile.":                  false,
		"feed.name":              false,
		"tile.title is too long": false,
	}
	for in, want := range tests {
		if got := isFieldPath(in); got != want {
			t.Errorf("isFieldPath(%q) = %v, want %v", in, got, want)
		}
	}
}

// TestIndex checks the key path → position map on the shapes TOML allows
// for the same data: headers, [[arrays]], dotted and quoted keys, inline
// tables and arrays of inline tables.
func TestIndex(t *testing.T) {
	doc := `state = "x"
[push]
allowed_hosts = [ "a", "b" ]
[[feed]]
name = "n0"
[feed.tile]
title = "t"
[[feed]]
tile.count = "c"
"quoted key" = 1
[[feed]]
toast = { text1 = "x", "a.b" = 2 }
extra = [{ k = 1 }, { k = 2 }]
`
	ix := buildIndex([]byte(doc))
	tests := map[string]pos{
		"state":                 {1, 9},
		"push":                  {2, 2},
		"push.allowed_hosts":    {3, 17},
		"push.allowed_hosts[1]": {3, 24},
		"feed[0]":               {4, 3},
		"feed[0].name":          {5, 8},
		"feed[0].tile":          {6, 2},
		"feed[0].tile.title":    {7, 9},
		"feed[1].tile.count":    {9, 14},
		`feed[1]."quoted key"`:  {10, 16},
		"feed[2].toast.text1":   {12, 19},
		`feed[2].toast."a.b"`:   {12, 32},
		"feed[2].extra[1].k":    {13, 27},
	}
	for path, want := range tests {
		if got := ix.at[path]; got != want {
			t.Errorf("at[%s] = %v, want %v", path, got, want)
		}
	}
	// A missing key is reported at its table.
	if got, ok := ix.lookup("feed[0].tile.back_title"); !ok || got != (pos{6, 2}) {
		t.Errorf("lookup(feed[0].tile.back_title) = %v, %v; want {6 2}", got, ok)
	}
	if _, ok := ix.lookup("log.level"); ok {
		t.Errorf("lookup(log.level) found a position for a table not in the file")
	}
	if got := ix.byPos[pos{9, 1}]; got != "feed[1].tile.count" {
		t.Errorf("byPos[9:1] = %q, want the key at that position", got)
	}
}

func TestTemplateMsg(t *testing.T) {
	tests := []struct{ name, src, msg, want string }{
		{"toast.text1", "{{.X", "template: toast.text1:1: unclosed action", "bad template: unclosed action"},
		{"toast.text1", "a\n{{end}}", "template: toast.text1:2: unexpected {{end}}", "bad template: line 2: unexpected {{end}}"},
		{"tile.count", "{{.Item.Titel}}",
			`template: tile.count:1:7: executing "tile.count" at <.Item.Titel>: can't evaluate field Titel in type tilecast.Item`,
			"bad template: <.Item.Titel>: can't evaluate field Titel in type tilecast.Item"},
		{"tile.count", "x", "unknown tile template", "unknown tile template"},
		{"tile.count", "x", "template: other:1: boom", "template: other:1: boom"},
		{"tile.count", "x", "template: tile.count:x: boom", "template: tile.count:x: boom"},
	}
	for _, tt := range tests {
		if got := templateMsg(tt.name, tt.src, tt.msg); got != tt.want {
			t.Errorf("templateMsg(%q, %q) = %q, want %q", tt.name, tt.msg, got, tt.want)
		}
	}
}
