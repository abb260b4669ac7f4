package emulator_test

import (
	"bytes"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/emulator"
	"github.com/tilecast/tilecast/notify/webpush"
)

// TestSaveLoadKeepsDevices: a state saved by one emulator and loaded into
// a new one (a restart with --state) keeps every phone, Windows device and
// browser with what it shows, and the old channel URIs still take pushes
// instead of answering 404 Expired.
func TestSaveLoadKeepsDevices(t *testing.T) {
	clk := &clock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	a, srvA := start(t, emulator.Options{Now: clk.Now, WNSClientID: wnsID, WNSClientSecret: []byte(wnsSecret)})
	phone := mustCreate(t, a, emulator.Healthy)
	flaky := mustCreate(t, a, emulator.Flaky, emulator.Params{FlakyP: 0.25})
	for _, r := range []req{
		toastReq(toastBody("Saved toast", "survives a restart")),
		tileReq(tileBody(` Template="FlipTile"`, "<wp:Count>2</wp:Count><wp:Title>News</wp:Title><wp:BackContent>Back</wp:BackContent>")),
		tileReq(tileBody(` Template="IconicTile" Id="/Inbox.xaml"`, "<wp:Count>4</wp:Count><wp:Title>Inbox</wp:Title>")),
	} {
		if resp := send(t, phone.URI, r); resp.StatusCode != 200 {
			t.Fatalf("push: %d %s", resp.StatusCode, resp.Header.Get("X-Emulator-Reason"))
		}
	}
	pc := mustWindows(t, a, emulator.Healthy)
	if resp := (wreq{typ: "wns/badge", body: `<badge value="7"/>`, token: mustToken(t, srvA)}).send(t, pc.URI); resp.StatusCode != 200 {
		t.Fatalf("wns push: %d", resp.StatusCode)
	}
	br, _ := createBrowser(t, srvA.URL, map[string]any{"name": "laptop"})
	toast, _ := webpush.ToastPayload(webpush.Toast{Title: "Web toast", Body: "kept"})
	if resp, body := newSender(t, clk.Now).push(t, subscriptionOf(t, br), tilecast.KindToast, string(toast), time.Hour, webpush.RequestOptions{}); resp.StatusCode != 201 {
		t.Fatalf("web push: %d %s", resp.StatusCode, body)
	}

	path := filepath.Join(t.TempDir(), "emulator.json")
	if err := a.SaveFile(path); err != nil {
		t.Fatal(err)
	}
	b, srvB := start(t, emulator.Options{Now: clk.Now, WNSClientID: wnsID, WNSClientSecret: []byte(wnsSecret)})
	if err := b.LoadFile(path); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(jsonOf(t, a.Channels()), jsonOf(t, b.Channels())) {
		t.Errorf("phones differ after load:\nsaved  %s\nloaded %s", jsonOf(t, a.Channels()), jsonOf(t, b.Channels()))
	}
	if !reflect.DeepEqual(jsonOf(t, a.WindowsDevices()), jsonOf(t, b.WindowsDevices())) {
		t.Errorf("Windows devices differ after load")
	}
	if !reflect.DeepEqual(jsonOf(t, a.Browsers()), jsonOf(t, b.Browsers())) {
		t.Errorf("browsers differ after load:\nsaved  %s\nloaded %s", jsonOf(t, a.Browsers()), jsonOf(t, b.Browsers()))
	}
	st, ok := b.Channel(phone.Token)
	if !ok || len(st.Toasts) != 1 || st.Toasts[0].Text1 != "Saved toast" || st.Secondary["/Inbox.xaml"].Count != 4 || st.Tile.Kind != "FlipTile" {
		t.Fatalf("loaded phone: %+v", st)
	}
	if fl, _ := b.Channel(flaky.Token); fl.Params.FlakyP != 0.25 || fl.Behaviour != emulator.Flaky {
		t.Errorf("loaded flaky phone: %+v", fl.Channel)
	}
	// The old channel URI, on the restarted emulator's address, takes a push.
	u, _ := url.Parse(phone.URI)
	if resp := send(t, srvB.URL+u.Path, toastReq(toastBody("After", "restart"))); resp.StatusCode != 200 || resp.Header.Get("X-SubscriptionStatus") != "Active" {
		t.Errorf("push to a saved channel after restart: %d %s", resp.StatusCode, resp.Header.Get("X-SubscriptionStatus"))
	}
	// New devices do not reuse a loaded one's place.
	if n := mustCreate(t, b, emulator.Healthy); n.Token == phone.Token {
		t.Error("new channel reuses a loaded token")
	}
	if got := len(b.Channels()); got != 3 {
		t.Errorf("%d phones after load and one more, want 3", got)
	}
	// Loading the same file again names the clash; a missing file is a first start.
	if err := b.LoadFile(path); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("loading twice: %v", err)
	}
	if err := b.LoadFile(filepath.Join(t.TempDir(), "none.json")); err != nil {
		t.Errorf("missing state file: %v", err)
	}
}

func TestLoadRefusesBadState(t *testing.T) {
	for name, tc := range map[string]struct{ body, want string }{
		"version":   {`{"version": 99}`, "version 99"},
		"behaviour": {`{"version": 1, "phones": [{"token": "x", "behaviour": "asleep", "name": "p"}]}`, `"asleep"`},
		// A Windows device or a browser with a behaviour it cannot play
		// would otherwise act healthy.
		"windows behaviour": {`{"version": 1, "windows": [{"token": "w", "behaviour": "queuefull", "name": "d"}]}`,
			`Windows device 1 ("d"): behaviour "queuefull" is not one of`},
		"browser behaviour": {`{"version": 1, "browsers": [{"token": "b", "behaviour": "revoked", "name": "c"}]}`,
			`browser 1 ("c"): behaviour "revoked" is not one of`},
		"browser key": {`{"version": 1, "browsers": [{"token": "b", "behaviour": "healthy", "name": "c", "private_key": "AAAA"}]}`,
			`browser 1 ("c"): bad key`},
		"element": {`{"version": 1, "phones": [{"token": "x", "behaviour": "healthy", "name": "p", "primary": {"fields": {"Nope": "1"}}}]}`, "Nope"},
		"unknown": {`{"version": 1, "phonez": []}`, "phonez"},
		"json":    {`{"version": 1,`, "emulator state"},
	} {
		body := tc.body
		t.Run(name, func(t *testing.T) {
			e, _ := start(t, emulator.Options{})
			path := filepath.Join(t.TempDir(), "state.json")
			if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			err := e.LoadFile(path)
			if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("loaded a bad state (%v), want an error naming the file and %s", err, tc.want)
			}
			if len(e.Channels()) != 0 {
				t.Error("a refused state added phones")
			}
		})
	}
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(v); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}
