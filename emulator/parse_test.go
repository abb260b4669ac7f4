package emulator

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFieldNames(t *testing.T) {
	for f := field(0); f < nFields; f++ {
		g, ok := fieldByName(f.String())
		if !ok || g != f {
			t.Errorf("fieldByName(%q) = %v %v", f, g, ok)
		}
	}
	if _, ok := fieldByName("Nope"); ok {
		t.Error("unknown field found")
	}
}

// FuzzParsePayload checks the parser never panics and that whatever it
// accepts is something the phone can show.
func FuzzParsePayload(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.body"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(kindToast), b)
		f.Add(uint8(kindTile), b)
		f.Add(uint8(kindRaw), b)
	}
	f.Add(uint8(kindTile), []byte(`<wp:Notification xmlns:wp="WPNotification"><wp:Tile><wp:Count Action="Clear"/></wp:Tile></wp:Notification>`))
	f.Fuzz(func(t *testing.T, k uint8, body []byte) {
		kind := pushKind(k % 3)
		var p push
		err := parsePayload(kind, body, &p)
		if err != nil {
			if _, ok := err.(*rejectError); !ok {
				t.Fatalf("non-reject error %T: %v", err, err)
			}
			return
		}
		switch kind {
		case kindToast:
			if p.text1 == "" && p.text2 == "" {
				t.Fatal("accepted an empty toast")
			}
		case kindTile:
			mask, ok := templateMask(p.template)
			if !ok {
				t.Fatalf("accepted template %q", p.template)
			}
			for f := field(0); f < nFields; f++ {
				if p.ops[f].set && mask&(1<<f) == 0 {
					t.Fatalf("accepted %s for %q", f, p.template)
				}
			}
			if p.ops[fCount].set && !p.ops[fCount].clear && (p.count < 0 || p.count > maxCount) {
				t.Fatalf("accepted count %d", p.count)
			}
		case kindRaw:
			if strings.Contains(string(body), nsWP) {
				t.Fatal("accepted a typed payload as raw")
			}
		}
	})
}
