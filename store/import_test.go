package store

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/tilecast/tilecast"
)

// genChannels makes n channels: every third one names a user and the
// per-user feed "inbox", every other one lists "news", the rest no feeds.
func genChannels(n int, prefix string) []tilecast.Channel {
	chs := make([]tilecast.Channel, n)
	for i := range chs {
		ch := tilecast.Channel{URI: fmt.Sprintf("http://127.0.0.1/%s/%07d", prefix, i)}
		switch i % 3 {
		case 0:
			ch.User, ch.Feeds = fmt.Sprintf("u%04d", i%5000), []string{"inbox", "news"}
		case 1:
			ch.Feeds = []string{"news"}
		}
		chs[i] = ch
	}
	return chs
}

// BenchmarkImportChannels100k: a 100k-channel import into an empty file.
func BenchmarkImportChannels100k(b *testing.B) {
	chs := genChannels(100_000, "bench")
	for b.Loop() {
		b.StopTimer()
		db, err := Open(filepath.Join(b.TempDir(), "state.db"), Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if added, _, err := db.ImportChannels(chs); err != nil || added != len(chs) {
			b.Fatalf("added %d, %v", added, err)
		}
		b.StopTimer()
		if s, err := db.Counts(); err != nil || s.Channels != len(chs) {
			b.Fatalf("Stats = %+v, %v; want %d channels", s, err, len(chs))
		}
		_ = db.Close()
		b.StartTimer()
	}
}
