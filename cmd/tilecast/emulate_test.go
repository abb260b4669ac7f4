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
	out := &lockedBuffer{}
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
