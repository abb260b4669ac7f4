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
	dst := open(t, pgtest.New(t), Options{Now: clk.Now})
	storetest.Copy(t, src, dst)
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
