package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tilecast/tilecast/internal/logtest"
)

// TestEmulateWNS: with --wns-client-id and --wns-client-secret-file the
// emulator's token endpoint issues tokens for exactly those credentials,
// and a Windows device created through its API takes a push with one.
func TestEmulateWNS(t *testing.T) {
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte("emu-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(t.Context())
	out := &logtest.Buffer{}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"emulate", "--listen", addr, "--wns-client-id", "ms-app://s-1-15-2-7",
			"--wns-client-secret-file", secretFile, "--wns-token-ttl", "10m"}, strings.NewReader(""), out, io.Discard)
	}()
	waitFor(t, "the emulator", func() bool { return strings.Contains(out.String(), "WNS token_url") })
	if !strings.Contains(out.String(), "http://"+addr+"/accesstoken.srf") {
		t.Errorf("banner does not name the token URL:\n%s", out.String())
	}
	token := func(secret string) (int, map[string]any) {
		form := url.Values{"grant_type": {"client_credentials"}, "client_id": {"ms-app://s-1-15-2-7"},
			"client_secret": {secret}, "scope": {"notify.windows.com"}}
		resp, err := http.PostForm("http://"+addr+"/accesstoken.srf", form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v map[string]any
		json.NewDecoder(resp.Body).Decode(&v)
		return resp.StatusCode, v
	}
	if code, v := token("wrong"); code != 400 || v["error"] != "invalid_client" {
		t.Errorf("wrong secret: %d %v", code, v)
	}
	code, v := token("emu-secret") // the file's trailing newline is not part of it
	if code != 200 || v["expires_in"] != float64(600) {
		t.Fatalf("token: %d %v", code, v)
	}
	resp, err := http.Post("http://"+addr+"/channels", "application/json", strings.NewReader(`{"transport":"wns","name":"pc"}`))
	if err != nil {
		t.Fatal(err)
	}
	var dev struct{ URI, Transport string }
	json.NewDecoder(resp.Body).Decode(&dev)
	resp.Body.Close()
	if resp.StatusCode != 201 || dev.Transport != "wns" {
		t.Fatalf("create device: %d %+v", resp.StatusCode, dev)
	}
	req, _ := http.NewRequest(http.MethodPost, dev.URI, strings.NewReader(`<badge value="3"/>`))
	req.Header.Set("Content-Type", "text/xml")
	req.Header.Set("X-WNS-Type", "wns/badge")
	req.Header.Set("Authorization", "Bearer "+v["access_token"].(string))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-WNS-Status") != "received" {
		t.Errorf("push: %d %v", resp.StatusCode, resp.Header)
	}
	cancel()
	if code := <-done; code != exitOK {
		t.Errorf("emulate exited %d", code)
	}
}

func TestEmulateWNSFlags(t *testing.T) {
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"emulate", "--wns-client-id", "ms-app://x"},
		{"emulate", "--wns-client-secret-file", empty},
		{"emulate", "--wns-client-id", "ms-app://x", "--wns-client-secret-file", empty},
		{"emulate", "--wns-client-id", "ms-app://x", "--wns-client-secret-file", "/nonexistent/secret"},
		{"emulate", "--wns-token-ttl", "0s"},
	} {
		if code, _, errs := runCLI(t, t.Context(), args...); code != exitUsage {
			t.Errorf("%v: exit %d, want 2 (%s)", args, code, errs)
		}
	}
	code, out, _ := runCLI(t, t.Context(), "emulate", "--help")
	if code != exitOK || !strings.Contains(out, "--wns-client-secret-file") {
		t.Errorf("--help: %d %s", code, out)
	}
}

// TestEmulateStateAcrossRestart: with --state a restarted emulator still
// knows the phones created before (their URIs take pushes), its help says
// how to create channels, about ?poll and what happens without --state,
// an unknown behaviour lists the valid ones, and its log lines carry
// component=emulator once.
func TestEmulateStateAcrossRestart(t *testing.T) {
	help := &logtest.Buffer{}
	run(t.Context(), []string{"emulate", "--help"}, strings.NewReader(""), help, help)
	for _, want := range []string{"curl -X POST", "/channels", "?poll", "Without --state", "Expired", "healthy, expired, inactive"} {
		if !strings.Contains(help.String(), want) {
			t.Errorf("emulate --help lacks %q:\n%s", want, help.String())
		}
	}

	state := filepath.Join(t.TempDir(), "emulator.json")
	addr := freeAddr(t)
	start := func() (stop func(), out, logs *logtest.Buffer) {
		ctx, cancel := context.WithCancel(t.Context())
		out, logs = &logtest.Buffer{}, &logtest.Buffer{}
		done := make(chan int, 1)
		go func() {
			done <- run(ctx, []string{"emulate", "--listen", addr, "--state", state}, strings.NewReader(""), out, logs)
		}()
		waitFor(t, "the emulator", func() bool { return strings.Contains(out.String(), "state:") })
		return func() {
			cancel()
			if code := <-done; code != exitOK {
				t.Errorf("emulate exited %d: %s", code, logs.String())
			}
		}, out, logs
	}
	stop, out, logs := start()
	if !strings.Contains(out.String(), "?poll") || !strings.Contains(out.String(), state+" (0 devices") {
		t.Errorf("banner:\n%s", out.String())
	}
	resp, err := http.Post("http://"+addr+"/channels", "application/json", strings.NewReader(`{"behaviour":"asleep"}`))
	if err != nil {
		t.Fatal(err)
	}
	var e struct{ Error string }
	json.NewDecoder(resp.Body).Decode(&e)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(e.Error, "want healthy, expired, inactive, queuefull, suppressed, flaky or slow") {
		t.Errorf("unknown behaviour: %d %q", resp.StatusCode, e.Error)
	}
	resp, err = http.Post("http://"+addr+"/channels", "application/json", strings.NewReader(`{"behaviour":"healthy","name":"kept phone"}`))
	if err != nil {
		t.Fatal(err)
	}
	var ch struct{ URI string }
	json.NewDecoder(resp.Body).Decode(&ch)
	resp.Body.Close()
	stop()
	for _, line := range strings.Split(logs.String(), "\n") {
		if n := strings.Count(line, "component="); n > 1 {
			t.Errorf("log line repeats component: %s", line)
		}
	}
	if !strings.Contains(logs.String(), "component=emulator") {
		t.Errorf("no component=emulator in the log:\n%s", logs.String())
	}

	stop, out, _ = start()
	defer stop()
	if !strings.Contains(out.String(), "(1 devices") {
		t.Errorf("restarted banner:\n%s", out.String())
	}
	req, _ := http.NewRequest(http.MethodPost, ch.URI, strings.NewReader(`<?xml version="1.0" encoding="utf-8"?><wp:Notification xmlns:wp="WPNotification"><wp:Toast><wp:Text1>a</wp:Text1><wp:Text2>b</wp:Text2></wp:Toast></wp:Notification>`))
	req.Header.Set("Content-Type", "text/xml")
	req.Header.Set("X-WindowsPhone-Target", "toast")
	req.Header.Set("X-NotificationClass", "2")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-SubscriptionStatus") != "Active" {
		t.Errorf("push to the kept phone after a restart: %d %s", resp.StatusCode, resp.Header.Get("X-SubscriptionStatus"))
	}
}
