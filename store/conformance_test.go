package store

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/tilecast/tilecast/store/storetest"
)

// TestConformance runs the stores' conformance suite on bbolt; each test
// of it also ends with bbolt's page check of the file.
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

// checked is a DB that runs Check before it closes.
type checked struct{ *DB }

func (c checked) Close() error {
	if err := c.Check(); err != nil {
		_ = c.DB.Close()
		return err
	}
	return c.DB.Close()
}
