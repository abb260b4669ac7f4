package tilecast_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/internal/logtest"
	"github.com/tilecast/tilecast/internal/pgtest"
	"github.com/tilecast/tilecast/store"
	"github.com/tilecast/tilecast/store/postgres"
)

// unsentState is what these tests need of a state, on either backend.
type unsentState interface {
	tilecast.Store
	AddChannel(ch tilecast.Channel) (tilecast.Channel, bool, error)
	Counts() (tilecast.Counts, error)
	Outcomes(channelID, feed string, since time.Time) ([]tilecast.Outcome, error)
}

// unsentRefusingStore refuses the first Record that carries postpone or
// expire records (the dispatcher's unsent entries) and keeps what it
// refused and what it committed later. With lease set it also hides the
// entries Due returned until a Record commits them, as PostgreSQL's
// lease to a live instance does, so that a bbolt state shows whether the
// dispatcher relies on Due handing them back.
type unsentRefusingStore struct {
	unsentState
	lease bool

	mu       sync.Mutex
	leased   map[uint64]bool
	refused  []tilecast.Record // the unsent records of the refused call
	recorded []tilecast.Record // unsent records committed after it
}

func isUnsent(r *tilecast.Record) bool {
	return r.Op == tilecast.OpPostpone || r.Op == tilecast.OpExpire
}

func (s *unsentRefusingStore) Due(now time.Time, limit int, busy func(id uint64) bool) ([]tilecast.Pending, error) {
	if !s.lease {
		return s.unsentState.Due(now, limit, busy)
	}
	out, err := s.unsentState.Due(now, limit, func(id uint64) bool {
		s.mu.Lock()
		held := s.leased[id]
		s.mu.Unlock()
		return held || (busy != nil && busy(id))
	})
	s.mu.Lock()
	for i := range out {
		s.leased[out[i].ID] = true
	}
	s.mu.Unlock()
	return out, err
}

func (s *unsentRefusingStore) Record(recs []tilecast.Record) error {
	var unsent []tilecast.Record
	for i := range recs {
		if isUnsent(&recs[i]) {
			unsent = append(unsent, recs[i])
		}
	}
	s.mu.Lock()
	if len(unsent) > 0 && s.refused == nil {
		s.refused = unsent
		s.mu.Unlock()
		return fmt.Errorf("record %d: %w", len(recs), errStoreDown)
	}
	s.mu.Unlock()
	if err := s.unsentState.Record(recs); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range recs {
		delete(s.leased, recs[i].ID)
	}
	s.recorded = append(s.recorded, unsent...)
	return nil
}

func (s *unsentRefusingStore) seen() (refused, recorded []tilecast.Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]tilecast.Record(nil), s.refused...), append([]tilecast.Record(nil), s.recorded...)
}

// testUnsentRecordedAfterRefusal runs the deliverer over two entries it
// does not send: one past its time to live (expired) and one for a
// channel resting for two more seconds (postponed). The store refuses the
// Record that hands them back; the deliverer must record them once the
// store writes again (on PostgreSQL they stay leased to this live
// instance, so Due never returns them: only the deliverer can let them
// go), log the expired one's push line exactly once, and send the
// postponed one when its channel's rest is over.
//
// leased says whether Due hides the refused entries (PostgreSQL, or the
// wrapper's lease): then only the deliverer can let them go, and it must
// commit the refused records. Without a lease Due returns them again and
// the deliverer may decide anew: the postponed entry may then be sent
// without its postponement ever being committed.
func testUnsentRecordedAfterRefusal(t *testing.T, db unsentState, emulateLease, leased bool) {
	now := time.Now()
	stale, _, err := db.AddChannel(tilecast.Channel{URI: "https://push.example.invalid/stale"})
	if err != nil {
		t.Fatal(err)
	}
	resting, _, err := db.AddChannel(tilecast.Channel{URI: "https://push.example.invalid/resting"})
	if err != nil {
		t.Fatal(err)
	}
	// A record whose entry does not exist still applies its channel
	// effects: here the rest a 406 would have started.
	restEnd := now.Add(2 * time.Second)
	if err := db.Record([]tilecast.Record{{ID: 1 << 40, Op: tilecast.OpDone,
		Outcome: tilecast.Outcome{ChannelID: resting.ID}, ChannelWaitUntil: restEnd}}); err != nil {
		t.Fatal(err)
	}
	if err := db.Enqueue([]tilecast.Notification{
		{ChannelID: stale.ID, Feed: "news", ItemID: "old", Kind: tilecast.KindToast, Payload: []byte("t"),
			Created: now.Add(-48 * time.Hour), NextAttempt: now.Add(-time.Hour)},
		{ChannelID: resting.ID, Feed: "news", ItemID: "later", Kind: tilecast.KindToast, Payload: []byte("t")},
	}); err != nil {
		t.Fatal(err)
	}

	st := &unsentRefusingStore{unsentState: db, lease: emulateLease, leased: map[uint64]bool{}}
	var logs logtest.Buffer
	var pushes, toResting atomic.Int64
	bot := &tilecast.Bot{Store: st, PushConcurrency: 2,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		Pusher: pusherFunc(func(_ context.Context, ch *tilecast.Channel, _ *tilecast.Notification, _ time.Duration) tilecast.Result {
			pushes.Add(1)
			if ch.ID == resting.ID {
				toResting.Add(1)
			}
			return tilecast.Result{Status: 201, Verdict: tilecast.VerdictDelivered}
		})}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- bot.Deliver(ctx) }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Deliver: %v", err)
			}
		}
	}
	defer stop()

	waitUntil(t, "the refused record", func() bool { r, _ := st.seen(); return r != nil })
	refused, _ := st.seen()
	ops := map[tilecast.Op]int{}
	for _, r := range refused {
		ops[r.Op]++
	}
	if ops[tilecast.OpExpire] != 1 || ops[tilecast.OpPostpone] != 1 || len(refused) != 2 {
		t.Fatalf("refused records %+v, want one expire and one postpone", refused)
	}
	// Within a minute, though the deliverer waits 5 s after the refusal.
	waitUntil(t, "the postponed entry sent after its channel's rest", func() bool { return toResting.Load() > 0 })
	waitUntil(t, "an empty outbox", func() bool {
		c, err := db.Counts()
		return err == nil && c.OutboxDepth == 0
	})
	stop()

	_, recorded := st.seen()
	for _, want := range refused {
		n := 0
		for _, r := range recorded {
			if r.ID == want.ID && r.Op == want.Op {
				n++
			}
		}
		if n != 1 && (leased || want.Op == tilecast.OpExpire || n > 1) {
			t.Errorf("entry %d (op %d) committed %d times after the refusal, want 1 (committed: %+v)", want.ID, want.Op, n, recorded)
		}
	}
	if p := pushes.Load(); p != 1 || toResting.Load() != 1 {
		t.Errorf("%d pushes, %d to the resting channel; want just the postponed entry, once", p, toResting.Load())
	}
	lines := strings.Split(logs.String(), "\n")
	expiredLines := 0
	for _, l := range lines {
		if strings.Contains(l, "msg=push ") && strings.Contains(l, "outcome=expired") {
			expiredLines++
			if !strings.Contains(l, "channel="+stale.ID) {
				t.Errorf("expired push line for another channel: %s", l)
			}
		}
	}
	if expiredLines != 1 {
		t.Errorf("%d expired push lines, want 1:\n%s", expiredLines, strings.Join(lines, "\n"))
	}
	out, err := db.Outcomes(stale.ID, "", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 || out[0].Action != tilecast.ActionExpired {
		t.Errorf("ledger of the expired entry's channel: %+v, want one expired outcome", out)
	}
}

// On bbolt, with the store wrapped to hold back what Due returned until it
// is recorded (PostgreSQL's lease), as a deliverer must not rely on Due
// returning an entry it failed to postpone or expire; and on bbolt as it
// is, where Due could return the unrecorded entries again and the
// deliverer must still expire the stale one once (one ledger entry, one
// push line) and send the other once.
func TestUnsentRecordedAfterRefusalBolt(t *testing.T) {
	for _, leased := range []bool{true, false} {
		t.Run(fmt.Sprintf("leased=%v", leased), func(t *testing.T) {
			db, err := store.Open(filepath.Join(t.TempDir(), "state.db"), store.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			testUnsentRecordedAfterRefusal(t, db, leased, leased)
		})
	}
}

// On PostgreSQL as an instance: Due leases the entries, and the
// heartbeat keeps extending the leases while the instance lives.
func TestUnsentRecordedAfterRefusalPostgres(t *testing.T) {
	url := pgtest.New(t)
	db, err := postgres.Open(context.Background(), url, postgres.Options{Instance: "unsent", Lease: 4 * time.Second, MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	testUnsentRecordedAfterRefusal(t, db, false, true)
}
