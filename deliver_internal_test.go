package tilecast

import (
	"context"
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

func sendResults(results chan<- sendResult, from, n int) {
	for i := range n {
		results <- sendResult{p: Pending{Notification: Notification{ID: uint64(from + i), ChannelID: "c"}},
			res: Result{Verdict: VerdictDelivered, Status: 200}}
	}
}

// TestRecorderFillsBatchesInABurst: after a batch with a result per worker
// the recorder waits for a batch of 8 per worker; after a smaller one (no
// burst) it commits what it has at once; a closed channel ends the wait.
func TestRecorderFillsBatchesInABurst(t *testing.T) {
	const workers = 2 // fill = 16
	st := &batchStore{sizes: make(chan int), release: make(chan struct{})}
	b := &Bot{Store: st}
	results := make(chan sendResult, 64)
	recErr := make(chan error, 1)
	next := func() int {
		t.Helper()
		select {
		case n := <-st.sizes:
			return n
		case <-time.After(30 * time.Second):
			t.Fatal("no batch committed within 30 s")
			return 0
		}
	}

	// No burst yet: one result is committed without waiting for more
	// (the fill wait is an hour: waiting would fail the test).
	go func() {
		recErr <- b.recorder(context.Background(), results, workers, time.Hour, func([]uint64) {})
	}()
	sendResults(results, 0, 1)
	if n := next(); n != 1 {
		t.Fatalf("first batch = %d, want 1", n)
	}
	// While it commits, two results arrive: a result per worker, so the
	// batch after them is a burst's.
	sendResults(results, 1, 2)
	st.release <- struct{}{}
	if n := next(); n != 2 {
		t.Fatalf("second batch = %d, want 2", n)
	}
	// A burst: three results are waiting, the rest trickle in; the
	// recorder waits until it has 16.
	sendResults(results, 3, 3)
	st.release <- struct{}{}
	for i := range 13 {
		time.Sleep(time.Millisecond)
		sendResults(results, 6+i, 1)
	}
	if n := next(); n != 16 {
		t.Fatalf("burst batch = %d, want 16 (8 per worker)", n)
	}
	// Still a burst: two results and the end of the sends. The closed
	// channel ends the wait; nothing is left behind.
	sendResults(results, 19, 2)
	close(results)
	st.release <- struct{}{}
	if n := next(); n != 2 {
		t.Fatalf("last batch = %d, want 2", n)
	}
	st.release <- struct{}{}
	if err := <-recErr; err != nil {
		t.Fatal(err)
	}
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
