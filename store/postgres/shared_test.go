package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/tilecast/tilecast/internal/pgtest"
	"github.com/tilecast/tilecast/store/storetest"
)

// The WNS token cache: a token is found until it expires; an older token
// does not replace a newer one; a drop deletes only the token it names.
func TestSharedWNSTokens(t *testing.T) {
	clk := storetest.NewClock()
	url := pgtest.New(t)
	a, b := open(t, url, Options{Now: clk.Now}), open(t, url, Options{Now: clk.Now})
	ctx := context.Background()
	now := clk.Now().Truncate(time.Microsecond)
	load := func(db *DB, key string) string {
		t.Helper()
		tok, _, _, err := db.LoadWNSToken(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	save := func(db *DB, key, tok string, life time.Duration) {
		t.Helper()
		if err := db.SaveWNSToken(ctx, key, tok, now.Add(life), now.Add(life-5*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	drop := func(db *DB, key, tok string) {
		t.Helper()
		if err := db.DropWNSToken(ctx, key, tok); err != nil {
			t.Fatal(err)
		}
	}

	if tok := load(b, "k1"); tok != "" {
		t.Fatalf("empty cache: %q", tok)
	}
	save(a, "k1", "t1", time.Hour)
	tok, exp, renew, err := b.LoadWNSToken(ctx, "k1")
	if err != nil || tok != "t1" || !exp.Equal(now.Add(time.Hour)) || !renew.Equal(now.Add(55*time.Minute)) {
		t.Fatalf("load: %q %v %v %v, want t1 expiring in 1h, renewed at 55m", tok, exp, renew, err)
	}
	if tok := load(b, "k2"); tok != "" {
		t.Fatalf("other key: %q", tok)
	}
	save(b, "k1", "t0", 30*time.Minute) // an older token, saved late
	if tok := load(a, "k1"); tok != "t1" {
		t.Fatalf("after saving an older token: %q, want t1", tok)
	}
	save(b, "k1", "t2", 2*time.Hour)
	if tok := load(a, "k1"); tok != "t2" {
		t.Fatalf("after saving a newer token: %q, want t2", tok)
	}
	drop(a, "k1", "t1") // refused, but replaced already
	if tok := load(b, "k1"); tok != "t2" {
		t.Fatalf("drop of a replaced token: %q, want t2 kept", tok)
	}
	drop(a, "k1", "t2")
	if tok := load(b, "k1"); tok != "" {
		t.Fatalf("after its drop: %q", tok)
	}
	save(a, "k1", "t3", time.Hour)
	clk.Add(time.Hour + time.Second)
	if tok := load(b, "k1"); tok != "" {
		t.Fatalf("expired token: %q, want none", tok)
	}
}

// The open push hosts: opened and moved, listed to every instance,
// closed by any; a host a day past its probe time is no longer listed,
// and the next open deletes it.
func TestSharedPushHosts(t *testing.T) {
	clk := storetest.NewClock()
	url := pgtest.New(t)
	a, b := open(t, url, Options{Now: clk.Now}), open(t, url, Options{Now: clk.Now})
	ctx := context.Background()
	now := clk.Now().Truncate(time.Microsecond)
	hosts := func(db *DB) map[string]time.Time {
		t.Helper()
		m, err := db.OpenHosts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	if m := hosts(b); len(m) != 0 {
		t.Fatalf("new state: %v", m)
	}
	for _, h := range []string{"h1:443", "h2:443"} {
		if err := a.HostOpened(ctx, h, now.Add(30*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.HostOpened(ctx, "h1:443", now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	m := hosts(b)
	if len(m) != 2 || !m["h1:443"].Equal(now.Add(time.Minute)) || !m["h2:443"].Equal(now.Add(30*time.Second)) {
		t.Fatalf("open hosts: %v, want h1 at +1m (moved), h2 at +30s", m)
	}
	if err := b.HostClosed(ctx, "h2:443"); err != nil {
		t.Fatal(err)
	}
	if m := hosts(a); len(m) != 1 || m["h1:443"].IsZero() {
		t.Fatalf("after closing h2: %v, want h1 only", m)
	}
	clk.Add(staleHost + 2*time.Minute)
	if m := hosts(a); len(m) != 0 {
		t.Fatalf("a day past its probe time: %v, want none listed", m)
	}
	if err := a.HostOpened(ctx, "h3:443", clk.Now().Add(30*time.Second)); err != nil {
		t.Fatal(err)
	}
	var rows int64
	if err := a.pool.QueryRow(ctx, "SELECT count(*) FROM push_hosts").Scan(&rows); err != nil || rows != 1 {
		t.Fatalf("push_hosts rows after the next open: %d %v, want 1 (h1 deleted)", rows, err)
	}
	if err := a.HostOpened(ctx, "bad\x00host", now); err == nil {
		t.Fatal("a host with a NUL byte was accepted")
	}
}
