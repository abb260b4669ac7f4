package pgtest

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

// Each New is an empty schema of its own: a table made in one is not seen
// from the other, and the URL names it.
func TestNewIsolatesTests(t *testing.T) {
	ctx := context.Background()
	a, b := New(t), New(t)
	if Schema(a) == "" || Schema(a) == Schema(b) {
		t.Fatalf("schemas %q and %q: want two different ones", Schema(a), Schema(b))
	}
	ca, err := pgx.Connect(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close(ctx)
	cb, err := pgx.Connect(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close(ctx)
	if _, err := ca.Exec(ctx, "CREATE TABLE x (v int); INSERT INTO x VALUES (7)"); err != nil {
		t.Fatal(err)
	}
	var v int
	if err := ca.QueryRow(ctx, "SELECT v FROM x").Scan(&v); err != nil || v != 7 {
		t.Errorf("read back %d, %v", v, err)
	}
	var schema string
	if err := cb.QueryRow(ctx, "SELECT current_schema()").Scan(&schema); err != nil || schema != Schema(b) {
		t.Errorf("current_schema = %q, %v; want %q", schema, err, Schema(b))
	}
	if _, err := cb.Exec(ctx, "SELECT v FROM x"); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("the other test's table is visible: %v", err)
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u:secret@db/x?sslmode=require": "postgres://u:xxxxx@db/x?sslmode=require",
		"postgres://u@db/x":                        "postgres://u@db/x",
	} {
		if got := Redact(in); got != want || strings.Contains(got, "secret") {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}
