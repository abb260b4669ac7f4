package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testAdminKeys = "admin 0123456789abcdef0123456789abcdef\n"

// TestCheckExample checks the shipped config.example.toml as the unit
// does: the API keys file comes as a systemd credential (named like the
// path's last element), the state lives in a writable directory.
func TestCheckExample(t *testing.T) {
	data, err := os.ReadFile("../../config.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	state := filepath.Join(dir, "state.db")
	text := strings.Replace(string(data), `state = "/var/lib/tilecast/state.db"`, "state = "+quote(state), 1)
	if text == string(data) {
		t.Fatal("config.example.toml no longer sets state = \"/var/lib/tilecast/state.db\"; update this test")
	}
	path := filepath.Join(dir, "config.toml")
	writeTestFile(t, path, text)
	creds := t.TempDir()
	writeTestFile(t, filepath.Join(creds, "api-keys"), testAdminKeys)
	t.Setenv("CREDENTIALS_DIRECTORY", creds)

	code, out, errs := runCLI(t, t.Context(), "check", "--config", path)
	if code != exitOK {
		t.Fatalf("check example: exit %d: %s", code, errs)
	}
	if strings.Count(out, "  next ") != 10 || !strings.Contains(out, "feed news") || !strings.Contains(out, ": ok, 2 feeds,") {
		t.Errorf("check output lacks feeds or 5 run times each:\n%s", out)
	}
	if !strings.HasSuffix(out, "\n") {
		t.Errorf("output does not end with a newline: %q", out)
	}
}

// TestCheckCatchesWhatRunRefuses: files the daemon reads at start fail
// check with exit 2 and the key's file:line:col, as config errors do.
func TestCheckCatchesWhatRunRefuses(t *testing.T) {
	readOnly := t.TempDir()
	if err := os.Chmod(readOnly, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(readOnly, 0o700) })
	asRoot := os.Geteuid() == 0

	cases := []struct {
		name string
		conf func(dir string) string // the config, given a directory for its files
		want string                  // in stderr after "FILE:"
		root bool                    // root can write anywhere: not a failure then
	}{
		{"missing api keys file", func(dir string) string {
			return "state = " + quote(filepath.Join(dir, "s.db")) + "\n[http]\nlisten = \"127.0.0.1:0\"\napi_keys_file = " + quote(filepath.Join(dir, "nokeys")) + "\n" + oneFeed
		}, "4:17: http.api_keys_file: read api keys file: open", false},
		{"state directory missing", func(dir string) string {
			return "state = " + quote(filepath.Join(dir, "nodir", "s.db")) + "\n[http]\nlisten = \"\"\n" + oneFeed
		}, "1:9: state: directory \"", false},
		{"state directory is a file", func(dir string) string {
			writeTestFile(t, filepath.Join(dir, "plain"), "")
			return "state = " + quote(filepath.Join(dir, "plain", "s.db")) + "\n[http]\nlisten = \"\"\n" + oneFeed
		}, "1:9: state: \"", false},
		{"state directory not writable", func(dir string) string {
			return "state = " + quote(filepath.Join(readOnly, "s.db")) + "\n[http]\nlisten = \"\"\n" + oneFeed
		}, "1:9: state: directory " + quote(readOnly) + " is not writable", true},
		{"tls key missing", func(dir string) string {
			writeTestFile(t, filepath.Join(dir, "cert.pem"), "x")
			return "state = " + quote(filepath.Join(dir, "s.db")) + "\n[http]\nlisten = \"\"\ntls_cert = " + quote(filepath.Join(dir, "cert.pem")) +
				"\ntls_key = " + quote(filepath.Join(dir, "key.pem")) + "\n" + oneFeed
		}, "5:11: http.tls_key: cannot read", false},
		{"wns secret missing", func(dir string) string {
			return "state = " + quote(filepath.Join(dir, "s.db")) + "\n[http]\nlisten = \"\"\n[push.wns]\nclient_id = \"ms-app://s-1-15-2-1\"\nclient_secret_file = " +
				quote(filepath.Join(dir, "nosecret")) + "\n" + oneFeed
		}, "6:22: push.wns.client_secret_file: cannot use", false},
		{"vapid key missing", func(dir string) string {
			return "state = " + quote(filepath.Join(dir, "s.db")) + "\n[http]\nlisten = \"\"\n[push.webpush]\nsubject = \"mailto:a@example.org\"\nvapid_private_key_file = " +
				quote(filepath.Join(dir, "novapid")) + "\n" + oneFeed
		}, "6:26: push.webpush.vapid_private_key_file: cannot read", false},
		{"store password file missing", func(dir string) string {
			return "state = \"postgres://tilecast@127.0.0.1/tilecast\"\n[store]\npassword_file = " + quote(filepath.Join(dir, "nopw")) + "\n[http]\nlisten = \"\"\n" + oneFeed
		}, "3:17: store.password_file: cannot read", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.root && asRoot {
				t.Log("running as root: a mode-0500 directory is writable; only the error text below is not checked")
			}
			dir := t.TempDir()
			path := filepath.Join(dir, "c.toml")
			writeTestFile(t, path, tc.conf(dir))
			code, out, errs := runCLI(t, t.Context(), "check", "--config", path)
			if tc.root && asRoot {
				if code != exitOK {
					t.Fatalf("as root: exit %d: %s", code, errs)
				}
				return
			}
			if code != exitUsage {
				t.Fatalf("exit %d, want 2; stdout %q stderr %q", code, out, errs)
			}
			if !strings.Contains(errs, path+":"+tc.want) {
				t.Errorf("stderr lacks %q:\n%s", path+":"+tc.want, errs)
			}
			if strings.Contains(out, ": ok") {
				t.Errorf("check said ok: %s", out)
			}
		})
	}
}

// oneFeed is a minimal [[feed]] for configs in these tests.
const oneFeed = "[[feed]]\nname = \"news\"\nurl = \"https://example.org/feed.xml\"\n[feed.toast]\ntext1 = \"{{.Item.Title}}\"\n"

// TestCheckWarnsPrivateAllowedHosts: an allowed host that is loopback or
// private while push.allow_private is off is a warning naming both keys.
func TestCheckWarnsPrivateAllowedHosts(t *testing.T) {
	for _, tc := range []struct {
		hosts, allowPrivate string
		warn                []string // each in stderr; none when empty
	}{
		{`["127.0.0.1", "*.notify.live.net", "10.1.2.3", "localhost", "::1"]`, "false", []string{
			`:6:18: push.allowed_hosts[0]: "127.0.0.1" is a loopback address, but push.allow_private is off`,
			`push.allowed_hosts[2]: "10.1.2.3" is a private address, but push.allow_private is off`,
			`push.allowed_hosts[3]: "localhost" is a loopback name`,
			`push.allowed_hosts[4]: "::1" is a loopback address`,
		}},
		{`["127.0.0.1"]`, "true", nil},
		{`["*.notify.live.net", "8.8.8.8"]`, "false", nil},
	} {
		dir := t.TempDir()
		path := filepath.Join(dir, "c.toml")
		writeTestFile(t, path, "state = "+quote(filepath.Join(dir, "s.db"))+"\n[http]\nlisten = \"\"\n[push]\nallow_private = "+tc.allowPrivate+
			"\nallowed_hosts = "+tc.hosts+"\n"+oneFeed)
		code, out, errs := runCLI(t, t.Context(), "check", "--config", path)
		if code != exitOK {
			t.Fatalf("%s: exit %d: %s", tc.hosts, code, errs)
		}
		if !strings.Contains(out, ": ok, 1 feed, state") {
			t.Errorf("%s: output does not say \"1 feed\": %s", tc.hosts, out)
		}
		for _, w := range tc.warn {
			if !strings.Contains(errs, w) {
				t.Errorf("%s: stderr lacks %q:\n%s", tc.hosts, w, errs)
			}
		}
		if len(tc.warn) == 0 && strings.Contains(errs, "allow_private") {
			t.Errorf("%s: unexpected warning: %s", tc.hosts, errs)
		}
	}
}

func writeTestFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
