package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/internal/pgtest"
)

var _ tilecast.Store = (*DB)(nil)

func open(t testing.TB, url string, o Options) *DB {
	t.Helper()
	db, err := Open(context.Background(), url, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// sql runs one statement on the state at url and returns the first
// column of its first row.
func sql(t testing.TB, url, q string, args ...any) any {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var v any
	if err := conn.QueryRow(ctx, q, args...).Scan(&v); err != nil && !errors.Is(err, pgx.ErrNoRows) {
		t.Fatalf("%s: %v", q, err)
	}
	return v
}

// Open applies the schema once, records it, and refuses a schema newer
// than the binary, naming both versions; instances opening a new
// database at once migrate it once.
func TestMigrations(t *testing.T) {
	url := pgtest.New(t)
	var wg sync.WaitGroup
	var progress [4][]int
	dbs := make([]*DB, 4)
	errs := make([]error, 4)
	for i := range dbs {
		wg.Go(func() {
			dbs[i], errs[i] = Open(context.Background(), url, Options{Progress: func(done, total int) {
				progress[i] = append(progress[i], done, total)
			}})
		})
	}
	wg.Wait()
	applied := 0
	for i, err := range errs {
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		defer dbs[i].Close()
		if len(progress[i]) > 0 {
			applied++
			var want []int // after each migration: done, total
			for v := 1; v <= SchemaVersion(); v++ {
				want = append(want, v, SchemaVersion())
			}
			if fmt.Sprint(progress[i]) != fmt.Sprint(want) {
				t.Errorf("progress of the open that migrated: %v, want %v", progress[i], want)
			}
		}
	}
	if applied != 1 {
		t.Errorf("%d opens applied the migrations, want 1", applied)
	}
	if n := sql(t, url, "SELECT count(*) FROM tilecast_schema"); n != int64(SchemaVersion()) {
		t.Errorf("tilecast_schema has %v rows, want %d", n, SchemaVersion())
	}
	if name := sql(t, url, "SELECT name FROM tilecast_schema WHERE version = 1"); name != "init" {
		t.Errorf("migration 1 is named %v", name)
	}

	// A newer tilecast migrated it further: this one refuses it.
	sql(t, url, "INSERT INTO tilecast_schema (version, name) VALUES (99, 'future') RETURNING version")
	_, err := Open(context.Background(), url, Options{})
	want := fmt.Sprintf("database schema version 99 is newer than this tilecast supports (%d)", SchemaVersion())
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Open of a newer schema: %v, want %q", err, want)
	}
}

// The run lock: any number of daemons share it, a state copy needs it
// alone, and either is refused at once while the other holds it.
func TestHold(t *testing.T) {
	url := pgtest.New(t)
	a, b, c := open(t, url, Options{}), open(t, url, Options{}), open(t, url, Options{})
	ctx := context.Background()
	if err := a.Hold(ctx, false); err != nil {
		t.Fatal(err)
	}
	if err := b.Hold(ctx, false); err != nil {
		t.Fatalf("a second daemon: %v", err)
	}
	if err := c.Hold(ctx, true); !errors.Is(err, tilecast.ErrStateLocked) || !strings.Contains(err.Error(), "a tilecast runs on it") {
		t.Errorf("exclusive while daemons run: %v", err)
	}
	a.Close()
	b.Close()
	if err := c.Hold(ctx, true); err != nil {
		t.Fatalf("exclusive after the daemons stopped: %v", err)
	}
	d := open(t, url, Options{})
	if err := d.Hold(ctx, false); !errors.Is(err, tilecast.ErrStateLocked) || !strings.Contains(err.Error(), "state copy") {
		t.Errorf("a daemon during a state copy: %v", err)
	}
	// Another schema (another state) is another lock.
	e := open(t, pgtest.New(t), Options{})
	if err := e.Hold(ctx, true); err != nil {
		t.Errorf("exclusive on another schema: %v", err)
	}
}

func TestRedact(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		pw       bool
	}{
		{"postgres://u:s3cret@db.example:5432/tilecast?sslmode=require", "postgres://u:xxxxx@db.example:5432/tilecast?sslmode=require", true},
		{"postgresql://u@db/x?password=s3cret&sslmode=verify-full", "postgresql://u@db/x?password=xxxxx&sslmode=verify-full", true},
		{"postgres://u@db/x", "postgres://u@db/x", false},
		{"postgres:// bad url s3cret\x7f", "postgres://…", false},
	} {
		if got := Redact(tc.in); got != tc.want || strings.Contains(got, "s3cret") {
			t.Errorf("Redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if got := HasPassword(tc.in); got != tc.pw {
			t.Errorf("HasPassword(%q) = %v", tc.in, got)
		}
	}
	for state, want := range map[string]bool{"postgres://x/y": true, "postgresql://x": true, "/var/lib/tilecast/state.db": false, "postgres.db": false} {
		if IsURL(state) != want {
			t.Errorf("IsURL(%q) = %v", state, !want)
		}
	}
	// A URL that does not parse is an error that does not show it.
	_, err := Open(context.Background(), "postgres://u:s3cret@[::1/x", Options{})
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("Open of a bad URL: %v", err)
	}
}

// The password comes from store.password_file, else the URL or pgx's own
// sources; a server that asks one refuses a connection without it, and
// no error shows it.
func TestPasswordFile(t *testing.T) {
	url, pw := pgtest.PasswordURL(t)
	t.Setenv("PGPASSWORD", "")
	t.Setenv("PGPASSFILE", filepath.Join(t.TempDir(), "none"))
	if _, err := Open(context.Background(), url, Options{}); err == nil {
		t.Fatal("a server that asks a password accepted none")
	}
	file := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(file, []byte(pw+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	db := open(t, url, Options{PasswordFile: file})
	if _, err := db.Counts(); err != nil {
		t.Fatalf("with the password file: %v", err)
	}
	if err := os.WriteFile(file, []byte("wrong\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(context.Background(), url, Options{PasswordFile: file}); err == nil || strings.Contains(err.Error(), "wrong") {
		t.Errorf("a wrong password: %v", err)
	}
	for name, content := range map[string]string{"empty": "\n", "missing": ""} {
		f := filepath.Join(t.TempDir(), name)
		if name == "empty" {
			os.WriteFile(f, []byte(content), 0o600)
		}
		if _, err := Open(context.Background(), url, Options{PasswordFile: f}); err == nil || !strings.Contains(err.Error(), "store.password_file") {
			t.Errorf("%s password file: %v", name, err)
		}
	}
	// PGPASSWORD, which pgx reads, works as well.
	t.Setenv("PGPASSWORD", pw)
	open(t, url, Options{})
}

// A fan-out page of thousands of channels is a handful of statements
// (COPY, one payload row), and so is recording a batch of their results.
func TestStatementsPerNotification(t *testing.T) {
	url := pgtest.New(t)
	db := open(t, url, Options{})
	const n = 5000
	chs := make([]tilecast.Channel, n)
	for i := range chs {
		chs[i] = tilecast.Channel{URI: fmt.Sprintf("http://127.0.0.1/s/%d", i), Feeds: []string{"news"}}
	}
	if added, _, err := db.ImportChannels(chs); err != nil || added != n {
		t.Fatalf("import: %d, %v", added, err)
	}
	now := time.Now()
	job := tilecast.FanOutJob{Feed: "news", Now: now}
	if err := db.Commit(tilecast.Commit{Key: tilecast.FeedKey{Feed: "news"}, Seen: []string{"1"}, Now: now, FanOut: &job}); err != nil {
		t.Fatal(err)
	}
	page, next, err := db.SubscribersAfter(&tilecast.Feed{Name: "news"}, "", n)
	if err != nil || len(page) != n {
		t.Fatalf("SubscribersAfter = %d, %v", len(page), err)
	}
	ns := make([]tilecast.Notification, 0, 2*n)
	for _, ch := range page {
		ns = append(ns, tilecast.Notification{ChannelID: ch.ID, Feed: "news", ItemID: "1", Kind: tilecast.KindToast, Payload: []byte("toast")},
			tilecast.Notification{ChannelID: ch.ID, Feed: "news", Kind: tilecast.KindTile, Payload: []byte("tile")})
	}
	job.Cursor = next
	before := db.Statements()
	if err := db.FanOutStep(job, "", ns, false); err != nil {
		t.Fatal(err)
	}
	if st := db.Statements() - before; st > 15 {
		t.Errorf("a fan-out step of %d notifications took %d statements, want a handful", len(ns), st)
	}
	if c, _ := db.Counts(); c.OutboxDepth != 2*n {
		t.Errorf("outbox depth %d, want %d", c.OutboxDepth, 2*n)
	}
	if rows := sql(t, url, "SELECT count(*) FROM payloads"); rows != int64(2) {
		t.Errorf("%v payload rows, want 2 (one per distinct payload)", rows)
	}
	due, err := db.Due(now.Add(time.Hour), 1024, nil)
	if err != nil || len(due) != 1024 {
		t.Fatalf("Due = %d, %v", len(due), err)
	}
	recs := make([]tilecast.Record, len(due))
	for i, p := range due {
		recs[i] = tilecast.Record{ID: p.ID, Due: p.NextAttempt, Op: tilecast.OpDone, Sent: true,
			Outcome: tilecast.Outcome{ChannelID: p.ChannelID, Feed: "news", Kind: p.Kind, Action: tilecast.ActionDelivered, Time: now}}
	}
	before = db.Statements()
	if err := db.Record(recs); err != nil {
		t.Fatal(err)
	}
	if st := db.Statements() - before; st > 15 {
		t.Errorf("recording %d results took %d statements, want a handful", len(recs), st)
	}
	if c, _ := db.Counts(); c.OutboxDepth != 2*n-1024 {
		t.Errorf("outbox depth %d after the record, want %d", c.OutboxDepth, 2*n-1024)
	}
}

// The payload rows no entry references go when the outbox is empty
// (NextDue) and in PruneLedger.
func TestPayloadRowsCleared(t *testing.T) {
	url := pgtest.New(t)
	var logs bytes.Buffer
	db := open(t, url, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	ch, _, err := db.AddChannel(tilecast.Channel{URI: "http://127.0.0.1/a"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := db.Enqueue([]tilecast.Notification{{ChannelID: ch.ID, Feed: "news", Kind: tilecast.KindToast, Payload: []byte(fmt.Sprint("p", i))}}); err != nil {
			t.Fatal(err)
		}
	}
	if rows := sql(t, url, "SELECT count(*) FROM payloads"); rows != int64(3) {
		t.Fatalf("%v payload rows, want 3", rows)
	}
	due, _ := db.Due(time.Now().Add(time.Hour), 10, nil)
	if _, err := db.NextDue(); err != nil {
		t.Fatal(err)
	}
	if rows := sql(t, url, "SELECT count(*) FROM payloads"); rows != int64(3) {
		t.Errorf("%v payload rows with the outbox full, want 3", rows)
	}
	if err := db.Record([]tilecast.Record{{ID: due[0].ID, Due: due[0].NextAttempt, Op: tilecast.OpDone}}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.PruneLedger(); err != nil {
		t.Fatal(err)
	}
	if rows := sql(t, url, "SELECT count(*) FROM payloads"); rows != int64(2) {
		t.Errorf("%v payload rows after PruneLedger, want 2", rows)
	}
	var recs []tilecast.Record
	for _, p := range due[1:] {
		recs = append(recs, tilecast.Record{ID: p.ID, Due: p.NextAttempt, Op: tilecast.OpDone})
	}
	if err := db.Record(recs); err != nil {
		t.Fatal(err)
	}
	if nd, err := db.NextDue(); err != nil || !nd.IsZero() {
		t.Fatalf("NextDue = %v, %v", nd, err)
	}
	if rows := sql(t, url, "SELECT count(*) FROM payloads"); rows != int64(0) {
		t.Errorf("%v payload rows with the outbox empty, want 0", rows)
	}
	if strings.Contains(logs.String(), "password") {
		t.Errorf("log mentions a password:\n%s", logs.String())
	}
}
