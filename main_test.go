package tilecast_test

import (
	"os"
	"testing"

	"github.com/tilecast/tilecast/internal/pgtest"
)

// TestMain gives the tests of what several instances share through
// PostgreSQL (shared_test.go) a real server: a throw-away cluster for the
// test binary.
func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
