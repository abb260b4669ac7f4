package config_test

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tilecast/tilecast/config"
	"github.com/tilecast/tilecast/notify/webpush"
)

// TestSecretFilesFromCredentials: with $CREDENTIALS_DIRECTORY set, every
// secret key whose path's last element names a credential reads the
// credential; the path itself (here one that does not exist) is not read.
func TestSecretFilesFromCredentials(t *testing.T) {
	creds := t.TempDir()
	cert, key := writeKeyPair(t, creds, "listener")
	_, clientKey := writeKeyPair(t, creds, "push")
	for name, content := range map[string]string{
		"api-keys":   "admin 0123456789abcdef0123456789abcdef\n",
		"token-key":  "0123456789abcdef0123456789abcdef",
		"wns-secret": "s3cret\n",
		"pg-pass":    "pw\n",
	} {
		if err := os.WriteFile(filepath.Join(creds, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := webpush.GenerateKey(filepath.Join(creds, "vapid.pem")); err != nil {
		t.Fatal(err)
	}
	etc := "/nonexistent/etc/tilecast/"
	doc := fmt.Sprintf(`[http]
api_keys_file = %q
user_token_key_file = %q
tls_cert = %q
tls_key = %q
[push]
client_cert = %q
client_key = %q
[push.wns]
client_id = "ms-app://s-1-15-2-1"
client_secret_file = %q
[push.webpush]
subject = "mailto:ops@example.org"
vapid_private_key_file = %q
`, etc+"api-keys", etc+"token-key", cert, etc+filepath.Base(key), filepath.Join(creds, "push.crt"), etc+filepath.Base(clientKey),
		etc+"wns-secret", etc+"vapid.pem")
	pgDoc := fmt.Sprintf("state = \"postgres://tilecast@127.0.0.1/tilecast\"\n[store]\npassword_file = %q\n", etc+"pg-pass")

	t.Setenv(config.CredentialsEnv, creds)
	cfg, err := config.Parse("t.toml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	pg, err := config.Parse("pg.toml", []byte(pgDoc))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{
		"http.api_keys_file":                  cfg.HTTP.APIKeysFile,
		"http.user_token_key_file":            cfg.HTTP.UserTokenKeyFile,
		"http.tls_key":                        cfg.HTTP.TLSKey,
		"push.client_key":                     cfg.Push.ClientKey,
		"push.wns.client_secret_file":         cfg.Push.WNS.ClientSecretFile,
		"push.webpush.vapid_private_key_file": cfg.Push.WebPush.VAPIDPrivateKeyFile,
		"store.password_file":                 pg.Store.PasswordFile,
	}
	if keys := slices.Sorted(maps.Keys(got)); !slices.Equal(keys, slices.Sorted(slices.Values(config.SecretKeys()))) {
		t.Fatalf("this test covers %v, SecretKeys is %v", keys, config.SecretKeys())
	}
	creds2 := maps.Clone(cfg.Credentials)
	maps.Copy(creds2, pg.Credentials)
	for k, path := range got {
		if filepath.Dir(path) != creds {
			t.Errorf("%s = %q, want a file in %s", k, path, creds)
		}
		if creds2[k] != filepath.Base(path) {
			t.Errorf("Credentials[%s] = %q, want %q", k, creds2[k], filepath.Base(path))
		}
	}
	if cfg.HTTP.TLSCert != cert {
		t.Errorf("tls_cert (not a secret) = %q, want it as written", cfg.HTTP.TLSCert)
	}

	// Without the variable the paths are read as written: here they
	// do not exist, and each is reported at its key.
	t.Setenv(config.CredentialsEnv, "")
	_, err = config.Parse("t.toml", []byte(doc))
	for _, k := range []string{"http.api_keys_file", "http.user_token_key_file", "http.tls_key", "push.client_key",
		"push.wns.client_secret_file", "push.webpush.vapid_private_key_file"} {
		if k == "http.api_keys_file" {
			continue // read by the daemon and check, not by the config
		}
		if err == nil || !strings.Contains(err.Error(), ": "+k+": ") {
			t.Errorf("without credentials: no error at %s: %v", k, err)
		}
	}
}

// A credentials directory without a file of the path's name leaves the
// path as written: credentials are opt-in per file.
func TestCredentialMissingKeepsPath(t *testing.T) {
	t.Setenv(config.CredentialsEnv, t.TempDir())
	cfg, err := config.Parse("t.toml", []byte("[http]\napi_keys_file = \"/etc/tilecast/api-keys\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.APIKeysFile != "/etc/tilecast/api-keys" || cfg.Credentials != nil {
		t.Errorf("api_keys_file %q, credentials %v: want the path as written and none", cfg.HTTP.APIKeysFile, cfg.Credentials)
	}
}

func TestSecretKeysAreKeys(t *testing.T) {
	for _, k := range config.SecretKeys() {
		if !slices.Contains(config.Keys(), k) {
			t.Errorf("SecretKeys names %q, not a config key", k)
		}
	}
}
