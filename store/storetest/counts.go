package storetest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
)

func countTests() []test {
	return []test{
		{"CountsFollowEveryWrite", testCountsFollowEveryWrite},
		{"EverythingSurvivesReopening", testEverythingSurvivesReopening},
	}
}

// countsModel drives a random sequence of every write the store has and
// checks the counts after each one.
type countsModel struct {
	t    *testing.T
	h    *harness
	rng  *rand.Rand
	item int
}

var (
	modelFeeds = []tilecast.FeedKey{{Feed: "news"}, {Feed: "weather"}, {Feed: "inbox", User: "ann"}, {Feed: "inbox", User: "bob"}}
	modelUsers = []string{"", "ann", "bob"}
)

func (m *countsModel) channels() []tilecast.Channel {
	chs, err := m.h.db.Channels("")
	if err != nil {
		m.t.Fatal(err)
	}
	return chs
}

func (m *countsModel) randomChannel() tilecast.Channel {
	m.item++
	ch := tilecast.Channel{URI: fmt.Sprintf("http://127.0.0.1/c%d", m.rng.IntN(40)), User: modelUsers[m.rng.IntN(3)]}
	if m.rng.IntN(3) == 0 {
		ch.Device = fmt.Sprintf("dev%d", m.rng.IntN(6))
	}
	for _, f := range []string{"news", "inbox"} {
		if m.rng.IntN(2) == 0 {
			ch.Feeds = append(ch.Feeds, f)
		}
	}
	return ch
}

// notifications returns a few toasts and tiles for random channels, one
// of them maybe removed meanwhile (the store skips it).
func (m *countsModel) notifications() []tilecast.Notification {
	chs := m.channels()
	chs = append(chs, tilecast.Channel{ID: "gone"})
	var ns []tilecast.Notification
	for range m.rng.IntN(6) {
		ch := chs[m.rng.IntN(len(chs))]
		feed := modelFeeds[m.rng.IntN(len(modelFeeds))].Feed
		m.item++
		if m.rng.IntN(2) == 0 {
			ns = append(ns, toast(ch, feed, fmt.Sprint(m.item)))
		} else {
			ns = append(ns, tile(ch, feed, fmt.Sprintf("tile %d", m.rng.IntN(3))))
		}
	}
	return ns
}

func (m *countsModel) state() tilecast.FeedState {
	st := tilecast.FeedState{Baselined: true, LastFetch: m.h.clk.Now()}
	if m.rng.IntN(2) == 0 {
		st.Broken, st.Failures, st.FailingSince = true, 9, m.h.clk.Now().Add(-48*time.Hour)
	}
	return st
}

// step runs one random operation. An operation that must fail (a
// transaction crashed at its failpoint) is checked to have failed.
func (m *countsModel) step() string {
	db, rng := m.h.db, m.rng
	switch op := rng.IntN(12); op {
	case 0, 1:
		if _, _, err := db.AddChannel(m.randomChannel()); err != nil {
			m.t.Fatal(err)
		}
		return "add channel"
	case 2:
		chs := m.channels()
		id := "unknown"
		if len(chs) > 0 && rng.IntN(5) > 0 {
			id = chs[rng.IntN(len(chs))].ID
		}
		if err := db.RemoveChannel(id); err != nil && !errors.Is(err, tilecast.ErrNotFound) {
			m.t.Fatal(err)
		}
		return "remove channel"
	case 3:
		var chs []tilecast.Channel
		for range 1 + rng.IntN(4) {
			chs = append(chs, m.randomChannel())
		}
		if _, _, err := db.ImportChannels(chs); err != nil {
			m.t.Fatal(err)
		}
		return "import"
	case 4:
		if err := db.Enqueue(m.notifications()); err != nil {
			m.t.Fatal(err)
		}
		return "enqueue"
	case 5, 6:
		k := modelFeeds[rng.IntN(len(modelFeeds))]
		c := tilecast.Commit{Key: k, State: m.state(), Seen: []string{fmt.Sprint(m.item)}, Now: m.h.clk.Now()}
		if k.User == "" && rng.IntN(4) == 0 {
			c.FanOut = &tilecast.FanOutJob{Feed: k.Feed, Now: m.h.clk.Now()}
			return m.fanOut(c)
		}
		c.Notifications = m.notifications()
		if rng.IntN(4) == 0 {
			defer m.h.setFailpoint(func(point string) {
				if point == tilecast.FailInCommit {
					panic("crash in commit")
				}
			})()
			if !panics(func() { _ = db.Commit(c) }) {
				m.t.Fatal("a commit crashed at its failpoint returned")
			}
			return "aborted commit"
		}
		if err := db.Commit(c); err != nil {
			m.t.Fatal(err)
		}
		return "commit"
	case 7:
		k := modelFeeds[rng.IntN(len(modelFeeds))]
		if err := db.SaveFeedState(k, m.state()); err != nil {
			m.t.Fatal(err)
		}
		return "save feed state"
	case 8, 9, 10:
		return m.record()
	default:
		m.h.clk.Add(time.Duration(rng.IntN(120)) * time.Minute)
		if _, err := db.PruneLedger(); err != nil {
			m.t.Fatal(err)
		}
		return "prune"
	}
}

// fanOut starts a paged delivery and runs its pages, unless the feed still
// has one (the commit then fails and changes nothing).
func (m *countsModel) fanOut(c tilecast.Commit) string {
	db := m.h.db
	if err := db.Commit(c); err != nil {
		if strings.Contains(err.Error(), "unfinished delivery") {
			return "refused fan-out"
		}
		m.t.Fatal(err)
	}
	job := *c.FanOut
	f := &tilecast.Feed{Name: job.Feed}
	for {
		page, next, err := db.SubscribersAfter(f, job.Cursor, 3)
		if err != nil {
			m.t.Fatal(err)
		}
		var ns []tilecast.Notification
		for _, ch := range page {
			m.item++
			ns = append(ns, toast(ch, job.Feed, fmt.Sprint(m.item)))
		}
		from := job.Cursor
		job.Cursor = next
		done := next == ""
		if err := db.FanOutStep(job, from, ns, done); err != nil {
			m.t.Fatal(err)
		}
		if done {
			return "fan-out"
		}
	}
}

// record takes due entries and records a random outcome for each, through
// Due's key or by search, sometimes for an entry already gone; now and
// then the transaction crashes at its failpoint.
func (m *countsModel) record() string {
	db, clk := m.h.db, m.h.clk
	ps, err := db.Due(clk.Now().Add(10*time.Hour), 1+m.rng.IntN(8), nil)
	if err != nil {
		m.t.Fatal(err)
	}
	var recs []tilecast.Record
	for _, p := range ps {
		r := tilecast.Record{ID: p.ID, Sent: m.rng.IntN(3) > 0,
			Outcome: tilecast.Outcome{ChannelID: p.ChannelID, Action: tilecast.ActionDelivered, Time: clk.Now()}}
		if m.rng.IntN(3) > 0 {
			r.Due = p.NextAttempt
		}
		switch m.rng.IntN(7) {
		case 0, 1:
			r.Op = tilecast.OpDone
		case 2:
			r.Op, r.NextAttempt = tilecast.OpRetry, clk.Now().Add(time.Minute)
		case 3:
			r.Op, r.NextAttempt = tilecast.OpPostpone, clk.Now().Add(time.Hour)
		case 4:
			r.Op = tilecast.OpDead
		case 5:
			r.Op, r.Sent = tilecast.OpExpire, false
			r.Outcome.Action = tilecast.ActionExpired
		default:
			r.Op = tilecast.OpRemoveChannel
		}
		recs = append(recs, r)
		if m.rng.IntN(8) == 0 {
			recs = append(recs, r) // the same entry twice: the second finds it gone
		}
	}
	if len(recs) > 0 && m.rng.IntN(5) == 0 {
		defer m.h.setFailpoint(func(point string) {
			if point == tilecast.FailInRecord {
				panic("crash in record")
			}
		})()
		if !panics(func() { _ = db.Record(recs) }) {
			m.t.Fatal("a record crashed at its failpoint returned")
		}
		return "aborted record"
	}
	if err := db.Record(recs); err != nil {
		m.t.Fatal(err)
	}
	return fmt.Sprintf("record %d", len(recs))
}

// After each of a random sequence of writes (channels added, rotated by
// device, imported and removed; commits, enqueues, fan-outs; outcomes of
// every op; feed states turning broken and back; transactions crashed at
// their failpoints), Counts equals the listings, and again after the
// state is opened again.
func testCountsFollowEveryWrite(t *testing.T, newState NewState) {
	for seed := range uint64(3) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			h := newHarness(t, newState)
			m := &countsModel{t: t, h: h, rng: rand.New(rand.NewPCG(seed, 14))}
			seen := map[string]bool{}
			var maxima tilecast.Counts
			for i := range 300 {
				what := m.step()
				seen[what] = true
				checkCounts(t, h.db, fmt.Sprintf("step %d (%s)", i, what))
				c, _ := h.db.Counts()
				maxima.Channels = max(maxima.Channels, c.Channels)
				maxima.OutboxDepth = max(maxima.OutboxDepth, c.OutboxDepth)
				maxima.DeadLetters = max(maxima.DeadLetters, c.DeadLetters)
				if len(c.Broken) > 0 {
					maxima.Broken = c.Broken
				}
			}
			// The sequence must have exercised what it claims to.
			for _, what := range []string{"add channel", "remove channel", "import", "enqueue", "commit",
				"aborted commit", "fan-out", "save feed state", "aborted record"} {
				if !seen[what] {
					t.Errorf("the sequence never ran %q", what)
				}
			}
			if maxima.Channels == 0 || maxima.OutboxDepth == 0 || maxima.DeadLetters == 0 || maxima.Broken == nil {
				t.Errorf("some count never moved: maxima %+v", maxima)
			}
			before, _ := h.db.Counts()
			h.reopen()
			checkCounts(t, h.db, "after reopening")
			if after, _ := h.db.Counts(); !SameCounts(before, after) {
				t.Errorf("counts %+v before closing, %+v after reopening", before, after)
			}
		})
	}
}

// A state with one of everything (Populate) reads the same after the
// store is closed and opened again.
func testEverythingSurvivesReopening(t *testing.T, newState NewState) {
	h := newHarness(t, newState)
	Populate(t, h.db, h.clk)
	before := Take(t, h.db)
	if before.Counts.Channels == 0 || before.Counts.OutboxDepth == 0 || before.Counts.DeadLetters == 0 || len(before.Ledger) == 0 ||
		len(before.Jobs) == 0 || len(before.Counts.Broken) == 0 {
		t.Fatalf("Populate made %+v, want some of everything", before.Counts)
	}
	h.reopen()
	if d := before.Diff(Take(t, h.db)); d != "" {
		t.Errorf("after reopening:\n%s", d)
	}
}
