package main

import (
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/tilecast/tilecast"
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

// TestJSONKeysSnakeCase: every key of tilecast's own JSON — what the CLI
// prints and the API answers — is snake_case and explicit (a field
// without a tag would come out as Go's "OutboxDepth").
func TestJSONKeysSnakeCase(t *testing.T) {
	snake := regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)
	seen := map[reflect.Type]bool{}
	var walk func(path string, typ reflect.Type)
	walk = func(path string, typ reflect.Type) {
		for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice || typ.Kind() == reflect.Map {
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct || seen[typ] || typ.PkgPath() == "time" {
			return
		}
		seen[typ] = true
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			switch {
			case name == "-":
				continue
			case name == "":
				t.Errorf("%s.%s has no json key", path, f.Name)
			case !snake.MatchString(name):
				t.Errorf("%s.%s: json key %q is not snake_case", path, f.Name, name)
			}
			walk(path+"."+f.Name, f.Type)
		}
	}
	for name, v := range map[string]any{
		"status":      statusReport{},
		"channel":     tilecast.Channel{},
		"outcome":     tilecast.Outcome{},
		"dead letter": tilecast.DeadLetter{},
		"feed status": tilecast.FeedStatus{},
	} {
		walk(name, reflect.TypeOf(v))
	}
}
