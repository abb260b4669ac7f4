package tilecast

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// batchStore records the sizes of the batches the recorder commits; each
// Record blocks until the test releases it, so the test decides what
// arrives during a commit. Only Record is used.
type batchStore struct {
	Store
	sizes   chan int
	release chan struct{}
}

func (s *batchStore) Record(recs []Record) error {
	s.sizes <- len(recs)
	<-s.release
	return nil
}

// next waits for the recorder's next commit and returns its size and
// when it began.
func (s *batchStore) next(t *testing.T) (int, time.Time) {
	t.Helper()
	select {
	case n := <-s.sizes:
		return n, time.Now()
	case <-time.After(30 * time.Second):
		t.Fatal("no batch committed within 30 s")
		return 0, time.Time{}
	}
}

func sendResults(results chan<- sendResult, from, n int) {
	for i := range n {
		results <- sendResult{p: Pending{Notification: Notification{ID: uint64(from + i), ChannelID: "c"}},
			res: Result{Verdict: VerdictDelivered, Status: 200}}
	}
}

// TestRecorderFillsBatchesInABurst: after a batch of at least half the
// window the recorder waits for the whole window (4 results for 2
// workers), but no longer than its last commit took; after a smaller
// batch (no burst), with no send in flight, it commits what it has at
// once; a closed channel ends the wait.
func TestRecorderFillsBatchesInABurst(t *testing.T) {
	const window = 4 // 2 × 2 workers
	st := &batchStore{sizes: make(chan int), release: make(chan struct{})}
	b := &Bot{Store: st}
	results := make(chan sendResult, window)
	recErr := make(chan error, 1)
	next := func() int {
		t.Helper()
		n, _ := st.next(t)
		return n
	}

	// No burst yet: one result is committed without waiting for more
	// (the fill wait is an hour: waiting would fail the test).
	go func() {
		recErr <- b.recorder(context.Background(), results, window, time.Hour, func(int) int { return 0 }, func([]uint64, bool) {})
	}()
	sendResults(results, 0, 1)
	if n := next(); n != 1 {
		t.Fatalf("first batch = %d, want 1", n)
	}
	// While it commits, two results arrive: half the window, so the batch
	// after them is a burst's.
	sendResults(results, 1, 2)
	st.release <- struct{}{}
	if n := next(); n != 2 {
		t.Fatalf("second batch = %d, want 2", n)
	}
	// This commit takes a second, so the next fill may wait that long.
	// One result is waiting, the rest trickle in; the recorder waits
	// until the window is full.
	sendResults(results, 3, 1)
	time.Sleep(time.Second)
	st.release <- struct{}{}
	for i := range 3 {
		time.Sleep(time.Millisecond)
		sendResults(results, 4+i, 1)
	}
	if n := next(); n != window {
		t.Fatalf("burst batch = %d, want %d (the whole window)", n, window)
	}
	// Still a burst, but this commit is quick: one result and nothing
	// after it is committed after a wait of about that commit, not an hour.
	sendResults(results, 7, 1)
	st.release <- struct{}{}
	if n := next(); n != 1 {
		t.Fatalf("batch after a quick commit = %d, want 1", n)
	}
	// A burst again, ended by the closed channel: nothing is left behind.
	sendResults(results, 8, 3)
	st.release <- struct{}{}
	if n := next(); n != 3 {
		t.Fatalf("batch = %d, want 3", n)
	}
	sendResults(results, 11, 1)
	close(results)
	st.release <- struct{}{}
	if n := next(); n != 1 {
		t.Fatalf("last batch = %d, want 1", n)
	}
	st.release <- struct{}{}
	if err := <-recErr; err != nil {
		t.Fatal(err)
	}
}

// windowStore is an in-memory outbox whose Record is slow, like a commit
// with its fsync pair, and a Pusher that answers at once: sends pile up
// behind the recorder unless the send window stops them. It counts, at
// every push, the sends made whose outcome is not committed yet: what a
// crash at that moment could send twice.
type windowStore struct {
	Store
	mu       sync.Mutex
	pending  map[uint64]bool
	pushes   map[uint64]int
	recorded int // sent outcomes committed
	maxOpen  int
}

func (s *windowStore) Due(now time.Time, limit int, busy func(uint64) bool) ([]Pending, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]uint64, 0, len(s.pending))
	for id := range s.pending {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var out []Pending
	for _, id := range ids {
		if len(out) == limit {
			break
		}
		if busy(id) {
			continue
		}
		ch := fmt.Sprintf("ch%d", id)
		out = append(out, Pending{
			Notification: Notification{ID: id, ChannelID: ch, Kind: KindToast, NextAttempt: now, Created: now},
			Channel:      Channel{ID: ch, URI: "https://push.example/" + ch},
		})
	}
	return out, nil
}

func (s *windowStore) NextDue() (time.Time, error) { return time.Time{}, nil }

func (s *windowStore) Record(recs []Record) error {
	time.Sleep(2 * time.Millisecond)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range recs {
		delete(s.pending, r.ID)
		if r.Sent {
			s.recorded++
		}
	}
	return nil
}

func (s *windowStore) Push(_ context.Context, _ *Channel, n *Notification, _ time.Duration) Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pushes[n.ID]++
	sent := 0
	for _, c := range s.pushes {
		sent += c
	}
	s.maxOpen = max(s.maxOpen, sent-s.recorded)
	return Result{Status: 200, Verdict: VerdictDelivered}
}

// TestDeliverWindow pins design.md §1's crash window: at no moment are
// more than 2 × push.concurrency sends made without their outcomes
// committed (sends in flight plus one recorder batch), however slow the
// commits. A results buffer or a batch wider than that fails it.
func TestDeliverWindow(t *testing.T) {
	const workers, entries = 4, 400
	st := &windowStore{pending: map[uint64]bool{}, pushes: map[uint64]int{}}
	for i := range entries {
		st.pending[uint64(i+1)] = true
	}
	b := &Bot{Store: st, Pusher: st, PushConcurrency: workers}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := b.DeliverDue(ctx); err != nil {
		t.Fatal(err)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.pending) != 0 || len(st.pushes) != entries {
		t.Fatalf("%d entries left, %d of %d pushed", len(st.pending), len(st.pushes), entries)
	}
	for id, n := range st.pushes {
		if n != 1 {
			t.Errorf("entry %d pushed %d times", id, n)
		}
	}
	if st.maxOpen > 2*workers {
		t.Errorf("%d sends were unrecorded at once, want ≤ %d (2 × push.concurrency)", st.maxOpen, 2*workers)
	}
	// Commits are slow and pushes instant: the window fills. A bound
	// never reached here would say nothing about a widened one.
	if st.maxOpen <= workers {
		t.Errorf("at most %d sends were unrecorded at once: the window (%d) was never used beyond the sends in flight",
			st.maxOpen, 2*workers)
	}
	t.Logf("most sends unrecorded at once: %d (bound %d)", st.maxOpen, 2*workers)
}

func TestChannelAuthenticated(t *testing.T) {
	tests := []struct {
		uri  string
		want bool
	}{
		{"https://db3.notify.live.net/throttledthirdparty/01.00/x", true},
		{"HTTPS://db3.notify.live.net/x", true},
		{"http://db3.notify.live.net/throttledthirdparty/01.00/x", false},
		{"https:", true},
		{"https", false},
		{"", false},
		{"httpx://h/x", false},
	}
	for _, tt := range tests {
		if got := (&Channel{URI: tt.uri}).Authenticated(); got != tt.want {
			t.Errorf("Authenticated(%q) = %v, want %v", tt.uri, got, tt.want)
		}
	}
}

// TestRecorderWaitsForSendsInFlight: outside a burst the recorder waits
// for the sends in flight, up to half the window, before it commits, but
// no longer than its last commit took; with nothing in flight it commits
// at once.
func TestRecorderWaitsForSendsInFlight(t *testing.T) {
	const window = 8 // 2 × 4 workers
	st := &batchStore{sizes: make(chan int), release: make(chan struct{})}
	b := &Bot{Store: st}
	results := make(chan sendResult, window)
	var flying atomic.Int64 // what the test says is in flight
	recErr := make(chan error, 1)
	go func() {
		recErr <- b.recorder(context.Background(), results, window, time.Hour,
			func(int) int { return int(flying.Load()) }, func([]uint64, bool) {})
	}()
	next := func() (int, time.Time) {
		t.Helper()
		return st.next(t)
	}
	// Each commit is held 1 s, so the next batch may wait up to 1 s.
	hold := func() {
		time.Sleep(time.Second)
		st.release <- struct{}{}
	}

	// The first result: nothing in flight, nothing to wait for.
	sendResults(results, 0, 1)
	if n, _ := next(); n != 1 {
		t.Fatalf("first batch = %d, want 1", n)
	}
	hold()

	// Two sends in flight: the recorder waits for their answers.
	flying.Store(2)
	sendResults(results, 1, 1)
	for i := range 2 {
		time.Sleep(100 * time.Millisecond)
		flying.Add(-1)
		sendResults(results, 2+i, 1)
	}
	if n, _ := next(); n != 3 {
		t.Fatalf("batch with two sends in flight = %d, want 3 (it should wait for them)", n)
	}
	hold()

	// Ten in flight: it waits for half the window (4), not for all ten.
	flying.Store(10)
	sendResults(results, 4, 1)
	time.Sleep(100 * time.Millisecond)
	sendResults(results, 5, 3)
	sent := time.Now()
	n, at := next()
	if n != 4 {
		t.Fatalf("batch with ten sends in flight = %d, want 4 (half the window)", n)
	}
	if d := at.Sub(sent); d > 500*time.Millisecond {
		t.Fatalf("half the window answered, yet the batch came %s later (waited for the rest in flight)", d)
	}
	hold()

	// That batch was a burst's: the next waits for the whole window,
	// but only as long as the last commit took. The one after is no
	// burst's, and with nothing in flight its result goes at once
	// although the last commit took 1 s.
	sendResults(results, 8, 1)
	if n, _ := next(); n != 1 {
		t.Fatalf("burst batch = %d, want 1", n)
	}
	hold()
	flying.Store(0)
	sendResults(results, 9, 1)
	sent = time.Now()
	n, at = next()
	if n != 1 {
		t.Fatalf("batch with nothing in flight = %d, want 1", n)
	}
	if d := at.Sub(sent); d > 500*time.Millisecond {
		t.Fatalf("nothing in flight, yet the batch came %s after its result (it waited)", d)
	}
	close(results)
	st.release <- struct{}{}
	if err := <-recErr; err != nil {
		t.Fatal(err)
	}
}
