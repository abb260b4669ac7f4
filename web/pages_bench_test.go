package web_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/store"
	"github.com/tilecast/tilecast/web"
)

// bigLedger is the size the issue names: the ledger of 100,000 channels.
const bigLedger = 100_000

// ledgerServer returns a server on a real state file whose ledger holds
// n entries, one per channel (the channels themselves are not stored:
// the ledger outlives them, and listing it never reads them).
func ledgerServer(tb testing.TB, n int) (*store.DB, http.Handler) {
	tb.Helper()
	dir := tb.TempDir()
	db, err := store.Open(filepath.Join(dir, "state.db"), store.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	now := time.Now()
	const batch = 10_000
	recs := make([]tilecast.Record, 0, batch)
	for start := 0; start < n; start += batch {
		recs = recs[:0]
		for i := start; i < min(start+batch, n); i++ {
			recs = append(recs, tilecast.Record{ID: uint64(i + 1), Op: tilecast.OpDone, Sent: true, Outcome: tilecast.Outcome{
				Time: now.Add(-time.Hour), ChannelID: fmt.Sprintf("%016x", i), Feed: "news", Kind: tilecast.KindToast,
				ItemID: "https://example.org/news/item", Status: 200, Notification: "Received", Subscription: "Active",
				Device: "Connected", Action: tilecast.ActionDelivered, Attempt: 1, Duration: 80 * time.Millisecond}})
		}
		if err := db.Record(recs); err != nil {
			tb.Fatal(err)
		}
	}
	keys := filepath.Join(dir, "api-keys")
	if err := os.WriteFile(keys, []byte("admin "+adminKey+"\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	srv, err := web.New(web.Options{
		Store: db, Counts: db.Counts, APIKeysFile: keys,
		Registry: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler),
		RatePerSecond: 1e9, Burst: 1e9,
	})
	if err != nil {
		tb.Fatal(err)
	}
	return db, srv.Handler()
}

// discardWriter is a ResponseWriter that keeps nothing of the body, so
// what a request allocates is the server's own cost.
type discardWriter struct {
	h      http.Header
	status int
	n      int
}

func (d *discardWriter) Header() http.Header { return d.h }
func (d *discardWriter) WriteHeader(code int) {
	if d.status == 0 {
		d.status = code
	}
}
func (d *discardWriter) Write(p []byte) (int, error) {
	d.WriteHeader(http.StatusOK)
	d.n += len(p)
	return len(p), nil
}

// getPage serves one listing request and returns its writer.
func getPage(tb testing.TB, h http.Handler, path string) *discardWriter {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.Header.Set("Authorization", "Bearer "+adminKey)
	w := &discardWriter{h: http.Header{}}
	h.ServeHTTP(w, req)
	if w.status != http.StatusOK {
		tb.Fatalf("GET %s: %d", path, w.status)
	}
	return w
}

// allocated returns the bytes f allocates on the heap.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// fullList is what GET /v1/outcomes cost before it was paged: the whole
// ledger read into a slice and marshalled in one piece.
func fullList(tb testing.TB, db *store.DB) {
	out, err := db.Outcomes("", "", time.Time{})
	if err != nil || len(out) == 0 {
		tb.Fatalf("full list: %d, %v", len(out), err)
	}
	b, err := json.Marshal(out)
	if err != nil {
		tb.Fatal(err)
	}
	_, _ = io.Discard.Write(b)
}

// TestPageMemoryBounded: on a real state file with a 100,000-entry
// ledger, a page of /v1/outcomes allocates a small fraction of what
// listing it whole does, and a page deep in the ledger no more than the
// first one: the store reads the page, not the ledger up to it. Ratios
// of measurements in this run, not absolute figures.
func TestPageMemoryBounded(t *testing.T) {
	n := bigLedger
	db, h := ledgerServer(t, n)
	full := allocated(func() { fullList(t, db) })

	// A cursor halfway through, found by paging through the store.
	cursor := ""
	for range n / 2 / tilecast.MaxPageLimit {
		_, next, err := db.OutcomesPage(tilecast.OutcomeFilter{}, cursor, tilecast.MaxPageLimit)
		if err != nil || next == "" {
			t.Fatalf("paging to the middle: %q, %v", next, err)
		}
		cursor = next
	}
	measure := func(path string) uint64 {
		getPage(t, h, path) // warm: first-use allocations are not the page's
		best := uint64(0)
		for i := range 3 { // the least of three: a stray allocation elsewhere is not the page's either
			if a := allocated(func() { getPage(t, h, path) }); i == 0 || a < best {
				best = a
			}
		}
		return best
	}
	first1000 := measure("/v1/outcomes?since=240h&limit=1000")
	first100 := measure("/v1/outcomes?since=240h&limit=100")
	deep1000 := measure("/v1/outcomes?since=240h&limit=1000&cursor=" + cursor)
	t.Logf("allocated: whole ledger (%d entries) %d B; page of 1000 %d B (deep %d B); page of 100 %d B",
		n, full, first1000, deep1000, first100)

	// A page of 1000 is 1% of the entries: allow it 5% of the cost.
	if ratio := float64(first1000) / float64(full); ratio > 0.05 {
		t.Errorf("a page of 1000 allocates %.1f%% of listing all %d entries; want a page's worth", 100*ratio, n)
	}
	if first100 > first1000/3 {
		t.Errorf("a page of 100 allocates %d B, a page of 1000 %d B: want it to scale with the page", first100, first1000)
	}
	if deep1000 > first1000*3/2 {
		t.Errorf("a page halfway through allocates %d B, the first page %d B: want the same", deep1000, first1000)
	}
}

// BenchmarkOutcomesPage lists a 100,000-entry ledger on a real state file
// a page per op (100 or 1000 entries) and, as the baseline, whole (what
// /v1/outcomes did before paging). B/op is the heap allocated per
// request; heap-B/op is how much the live heap grew across one request
// (HeapInuse after minus before, from a collected heap: a lower bound
// of its peak growth, since a GC during the request lowers it).
func BenchmarkOutcomesPage(b *testing.B) {
	db, h := ledgerServer(b, bigLedger)
	heapGrowth := func(b *testing.B, op func()) {
		b.ReportAllocs()
		var grew uint64
		var ms runtime.MemStats
		for b.Loop() {
			b.StopTimer()
			runtime.GC()
			runtime.ReadMemStats(&ms)
			before := ms.HeapInuse
			b.StartTimer()
			op()
			b.StopTimer()
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > before {
				grew = max(grew, ms.HeapInuse-before)
			}
			b.StartTimer()
		}
		b.ReportMetric(float64(grew), "heap-B/op")
	}
	for _, limit := range []int{100, 1000} {
		b.Run(fmt.Sprintf("page=%d", limit), func(b *testing.B) {
			path := fmt.Sprintf("/v1/outcomes?since=240h&limit=%d", limit)
			heapGrowth(b, func() { getPage(b, h, path) })
		})
	}
	b.Run("all", func(b *testing.B) {
		heapGrowth(b, func() { fullList(b, db) })
	})
}
