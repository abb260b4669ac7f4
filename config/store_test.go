package config_test

import (
	"testing"

	"github.com/tilecast/tilecast/config"
)

// A postgres:// or postgresql:// state selects PostgreSQL, with
// [store] password_file; any other state is a bbolt file's path.
func TestStoreState(t *testing.T) {
	for _, tc := range []struct {
		doc, state, pwFile string
		db                 bool
	}{
		{`state = "postgres://tilecast@db.example.org/tilecast?sslmode=verify-full"` + "\n[store]\npassword_file = \"/etc/tilecast/db-password\"\n",
			"postgres://tilecast@db.example.org/tilecast?sslmode=verify-full", "/etc/tilecast/db-password", true},
		{`state = "postgresql:///tilecast?host=/run/postgresql"`, "postgresql:///tilecast?host=/run/postgresql", "", true},
		{`state = "postgres.db"`, "postgres.db", "", false},
		{``, "/var/lib/tilecast/state.db", "", false},
	} {
		cfg, err := config.Parse("t.toml", []byte(tc.doc))
		if err != nil {
			t.Fatalf("%s: %v", tc.doc, err)
		}
		if cfg.State != tc.state || cfg.Store.PasswordFile != tc.pwFile || config.IsDatabaseURL(cfg.State) != tc.db {
			t.Errorf("%s: state %q password_file %q database %v", tc.doc, cfg.State, cfg.Store.PasswordFile, config.IsDatabaseURL(cfg.State))
		}
	}
}
