package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// `send --transport wns --dry-run` prints the exact request of each type:
// goldens in testdata/, the token a placeholder.
func TestSendWNSDryRunGolden(t *testing.T) {
	const uri = "https://wns2-par02p.notify.windows.com/w/?token=AwYAAAB%2bQ"
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"toast", []string{"--type", "toast", "--set", "text1=Hello & <welcome>", "--set", `text2=Ünïcode "quotes"`,
			"--set", "param=/Item.xaml?id=42&x=1"}},
		{"tile", []string{"--type", "tile", "--set", "title=News", "--set", "backContent=Storm warning for the coast",
			"--set", "wideBackContent=Gales of 90 km/h expected tonight", "--set", "backgroundImage=https://cdn.example.org/tile.png"}},
		{"badge", []string{"--type", "badge", "--set", "count=7"}},
		{"badge-clear", []string{"--type", "badge", "--set", "count=0"}},
		{"raw", []string{"--type", "raw", "--set", "payload={\"sync\":true}"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"send", "--transport", "wns", "--uri", uri, "--dry-run"}, tc.args...)
			code, out, errs := runCLI(t, t.Context(), args...)
			if code != exitOK {
				t.Fatalf("exit %d: %s", code, errs)
			}
			golden := filepath.Join("testdata", "send-wns-"+tc.name+".golden")
			if *updateGolden {
				if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if out != string(want) {
				t.Errorf("dry run differs from %s\n got %q\nwant %q", golden, out, want)
			}
			// Without --transport the windows.com host is inferred as WNS.
			_, inferred, _ := runCLI(t, t.Context(), append([]string{"send", "--uri", uri, "--dry-run"}, tc.args...)...)
			if inferred != out {
				t.Errorf("inferred transport prints another request:\n%s", inferred)
			}
		})
	}
	for _, bad := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--type", "tile", "--set", "title=x", "--set", "count=3"}, "the count is a badge of its own"},
		{[]string{"--type", "badge", "--set", "count=100"}, "0-99"},
		{[]string{"--type", "badge"}, "needs --set count=N"},
		{[]string{"--type", "badge", "--set", "value=3"}, "unknown badge property"},
		{[]string{"--type", "flip", "--set", "title=x"}, "unknown WNS type"},
		{[]string{"--type", "toast"}, "no text"},
	} {
		args := append([]string{"send", "--transport", "wns", "--uri", uri, "--dry-run"}, bad.args...)
		if code, _, errs := runCLI(t, t.Context(), args...); code != exitUsage || !strings.Contains(errs, bad.msg) {
			t.Errorf("%v: exit %d, %q; want 2 with %q", bad.args, code, errs, bad.msg)
		}
	}
	// A WNS request goes to https on *.notify.windows.com only.
	if code, _, errs := runCLI(t, t.Context(), "send", "--transport", "wns", "--uri", "http://db5.notify.windows.com/?token=a",
		"--type", "toast", "--set", "text1=x", "--dry-run"); code != exitUsage || !strings.Contains(errs, "https") {
		t.Errorf("http WNS URI: exit %d, %q", code, errs)
	}
	code, out, _ := runCLI(t, t.Context(), "send", "--help")
	for _, want := range []string{"--transport", "WNS", "badge", "<access-token>"} {
		if code != exitOK || !strings.Contains(out, want) {
			t.Errorf("send --help lacks %q:\n%s", want, out)
		}
	}
}

// What `send --transport wns --dry-run` prints is what `send` then writes
// to the channel host, the Authorization header's token aside (the real
// one comes from the token endpoint); the client secret appears in
// neither. Both carry X-WNS-TTL, the kind's [defaults] time to live, and
// no X-WNS-Tag (send is about no feed).
func TestSendWNSDryRunIsTheWire(t *testing.T) {
	const secret = "s3cr3t-wns-client-secret-4c1d"
	tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil || r.PostForm.Get("client_secret") != secret {
			http.Error(w, `{"error":"invalid_client"}`, http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"access_token":"REAL-TOKEN-123","token_type":"bearer","expires_in":86400}`)
	}))
	defer tokens.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	wire := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		var rec bytes.Buffer
		br := bufio.NewReader(io.TeeReader(c, &rec))
		req, err := http.ReadRequest(br)
		if err != nil {
			wire <- nil
			return
		}
		_, _ = io.Copy(io.Discard, req.Body)
		wire <- bytes.Clone(rec.Bytes()[:rec.Len()-br.Buffered()])
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nX-WNS-Status: received\r\nX-WNS-Msg-ID: 1A2B3C\r\nMS-CV: cv.1\r\nContent-Length: 0\r\n\r\n")
	}()
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret")
	os.WriteFile(secretFile, []byte(secret+"\n"), 0o600)
	cfg := filepath.Join(dir, "tilecast.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`state = %q
[push]
allow_private = true
allowed_hosts = ["127.0.0.1"]
[push.wns]
client_id = "ms-app://s-1-15-2-1"
client_secret_file = %q
token_url = %q
[defaults]
badge_ttl = "5h"
`, filepath.Join(dir, "state.db"), secretFile, tokens.URL+"/accesstoken.srf")), 0o600)

	uri := "http://" + ln.Addr().String() + "/w/?token=WIRE"
	args := []string{"send", "--config", cfg, "--transport", "wns", "--uri", uri, "--type", "badge", "--set", "count=12"}
	code, dry, errs := runCLI(t, t.Context(), append(args, "--dry-run")...)
	if code != exitOK {
		t.Fatalf("dry run: exit %d: %s", code, errs)
	}
	code, out, errs := runCLI(t, t.Context(), args...)
	if code != exitOK || !strings.Contains(out, "verdict delivered") || !strings.Contains(out, "msg_id 1A2B3C") {
		t.Fatalf("send: exit %d: %s %s", code, out, errs)
	}
	select {
	case got := <-wire:
		sent := strings.Replace(string(got), "Bearer REAL-TOKEN-123", "Bearer "+dryRunToken, 1)
		if sent != dry {
			t.Errorf("sent differs from the dry run\nsent %q\ndry  %q", got, dry)
		}
		for _, req := range []struct{ name, text string }{{"dry run", dry}, {"sent", string(got)}} {
			if !strings.Contains(req.text, "\r\nX-WNS-TTL: 18000\r\n") {
				t.Errorf("%s lacks X-WNS-TTL: 18000 (badge_ttl 5h):\n%s", req.name, req.text)
			}
			if strings.Contains(req.text, "X-WNS-Tag") {
				t.Errorf("%s has an X-WNS-Tag, though send is about no feed:\n%s", req.name, req.text)
			}
		}
		if strings.Contains(string(got), secret) || strings.Contains(dry+out+errs, secret) {
			t.Error("the client secret was printed or sent to the channel")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the host got no request")
	}
}

// TestSendHelpConfig: send --help names what send reads from --config,
// [push.webpush]'s subject and VAPID key (which a real Web Push send
// needs) among them, in its text and in the -config flag's line, and
// what it does without --config.
func TestSendHelpConfig(t *testing.T) {
	code, out, _ := runCLI(t, t.Context(), "send", "--help")
	if code != exitOK {
		t.Fatalf("send --help: exit %d", code)
	}
	_, flagLine, found := strings.Cut(out, "  -config string\n")
	flagLine, _, _ = strings.Cut(flagLine, "\n")
	if !found {
		t.Fatalf("no -config flag in:\n%s", out)
	}
	tests := []struct {
		where, text string
		want        []string
	}{
		{"text", out, []string{"[push] class", "timeout", "client_cert", "client_key", "allow_private", "allowed_hosts",
			"[push.wns]", "client_id", "client_secret_file", "tenant", "token_url",
			"[push.webpush] subject", "vapid_private_key_file", "urgency_toast", "urgency_tile", "pad", "icon",
			"[defaults] toast_ttl, tile_ttl, badge_ttl and raw_ttl", "There is no X-WNS-Tag",
			"Without --config: the defaults, with allow_private on"}},
		{"-config flag", flagLine, []string{"[push] class", "allow_private", "[push.wns] credentials",
			"[push.webpush] subject, VAPID key", "icon", "[defaults] TTLs", "allow_private on"}},
	}
	for _, tt := range tests {
		text := strings.Join(strings.Fields(tt.text), " ")
		for _, w := range tt.want {
			if !strings.Contains(text, w) {
				t.Errorf("send --help (%s) lacks %q:\n%s", tt.where, w, tt.text)
			}
		}
	}
}
