package config_test

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tilecast/tilecast/config"
)

var update = flag.Bool("update", false, "rewrite testdata/bad/*.err from the current output")

// TestBad loads each testdata/bad/NAME.toml and compares the complete error
// text with NAME.err: every problem, its position, key and wording.
func TestBad(t *testing.T) {
	files, err := filepath.Glob("testdata/bad/*.toml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 20 {
		t.Fatalf("found %d bad configs, want at least 20", len(files))
	}
	for _, file := range files {
		name := filepath.Base(file)
		t.Run(strings.TrimSuffix(name, ".toml"), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Parse(name, data)
			if err == nil {
				t.Fatalf("Parse accepted %s: %+v", name, cfg)
			}
			if cfg != nil {
				t.Errorf("Parse returned a config together with an error")
			}
			checkTyped(t, name, err)
			got := err.Error() + "\n"
			errFile := strings.TrimSuffix(file, ".toml") + ".err"
			if *update {
				if err := os.WriteFile(errFile, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(errFile)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("errors differ\n--- got\n%s--- want\n%s", got, want)
			}
		})
	}
}

// checkTyped asserts that every leaf of err is a *config.Error naming file,
// so the CLI can tell a config error (exit 2) from a runtime one.
func checkTyped(t *testing.T, file string, err error) {
	t.Helper()
	var leaves []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		leaves = j.Unwrap()
	} else {
		leaves = []error{err}
	}
	for _, leaf := range leaves {
		var ce *config.Error
		if !errors.As(leaf, &ce) || error(ce) != leaf {
			t.Errorf("error %q (%T) is not a *config.Error", leaf, leaf)
			continue
		}
		if ce.File != file {
			t.Errorf("error %q names file %q, want %q", ce, ce.File, file)
		}
		if ce.Msg == "" {
			t.Errorf("error %q has no message", ce)
		}
	}
}

func TestErrorText(t *testing.T) {
	tests := []struct {
		err  config.Error
		want string
	}{
		{config.Error{File: "c.toml", Line: 14, Col: 12, Key: "feed[1].schedule", Msg: "bad"}, "c.toml:14:12: feed[1].schedule: bad"},
		{config.Error{File: "c.toml", Key: "feed[0].url", Msg: "missing"}, "c.toml: feed[0].url: missing"},
		{config.Error{File: "c.toml", Line: 3, Col: 1, Msg: "expected value"}, "c.toml:3:1: expected value"},
		{config.Error{File: "c.toml", Msg: "cannot read: permission denied"}, "c.toml: cannot read: permission denied"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.toml")
	_, err := config.Load(path)
	var ce *config.Error
	if !errors.As(err, &ce) {
		t.Fatalf("Load error %v (%T) is not a *config.Error", err, err)
	}
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("errors.Is(%v, os.ErrNotExist) = false", err)
	}
	if want := path + ": cannot read: no such file or directory"; err.Error() != want {
		t.Errorf("Load error = %q, want %q", err, want)
	}
}

func TestLoadUsesPathInErrors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tilecast.toml")
	if err := os.WriteFile(path, []byte("[log]\nlevel = \"loud\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := config.Load(path)
	want := path + `:2:9: log.level: bad value "loud": must be one of "debug", "info", "warn", "error"`
	if err == nil || err.Error() != want {
		t.Errorf("Load error = %v, want %s", err, want)
	}
}
