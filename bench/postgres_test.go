package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/internal/pgtest"
	"github.com/tilecast/tilecast/store/postgres"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// TestFanOutPGSmoke runs a 30-channel fan-out on PostgreSQL with one and
// with three delivering instances: every push arrives once at the sink,
// every outcome is in the database's ledger once, each instance has its
// row in the database, and the statements counted for enqueue and
// delivery are some, and fewer than a statement per row would make. It
// times nothing.
func TestFanOutPGSmoke(t *testing.T) {
	for _, instances := range []int{1, 3} {
		t.Run(fmt.Sprintf("instances=%d", instances), func(t *testing.T) { testFanOutPGSmoke(t, instances) })
	}
}

func testFanOutPGSmoke(t *testing.T, instances int) {
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
	res, err := RunFanOutPG(t.Context(), dbURL, FanOutOptions{Concurrency: 4}, instances)
	if err != nil {
		t.Fatal(err)
	}
	sum := 0
	for _, n := range res.PerInstance {
		sum += n
	}
	if res.Instances != instances || len(res.PerInstance) != instances || sum != res.Notifications {
		t.Errorf("instances = %d, outcomes per instance %v (sum %d); want %d instances summing to %d",
			res.Instances, res.PerInstance, sum, instances, res.Notifications)
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
	// Each deliverer heartbeats as an instance of its own.
	if res.InstanceRows != instances {
		t.Errorf("instances in the database = %d; want %d", res.InstanceRows, instances)
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
	// window: well under a statement per notification per step. Each
	// instance also polls (an empty Due) while the run enqueues, so the
	// bound grows with the instances.
	if res.EnqueueStatements == 0 || res.EnqueuePerNotification() >= 1 {
		t.Errorf("enqueue: %d statements for %d notifications; want some, fewer than one per notification",
			res.EnqueueStatements, res.Notifications)
	}
	if res.DeliverStatements == 0 || res.DeliverPerNotification() >= float64(3*instances) {
		t.Errorf("delivery: %d statements for %d notifications; want some, fewer than %d per notification",
			res.DeliverStatements, res.Notifications, 3*instances)
	}
	t.Logf("statements per notification: enqueue %.2f (%d), delivery %.2f (%d)",
		res.EnqueuePerNotification(), res.EnqueueStatements, res.DeliverPerNotification(), res.DeliverStatements)
}
