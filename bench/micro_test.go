package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/store"
)

func benchData() (*tilecast.Feed, *tilecast.TemplateData) {
	f := BenchFeed("news", "http://127.0.0.1/news.xml")
	it := benchItem("new", fanOutT0)
	return &f, &tilecast.TemplateData{Feed: tilecast.FeedInfo{Name: "news", Title: "Bench news"}, Item: it,
		Items: []tilecast.Item{it}, NewCount: 1}
}

// BenchmarkBuildToast is template rendering + payload build + MPNS
// encoding of one toast (target: < 5 µs, ≤ 10 allocs).
func BenchmarkBuildToast(b *testing.B) {
	r := newRenderer()
	f, d := benchData()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Toast(f, d); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBuildTile is the same for the bench feed's flip tile.
func BenchmarkBuildTile(b *testing.B) {
	r := newRenderer()
	f, d := benchData()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Tile(f, d); err != nil {
			b.Fatal(err)
		}
	}
}

func openBench(b *testing.B) *store.DB {
	db, err := store.Open(filepath.Join(b.TempDir(), "state.db"), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	return db
}

// BenchmarkDiff is the diff of a 20-item feed against its seen set
// (Store.Unseen), one item new.
func BenchmarkDiff(b *testing.B) {
	db := openBench(b)
	k := tilecast.FeedKey{Feed: "news"}
	ids := make([]string, 20)
	for i := range ids {
		ids[i] = fmt.Sprintf("https://example.org/news/%d", i)
	}
	if err := db.Commit(tilecast.Commit{Key: k, Seen: ids[1:], Now: fanOutT0}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		un, err := db.Unseen(k, ids)
		if err != nil || len(un) != 1 {
			b.Fatalf("Unseen = %v, %v", un, err)
		}
	}
}

// BenchmarkFeedState304 is what a 304 costs the store: one read of the
// feed's state, no write.
func BenchmarkFeedState304(b *testing.B) {
	db := openBench(b)
	k := tilecast.FeedKey{Feed: "news"}
	f, d := benchData()
	_ = f
	st := tilecast.FeedState{Validators: tilecast.Validators{ETag: `"v1"`}, Baselined: true, LastFetch: fanOutT0,
		LastResult: "ok", LastSuccess: fanOutT0, Title: "Bench news", Link: "https://example.org/", Latest: d}
	if err := db.SaveFeedState(k, st); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, ok, err := db.FeedState(k); err != nil || !ok {
			b.Fatal(err)
		}
	}
}

// BenchmarkCommitUnchanged is the write of a feed that answered 200 with
// no new item: seen set refreshed, state saved, nothing enqueued.
func BenchmarkCommitUnchanged(b *testing.B) {
	db := openBench(b)
	k := tilecast.FeedKey{Feed: "news"}
	ids := make([]string, 20)
	for i := range ids {
		ids[i] = fmt.Sprintf("https://example.org/news/%d", i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		if err := db.Commit(tilecast.Commit{Key: k, Seen: ids, Now: fanOutT0.Add(time.Duration(i) * time.Second)}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSubscribers10k reads the subscribers of a feed among 10k
// channels on the default list.
func BenchmarkSubscribers10k(b *testing.B) {
	dir := b.TempDir()
	path := filepath.Join(dir, "state.db")
	uris := make([]string, 10000)
	for i := range uris {
		uris[i] = fmt.Sprintf("http://127.0.0.1:1/throttledthirdparty/01.00/ch%08d", i)
	}
	if err := BuildFanOutState(path, uris); err != nil {
		b.Fatal(err)
	}
	db, err := store.Open(path, store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	f := BenchFeed("news", "http://127.0.0.1/news.xml")
	b.ReportAllocs()
	for b.Loop() {
		subs, err := db.Subscribers(&f, "")
		if err != nil || len(subs) != len(uris) {
			b.Fatalf("Subscribers = %d, %v", len(subs), err)
		}
	}
}

// BenchmarkFanOut1k is the whole fan-out (feed fetched → every outcome
// recorded) to 1000 emulator channels, and the raw loop beside it.
func BenchmarkFanOut1k(b *testing.B) {
	s, err := StartSink(SinkEmulator, 1000)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	dir := b.TempDir()
	tmpl := filepath.Join(dir, "template.db")
	if err := BuildFanOutState(tmpl, s.URIs); err != nil {
		b.Fatal(err)
	}
	ns, err := RawNotifications()
	if err != nil {
		b.Fatal(err)
	}
	b.Run("tilecast", func(b *testing.B) {
		var total float64
		n := 0
		for b.Loop() {
			b.StopTimer()
			path := filepath.Join(dir, "state.db")
			if err := CopyFile(path, tmpl, os.Getpagesize()); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			res, err := RunFanOut(b.Context(), path, DefaultConcurrency)
			if err != nil {
				b.Fatal(err)
			}
			total += res.PerSecond()
			n++
		}
		b.ReportMetric(total/float64(n), "notif/s")
	})
	b.Run("raw", func(b *testing.B) {
		var total float64
		n := 0
		for b.Loop() {
			res, err := RunRawFanOut(b.Context(), s.URIs, ns, DefaultConcurrency)
			if err != nil {
				b.Fatal(err)
			}
			total += res.PerSecond()
			n++
		}
		b.ReportMetric(total/float64(n), "notif/s")
	})
}
