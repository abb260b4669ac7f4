package web_test

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/store"
	"github.com/tilecast/tilecast/web"
	bolt "go.etcd.io/bbolt"
)

// BenchmarkHealthzMetrics serves GET /healthz (with the daemon's store
// check) and GET /metrics from a real state file of 1,000 and of 1,000,000
// channels. Both read the store's running counts, never the channels, so
// the two sizes must cost the same: compare their ns/op.
func BenchmarkHealthzMetrics(b *testing.B) {
	for _, n := range []int{1_000, 1_000_000} {
		b.Run(fmt.Sprint("channels=", n), func(b *testing.B) {
			db := storeWithChannels(b, n)
			srv, err := web.New(web.Options{
				Store:    db,
				Counts:   db.Counts,
				Health:   func() error { _, err := db.Counts(); return err },
				Feeds:    func() []tilecast.Feed { return []tilecast.Feed{{Name: "news", URL: "https://example.org/news.xml"}} },
				Registry: prometheus.NewRegistry(),
				Logger:   slog.New(slog.DiscardHandler),
			})
			if err != nil {
				b.Fatal(err)
			}
			if c, err := db.Counts(); err != nil || c.Channels != n {
				b.Fatalf("Counts = %+v, %v; want %d channels", c, err, n)
			}
			h := srv.Handler()
			reqs := []*http.Request{httptest.NewRequest(http.MethodGet, "/healthz", nil), httptest.NewRequest(http.MethodGet, "/metrics", nil)}
			b.ReportAllocs()
			for b.Loop() {
				for _, req := range reqs {
					rec := httptest.NewRecorder()
					h.ServeHTTP(rec, req)
					if rec.Code != http.StatusOK {
						b.Fatalf("%s: %d %s", req.URL.Path, rec.Code, rec.Body)
					}
				}
			}
		})
	}
}

// storeWithChannels returns a state file holding n channel keys. Registering
// a million channels through the store takes about a minute, so the keys
// are put straight into its channels bucket, in order, and the file's count
// records are removed so that Open counts them (the store's recovery for
// records removed by hand). The values are placeholders no decoder accepts:
// /healthz and /metrics must not read channels, and would fail if they did.
func storeWithChannels(tb testing.TB, n int) *store.DB {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "state.db")
	db, err := store.Open(path, store.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	if err := db.Close(); err != nil {
		tb.Fatal(err)
	}
	bdb, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		tb.Fatal(err)
	}
	const perTx = 100_000
	for start := 0; start < n; start += perTx {
		err := bdb.Update(func(tx *bolt.Tx) error {
			bk := tx.Bucket([]byte("channels"))
			bk.FillPercent = 1
			for i := start; i < min(start+perTx, n); i++ {
				if err := bk.Put(fmt.Appendf(nil, "%016x", i), []byte{0xff}); err != nil {
					return err
				}
			}
			return tx.Bucket([]byte("meta")).Delete([]byte("counts"))
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
	if err := bdb.Close(); err != nil {
		tb.Fatal(err)
	}
	db, err = store.Open(path, store.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	return db
}
