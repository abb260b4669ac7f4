package tilecast_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/emulator"
	"github.com/tilecast/tilecast/notify"
	"github.com/tilecast/tilecast/notify/mpns"
)

// memCaps is a tilecast.DailyCaps in memory, with the rules of the
// PostgreSQL one (store/postgres, tested there against a real server),
// that remembers what the dispatcher asked for and gave back: these
// tests are about the dispatcher's side of a reservation.
type memCaps struct {
	mu       sync.Mutex
	n        map[string]int   // day + " " + channel → reserved
	asked    map[string][]int // channel → each want
	released map[string]int   // channel → given back
	err      error
}

func newMemCaps() *memCaps {
	return &memCaps{n: map[string]int{}, asked: map[string][]int{}, released: map[string]int{}}
}

func (c *memCaps) ReserveSends(day string, ids []string, want []int, limit int) ([]int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return nil, c.err
	}
	got := make([]int, len(ids))
	for i, id := range ids {
		c.asked[id] = append(c.asked[id], want[i])
		k := day + " " + id
		got[i] = max(min(want[i], limit-c.n[k]), 0)
		c.n[k] += got[i]
	}
	return got, nil
}

func (c *memCaps) ReleaseSends(day string, ids []string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range ids {
		c.n[day+" "+id]--
		c.released[id]++
	}
	return nil
}

func (c *memCaps) reserved(day, id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[day+" "+id]
}

func (c *memCaps) lastAsk(id string) []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int(nil), c.asked[id]...)
}

// toasts enqueues n toasts for channel id, due now.
func (h *emuHarness) toasts(id string, n int) {
	h.t.Helper()
	enc := mpns.NewEncoder(mpns.EncoderOptions{})
	var ns []tilecast.Notification
	for i := range n {
		payload, err := notify.Fit(enc, notify.Toast{Text1: "Cap", Text2: fmt.Sprint("toast ", i)})
		if err != nil {
			h.t.Fatal(err)
		}
		ns = append(ns, tilecast.Notification{ChannelID: id, Feed: "news", Kind: tilecast.KindToast,
			Payload: payload, NextAttempt: h.clock.Now()})
	}
	if err := h.db.Enqueue(ns); err != nil {
		h.t.Fatal(err)
	}
}

// With Bot.Caps (instances sharing a state) the dispatcher sends what it
// reserved and nothing more: one call per batch asks for each channel's
// sends as the pass will make them (a resting channel's single probe,
// not its backlog), what was not granted waits for midnight, a send
// that got no answer is given back, and when the reservation cannot be
// made nothing capped is sent.
func TestDispatcherReservesDailyCap(t *testing.T) {
	h := newEmuHarness(t)
	caps := newMemCaps()
	h.bot.Caps = caps
	day := h.clock.Now().UTC().Format(time.DateOnly)

	healthy, healthyCh := h.phone(emulator.Healthy)
	inactive, inactiveCh := h.phone(emulator.Inactive)
	// A channel whose host refuses connections: no answer.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURI := "http://" + l.Addr().String() + "/phone"
	l.Close()
	dead, _, err := h.db.AddChannel(tilecast.Channel{URI: deadURI, Feeds: []string{"news"}})
	if err != nil {
		t.Fatal(err)
	}
	h.toasts(healthyCh.ID, tilecast.DailyCap+3)
	h.toasts(inactiveCh.ID, 3)
	h.toasts(dead.ID, 1)
	h.deliver()

	if n := h.state(healthy).Counts.Total; n != tilecast.DailyCap {
		t.Errorf("healthy phone: %d pushes, want %d", n, tilecast.DailyCap)
	}
	if n := caps.reserved(day, healthyCh.ID); n != tilecast.DailyCap {
		t.Errorf("healthy phone: %d reserved, want %d", n, tilecast.DailyCap)
	}
	// 412 is an answer: counted.
	if n, r := h.state(inactive).Counts.Total, caps.reserved(day, inactiveCh.ID); n != 3 || r != 3 {
		t.Errorf("inactive phone: %d pushes, %d reserved, want 3 and 3", n, r)
	}
	if r, b := caps.reserved(day, dead.ID), caps.released[dead.ID]; r != 0 || b != 1 {
		t.Errorf("unanswered channel: %d reserved, %d given back, want 0 and 1", r, b)
	}

	// After the rest the inactive channel gets one probe: one asked for.
	h.clock.Add(62 * time.Minute)
	h.deliver()
	if asks := caps.lastAsk(inactiveCh.ID); asks[len(asks)-1] != 1 {
		t.Errorf("after the rest the dispatcher asked for %v sends to the inactive channel, want 1 (one probe)", asks)
	}
	if n := h.state(inactive).Counts.Total; n != 4 {
		t.Errorf("inactive phone after its rest: %d pushes, want 4 (one probe)", n)
	}
	if n := h.state(healthy).Counts.Total; n != tilecast.DailyCap {
		t.Errorf("healthy phone: %d pushes on the same day, want %d", n, tilecast.DailyCap)
	}
	// Refused: the 3 wait for midnight, not dropped.
	midnight := h.clock.Now().UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
	waiting := 0
	ps, err := h.db.Due(midnight, 100, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p.ChannelID == healthyCh.ID && p.NextAttempt.Equal(midnight) {
			waiting++
		}
	}
	if waiting != 3 {
		t.Errorf("%d toasts wait for midnight, want the 3 over the cap", waiting)
	}

	// The database is down: nothing capped goes out, `once` says why.
	caps.mu.Lock()
	caps.err = errors.New("state database unreachable")
	caps.mu.Unlock()
	other, otherCh := h.phone(emulator.Healthy)
	h.toasts(otherCh.ID, 2)
	err = h.bot.DeliverDue(context.Background())
	if err == nil || !strings.Contains(err.Error(), "state database unreachable") {
		t.Errorf("DeliverDue with the caps down: %v, want the reservation's error", err)
	}
	if n := h.state(other).Counts.Total; n != 0 {
		t.Errorf("%d pushes sent without a reservation", n)
	}
}
