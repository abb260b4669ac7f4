package emulator_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/tilecast/tilecast/emulator"
)

// TestBehaviourLists: POST /channels and POST /channels/TOKEN/behaviour
// accept exactly the behaviours PhoneBehaviours, WindowsBehaviours and
// BrowserBehaviours list (what emulate --help is checked against): each
// listed one creates a device of that transport and can be switched to;
// another transport's behaviour, or none known, is refused with an error
// naming the transport's whole list.
func TestBehaviourLists(t *testing.T) {
	_, srv := start(t, emulator.Options{})
	all := slices.Concat(emulator.PhoneBehaviours(), emulator.WindowsBehaviours(), emulator.BrowserBehaviours(), []string{"bogus"})
	tests := []struct {
		transport string // "" is a phone
		list      []string
	}{
		{"", emulator.PhoneBehaviours()},
		{emulator.TransportWNS, emulator.WindowsBehaviours()},
		{emulator.TransportWebPush, emulator.BrowserBehaviours()},
	}
	for _, tt := range tests {
		t.Run("transport "+tt.transport, func(t *testing.T) {
			if len(tt.list) == 0 || !slices.Contains(tt.list, emulator.Healthy) {
				t.Fatalf("list %q lacks healthy", tt.list)
			}
			body := func(b string) map[string]any {
				m := map[string]any{"behaviour": b, "name": "lists " + b}
				if tt.transport != "" {
					m["transport"] = tt.transport
				}
				return m
			}
			resp, out := postJSON(t, srv.URL+"/channels", body(emulator.Healthy))
			token, _ := out["token"].(string)
			if resp.StatusCode != 201 || token == "" {
				t.Fatalf("create healthy: %d %v", resp.StatusCode, out)
			}
			for _, b := range all {
				listed := slices.Contains(tt.list, b)
				resp, out := postJSON(t, srv.URL+"/channels", body(b))
				switch {
				case listed && (resp.StatusCode != 201 || out["behaviour"] != b):
					t.Errorf("create %q: %d %v", b, resp.StatusCode, out)
				case !listed && resp.StatusCode != 400:
					t.Errorf("create %q (not listed): %d %v, want 400", b, resp.StatusCode, out)
				case !listed:
					msg, _ := out["error"].(string)
					for _, name := range tt.list {
						if !strings.Contains(msg, name) {
							t.Errorf("create %q: error %q does not name %q", b, msg, name)
						}
					}
				}
				resp, out = postJSON(t, srv.URL+"/channels/"+token+"/behaviour", map[string]any{"behaviour": b})
				if want := map[bool]int{true: 200, false: 400}[listed]; resp.StatusCode != want || (listed && out["behaviour"] != b) {
					t.Errorf("set %q (listed %v): %d %v, want %d", b, listed, resp.StatusCode, out, want)
				}
			}
		})
	}
}
