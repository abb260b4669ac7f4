package store

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
)

func TestDueOrderLimitBusy(t *testing.T) {
	db, clk := mustOpen(t)
	ch := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/a"})
	now := clk.Now()
	var ns []tilecast.Notification
	for i, d := range []time.Duration{3, 1, 2, 1, 5} {
		n := toast(ch, "news", fmt.Sprint(i))
		n.NextAttempt = now.Add(d * time.Minute)
		ns = append(ns, n)
	}
	if err := db.Enqueue(ns); err != nil {
		t.Fatal(err)
	}
	items := func(ps []tilecast.Pending) []string {
		var out []string
		for _, p := range ps {
			out = append(out, p.ItemID)
		}
		return out
	}
	tests := []struct {
		name  string
		at    time.Duration
		limit int
		busy  func(uint64) bool
		want  []string
	}{
		{"nothing due yet", 0, 10, nil, nil},
		{"due order, then sequence", 3 * time.Minute, 10, nil, []string{"1", "3", "2", "0"}},
		{"limit", 5 * time.Minute, 2, nil, []string{"1", "3"}},
		{"busy skipped", 5 * time.Minute, 2, func(id uint64) bool { return id == 2 }, []string{"3", "2"}},
		{"zero limit", 5 * time.Minute, 0, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps, err := db.Due(now.Add(tt.at), tt.limit, tt.busy)
			if err != nil {
				t.Fatal(err)
			}
			if got := items(ps); !slices.Equal(got, tt.want) {
				t.Errorf("Due = %v, want %v", got, tt.want)
			}
			for _, p := range ps {
				if p.Channel.ID != ch.ID || p.Channel.URI != ch.URI {
					t.Errorf("pending carries channel %+v", p.Channel)
				}
			}
		})
	}
	if nd, err := db.NextDue(); err != nil || !nd.Equal(now.Add(time.Minute)) {
		t.Errorf("NextDue = %v, %v", nd, err)
	}
}

func TestNextDueEmpty(t *testing.T) {
	db, _ := mustOpen(t)
	if nd, err := db.NextDue(); err != nil || !nd.IsZero() {
		t.Errorf("NextDue = %v, %v; want zero", nd, err)
	}
}

type recordOpCase struct {
	name        string
	rec         tilecast.Record
	wantEntry   bool // still in the outbox
	wantAt      time.Time
	wantAtt     int
	wantDead    bool
	wantChannel bool
	wantLedger  int
	wantOutcome string
	wantStreak  int
	wantSends   int
}

func TestRecordOps(t *testing.T) {
	later := time.Date(2026, 3, 1, 13, 0, 0, 0, time.UTC)
	sent := func(a tilecast.Action) tilecast.Outcome {
		return tilecast.Outcome{Action: a, Feed: "news", Kind: tilecast.KindToast, Status: 200}
	}
	tests := []recordOpCase{
		{name: "done delivered", rec: tilecast.Record{Op: tilecast.OpDone, Sent: true, Outcome: sent(tilecast.ActionDelivered)},
			wantChannel: true, wantLedger: 1, wantOutcome: "delivered", wantStreak: 0, wantSends: 1},
		{name: "done not sent", rec: tilecast.Record{Op: tilecast.OpDone},
			wantChannel: true, wantStreak: 2},
		{name: "retry", rec: tilecast.Record{Op: tilecast.OpRetry, NextAttempt: later, Sent: true, Outcome: sent(tilecast.ActionRetry)},
			wantEntry: true, wantAt: later, wantAtt: 2, wantChannel: true, wantLedger: 1, wantOutcome: "retry", wantStreak: 3, wantSends: 1},
		{name: "postpone", rec: tilecast.Record{Op: tilecast.OpPostpone, NextAttempt: later, ChannelWaitUntil: later},
			wantEntry: true, wantAt: later, wantAtt: 1, wantChannel: true, wantStreak: 2},
		{name: "dead", rec: tilecast.Record{Op: tilecast.OpDead, Sent: true, Outcome: sent(tilecast.ActionFailed)},
			wantDead: true, wantChannel: true, wantLedger: 1, wantOutcome: "failed", wantStreak: 3, wantSends: 1},
		{name: "remove channel", rec: tilecast.Record{Op: tilecast.OpRemoveChannel, Sent: true, Outcome: sent(tilecast.ActionChannelRemoved)},
			wantLedger: 1},
		// Not sent: the entry goes and the ledger says so; the channel's
		// last outcome, streak and daily count are untouched.
		{name: "expire", rec: tilecast.Record{Op: tilecast.OpExpire, Outcome: tilecast.Outcome{Action: tilecast.ActionExpired,
			Feed: "news", Kind: tilecast.KindToast}},
			wantChannel: true, wantLedger: 1, wantOutcome: "retry", wantStreak: 2},
	}
	// Each case locates the entry both ways: by its due time (what the
	// deliverer passes) and by searching the outbox (Due zero).
	for _, tt := range tests {
		for _, byDue := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/by_due=%v", tt.name, byDue), func(t *testing.T) {
				testRecordOp(t, tt, byDue)
			})
		}
	}
}

// testRecordOp records tt.rec for the first of three entries, locating
// it by its due time or by search.
func testRecordOp(t *testing.T, tt recordOpCase, byDue bool) {
	db, clk := mustOpen(t)
	ch := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/a"})
	other := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/b"})
	// Give the channel some history to see what changes.
	if err := db.update(func(b *buckets) error {
		c, _, _ := b.getChannel(ch.ID)
		c.FailureStreak, c.LastOutcome = 2, "retry"
		return b.putChannel(&c)
	}); err != nil {
		t.Fatal(err)
	}
	n := toast(ch, "news", "1")
	n.Attempts = 1
	if err := db.Enqueue([]tilecast.Notification{n, toast(ch, "news", "2"), toast(other, "news", "3")}); err != nil {
		t.Fatal(err)
	}
	rec := tt.rec
	rec.ID = 1
	if byDue {
		rec.Due = clk.Now() // Enqueue's NextAttempt
	}
	if err := db.Record([]tilecast.Record{rec}); err != nil {
		t.Fatal(err)
	}
	ps := outboxOf(t, db, ch.ID, clk.Now())
	i := slices.IndexFunc(ps, func(p tilecast.Pending) bool { return p.ID == 1 })
	if (i >= 0) != tt.wantEntry {
		t.Fatalf("entry present = %v, want %v", i >= 0, tt.wantEntry)
	}
	if i >= 0 {
		if !ps[i].NextAttempt.Equal(tt.wantAt) || ps[i].Attempts != tt.wantAtt {
			t.Errorf("entry at %v attempts %d, want %v, %d", ps[i].NextAttempt, ps[i].Attempts, tt.wantAt, tt.wantAtt)
		}
		if due, _ := db.Due(clk.Now(), 10, nil); slices.ContainsFunc(due, func(p tilecast.Pending) bool { return p.ID == 1 }) {
			t.Error("moved entry is still due now")
		}
	}
	dl, _ := db.DeadLetters(0)
	if (len(dl) == 1) != tt.wantDead {
		t.Errorf("dead letters = %v", dl)
	}
	if tt.wantDead && (dl[0].Notification.ID != 1 || dl[0].Notification.Attempts != 2 || dl[0].Outcome.Action != tilecast.ActionFailed ||
		string(dl[0].Notification.Payload) != "toast 1") {
		t.Errorf("dead letter = %+v", dl[0])
	}
	got, err := db.Channel(ch.ID)
	if (err == nil) != tt.wantChannel {
		t.Fatalf("Channel = %v, want present %v", err, tt.wantChannel)
	}
	if tt.wantChannel {
		if got.LastOutcome != tt.wantOutcome && tt.wantOutcome != "" {
			t.Errorf("LastOutcome = %q, want %q", got.LastOutcome, tt.wantOutcome)
		}
		if got.FailureStreak != tt.wantStreak || got.SendsToday != tt.wantSends {
			t.Errorf("streak %d sends %d, want %d %d", got.FailureStreak, got.SendsToday, tt.wantStreak, tt.wantSends)
		}
		if tt.wantSends > 0 && (got.SendsDay != "2026-03-01" || !got.LastOutcomeAt.Equal(clk.Now())) {
			t.Errorf("SendsDay %q LastOutcomeAt %v", got.SendsDay, got.LastOutcomeAt)
		}
		if !rec.ChannelWaitUntil.IsZero() && !got.NextAllowedAt.Equal(rec.ChannelWaitUntil) {
			t.Errorf("NextAllowedAt = %v", got.NextAllowedAt)
		}
	} else {
		if o := outboxOf(t, db, ch.ID, clk.Now()); len(o) != 0 {
			t.Errorf("removed channel keeps %d entries", len(o))
		}
	}
	led, _ := db.Outcomes(ch.ID, "", time.Time{})
	if len(led) != tt.wantLedger {
		t.Errorf("ledger = %v, want %d entries", led, tt.wantLedger)
	}
	if len(led) == 1 && (led[0].ChannelID != ch.ID || !led[0].Time.Equal(clk.Now())) {
		t.Errorf("ledger entry = %+v", led[0])
	}
	// The other channel is untouched.
	if o := outboxOf(t, db, other.ID, clk.Now()); len(o) != 1 {
		t.Errorf("other channel has %d entries", len(o))
	}
}

// TestRecordDueElsewhere: a Record whose Due is not where its entry is
// (the entry moved) leaves the entry alone; its channel effects apply, as
// for an entry already gone.
func TestRecordDueElsewhere(t *testing.T) {
	db, clk := mustOpen(t)
	ch := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/a"})
	if err := db.Enqueue([]tilecast.Notification{toast(ch, "news", "1")}); err != nil {
		t.Fatal(err)
	}
	ps, err := db.Due(clk.Now(), 10, nil)
	if err != nil || len(ps) != 1 {
		t.Fatalf("Due = %d, %v", len(ps), err)
	}
	rec := tilecast.Record{ID: ps[0].ID, Due: ps[0].NextAttempt.Add(time.Nanosecond), Op: tilecast.OpDone, Sent: true,
		Outcome: tilecast.Outcome{Action: tilecast.ActionDelivered, ChannelID: ch.ID}}
	if err := db.Record([]tilecast.Record{rec}); err != nil {
		t.Fatal(err)
	}
	if o := outboxOf(t, db, ch.ID, clk.Now()); len(o) != 1 {
		t.Errorf("outbox holds %d entries, want the 1 the record did not locate", len(o))
	}
	if got, err := db.Channel(ch.ID); err != nil || got.SendsToday != 1 || got.LastOutcome != "delivered" {
		t.Errorf("channel = %+v, %v; want the send counted", got, err)
	}
	rec.Due = ps[0].NextAttempt
	if err := db.Record([]tilecast.Record{rec}); err != nil {
		t.Fatal(err)
	}
	if o := outboxOf(t, db, ch.ID, clk.Now()); len(o) != 0 {
		t.Errorf("outbox holds %d entries after the record with the right Due", len(o))
	}
}

func TestRecordChannelEffects(t *testing.T) {
	db, _ := mustOpen(t)
	ch := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/a"})
	var ns []tilecast.Notification
	for i := range 6 {
		ns = append(ns, toast(ch, "news", fmt.Sprint(i)))
	}
	if err := db.Enqueue(ns); err != nil {
		t.Fatal(err)
	}
	out := func(a tilecast.Action, at time.Time) tilecast.Outcome {
		return tilecast.Outcome{Action: a, Time: at, Feed: "news"}
	}
	day1 := time.Date(2026, 3, 1, 23, 59, 0, 0, time.UTC)
	day2 := time.Date(2026, 3, 2, 0, 1, 0, 0, time.UTC)
	// One batch: the channel is read once and written once, and every
	// record's effect accumulates.
	err := db.Record([]tilecast.Record{
		{ID: 1, Op: tilecast.OpRetry, Sent: true, Outcome: out(tilecast.ActionRetry, day1)},
		{ID: 2, Op: tilecast.OpRetry, Sent: true, Outcome: out(tilecast.ActionRetry, day1)},
		{ID: 3, Op: tilecast.OpDone, Sent: true, Outcome: out(tilecast.ActionFailed, day1)},
	})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := db.Channel(ch.ID)
	if got.FailureStreak != 3 || got.SendsToday != 3 || got.SendsDay != "2026-03-01" || got.LastOutcome != "failed" {
		t.Errorf("after day 1: %+v", got)
	}
	wait := day2.Add(61 * time.Minute)
	err = db.Record([]tilecast.Record{
		{ID: 4, Op: tilecast.OpDone, Sent: true, Outcome: out(tilecast.ActionDelivered, day2)},
		{ID: 5, Op: tilecast.OpPostpone, Sent: true, Outcome: out(tilecast.ActionRetry, day2), ChannelWaitUntil: wait, NextAttempt: wait},
		{ID: 999, Op: tilecast.OpDone}, // unknown ID: ignored
	})
	if err != nil {
		t.Fatal(err)
	}
	got, _ = db.Channel(ch.ID)
	if got.FailureStreak != 1 || got.SendsToday != 2 || got.SendsDay != "2026-03-02" || !got.NextAllowedAt.Equal(wait) || !got.LastOutcomeAt.Equal(day2) {
		t.Errorf("after day 2: %+v", got)
	}
	// Records for entries already gone change no entry; a sent one still
	// reaches the ledger and the counters through Outcome.ChannelID.
	gone := out(tilecast.ActionDelivered, day2)
	gone.ChannelID = ch.ID
	if err := db.Record([]tilecast.Record{{ID: 4, Op: tilecast.OpRetry, Sent: true, Outcome: gone}, {ID: 3, Op: tilecast.OpDead}}); err != nil {
		t.Fatal(err)
	}
	if dl, _ := db.DeadLetters(0); len(dl) != 0 {
		t.Errorf("a gone entry became a dead letter: %v", dl)
	}
	if s, _ := db.Counts(); s.OutboxDepth != 4 {
		t.Errorf("outbox depth %d, want 4 (1, 2, 5 and 6)", s.OutboxDepth)
	}
	got, _ = db.Channel(ch.ID)
	if got.SendsToday != 3 || got.FailureStreak != 0 {
		t.Errorf("after a record for a gone entry: %+v", got)
	}
	led, _ := db.Outcomes(ch.ID, "news", day2)
	if len(led) != 3 {
		t.Errorf("Outcomes since day 2 = %d, want 3", len(led))
	}
	if led, _ := db.Outcomes("", "", time.Time{}); len(led) != 6 {
		t.Errorf("all outcomes = %d, want 6", len(led))
	}
	if led, _ := db.Outcomes("", "weather", time.Time{}); len(led) != 0 {
		t.Errorf("outcomes of another feed = %d", len(led))
	}
	// OpRemoveChannel for a gone entry still removes the channel.
	rm := out(tilecast.ActionChannelRemoved, day2)
	rm.ChannelID = ch.ID
	if err := db.Record([]tilecast.Record{{ID: 4, Op: tilecast.OpRemoveChannel, Sent: true, Outcome: rm}, {ID: 6, Op: tilecast.OpDone, Sent: true, Outcome: rm}}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Channel(ch.ID); !errors.Is(err, tilecast.ErrNotFound) {
		t.Errorf("channel not removed: %v", err)
	}
	if s, _ := db.Counts(); s.OutboxDepth != 0 || s.Channels != 0 {
		t.Errorf("Stats = %+v", s)
	}
	if err := db.Record([]tilecast.Record{{ID: 1, Op: tilecast.Op(42)}}); err != nil {
		t.Errorf("record for a gone entry with a bad op: %v", err)
	}
}

func TestRecordUnknownOp(t *testing.T) {
	db, _ := mustOpen(t)
	ch := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/a"})
	if err := db.Enqueue([]tilecast.Notification{toast(ch, "news", "1")}); err != nil {
		t.Fatal(err)
	}
	if err := db.Record([]tilecast.Record{{ID: 1, Op: tilecast.Op(42)}}); err == nil {
		t.Error("unknown op accepted")
	}
}

func TestLedgerPruning(t *testing.T) {
	db, clk := mustOpen(t)
	a := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/a"})
	b := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/b"})
	sentTo := func(ch tilecast.Channel, n int, at time.Time) {
		t.Helper()
		var recs []tilecast.Record
		for range n {
			recs = append(recs, tilecast.Record{ID: 1 << 40, Sent: true,
				Outcome: tilecast.Outcome{ChannelID: ch.ID, Action: tilecast.ActionDelivered, Time: at, Feed: "news"}})
		}
		if err := db.Record(recs); err != nil {
			t.Fatal(err)
		}
	}
	start := clk.Now()
	sentTo(a, 60, start)
	sentTo(b, 5, start)
	clk.Add(time.Hour)
	sentTo(a, 60, clk.Now())
	if led, _ := db.Outcomes(a.ID, "", time.Time{}); len(led) != LedgerPerChannel || !led[0].Time.Equal(start) || !led[99].Time.Equal(clk.Now()) {
		t.Errorf("ledger of a = %d entries, want the newest %d", len(led), LedgerPerChannel)
	}
	// 7 days later: the next write drops what is older than 7 days.
	clk.Add(LedgerRetention - time.Hour + time.Second)
	sentTo(a, 1, clk.Now())
	if led, _ := db.Outcomes(a.ID, "", time.Time{}); len(led) != 61 {
		t.Errorf("ledger of a = %d entries, want 61 (the hour-old batch + 1)", len(led))
	}
	if led, _ := db.Outcomes(b.ID, "", time.Time{}); len(led) != 5 {
		t.Errorf("ledger of b = %d entries: an unwritten ledger is pruned by PruneLedger only", len(led))
	}
	n, err := db.PruneLedger()
	if err != nil || n != 5 {
		t.Errorf("PruneLedger = %d, %v; want 5", n, err)
	}
	if led, _ := db.Outcomes("", "", time.Time{}); len(led) != 61 {
		t.Errorf("all outcomes = %d, want 61", len(led))
	}
}

// S8: draining 10k entries with Due + Record processes each exactly once.
func TestDrainExactlyOnce(t *testing.T) {
	db, clk := mustOpen(t)
	var chs []tilecast.Channel
	for i := range 10 {
		chs = append(chs, addChannel(t, db, tilecast.Channel{URI: fmt.Sprintf("http://127.0.0.1/%d", i)}))
	}
	const total = 10000
	var ns []tilecast.Notification
	for i := range total {
		n := toast(chs[i%len(chs)], "news", fmt.Sprint(i))
		n.NextAttempt = clk.Now().Add(time.Duration(i%7) * time.Millisecond)
		ns = append(ns, n)
	}
	if err := db.Enqueue(ns); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	var rounds int
	for ; rounds < 1000; rounds++ {
		ps, err := db.Due(clk.Now().Add(time.Second), 256, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(ps) == 0 {
			break
		}
		var recs []tilecast.Record
		for _, p := range ps {
			seen[p.ItemID]++
			recs = append(recs, tilecast.Record{ID: p.ID, Due: p.NextAttempt, Op: tilecast.OpDone})
		}
		if err := db.Record(recs); err != nil {
			t.Fatal(err)
		}
	}
	if len(seen) != total {
		t.Errorf("processed %d distinct entries, want %d", len(seen), total)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("entry %s processed %d times", id, n)
		}
	}
	if s, _ := db.Counts(); s.OutboxDepth != 0 {
		t.Errorf("outbox depth %d after drain", s.OutboxDepth)
	}
	err := db.view(func(b *buckets) error {
		if n := b.outboxChan.Stats().KeyN; n != 0 {
			t.Errorf("%d index entries left", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Removing a channel with thousands of entries removes all of them.
	if err := db.Enqueue(ns); err != nil {
		t.Fatal(err)
	}
	for _, ch := range chs {
		if err := db.RemoveChannel(ch.ID); err != nil {
			t.Fatal(err)
		}
	}
	if s, _ := db.Counts(); s.OutboxDepth != 0 {
		t.Errorf("outbox depth %d after removing every channel", s.OutboxDepth)
	}
}

// Entries whose channel vanished outside the store's indexes are skipped by
// Due and deleted afterwards.
func TestDueDropsOrphans(t *testing.T) {
	db, clk := mustOpen(t)
	a := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/a"})
	b := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/b"})
	if err := db.Enqueue([]tilecast.Notification{toast(a, "news", "1"), toast(b, "news", "2"), tile(a, "news", "T")}); err != nil {
		t.Fatal(err)
	}
	// Delete the channel record behind the indexes' back, and put an
	// unreadable record in the outbox.
	err := db.update(func(bk *buckets) error {
		if err := bk.channels.Delete([]byte(a.ID)); err != nil {
			return err
		}
		return bk.outbox.Put(outboxKey(nil, clk.Now(), 77), []byte{9, 9, 9})
	})
	if err != nil {
		t.Fatal(err)
	}
	recountAfterRawWrite(t, db)
	ps, err := db.Due(clk.Now(), 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 1 || ps[0].ItemID != "2" {
		t.Errorf("Due = %v, want only b's entry", ps)
	}
	if s, _ := db.Counts(); s.OutboxDepth != 1 {
		t.Errorf("outbox depth %d, want 1: orphans and garbage dropped", s.OutboxDepth)
	}
	// The dropped entries released their payloads.
	checkPayloads(t, db, "orphans dropped")
}

func TestDeadLettersNewestFirst(t *testing.T) {
	db, _ := mustOpen(t)
	ch := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/a"})
	if err := db.Enqueue([]tilecast.Notification{toast(ch, "news", "1"), toast(ch, "news", "2"), toast(ch, "news", "3")}); err != nil {
		t.Fatal(err)
	}
	var recs []tilecast.Record
	for id := uint64(1); id <= 3; id++ {
		recs = append(recs, tilecast.Record{ID: id, Op: tilecast.OpDead, Outcome: tilecast.Outcome{Action: tilecast.ActionFailed, Error: fmt.Sprint("e", id)}})
	}
	if err := db.Record(recs); err != nil {
		t.Fatal(err)
	}
	dl, err := db.DeadLetters(2)
	if err != nil || len(dl) != 2 || dl[0].Notification.ItemID != "3" || dl[1].Outcome.Error != "e2" {
		t.Errorf("DeadLetters(2) = %+v, %v", dl, err)
	}
	if s, _ := db.Counts(); s.DeadLetters != 3 || s.OutboxDepth != 0 || s.Channels != 1 {
		t.Errorf("Stats = %+v", s)
	}
}

// TestCreatedKept: an entry's creation time is the notification's, as the
// caller made it (zero: the time of the enqueue), and stays through
// retries, postponements and a device moving to a new channel URI: its
// time to live counts from it.
func TestCreatedKept(t *testing.T) {
	db, clk := mustOpen(t)
	ch := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/a", Device: "phone"})
	made := clk.Now().Add(-time.Hour)
	a := toast(ch, "news", "a")
	a.Created = made
	if err := db.Enqueue([]tilecast.Notification{a, toast(ch, "news", "b")}); err != nil {
		t.Fatal(err)
	}
	enqueued := clk.Now()
	want := map[string]time.Time{"a": made, "b": enqueued}
	check := func(step, chID string) {
		t.Helper()
		ps := outboxOf(t, db, chID, clk.Now())
		if len(ps) != 2 {
			t.Fatalf("%s: %d entries, want 2", step, len(ps))
		}
		for _, p := range ps {
			if !p.Created.Equal(want[p.ItemID]) {
				t.Errorf("%s: entry %s created %v, want %v", step, p.ItemID, p.Created, want[p.ItemID])
			}
		}
	}
	check("enqueued", ch.ID)

	clk.Add(time.Minute)
	ps := outboxOf(t, db, ch.ID, clk.Now())
	recs := []tilecast.Record{
		{ID: ps[0].ID, Due: ps[0].NextAttempt, Op: tilecast.OpRetry, NextAttempt: clk.Now().Add(time.Hour), Sent: true,
			Outcome: tilecast.Outcome{Action: tilecast.ActionRetry, Feed: "news", Kind: tilecast.KindToast}},
		{ID: ps[1].ID, Due: ps[1].NextAttempt, Op: tilecast.OpPostpone, NextAttempt: clk.Now().Add(2 * time.Hour)},
	}
	if err := db.Record(recs); err != nil {
		t.Fatal(err)
	}
	check("retried and postponed", ch.ID)

	moved := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/a2", Device: "phone"})
	check("moved to the device's new channel", moved.ID)
}
