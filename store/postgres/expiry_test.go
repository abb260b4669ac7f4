package postgres

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/internal/pgtest"
)

// Migration 004 adds a partial index on channels.expires that holds only
// the channels that expire, and ExpiredChannels' query can be answered
// from it (with sequential scans off, the plan names it: the query's
// predicate implies the index's).
func TestExpiryIndex(t *testing.T) {
	url := pgtest.New(t)
	db := open(t, url, Options{})
	if name := sql(t, url, "SELECT name FROM tilecast_schema WHERE version = 4"); name != "channel_expiry" {
		t.Errorf("migration 4 is named %v, want channel_expiry", name)
	}
	def, _ := sql(t, url, "SELECT indexdef FROM pg_indexes WHERE indexname = 'channels_expires' AND schemaname = current_schema()").(string)
	if !strings.Contains(def, "(expires, id)") || !strings.Contains(def, "WHERE (expires IS NOT NULL)") {
		t.Errorf("channels_expires = %q, want a partial index on (expires, id) where expires is set", def)
	}

	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var chs []tilecast.Channel
	for i := range 2000 {
		ch := tilecast.Channel{URI: fmt.Sprintf("http://127.0.0.1/never/%d", i)}
		if i%400 == 0 {
			ch = tilecast.Channel{URI: fmt.Sprintf("https://127.0.0.1/push/%d", i), Transport: tilecast.TransportWebPush,
				Expires: now.Add(-time.Duration(i) * time.Second)}
		}
		chs = append(chs, ch)
	}
	if _, _, err := db.ImportChannels(chs); err != nil {
		t.Fatal(err)
	}
	if n := sql(t, url, "SELECT count(*) FROM channels WHERE expires IS NOT NULL"); n != int64(5) {
		t.Fatalf("%v channels expire, want 5", n)
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "SET enable_seqscan = off"); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.Query(ctx, "EXPLAIN SELECT id FROM channels WHERE expires IS NOT NULL AND expires <= $1 ORDER BY expires, id LIMIT 100", now)
	if err != nil {
		t.Fatal(err)
	}
	var plan []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, line)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if p := strings.Join(plan, "\n"); !strings.Contains(p, "channels_expires") {
		t.Errorf("the expiry query does not use channels_expires:\n%s", p)
	}
	got, err := db.ExpiredChannels(now, 0)
	if err != nil || len(got) != 5 || !got[0].Expires.Equal(now.Add(-1600*time.Second)) {
		t.Errorf("ExpiredChannels = %d channels, %v; want 5, the earliest first", len(got), err)
	}
}
