package postgres

import (
	"fmt"
	"testing"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/internal/pgtest"
)

// The tables a fan-out or a day's first sends fill within seconds are
// analyzed by the store as they double, so the planner does not go on
// planning leases and reservations for the nearly empty tables it last
// saw (analyze.go); growth by less than that is left to autovacuum.
func TestTablesAnalyzedAsTheyGrow(t *testing.T) {
	url := pgtest.New(t)
	db := open(t, url, Options{})
	rows := func(table string) float64 {
		t.Helper()
		return sql(t, url, "SELECT reltuples::float8 FROM pg_class WHERE oid = $1::regclass", table).(float64)
	}
	for _, table := range []string{"channels", "outbox", "daily_caps"} {
		if n := rows(table); n > 0 {
			t.Fatalf("%s: the planner already counts %v rows in a new database", table, n)
		}
	}

	const n = 3000
	chs := make([]tilecast.Channel, n)
	for i := range chs {
		chs[i] = tilecast.Channel{URI: fmt.Sprintf("http://127.0.0.1/grow/%d", i)}
	}
	if _, _, err := db.ImportChannels(chs); err != nil {
		t.Fatal(err)
	}
	if got := rows("channels"); got != n {
		t.Errorf("channels after importing %d: the planner counts %v", n, got)
	}
	all, err := db.Channels("")
	if err != nil {
		t.Fatal(err)
	}
	ns := make([]tilecast.Notification, 0, len(all))
	ids := make([]string, 0, len(all))
	want := make([]int, 0, len(all))
	for i, ch := range all {
		ns = append(ns, tilecast.Notification{ChannelID: ch.ID, Feed: "news", ItemID: fmt.Sprint(i),
			Kind: tilecast.KindToast, Payload: []byte("toast")})
		ids, want = append(ids, ch.ID), append(want, 1)
	}
	if err := db.Enqueue(ns); err != nil {
		t.Fatal(err)
	}
	if got := rows("outbox"); got != n {
		t.Errorf("outbox after enqueueing %d: the planner counts %v", n, got)
	}
	if _, err := db.ReserveSends("2026-03-01", ids, want, tilecast.DailyCap); err != nil {
		t.Fatal(err)
	}
	if got := rows("daily_caps"); got != n {
		t.Errorf("daily_caps after reserving for %d channels: the planner counts %v", n, got)
	}

	// A third more is not a doubling: no ANALYZE for it.
	more := make([]tilecast.Notification, n/3)
	for i := range more {
		more[i] = tilecast.Notification{ChannelID: all[i].ID, Feed: "more", ItemID: fmt.Sprint(i),
			Kind: tilecast.KindToast, Payload: []byte("toast")}
	}
	if err := db.Enqueue(more); err != nil {
		t.Fatal(err)
	}
	if got := rows("outbox"); got != n {
		t.Errorf("outbox after growing by a third: the planner counts %v, want still %d", got, n)
	}
	// Twice as many again is.
	again := make([]tilecast.Notification, 0, 2*n)
	for i := range 2 * n {
		again = append(again, tilecast.Notification{ChannelID: all[i%n].ID, Feed: "again", ItemID: fmt.Sprint(i),
			Kind: tilecast.KindToast, Payload: []byte("toast")})
	}
	if err := db.Enqueue(again); err != nil {
		t.Fatal(err)
	}
	if got, wantRows := rows("outbox"), float64(n+n/3+2*n); got != wantRows {
		t.Errorf("outbox after doubling: the planner counts %v, want %v", got, wantRows)
	}
}

// Writers growing one table at once share its count (run with -race):
// the table is analyzed once it has grown past analyzeMin, whichever
// writer crossed it.
func TestAnalyzeConcurrentWriters(t *testing.T) {
	url := pgtest.New(t)
	db := open(t, url, Options{})
	const writers, each = 8, 200
	chs := make([]tilecast.Channel, each)
	for i := range chs {
		chs[i] = tilecast.Channel{URI: fmt.Sprintf("http://127.0.0.1/conc/%d", i)}
	}
	if _, _, err := db.ImportChannels(chs); err != nil {
		t.Fatal(err)
	}
	all, err := db.Channels("")
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, writers)
	for w := range writers {
		go func() {
			ns := make([]tilecast.Notification, 0, len(all))
			for i, ch := range all {
				ns = append(ns, tilecast.Notification{ChannelID: ch.ID, Feed: fmt.Sprint("f", w), ItemID: fmt.Sprint(i),
					Kind: tilecast.KindToast, Payload: []byte("toast")})
			}
			errs <- db.Enqueue(ns)
		}()
	}
	for range writers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	got := sql(t, url, "SELECT reltuples::float8 FROM pg_class WHERE oid = 'outbox'::regclass").(float64)
	if got < analyzeMin {
		t.Errorf("outbox after %d rows from %d writers: the planner counts %v", writers*each, writers, got)
	}
}
