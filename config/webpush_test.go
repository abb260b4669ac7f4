package config_test

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/tilecast/tilecast/config"
	"github.com/tilecast/tilecast/notify/webpush"
)

// TestWebPushConfig loads [push.webpush] with a key in each file form and
// [feed.webpush] urgencies.
func TestWebPushConfig(t *testing.T) {
	dir := t.TempDir()
	pemPath := filepath.Join(dir, "vapid.pem")
	if _, err := webpush.GenerateKey(pemPath); err != nil {
		t.Fatal(err)
	}
	// npm web-push's base64url form (the throw-away key of the interop tests).
	rawPath := filepath.Join(dir, "vapid.b64")
	if err := os.WriteFile(rawPath, []byte("Wa-SaC4ZMF-_3p1eCQ8DsAjy4Zea3RUejuvrRFdI3Ik\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{pemPath, rawPath} {
		cfg := mustParse(t, fmt.Sprintf(`
[push.webpush]
subject = "mailto:ops@example.org"
vapid_private_key_file = %q
allowed_hosts = ["fcm.googleapis.com", "*.push.apple.com"]
urgency_toast = "high"
urgency_tile = "very-low"
pad = 256

[[feed]]
name = "alerts"
url = "https://example.org/alerts.xml"
[feed.toast]
text1 = "{{.Item.Title}}"
[feed.webpush]
urgency = "high"

[[feed]]
name = "news"
url = "https://example.org/news.xml"
[feed.tile]
title = "x"
`, path))
		want := config.WebPush{Subject: "mailto:ops@example.org", VAPIDPrivateKeyFile: path,
			AllowedHosts: []string{"fcm.googleapis.com", "*.push.apple.com"}, UrgencyToast: "high", UrgencyTile: "very-low", Pad: 256}
		if !reflect.DeepEqual(cfg.Push.WebPush, want) || !cfg.Push.WebPush.Enabled() {
			t.Errorf("%s: [push.webpush] = %+v", path, cfg.Push.WebPush)
		}
		if cfg.Feeds[0].WebPushUrgency != "high" || cfg.Feeds[1].WebPushUrgency != "" {
			t.Errorf("feed urgencies %q %q", cfg.Feeds[0].WebPushUrgency, cfg.Feeds[1].WebPushUrgency)
		}
	}
}

// TestWebPushConfigErrors: every wrong key is named at its position, and
// no form of a key file's content reaches an error.
func TestWebPushConfigErrors(t *testing.T) {
	dir := t.TempDir()
	secret := "Wa-SaC4ZMF-_3p1eCQ8DsAjy4Zea3RUejuvrRFdI3Ik"
	bad := filepath.Join(dir, "bad.key")
	if err := os.WriteFile(bad, []byte("Public Key:\nBK49X9sg\nPrivate Key:\n"+secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	doc := fmt.Sprintf(`[push.webpush]
subject = "mailto:mailto:ops@example.org"
vapid_private_key_file = %q
allowed_hosts = ["fcm.googleapis.com/x"]
urgency_toast = "urgent"
urgency_tile = 3
pad = 5000

[[feed]]
name = "f"
url = "https://example.org/f.xml"
[feed.toast]
text1 = "x"
[feed.webpush]
urgency = "asap"
`, bad)
	_, err := config.Parse("wp.toml", []byte(doc))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		`wp.toml:2:11: push.webpush.subject: bad subject "mailto:mailto:ops@example.org": mailto: is written twice`,
		"wp.toml:3:26: push.webpush.vapid_private_key_file: vapid key " + bad + ": not base64url",
		`wp.toml:4:18: push.webpush.allowed_hosts[0]: bad host pattern "fcm.googleapis.com/x"`,
		`wp.toml:5:17: push.webpush.urgency_toast: bad value "urgent": must be one of "very-low", "low", "normal", "high"`,
		`wp.toml:6:16: push.webpush.urgency_tile: expected one of`,
		`wp.toml:7:7: push.webpush.pad: `,
		`wp.toml:15:11: feed[0].webpush.urgency: bad value "asap"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("errors lack %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), secret[:16]) {
		t.Errorf("an error shows the key: %v", err)
	}

	for _, tc := range []struct{ doc, want string }{
		{"[push.webpush]\nsubject = \"mailto:ops@example.org\"\n", "push.webpush.vapid_private_key_file: missing: subject is set"},
		{"[push.webpush]\nvapid_private_key_file = \"" + filepath.Join(dir, "k") + "\"\n", "push.webpush.subject: missing: vapid_private_key_file is set"},
		{"[push.webpush]\nsubject = \"https://tilecast.example.org\"\nvapid_private_key_file = \"" + filepath.Join(dir, "nope") + "\"\n",
			"push.webpush.vapid_private_key_file: cannot read"},
		{"[push.webpush]\nsubject = \"ops@example.org\"\nvapid_private_key_file = \"" + dir + "\"\n", "want mailto:ops@example.org"},
		{"[push.webpush]\nsubjet = \"x\"\n", `push.webpush.subjet: unknown key (did you mean "subject"?)`},
	} {
		if _, err := config.Parse("wp.toml", []byte(tc.doc)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.doc, err, tc.want)
		}
	}
}
