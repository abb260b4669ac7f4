package store

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tilecast/tilecast/store/storetest"
)

// TestConformance runs the stores' conformance suite on bbolt; each test
// of it also ends with bbolt's page check of the file and a check that
// the expiry index holds exactly what the channels say (so a write path
// that forgets it fails whichever test uses that path).
func TestConformance(t *testing.T) {
	storetest.Run(t, func(tb testing.TB) storetest.Opener {
		path := filepath.Join(tb.TempDir(), "state.db")
		return func(tb testing.TB, o storetest.Options) storetest.Backend {
			db, err := Open(path, Options{Timeout: 5 * time.Second, Now: o.Now, Logger: o.Logger, Failpoint: o.Failpoint})
			if err != nil {
				tb.Fatal(err)
			}
			return checked{db}
		}
	})
}

// checked is a DB that runs Check and checks its expiry index before it
// closes.
type checked struct{ *DB }

func (c checked) Close() error {
	if err := c.Check(); err != nil {
		_ = c.DB.Close()
		return err
	}
	if probs, err := expiryIndexProblems(c.DB); err != nil || len(probs) > 0 {
		_ = c.DB.Close()
		return fmt.Errorf("channel_expiry does not match the channels: %v %v", err, strings.Join(probs, "; "))
	}
	return c.DB.Close()
}
