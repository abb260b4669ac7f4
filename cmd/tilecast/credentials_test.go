package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/tilecast/tilecast/internal/logtest"
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

	ctx, cancel := context.WithCancel(t.Context())
	logs := &logtest.Buffer{}
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"run", "--config", cfg}, strings.NewReader(""), io.Discard, logs) }()
	defer func() {
		cancel()
		if code := <-done; code != exitOK {
			t.Errorf("daemon exit %d:\n%s", code, logs.String())
		}
	}()
	waitFor(t, "daemon start", func() bool { return strings.Contains(logs.String(), "tilecast running") })

	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+addr+"/v1/status", nil)
	req.Header.Set("Authorization", "Bearer "+strings.Fields(testAdminKeys)[1])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /v1/status with the credential's key: %s", resp.Status)
	}

	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	waitFor(t, "the reload", func() bool { return strings.Contains(logs.String(), "config reloaded") })
	if l := logLines(logs, `msg="needs restart"`, "key=http.api_keys_file", "credential=api-keys"); len(l) != 1 {
		t.Errorf("needs restart lines for the credential: %q\nlogs:\n%s", l, logs.String())
	}
}
