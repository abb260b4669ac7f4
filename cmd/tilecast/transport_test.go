package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/store"
)

// transportConfig writes a config with the default push.allowed_hosts
// plus 127.0.0.1 (the emulator) and push.allow_private, no daemon.
func transportConfig(t *testing.T) (cfg, state string) {
	t.Helper()
	dir := t.TempDir()
	state = filepath.Join(dir, "state.db")
	cfg = filepath.Join(dir, "tilecast.toml")
	text := fmt.Sprintf(`state = %q
[http]
listen = ""
[push]
allow_private = true
allowed_hosts = ["*.notify.live.net", "*.notify.windows.com", "127.0.0.1"]
[[feed]]
name = "news"
url = "http://127.0.0.1:9/news.xml"
[feed.toast]
text1 = "{{.Item.Title}}"
`, state)
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg, state
}

// `channels add` infers or takes the transport and refuses what a WNS
// registration may not be.
func TestChannelsAddTransport(t *testing.T) {
	cfg, _ := transportConfig(t)
	for _, tc := range []struct {
		args []string
		want tilecast.Transport
	}{
		{[]string{"--uri", "https://wns2-par02p.notify.windows.com/w/?token=AAA"}, tilecast.TransportWNS},
		{[]string{"--uri", "https://db3.notify.live.net/throttledthirdparty/01.00/B"}, tilecast.TransportMPNS},
		{[]string{"--uri", "http://127.0.0.1:8461/w/?token=C", "--transport", "wns"}, tilecast.TransportWNS},
		{[]string{"--uri", "http://127.0.0.1:8461/throttledthirdparty/01.00/D"}, tilecast.TransportMPNS},
	} {
		code, out, errs := runCLI(t, t.Context(), append([]string{"channels", "add", "--json", "--config", cfg}, tc.args...)...)
		if code != exitOK {
			t.Fatalf("channels add %v: exit %d: %s", tc.args, code, errs)
		}
		var ch tilecast.Channel
		if err := json.Unmarshal([]byte(out), &ch); err != nil || ch.Transport != tc.want {
			t.Errorf("channels add %v: %s (%v), want transport %q", tc.args, out, err, tc.want)
		}
	}
	for _, bad := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--uri", "http://db5.notify.windows.com/?token=E"}, "must be https"},
		{[]string{"--uri", "https://push.example.org/x", "--transport", "wns"}, "not in push.allowed_hosts"},
		{[]string{"--uri", "https://db5.notify.windows.com/?token=F", "--transport", "mpns"}, "is a WNS host"},
		{[]string{"--uri", "https://db5.notify.windows.com/?token=G", "--transport", "apns"}, "unknown transport"},
	} {
		code, _, errs := runCLI(t, t.Context(), append([]string{"channels", "add", "--json", "--config", cfg}, bad.args...)...)
		if code != exitUsage || !strings.Contains(errs, bad.msg) {
			t.Errorf("channels add %v: exit %d, %q; want 2 with %q", bad.args, code, errs, bad.msg)
		}
	}
	code, out, _ := runCLI(t, t.Context(), "channels", "add", "--help")
	if code != exitOK || !strings.Contains(out, "--transport") || !strings.Contains(out, "*.notify.windows.com") {
		t.Errorf("channels add --help does not cover WNS:\n%s", out)
	}
}

// `channels import` takes a transport and a device per line, in JSON
// lines and in CSV (by position, or by a header's names in any order); a
// device's later line rotates its channel to the new URI.
func TestChannelsImportTransportAndDevice(t *testing.T) {
	for _, tc := range []struct {
		name, file, content, summary string
		rejected                     []string
	}{
		{"json lines", "chs.jsonl",
			`{"uri": "https://wns2-par02p.notify.windows.com/w/?token=A", "user": "ana", "device": "pc1"}
{"uri": "http://127.0.0.1:8461/w/?token=E", "transport": "wns"}
{"uri": "https://db3.notify.live.net/throttledthirdparty/01.00/M"}
{"uri": "https://wns2-par02p.notify.windows.com/w/?token=A2", "user": "ana", "device": "pc1"}
{"uri": "http://127.0.0.1:8461/w/?token=X"}
{"uri": "http://db5.notify.windows.com/?token=H", "transport": "wns"}
{"uri": "https://db5.notify.windows.com/?token=U", "transport": "apns"}
`, "added 4, updated 1, rejected 2", []string{"line 6: ", "must be https", "line 7: ", "unknown transport"}},
		{"csv by position", "chs.csv",
			"https://wns2-par02p.notify.windows.com/w/?token=A,ana,news,,pc1\n" +
				"http://127.0.0.1:8461/w/?token=E,,,wns\n" +
				"https://db3.notify.live.net/throttledthirdparty/01.00/M\n" +
				"https://wns2-par02p.notify.windows.com/w/?token=A2,ana,news,wns,pc1\n" +
				"http://127.0.0.1:8461/w/?token=X\n" +
				"http://db5.notify.windows.com/?token=H,,,wns\n" +
				"https://db5.notify.windows.com/?token=U,,,apns\n",
			"added 4, updated 1, rejected 2", []string{"line 6: ", "must be https", "line 7: ", "unknown transport"}},
		{"csv with a header", "hdr.csv",
			"device,transport,uri,user\n" +
				"pc1,,https://wns2-par02p.notify.windows.com/w/?token=A,ana\n" +
				",wns,http://127.0.0.1:8461/w/?token=E,\n" +
				",,https://db3.notify.live.net/throttledthirdparty/01.00/M,\n" +
				"pc1,,https://wns2-par02p.notify.windows.com/w/?token=A2,ana\n" +
				",,http://127.0.0.1:8461/w/?token=X,\n",
			"added 4, updated 1, rejected 0", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, state := transportConfig(t)
			path := filepath.Join(filepath.Dir(cfg), tc.file)
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			code, out, errs := runCLI(t, t.Context(), "channels", "import", "--config", cfg, path)
			if code != exitOK || !strings.HasPrefix(out, tc.summary) {
				t.Fatalf("exit %d, output:\n%s%s\nwant %q", code, out, errs, tc.summary)
			}
			for _, r := range tc.rejected {
				if !strings.Contains(out, r) {
					t.Errorf("output lacks %q:\n%s", r, out)
				}
			}
			db, err := store.Open(state, store.Options{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			want := map[string]tilecast.Transport{
				"https://wns2-par02p.notify.windows.com/w/?token=A2":      tilecast.TransportWNS,
				"http://127.0.0.1:8461/w/?token=E":                        tilecast.TransportWNS,
				"https://db3.notify.live.net/throttledthirdparty/01.00/M": tilecast.TransportMPNS,
			}
			for uri, tr := range want {
				ch, err := db.ChannelByURI(uri)
				if err != nil || ch.Transport != tr {
					t.Errorf("%s: %+v, %v; want transport %q", uri, ch, err, tr)
				}
			}
			// The device's channel moved to its second URI: the first is gone.
			if ch, err := db.ChannelByURI("https://wns2-par02p.notify.windows.com/w/?token=A"); err == nil {
				t.Errorf("the rotated device's old URI is still a channel: %+v", ch)
			}
			if ch, _ := db.ChannelByURI("https://wns2-par02p.notify.windows.com/w/?token=A2"); ch.Device != "pc1" || ch.User != "ana" {
				t.Errorf("rotated channel %+v, want device pc1 of ana", ch)
			}
		})
	}
}
