package main

import (
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// With a PostgreSQL state the daemon runs with the password of [store]
// password_file, which no log or output shows; the operator commands
// read and write the database directly while it runs; backup says to use
// pg_dump (exit 2); a state copy is refused while the daemon runs.
func TestPostgresDaemonAndCommands(t *testing.T) {
	url, pw := pgtest.PasswordURL(t)
	t.Setenv("PGPASSWORD", "")
	t.Setenv("PGPASSFILE", filepath.Join(t.TempDir(), "none"))
	feed := &growingFeed{}
	feed.add("First")
	fsrv := httptest.NewServer(feed)
	defer fsrv.Close()
	cfg := e2eConfigState(t, fsrv.URL, url)
	pwFile := filepath.Join(t.TempDir(), "db-password")
	if err := os.WriteFile(pwFile, []byte(pw+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	appendConfig(t, cfg, "\n[store]\npassword_file = "+quote(pwFile)+"\n")

	// Without the password file the server refuses it.
	noPW := e2eConfigState(t, fsrv.URL, url)
	if code, _, errs := runCLI(t, t.Context(), "status", "--config", noPW); code == exitOK || strings.Contains(errs, pw) {
		t.Fatalf("status without the password: exit %d: %s", code, errs)
	}

	d := startDaemon(t, cfg)
	if !strings.Contains(d.logs.String(), `state="postgres://`+"tilecast_pw@") {
		t.Errorf("the start line does not name the database:\n%s", d.logs.String())
	}

	code, out, errs := runCLI(t, t.Context(), "channels", "add", "--json", "--config", cfg, "--uri", "http://127.0.0.1/phone", "--feed", "news")
	var ch tilecast.Channel
	if code != exitOK || json.Unmarshal([]byte(out), &ch) != nil || ch.ID == "" {
		t.Fatalf("channels add while running: exit %d %s %s", code, out, errs)
	}
	code, out, errs = runCLI(t, t.Context(), "status", "--config", cfg)
	if code != exitOK || !strings.Contains(out, "channels 1") {
		t.Errorf("status while running: exit %d:\n%s%s", code, out, errs)
	}
	code, out, _ = runCLI(t, t.Context(), "channels", "list", "--config", cfg, "--json")
	if code != exitOK || !strings.Contains(out, ch.ID) {
		t.Errorf("channels list: exit %d:\n%s", code, out)
	}
	// The daemon, woken at once (NOTIFY), may have tried the tile on
	// subscribe already: whatever is listed is that channel's.
	if code, out, errs := runCLI(t, t.Context(), "outcomes", "--config", cfg, "--channel", ch.ID, "--json"); code == exitOK {
		var os []tilecast.Outcome
		if err := json.Unmarshal([]byte(out), &os); err != nil {
			t.Errorf("outcomes: %v: %s", err, out)
		}
		for _, o := range os {
			if o.ChannelID != ch.ID {
				t.Errorf("outcomes of %s lists one of %s", ch.ID, o.ChannelID)
			}
		}
	} else {
		t.Errorf("outcomes: exit %d: %s %s", code, out, errs)
	}
	code, _, errs = runCLI(t, t.Context(), "backup", "--config", cfg, filepath.Join(t.TempDir(), "b.db"))
	if code != exitUsage || !strings.Contains(errs, "pg_dump") {
		t.Errorf("backup of a database: exit %d: %s", code, errs)
	}
	code, _, errs = runCLI(t, t.Context(), "state", "copy", "--from", url, "--password-file", pwFile, "--to", filepath.Join(t.TempDir(), "copy.db"))
	if code == exitOK || !strings.Contains(errs, "a tilecast runs on it") {
		t.Errorf("state copy while the daemon runs: exit %d: %s", code, errs)
	}
	if code, _, errs := runCLI(t, t.Context(), "channels", "remove", "--config", cfg, ch.ID); code != exitOK {
		t.Errorf("channels remove: exit %d %s", code, errs)
	}

	if code := d.stop(); code != exitOK {
		t.Errorf("run exited %d:\n%s", code, d.logs.String())
	}
	if strings.Contains(d.logs.String(), pw) {
		t.Errorf("the daemon logged the password:\n%s", d.logs.String())
	}
}

// check warns about a URL with a password, without showing it.
func TestCheckWarnsAboutAPasswordInTheURL(t *testing.T) {
	cfg := e2eConfigState(t, "http://127.0.0.1:1", "postgres://tilecast:s3cret@db.example.org/tilecast?sslmode=verify-full")
	code, out, errs := runCLI(t, t.Context(), "check", "--config", cfg)
	if code != exitOK || !strings.Contains(errs, "the URL holds a password") {
		t.Errorf("check: exit %d, stderr %q", code, errs)
	}
	if strings.Contains(out+errs, "s3cret") || !strings.Contains(out, "postgres://tilecast:xxxxx@db.example.org") {
		t.Errorf("check shows the password or not the database:\n%s%s", out, errs)
	}
	cfg = e2eConfigState(t, "http://127.0.0.1:1", "postgres://tilecast@db.example.org/tilecast")
	if code, _, errs := runCLI(t, t.Context(), "check", "--config", cfg); code != exitOK || strings.Contains(errs, "password") {
		t.Errorf("check of a URL without a password: exit %d, stderr %q", code, errs)
	}
}

func appendConfig(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
}

func quote(s string) string { b, _ := json.Marshal(s); return string(b) }
