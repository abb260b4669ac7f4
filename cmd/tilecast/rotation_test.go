package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/tilecast/tilecast"
)

// `channels add` with a new URI for the same --user and --device rotates
// that install's channel (same id) and the store's "channel rotated" line
// reaches stderr, without the URI; another user's --device is another
// install.
func TestChannelsAddRotatesDevice(t *testing.T) {
	o := newOpsEnv(t)
	add := func(uri, user string) (tilecast.Channel, string) {
		t.Helper()
		code, out, errs := runCLI(t, t.Context(), "channels", "add", "--json", "--config", o.cfg, "--uri", uri, "--user", user, "--device", "install-9")
		var ch tilecast.Channel
		if code != exitOK || json.Unmarshal([]byte(out), &ch) != nil {
			t.Fatalf("add %s: exit %d %s %s", uri, code, out, errs)
		}
		return ch, errs
	}
	first, _ := add("https://db3.notify.live.net/t/SECRET1", "ana")
	other, errs := add("https://db3.notify.live.net/t/SECRET2", "bob")
	if other.ID == first.ID || strings.Contains(errs, "channel rotated") {
		t.Fatalf("bob's registration of ana's device id: %+v, stderr %q; want a channel of his own", other, errs)
	}
	rotated, errs := add("https://db3.notify.live.net/t/SECRET3", "ana")
	if rotated.ID != first.ID || rotated.URI != "https://db3.notify.live.net/t/SECRET3" {
		t.Errorf("rotation: %+v, want %s with the new URI", rotated, first.ID)
	}
	want := `msg="channel rotated" channel=` + first.ID + ` old_channel=` + first.ID + ` new_channel=` + first.ID +
		` user=ana device=install-9 host=db3.notify.live.net`
	if !strings.Contains(errs, want) || strings.Contains(errs, "SECRET") {
		t.Errorf("stderr %q, want %q and no URI", errs, want)
	}
}
