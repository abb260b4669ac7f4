package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/config"
)

func TestWNSConfig(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "wns-secret")
	if err := os.WriteFile(secret, []byte("s3cr3t-value\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := mustParse(t, `
[push]
allow_private = true
[push.wns]
client_id = "0f0e0d0c-aaaa-bbbb-cccc-0123456789ab"
client_secret_file = "`+secret+`"
tenant = "contoso.onmicrosoft.com"
token_url = "http://127.0.0.1:8461/contoso.onmicrosoft.com/oauth2/v2.0/token"

[[feed]]
name = "news"
url = "https://example.org/news.xml"
[feed.toast]
text1 = "{{.Item.Title}}"
[feed.wns]
audio = "Looping.Alarm3"
hero_image = "{{.Item.Image}}"
app_logo_image = "ms-appx:///Assets/logo.png"
scenario = "alarm"

[[feed]]
name = "plain"
url = "https://example.org/plain.xml"
[feed.toast]
text1 = "{{.Item.Title}}"

[[feed]]
name = "old"
url = "https://example.org/old.xml"
[feed.toast]
text1 = "{{.Item.Title}}"
[feed.wns]
legacy = true
audio = "silent"
`)
	want := config.WNS{ClientID: "0f0e0d0c-aaaa-bbbb-cccc-0123456789ab", ClientSecretFile: secret,
		Tenant: "contoso.onmicrosoft.com", TokenURL: "http://127.0.0.1:8461/contoso.onmicrosoft.com/oauth2/v2.0/token"}
	if cfg.Push.WNS == nil || *cfg.Push.WNS != want {
		t.Errorf("push.wns = %+v, want %+v", cfg.Push.WNS, want)
	}
	c := cfg.Push.WNS.Credentials([]byte("x"))
	if u, _ := c.Endpoint(); u != want.TokenURL || c.Tenant != want.Tenant || string(c.Secret) != "x" {
		t.Errorf("credentials %+v", c)
	}
	if got := cfg.Feeds[0].WNS; got == nil || *got != (tilecast.WNSSpec{Audio: "Looping.Alarm3", HeroImage: "{{.Item.Image}}",
		AppLogoImage: "ms-appx:///Assets/logo.png", Scenario: "alarm"}) {
		t.Errorf("feed news wns = %+v", got)
	}
	if cfg.Feeds[1].WNS != nil {
		t.Errorf("feed without [feed.wns] has %+v", cfg.Feeds[1].WNS)
	}
	if got := cfg.Feeds[2].WNS; got == nil || !got.Legacy || got.Audio != "silent" {
		t.Errorf("feed old wns = %+v", got)
	}

	// The classic flow: the package SID, Microsoft's endpoint.
	cfg = mustParse(t, "[push.wns]\nclient_id = \"ms-app://s-1-15-2-1\"\nclient_secret_file = \""+secret+"\"\n")
	if u, scope := cfg.Push.WNS.Credentials(nil).Endpoint(); u != "https://login.live.com/accesstoken.srf" || scope != "notify.windows.com" {
		t.Errorf("classic endpoint %s %s", u, scope)
	}
	if cfg := mustParse(t, ""); cfg.Push.WNS != nil {
		t.Errorf("no [push.wns]: %+v", cfg.Push.WNS)
	}
}

// TestWNSSecretNeverInErrors: whatever is wrong around the secret file,
// its content does not appear in the error.
func TestWNSSecretNeverInErrors(t *testing.T) {
	dir := t.TempDir()
	const secretText = "TOPSECRET-do-not-print"
	huge := filepath.Join(dir, "huge")
	if err := os.WriteFile(huge, []byte(strings.Repeat(secretText, 400)), 0o600); err != nil {
		t.Fatal(err)
	}
	ok := filepath.Join(dir, "ok")
	if err := os.WriteFile(ok, []byte(secretText), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, doc := range []string{
		"[push.wns]\nclient_id = \"ms-app://x\"\nclient_secret_file = \"" + huge + "\"\n",
		"[push.wns]\nclient_id = \"no-sid\"\nclient_secret_file = \"" + ok + "\"\ntoken_url = \"http://x/\"\n",
		"[push.wns]\nclient_id = \"ms-app://x\"\nclient_secret_file = \"" + dir + "\"\n",
	} {
		_, err := config.Parse("s.toml", []byte(doc))
		if err == nil {
			t.Fatalf("accepted:\n%s", doc)
		}
		if strings.Contains(err.Error(), secretText) {
			t.Errorf("the secret is in the error: %v", err)
		}
	}
}
