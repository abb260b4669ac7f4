package config

import (
	"os"
	"path/filepath"
	"strings"
)

// CredentialsEnv is the variable systemd sets for a unit with
// LoadCredential= (systemd.exec(5)): the directory holding one file per
// credential, named by its id, readable by the service's own user even
// with DynamicUser=yes.
const CredentialsEnv = "CREDENTIALS_DIRECTORY"

// SecretKeys returns the keys whose files hold secrets, the ones a unit
// passes as systemd credentials (see Config.Credentials). The other file
// keys (certificates, public keys) are not secret and can stay
// world-readable.
func SecretKeys() []string {
	return []string{
		"http.api_keys_file",
		"http.user_token_key_file",
		"http.tls_key",
		"push.client_key",
		"push.wns.client_secret_file",
		"push.webpush.vapid_private_key_file",
		"store.password_file",
	}
}

// secretPath resolves the file of a secret key: when $CREDENTIALS_DIRECTORY
// is set and holds a credential named like the path's last element
// ("api-keys" for "/etc/tilecast/api-keys"), that credential is read
// instead of the path, so one config serves both the unit (whose
// DynamicUser cannot read a root-only file) and an administrator's shell
// (who reads the path itself). Resolved keys are kept in c.creds.
func (c *checker) secretPath(key, path string) string {
	dir := os.Getenv(CredentialsEnv)
	if path == "" || dir == "" {
		return path
	}
	name := filepath.Base(path)
	if name == "." || name == string(filepath.Separator) || strings.HasPrefix(name, ".") {
		return path
	}
	cred := filepath.Join(dir, name)
	if _, err := os.Stat(cred); err != nil {
		return path
	}
	if c.creds == nil {
		c.creds = map[string]string{}
	}
	c.creds[key] = name
	return cred
}
