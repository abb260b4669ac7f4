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

// TestWebPushIcon: [push.webpush] icon goes to every feed without one of
// its own, [feed.webpush] icon wins (icon = "" sends none), and a bad
// icon is named at its position with what is wrong.
func TestWebPushIcon(t *testing.T) {
	// doc is a config with [push.webpush] icon push (nil: unset) and two
	// feeds, the first with [feed.webpush] icon feed (nil: no table).
	doc := func(push, feed *string) string {
		var b strings.Builder
		b.WriteString("[push.webpush]\n")
		if push != nil {
			fmt.Fprintf(&b, "icon = %s\n", *push)
		}
		b.WriteString("\n[[feed]]\nname = \"a\"\nurl = \"https://example.org/a.xml\"\n[feed.toast]\ntext1 = \"x\"\n")
		if feed != nil {
			fmt.Fprintf(&b, "[feed.webpush]\nicon = %s\n", *feed)
		}
		b.WriteString("\n[[feed]]\nname = \"b\"\nurl = \"https://example.org/b.xml\"\n[feed.toast]\ntext1 = \"x\"\n")
		return b.String()
	}
	s := func(v string) *string { return &v }
	longest := "https://cdn.example.org/" + strings.Repeat("i", 996) + ".png" // the longest allowed

	for _, tc := range []struct {
		name       string
		push, feed *string
		want       [3]string // [push.webpush] icon, feed a's, feed b's
	}{
		{"none", nil, nil, [3]string{}},
		{"app icon for every feed", s(`"https://cdn.example.org/icon-192.png"`), nil,
			[3]string{"https://cdn.example.org/icon-192.png", "https://cdn.example.org/icon-192.png", "https://cdn.example.org/icon-192.png"}},
		{"path on the app's site", s(`"/icons/app-192.png"`), nil,
			[3]string{"/icons/app-192.png", "/icons/app-192.png", "/icons/app-192.png"}},
		{"feed's own wins", s(`"/icons/app.png"`), s(`"https://cdn.example.org/a.png"`),
			[3]string{"/icons/app.png", "https://cdn.example.org/a.png", "/icons/app.png"}},
		{"feed's own without an app icon", nil, s(`"/icons/a.png"`), [3]string{"", "/icons/a.png", ""}},
		{"feed sends none", s(`"/icons/app.png"`), s(`""`), [3]string{"/icons/app.png", "", "/icons/app.png"}},
		{"1024 bytes", s(`"` + longest + `"`), nil, [3]string{longest, longest, longest}},
		{"HTTPS in capitals", s(`"HTTPS://cdn.example.org/i.png?v=2"`), nil,
			[3]string{"HTTPS://cdn.example.org/i.png?v=2", "HTTPS://cdn.example.org/i.png?v=2", "HTTPS://cdn.example.org/i.png?v=2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := mustParse(t, doc(tc.push, tc.feed))
			got := [3]string{cfg.Push.WebPush.Icon, cfg.Feeds[0].WebPushIcon, cfg.Feeds[1].WebPushIcon}
			if got != tc.want {
				t.Errorf("icons %q, want %q", got, tc.want)
			}
		})
	}

	long := `"https://cdn.example.org/` + strings.Repeat("i", 1000) + `.png"`
	for _, tc := range []struct {
		name       string
		push, feed *string
		want       string
	}{
		{"http", s(`"http://cdn.example.org/i.png"`), nil,
			`wp.toml:2:8: push.webpush.icon: bad icon "http://cdn.example.org/i.png": want an absolute https URL`},
		{"relative", s(`"icons/app.png"`), nil, `wp.toml:2:8: push.webpush.icon: bad icon "icons/app.png": want an absolute https URL`},
		{"no host", s(`"https:///i.png"`), nil, `wp.toml:2:8: push.webpush.icon: bad icon "https:///i.png": want`},
		{"other scheme", s(`"data:image/png;base64,AAAA"`), nil, `wp.toml:2:8: push.webpush.icon: bad icon "data:image/png;base64,AAAA"`},
		{"another host", s(`"//cdn.example.org/i.png"`), nil,
			`wp.toml:2:8: push.webpush.icon: bad icon "//cdn.example.org/i.png": "//" starts another host`},
		{"template", nil, s(`"{{.Item.Image}}"`), `wp.toml:9:8: feed[0].webpush.icon: bad icon "{{.Item.Image}}": must be a fixed URL, not a template`},
		{"space", nil, s(`"/icons/my app.png"`), `wp.toml:9:8: feed[0].webpush.icon: bad icon "/icons/my app.png": white space`},
		{"bad escape", nil, s(`"/icons/%zz.png"`), `wp.toml:9:8: feed[0].webpush.icon: bad icon path "/icons/%zz.png": invalid URL escape "%zz"`},
		{"too long", s(long), nil, `wp.toml:2:8: push.webpush.icon: icon URL of 1028 bytes is too long: at most 1024`},
		{"not a string", s(`3`), nil, `wp.toml:2:8: push.webpush.icon: expected a string, got an integer`},
		{"feed not a string", nil, s(`true`), `wp.toml:9:8: feed[0].webpush.icon: expected a string, got a boolean`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse("wp.toml", []byte(doc(tc.push, tc.feed)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}

	// A password in the URL is refused, and the error does not repeat it.
	_, err := config.Parse("wp.toml", []byte(doc(s(`"https://ops:hunter2@cdn.example.org/i.png"`), nil)))
	if err == nil || !strings.Contains(err.Error(), "wp.toml:2:8: push.webpush.icon: bad icon URL") ||
		!strings.Contains(err.Error(), "must not hold a user or password") || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("icon with a password: %v", err)
	}
}
