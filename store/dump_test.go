package store

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/tilecast/tilecast/store/storetest"
)

// A state exported and imported into a new file is the same state.
func TestExportImport(t *testing.T) {
	clk := storetest.NewClock()
	dir := t.TempDir()
	src, err := Open(filepath.Join(dir, "a.db"), Options{Timeout: time.Second, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	storetest.Populate(t, src, clk)
	dst, err := Open(filepath.Join(dir, "b.db"), Options{Timeout: time.Second, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	storetest.Copy(t, src, dst)
	storetest.CheckCopy(t, src, dst)
	checkCounts(t, dst, "after the import")
	if err := dst.Check(); err != nil {
		t.Error(err)
	}
}
