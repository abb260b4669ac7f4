package postgres

import (
	"testing"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/internal/pgtest"
	"github.com/tilecast/tilecast/store/storetest"
)

// A state exported and imported into a new database is the same state.
func TestExportImport(t *testing.T) {
	clk := storetest.NewClock()
	src := open(t, pgtest.New(t), Options{Now: clk.Now})
	storetest.Populate(t, src, clk)
	dstURL := pgtest.New(t)
	dst := open(t, dstURL, Options{Now: clk.Now})
	storetest.Copy(t, src, dst)
	// The import ends with ANALYZE: the daemon started next plans for
	// what is there (never analyzed, reltuples is -1).
	for _, table := range []string{"channels", "outbox", "ledger", "feed_states", "seen"} {
		if n := sql(t, dstURL, "SELECT reltuples::float8 FROM pg_class WHERE oid = $1::regclass", table).(float64); n < 0 {
			t.Errorf("%s not analyzed after the import (reltuples %v)", table, n)
		}
	}
	storetest.CheckCopy(t, src, dst)
	if c, want := mustCounts(t, dst), storetest.ScannedCounts(t, dst); !storetest.SameCounts(c, want) {
		t.Errorf("counts %+v, the listings hold %+v", c, want)
	}
}

func mustCounts(t *testing.T, db *DB) tilecast.Counts {
	t.Helper()
	c, err := db.Counts()
	if err != nil {
		t.Fatal(err)
	}
	return c
}
