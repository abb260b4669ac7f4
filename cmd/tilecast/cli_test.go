package main

import (
	"slices"
	"strings"
	"testing"
)

// `channels add` prints the row `channels list` prints for the channel,
// under the same header; --json prints it as the API answers it.
func TestChannelsAddPrintsWhatListPrints(t *testing.T) {
	o := newOpsEnv(t)
	code, added, errs := runCLI(t, t.Context(), "channels", "add", "--config", o.cfg, "--uri", "https://db3.notify.live.net/t/x",
		"--user", "ana", "--feed", "news")
	if code != exitOK {
		t.Fatalf("channels add: exit %d %s", code, errs)
	}
	code, listed, errs := runCLI(t, t.Context(), "channels", "list", "--config", o.cfg)
	if code != exitOK {
		t.Fatalf("channels list: exit %d %s", code, errs)
	}
	if added != listed || !strings.HasPrefix(added, "ID ") || !strings.Contains(added, "https://db3.notify.live.net/t/x") {
		t.Errorf("channels add printed\n%s\nchannels list printed\n%s", added, listed)
	}
}

// Usage errors exit 2 and say only what is wrong.
func TestSendUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"send", "--uri", "https://db3.notify.live.net/t/x"}, "toast: no text"},
		{[]string{"send", "--uri", "https://db3.notify.live.net/t/x", "--dry-run"}, "toast: no text"},
		{[]string{"send", "--uri", "not-a-url", "--set", "text1=hi"}, `--uri "not-a-url": not a channel URI`},
		{[]string{"send", "--uri", "ftp://x/y", "--set", "text1=hi"}, `--uri "ftp://x/y": not a channel URI`},
		{[]string{"send", "--set", "text1=hi"}, "--uri is required"},
	} {
		code, out, errs := runCLI(t, t.Context(), tc.args...)
		if code != exitUsage || out != "" || !strings.Contains(errs, tc.want) || strings.Count(errs, "\n") != 1 {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2, one line with %q", tc.args, code, out, errs, tc.want)
		}
	}
	// A send that gets no answer prints its error only, not an empty result.
	code, out, errs := runCLI(t, t.Context(), "send", "--uri", "http://127.0.0.1:1/t/x", "--set", "text1=hi")
	if code != exitRuntime || out != "" || !strings.Contains(errs, "connection refused") {
		t.Errorf("unreachable: exit %d, stdout %q, stderr %q", code, out, errs)
	}
}

// Every command's output ends with a newline, tables and JSON alike.
func TestOutputEndsWithNewline(t *testing.T) {
	o := newOpsEnv(t)
	seed(t, o.state)
	for _, args := range [][]string{
		{"status"}, {"status", "--json"}, {"channels", "list"}, {"channels", "list", "--json"},
		{"outcomes"}, {"outcomes", "--json"}, {"outcomes", "--json", "--feed", "nosuch"}, {"check"},
	} {
		code, out, errs := runCLI(t, t.Context(), append(slices.Clone(args), "--config", o.cfg)...)
		if code != exitOK {
			t.Errorf("%v: exit %d %s", args, code, errs)
			continue
		}
		if !strings.HasSuffix(out, "\n") {
			t.Errorf("%v: output does not end with a newline: %q", args, out)
		}
	}
	if code, out, _ := runCLI(t, t.Context(), "version"); code != exitOK || !strings.HasSuffix(out, "\n") {
		t.Errorf("version: exit %d, output %q", code, out)
	}
}
