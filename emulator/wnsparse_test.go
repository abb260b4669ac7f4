package emulator

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParseWNS checks the WNS parser never panics, refuses only with a
// reject error, and that what it accepts is something a Windows device
// can show.
func FuzzParseWNS(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "wns-*.body"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		for k := range uint8(3) {
			f.Add(k, b)
		}
	}
	f.Add(uint8(1), []byte(`<tile><visual displayName="x"><binding template="TileLarge"><group><subgroup><text>a</text><image src="ms-appx:///a.png"/></subgroup></group></binding></visual></tile>`))
	f.Add(uint8(0), []byte(`<toast launch="a&#10;b" scenario="alarm"><visual><binding template="ToastGeneric"><text>t</text><image placement="hero" src="https://x/h.png"/></binding></visual><audio src="ms-winsoundevent:Notification.Looping.Alarm2" loop="true"/></toast>`))
	types := [...]string{"toast", "tile", "badge"}
	f.Fuzz(func(t *testing.T, k uint8, body []byte) {
		typ := types[int(k)%len(types)]
		p, err := parseWNS(typ, body)
		if err != nil {
			if _, ok := err.(*rejectError); !ok {
				t.Fatalf("non-reject error %T: %v", err, err)
			}
			return
		}
		switch typ {
		case "toast":
			if len(p.bindings) != 1 {
				t.Fatalf("toast with %d bindings", len(p.bindings))
			}
			b := p.bindings[0]
			if b.template == "ToastGeneric" && len(b.texts) == 0 {
				t.Fatal("accepted a ToastGeneric toast without text")
			}
		case "tile":
			sizes := map[string]bool{}
			for _, b := range p.bindings {
				size := wnsTemplates[b.template].size
				if size == "" || sizes[size] {
					t.Fatalf("accepted binding %q (size %q twice or none)", b.template, size)
				}
				sizes[size] = true
			}
		case "badge":
			if p.badge == "" {
				t.Fatal("accepted a badge without value")
			}
		}
	})
}

func TestBadgeShown(t *testing.T) {
	for in, want := range map[string]string{"0": "", "none": "", "1": "1", "99": "99", "100": "99+", "alert": "alert"} {
		if got := badgeShown(in); got != want {
			t.Errorf("badgeShown(%q) = %q, want %q", in, got, want)
		}
	}
}
