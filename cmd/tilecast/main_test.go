package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/emulator"
	"github.com/tilecast/tilecast/internal/logtest"
	"github.com/tilecast/tilecast/internal/pgtest"
)

// runCLI runs the command line in-process and returns exit code, stdout, stderr.
func runCLI(t *testing.T, ctx context.Context, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(ctx, args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestHelpOnEveryCommand(t *testing.T) {
	for _, c := range commands() {
		code, out, _ := runCLI(t, t.Context(), c.name, "--help")
		if code != exitOK || !strings.Contains(out, "Usage: tilecast "+c.name) {
			t.Errorf("%s --help: exit %d, output %q", c.name, code, out)
		}
	}
	for _, sub := range []string{"list", "add", "remove"} {
		code, out, _ := runCLI(t, t.Context(), "channels", sub, "--help")
		if code != exitOK || !strings.Contains(out, "Usage: tilecast channels "+sub) {
			t.Errorf("channels %s --help: exit %d, output %q", sub, code, out)
		}
	}
	if code, _, _ := runCLI(t, t.Context(), "nosuchcommand"); code != exitUsage {
		t.Errorf("unknown command: exit %d, want 2", code)
	}
}

func TestBadConfigExitsTwoWithPosition(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.toml")
	os.WriteFile(path, []byte("state = \"x\"\n[[feed]]\nname = \"a\"\nurl = \"http://x/\"\nschedule = \"*/5 * *\"\n[feed.toast]\ntext1 = \"{{.Item.Title\"\n"), 0o600)
	code, _, errs := runCLI(t, t.Context(), "check", "--config", path)
	if code != exitUsage {
		t.Fatalf("exit %d, want 2", code)
	}
	for _, want := range []string{path + ":5:12: feed[0].schedule", path + ":7:9: feed[0].toast.text1"} {
		if !strings.Contains(errs, want) {
			t.Errorf("error output lacks %q:\n%s", want, errs)
		}
	}
}

// TestSendDryRunMatchesGolden: the dry run prints the captured mpns
// request — body byte for byte, the reference's headers by name and value
// (the order is net/http's) plus Host and tilecast's User-Agent.
func TestSendDryRunMatchesGolden(t *testing.T) {
	var capture struct {
		Request struct {
			Href    string            `json:"href"`
			Path    string            `json:"path"`
			Host    string            `json:"host"`
			Headers map[string]string `json:"headers"`
			Body    string            `json:"body"`
		} `json:"request"`
	}
	raw, err := os.ReadFile("../../notify/mpns/testdata/golden/a-toast.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &capture); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCLI(t, t.Context(), "send", "--uri", capture.Request.Href, "--type", "toast",
		"--set", "text1=Hello & <welcome>", "--set", `text2=Ünïcode "quotes"`, "--set", "param=/Item.xaml?id=42&x=1", "--dry-run")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	head, body, ok := strings.Cut(out, "\r\n\r\n")
	if !ok {
		t.Fatalf("no blank line after the headers:\n%q", out)
	}
	if body != capture.Request.Body {
		t.Errorf("body\n got %q\nwant %q", body, capture.Request.Body)
	}
	lines := strings.Split(head, "\r\n")
	if want := "POST " + capture.Request.Path + " HTTP/1.1"; lines[0] != want {
		t.Errorf("request line %q, want %q", lines[0], want)
	}
	got := map[string]string{}
	for _, l := range lines[1:] {
		name, value, _ := strings.Cut(l, ": ")
		got[name] = value
	}
	want := map[string]string{"Host": capture.Request.Host, "User-Agent": userAgent()}
	for k, v := range capture.Request.Headers {
		want[k] = v
	}
	if len(got) != len(want) || len(lines) != len(want)+1 {
		t.Errorf("headers %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("header %s = %q, want %q", k, got[k], v)
		}
	}
	if code, _, _ := runCLI(t, t.Context(), "send", "--uri", capture.Request.Href, "--type", "toast", "--set", "bogus=1", "--dry-run"); code != exitUsage {
		t.Errorf("unknown property: exit %d, want 2", code)
	}
	if code, _, _ := runCLI(t, t.Context(), "send", "--uri", "/relative", "--type", "toast", "--set", "text1=x", "--dry-run"); code != exitUsage {
		t.Errorf("relative uri: exit %d, want 2", code)
	}
}

// TestSendDryRunIsTheWire: what `send --dry-run` prints is byte for byte
// what `send` then writes to the channel host.
func TestSendDryRunIsTheWire(t *testing.T) {
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
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nX-NotificationStatus: Received\r\nContent-Length: 0\r\n\r\n")
	}()
	uri := "http://" + ln.Addr().String() + "/throttledthirdparty/01.00/WIRE?x=1"
	args := []string{"send", "--uri", uri, "--type", "flip", "--set", "title=Ünï & co", "--set", "count=3"}
	code, dry, errs := runCLI(t, t.Context(), append(args, "--dry-run")...)
	if code != exitOK {
		t.Fatalf("dry run: exit %d: %s", code, errs)
	}
	code, out, errs := runCLI(t, t.Context(), args...)
	if code != exitOK || !strings.Contains(out, "verdict delivered") {
		t.Fatalf("send: exit %d: %s %s", code, out, errs)
	}
	select {
	case got := <-wire:
		if string(got) != dry {
			t.Errorf("sent differs from the dry run\nsent %q\ndry  %q", got, dry)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the host got no request")
	}
}

// e2eConfig writes a config for a feed server and an emulator on loopback,
// with the state file state.db next to it.
func e2eConfig(t *testing.T, feedURL string) string { return e2eConfigState(t, feedURL, "") }

// e2eConfigAPI is e2eConfigState with the HTTP API on addr and one key,
// "secret-key-1"; edits are (old, new) pairs replaced once each, in order.
func e2eConfigAPI(t *testing.T, feedURL, state, addr string, edits ...string) string {
	t.Helper()
	cfg := e2eConfigState(t, feedURL, state)
	keys := filepath.Join(filepath.Dir(cfg), "api-keys")
	if err := os.WriteFile(keys, []byte("secret-key-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	text, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	conf := strings.Replace(string(text), "listen = \"\"\n", fmt.Sprintf("listen = %q\napi_keys_file = %q\n", addr, keys), 1)
	for k := 0; k+1 < len(edits); k += 2 {
		conf = strings.Replace(conf, edits[k], edits[k+1], 1)
	}
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// e2eConfigState is e2eConfig with the given state (a file or a URL; ""
// for state.db next to the config).
func e2eConfigState(t *testing.T, feedURL, state string) string {
	dir := t.TempDir()
	path := filepath.Join(dir, "tilecast.toml")
	if state == "" {
		state = filepath.Join(dir, "state.db")
	}
	cfg := fmt.Sprintf(`state = %q
[http]
listen = ""
[fetch]
allow_private = true
[push]
allow_private = true
allowed_hosts = ["127.0.0.1"]
[[feed]]
name = "news"
url = "%s/news.xml"
schedule = "@every 1s"
[feed.toast]
text1 = "{{.Feed.Title}}"
text2 = "{{.Item.Title}}"
[feed.tile]
title = "News"
count = "{{.NewCount}}"
back_content = "{{.Item.Title}}"
`, state, feedURL)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

type growingFeed struct {
	mu    sync.Mutex
	items []string
}

func (g *growingFeed) add(title string) { g.mu.Lock(); g.items = append(g.items, title); g.mu.Unlock() }

func (g *growingFeed) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	defer g.mu.Unlock()
	io.WriteString(w, `<rss version="2.0"><channel><title>Town News</title>`)
	for i := len(g.items) - 1; i >= 0; i-- {
		fmt.Fprintf(w, `<item><guid>g%d</guid><title>%s</title></item>`, i, g.items[i])
	}
	io.WriteString(w, `</channel></rss>`)
}

// channels add/list/remove, once and status, on both stores.
func TestChannelsAndOnceEndToEnd(t *testing.T) {
	t.Run("bbolt", func(t *testing.T) { channelsAndOnce(t, "") })
	t.Run("postgres", func(t *testing.T) { channelsAndOnce(t, pgtest.New(t)) })
}

func channelsAndOnce(t *testing.T, state string) {
	feed := &growingFeed{}
	feed.add("First story")
	fsrv := httptest.NewServer(feed)
	defer fsrv.Close()
	emu := emulator.New(emulator.Options{})
	esrv := httptest.NewServer(emu.Handler())
	defer esrv.Close()
	defer emu.Close()
	emu.SetBaseURL(esrv.URL)
	phone, err := emu.CreateChannel(emulator.Healthy, "phone")
	if err != nil {
		t.Fatal(err)
	}
	cfg := e2eConfigState(t, fsrv.URL, state)
	ctx := t.Context()

	// channels add twice: one record, the second updates it.
	code, out, errs := runCLI(t, ctx, "channels", "add", "--json", "--config", cfg, "--uri", phone.URI, "--feed", "news")
	if code != exitOK {
		t.Fatalf("channels add: %d %s", code, errs)
	}
	var ch tilecast.Channel
	if err := json.Unmarshal([]byte(out), &ch); err != nil || ch.ID == "" {
		t.Fatalf("channels add printed %q (%v)", out, err)
	}
	code, out, _ = runCLI(t, ctx, "channels", "add", "--json", "--config", cfg, "--uri", phone.URI, "--user", "ana", "--feed", "news")
	var again tilecast.Channel
	json.Unmarshal([]byte(out), &again)
	if code != exitOK || again.ID != ch.ID || again.User != "ana" {
		t.Fatalf("re-adding the same URI: exit %d, %+v (first %s)", code, again, ch.ID)
	}
	for _, bad := range [][]string{
		{"--uri", "http://evil.example.com/x"}, {"--uri", phone.URI, "--feed", "nosuch"}, {"--uri", "ftp://127.0.0.1/x"},
	} {
		if code, _, _ := runCLI(t, ctx, append([]string{"channels", "add", "--json", "--config", cfg}, bad...)...); code != exitUsage {
			t.Errorf("channels add %v: exit %d, want 2", bad, code)
		}
	}
	code, out, _ = runCLI(t, ctx, "channels", "list", "--config", cfg, "--json")
	var list []tilecast.Channel
	if err := json.Unmarshal([]byte(out), &list); code != exitOK || err != nil || len(list) != 1 {
		t.Fatalf("channels list: exit %d, %d channels (%v): %s", code, len(list), err, out)
	}

	// once: the first run is a baseline, the second sends the new item.
	if code, _, errs := runCLI(t, ctx, "once", "--config", cfg); code != exitOK {
		t.Fatalf("once: %d %s", code, errs)
	}
	feed.add("Second story")
	code, _, errs = runCLI(t, ctx, "once", "--config", cfg)
	if code != exitOK || !strings.Contains(errs, "msg=push") || !strings.Contains(errs, "outcome=delivered") {
		t.Fatalf("once: exit %d, log:\n%s", code, errs)
	}
	st, _ := emu.Channel(phone.Token)
	if len(st.Toasts) != 1 || st.Toasts[0].Text2 != "Second story" || st.Tile.View().BackContent != "Second story" {
		t.Errorf("phone after once: toasts %+v tile %+v", st.Toasts, st.Tile.View())
	}
	code, out, _ = runCLI(t, ctx, "status", "--config", cfg)
	if code != exitOK || !strings.Contains(out, "channels 1") || !strings.Contains(out, "news") {
		t.Errorf("status: exit %d:\n%s", code, out)
	}

	// remove by URI, then it is gone.
	if code, _, errs := runCLI(t, ctx, "channels", "remove", "--config", cfg, "--uri", phone.URI); code != exitOK {
		t.Fatalf("remove: %d %s", code, errs)
	}
	if code, _, _ := runCLI(t, ctx, "channels", "remove", "--config", cfg, ch.ID); code != exitRuntime {
		t.Errorf("removing an unknown id: exit %d, want 1", code)
	}
}

func TestRunStopsCleanlyAndSecondInstanceIsRefused(t *testing.T) {
	feed := &growingFeed{}
	feed.add("First")
	fsrv := httptest.NewServer(feed)
	defer fsrv.Close()
	cfg := e2eConfig(t, fsrv.URL)
	// Once the daemon runs (it holds the state file), start a second one.
	d := startDaemon(t, cfg)
	code, _, errs := runCLI(t, t.Context(), "run", "--config", cfg)
	if code != exitUsage || !strings.Contains(errs, "in use by another tilecast") {
		t.Fatalf("second instance: exit %d %s", code, errs)
	}
	if code := d.stop(); code != exitOK {
		t.Errorf("run exited %d after cancel", code)
	}
	if !strings.Contains(d.logs.String(), "msg=stopped") {
		t.Errorf("no clean stop logged:\n%s", d.logs.String())
	}
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestDaemonServesAPIAndReloadsOnSIGHUP(t *testing.T) {
	feed := &growingFeed{}
	feed.add("First")
	fsrv := httptest.NewServer(feed)
	defer fsrv.Close()
	cfg := loopbackConfig(t, t.TempDir(), "# operators\nsecret-key-1\n", fmt.Sprintf(`allowed_hosts = ["127.0.0.1"]
[[feed]]
name = "news"
url = "%s/news.xml"
schedule = "@every 1h"
[feed.toast]
text2 = "{{.Item.Title}}"
`, fsrv.URL))
	text, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	base := string(text)

	d := startDaemon(t, cfg)
	if code, body := d.call("GET", "/healthz", "", "secret-key-1"); code != 200 {
		t.Errorf("/healthz: %d %s", code, body)
	}
	reg := `{"uri":"http://127.0.0.1:9/throttledthirdparty/01.00/x","feeds":["news"]}`
	if code, _ := d.call("POST", "/v1/channels", reg, "secret-key-1"); code != http.StatusCreated {
		t.Errorf("register: %d", code)
	}
	waitFor(t, "first fetch", func() bool { return strings.Contains(d.logs.String(), "msg=fetch feed=news") })
	if code, body := d.call("GET", "/metrics", "", "secret-key-1"); code != 200 || !strings.Contains(body, `tilecast_fetch_total{feed="news",result="ok"} 1`) ||
		!strings.Contains(body, "tilecast_channels 1") {
		t.Errorf("/metrics: %d\n%s", code, body)
	}

	// A broken config is rejected and the daemon keeps running.
	os.WriteFile(cfg, []byte(base+"bogus_key = 1\n"), 0o600)
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	waitFor(t, "rejected reload", func() bool { return strings.Contains(d.logs.String(), "config reload rejected") })
	// A good config adds a feed without a restart.
	os.WriteFile(cfg, []byte(base+
		fmt.Sprintf("[[feed]]\nname = \"extra\"\nurl = \"%s/extra.xml\"\nschedule = \"@every 1s\"\n[feed.toast]\ntext2 = \"x\"\n", fsrv.URL)), 0o600)
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	waitFor(t, "reload", func() bool {
		return strings.Contains(d.logs.String(), `msg="config reloaded" feeds=2`) || strings.Count(d.logs.String(), "config reload rejected") > 1
	})
	if strings.Count(d.logs.String(), "config reload rejected") > 1 {
		t.Fatalf("good config rejected:\n%s", d.logs.String())
	}
	waitFor(t, "the new feed's fetch", func() bool { return strings.Contains(d.logs.String(), "msg=fetch feed=extra") })
	if code, body := d.call("GET", "/healthz", "", "secret-key-1"); code != 200 {
		t.Errorf("/healthz after reload: %d %s", code, body)
	}

	if code := d.stop(); code != exitOK {
		t.Errorf("exit %d\n%s", code, d.logs.String())
	}
}

func TestPreviewPrintsRequestsAndChangesNothing(t *testing.T) {
	feed := &growingFeed{}
	feed.add("Only story <b>bold</b>")
	fsrv := httptest.NewServer(feed)
	defer fsrv.Close()
	cfg := e2eConfig(t, fsrv.URL)
	code, out, errs := runCLI(t, t.Context(), "preview", "--config", cfg, "--feed", "news", "--as-new")
	if code != exitOK {
		t.Fatalf("preview: exit %d %s", code, errs)
	}
	for _, want := range []string{"every one taken as new (--as-new", "# toast", "X-WindowsPhone-Target: toast", "# tile", "X-WindowsPhone-Target: token",
		"<wp:Text2>Only story bold</wp:Text2>", `Template="FlipTile"`} {
		if !strings.Contains(out, want) {
			t.Errorf("preview output lacks %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(cfg), "state.db")); !os.IsNotExist(err) {
		t.Errorf("preview created or touched the state file (err %v)", err)
	}
	if code, _, _ := runCLI(t, t.Context(), "preview", "--config", cfg, "--feed", "nosuch"); code != exitUsage {
		t.Errorf("unknown feed: exit %d, want 2", code)
	}
	// What a Windows channel would get: a ToastGeneric toast, an adaptive
	// tile and the count as a badge, with WNS's headers.
	code, out, errs = runCLI(t, t.Context(), "preview", "--config", cfg, "--feed", "news", "--transport", "wns", "--as-new")
	if code != exitOK {
		t.Fatalf("preview --transport wns: exit %d %s", code, errs)
	}
	for _, want := range []string{"# toast", "X-WNS-Type: wns/toast", `<binding template="ToastGeneric"><text>`,
		"# tile", "X-WNS-Type: wns/tile", `template="TileWide"`, "# badge", "X-WNS-Type: wns/badge", `<badge value="1"/>`,
		"X-WNS-Tag: news", "Authorization: Bearer <access-token>", "X-WNS-TTL: "} {
		if !strings.Contains(out, want) {
			t.Errorf("preview --transport wns lacks %q:\n%s", want, out)
		}
	}
	if code, _, _ := runCLI(t, t.Context(), "preview", "--config", cfg, "--feed", "news", "--transport", "apns"); code != exitUsage {
		t.Errorf("unknown transport: exit %d, want 2", code)
	}
}

func TestEmulateServesPhoneView(t *testing.T) {
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(t.Context())
	out := &logtest.Buffer{}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"emulate", "--listen", addr, "--host", "emulator"}, strings.NewReader(""), out, io.Discard)
	}()
	waitFor(t, "the emulator", func() bool { return strings.Contains(out.String(), "phone view") })
	resp, err := http.Post("http://"+addr+"/channels", "application/json", strings.NewReader(`{"behaviour":"healthy","name":"p"}`))
	if err != nil {
		t.Fatal(err)
	}
	var ch struct{ URI string }
	json.NewDecoder(resp.Body).Decode(&ch)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || !strings.Contains(ch.URI, "/throttledthirdparty/01.00/") {
		t.Errorf("create channel: %d %+v", resp.StatusCode, ch)
	}
	// Host names: the --host one and localhost are answered, others refused.
	_, port, _ := net.SplitHostPort(addr)
	for host, want := range map[string]int{"emulator:" + port: 200, "localhost:" + port: 200, "attacker.example:" + port: 403} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/channels", nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Host %s: %d, want %d", host, resp.StatusCode, want)
		}
	}
	cancel()
	if code := <-done; code != exitOK {
		t.Errorf("emulate exited %d", code)
	}
}
