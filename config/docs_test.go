package config

import (
	"os"
	"strings"
	"testing"
)

// TestConfigDocNamesEveryKey keeps docs/config.md, the users' reference,
// from going stale: every key the decoder accepts is named in it, in
// backticks, by its dotted path ("push.wns.client_id"); every table by
// its header ("[push.wns]", "[[feed]]").
func TestConfigDocNamesEveryKey(t *testing.T) {
	data, err := os.ReadFile("../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	tables := map[string]bool{}
	for _, k := range schemaKeys() {
		if i := strings.LastIndexByte(k, '.'); i > 0 {
			tables[k[:i]] = true
		}
	}
	var missing []string
	for _, k := range schemaKeys() {
		named := strings.Contains(doc, "`"+k+"`")
		if tables[k] {
			named = strings.Contains(doc, "`["+k+"]`") || strings.Contains(doc, "`[["+k+"]]`")
		}
		if !named {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		t.Errorf("docs/config.md does not name: %s", strings.Join(missing, ", "))
	}
}
