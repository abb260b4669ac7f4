package postgres

import (
	"context"
	"os"
	"testing"

	"github.com/tilecast/tilecast/internal/pgtest"
	"github.com/tilecast/tilecast/store/storetest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// TestConformance runs the stores' conformance suite on PostgreSQL, each
// test in a schema of its own.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(tb testing.TB) storetest.Opener {
		url := pgtest.New(tb)
		return func(tb testing.TB, o storetest.Options) storetest.Backend {
			db, err := Open(context.Background(), url, Options{Now: o.Now, Logger: o.Logger, Failpoint: o.Failpoint, MaxConns: 4})
			if err != nil {
				tb.Fatal(err)
			}
			return db
		}
	})
}
