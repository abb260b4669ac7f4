package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestDaemonReadsCredentials runs the daemon as systemd would with
// LoadCredential=api-keys:/etc/tilecast/api-keys: the config names a path
// the daemon cannot read (here: one that does not exist), the key comes
// from $CREDENTIALS_DIRECTORY/api-keys and the API accepts it; a reload
// logs the credential as needs restart.
func TestDaemonReadsCredentials(t *testing.T) {
	dir := t.TempDir()
	creds := t.TempDir()
	writeTestFile(t, filepath.Join(creds, "api-keys"), testAdminKeys)
	t.Setenv("CREDENTIALS_DIRECTORY", creds)
	addr := freeAddr(t)
	cfg := filepath.Join(dir, "c.toml")
	writeTestFile(t, cfg, "state = "+quote(filepath.Join(dir, "s.db"))+"\n[http]\nlisten = "+quote(addr)+
		"\napi_keys_file = \"/nonexistent/etc/tilecast/api-keys\"\n"+oneFeed)

	if code, out, errs := runCLI(t, t.Context(), "check", "--config", cfg); code != exitOK {
		t.Fatalf("check with the credential: exit %d: %s%s", code, out, errs)
	}

	d := startDaemon(t, cfg)
	defer func() {
		if code := d.stop(); code != exitOK {
			t.Errorf("daemon exit %d:\n%s", code, d.logs.String())
		}
	}()

	if code, body := d.call(http.MethodGet, "/v1/status", "", strings.Fields(testAdminKeys)[1]); code != http.StatusOK {
		t.Errorf("GET /v1/status with the credential's key: %d %s", code, body)
	}

	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	waitFor(t, "the reload", func() bool { return strings.Contains(d.logs.String(), "config reloaded") })
	if l := logLines(d.logs, `msg="needs restart"`, "key=http.api_keys_file", "credential=api-keys"); len(l) != 1 {
		t.Errorf("needs restart lines for the credential: %q\nlogs:\n%s", l, d.logs.String())
	}
}
