package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tilecast/tilecast/emulator"
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

// TestEmulateHelpBehaviours: emulate --help has a section per device
// kind that names the transport creating it and lists, one a line with
// its answer, exactly the behaviours the emulator accepts for that kind
// (emulator.PhoneBehaviours, WindowsBehaviours, BrowserBehaviours: what
// its POST /channels checks against), names every param its JSON body
// takes (the JSON fields of Params, WNSParams, BrowserParams), and gives
// the emulator's defaults.
func TestEmulateHelpBehaviours(t *testing.T) {
	code, help, _ := runCLI(t, t.Context(), "emulate", "--help")
	if code != exitOK {
		t.Fatalf("emulate --help: exit %d", code)
	}
	ms := func(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }
	flaky := "flaky_p [" + strconv.FormatFloat(emulator.DefaultFlakyP, 'g', -1, 64) + "]"
	slow := "slow_ms [" + ms(emulator.DefaultSlow) + "] ms"
	tests := []struct {
		header     string // how the section's first line starts
		transport  string // how it names the transport
		behaviours []string
		params     any // the struct whose JSON fields are the params
		defaults   []string
	}{
		{"Phones (MPNS", `no "transport"`, emulator.PhoneBehaviours(), emulator.Params{},
			[]string{"queuefull_n pushes [" + strconv.Itoa(emulator.DefaultQueueFullN) + "]", flaky, slow,
				strconv.Itoa(emulator.DailyCap) + " pushes a UTC day"}},
		{"Windows devices (", `"transport":"` + emulator.TransportWNS + `"`, emulator.WindowsBehaviours(), emulator.WNSParams{},
			[]string{"throttle_n pushes [" + strconv.Itoa(emulator.DefaultThrottleN) + "]", "throttle_status [406]",
				"continue_after [" + strconv.Itoa(emulator.DefaultContinueAfterSec) + "]", flaky, slow}},
		{"Browsers (", `"transport":"` + emulator.TransportWebPush + `"`, emulator.BrowserBehaviours(), emulator.BrowserParams{},
			[]string{"retry_after_s [" + strconv.Itoa(emulator.DefaultRetryAfter) + "]", flaky, slow}},
	}
	entry := regexp.MustCompile(`(?m)^  ([a-z]+) {2,}\S`)
	for _, tt := range tests {
		t.Run(tt.header, func(t *testing.T) {
			start := strings.Index(help, "\n"+tt.header)
			if start < 0 {
				t.Fatalf("no section %q in:\n%s", tt.header, help)
			}
			sec := help[start+1:]
			end := strings.Index(sec, "\n\n")
			if end < 0 {
				end = len(sec)
			}
			for _, other := range tests {
				if i := strings.Index(sec, "\n"+other.header); other.header != tt.header && i >= 0 && i < end {
					end = i
				}
			}
			sec = sec[:end]
			if !strings.Contains(sec, tt.transport) {
				t.Errorf("section does not say how to create one (%s):\n%s", tt.transport, sec)
			}
			var listed []string
			for _, m := range entry.FindAllStringSubmatch(sec, -1) {
				listed = append(listed, m[1])
			}
			for _, b := range tt.behaviours {
				if !slices.Contains(listed, b) {
					t.Errorf("the emulator accepts %q but the help does not list it:\n%s", b, sec)
				}
			}
			for _, b := range listed {
				if !slices.Contains(tt.behaviours, b) {
					t.Errorf("the help lists %q but the emulator refuses it (accepts %q)", b, tt.behaviours)
				}
			}
			typ := reflect.TypeOf(tt.params)
			for i := range typ.NumField() {
				name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
				if name == "" || name == "-" {
					continue
				}
				if !regexp.MustCompile(`\b` + name + `\b`).MatchString(sec) {
					t.Errorf("param %s (%s.%s) is not in the section:\n%s", name, typ.Name(), typ.Field(i).Name, sec)
				}
			}
			for _, d := range tt.defaults {
				if !strings.Contains(strings.Join(strings.Fields(sec), " "), d) {
					t.Errorf("section lacks %q:\n%s", d, sec)
				}
			}
		})
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
	for _, want := range []string{"curl -X POST", "/channels", "?poll", "Without --state", "Expired", "Phones (MPNS"} {
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
