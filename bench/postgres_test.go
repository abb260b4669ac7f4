package bench

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/internal/pgtest"
	"github.com/tilecast/tilecast/store/postgres"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// TestFanOutPGSmoke runs a 30-channel fan-out on PostgreSQL: every push
// arrives, every outcome is in the database's ledger, and the statements
// counted for enqueue and delivery are some, and fewer than a statement
// per row would make. It times nothing.
func TestFanOutPGSmoke(t *testing.T) {
	const channels = 30
	s, err := StartSink(SinkEmulator, channels)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tmpl := filepath.Join(t.TempDir(), "template.db")
	if err := BuildFanOutState(tmpl, s.URIs); err != nil {
		t.Fatal(err)
	}
	dbURL := pgtest.New(t)
	if err := CopyStateToPG(t.Context(), tmpl, dbURL); err != nil {
		t.Fatal(err)
	}
	res, err := RunFanOutPG(t.Context(), dbURL, FanOutOptions{Concurrency: 4})
	if err != nil {
		t.Fatal(err)
	}
	const want = 2 * channels // a toast and a tile each
	if res.Notifications != want || s.Received() != want || res.Outcomes != want {
		t.Fatalf("notifications = %d, sink received %d, delivered outcomes in the ledger %d; want %d each",
			res.Notifications, s.Received(), res.Outcomes, want)
	}
	// Each channel's toast and tile, delivered, in the database's ledger.
	db, err := postgres.Open(t.Context(), dbURL, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	list, err := db.Outcomes("", "", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, o := range list {
		if o.Action == tilecast.ActionDelivered {
			got[o.ChannelID+" "+string(o.Kind)]++
		}
	}
	chs, err := db.Channels("")
	if err != nil || len(chs) != channels {
		t.Fatalf("channels = %d, %v; want %d", len(chs), err, channels)
	}
	for _, ch := range chs {
		for _, k := range []tilecast.Kind{tilecast.KindToast, tilecast.KindTile} {
			if n := got[ch.ID+" "+string(k)]; n != 1 {
				t.Errorf("channel %s: %d delivered %s outcomes in the ledger, want 1", ch.ID, n, k)
			}
		}
	}
	// Enqueue is set-based: its statements do not grow with the channels
	// one by one. Delivery leases and records in batches of the send
	// window: well under a statement per notification per step.
	if res.EnqueueStatements == 0 || res.EnqueuePerNotification() >= 1 {
		t.Errorf("enqueue: %d statements for %d notifications; want some, fewer than one per notification",
			res.EnqueueStatements, res.Notifications)
	}
	if res.DeliverStatements == 0 || res.DeliverPerNotification() >= 3 {
		t.Errorf("delivery: %d statements for %d notifications; want some, fewer than 3 per notification",
			res.DeliverStatements, res.Notifications)
	}
	t.Logf("statements per notification: enqueue %.2f (%d), delivery %.2f (%d)",
		res.EnqueuePerNotification(), res.EnqueueStatements, res.DeliverPerNotification(), res.DeliverStatements)
}
