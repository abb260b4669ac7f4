package storetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/store/rules"
)

func outboxTests() []test {
	return []test{
		{"DueOrderLimitBusy", testDueOrderLimitBusy},
		{"NextDueEmpty", testNextDueEmpty},
		{"RecordOps", testRecordOps},
		{"RecordDueElsewhere", testRecordDueElsewhere},
		{"RecordChannelEffects", testRecordChannelEffects},
		{"RecordUnknownOp", testRecordUnknownOp},
		{"LedgerPruning", testLedgerPruning},
		{"DrainExactlyOnce", testDrainExactlyOnce},
		{"DeadLettersNewestFirst", testDeadLettersNewestFirst},
		{"CreatedKept", testCreatedKept},
		{"PayloadsShared", testPayloadsShared},
	}
}

func testDueOrderLimitBusy(t *testing.T, newState NewState) {
	h := newHarness(t, newState)
	db, clk := h.db, h.clk
	ch := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/a"})
	now := clk.Now()
	var ns []tilecast.Notification
	for i, d := range []time.Duration{3, 1, 2, 1, 5} {
		n := toast(ch, "news", fmt.Sprint(i))
		n.NextAttempt = now.Add(d * time.Minute)
		ns = append(ns, n)
	}
	must(t, db.Enqueue(ns))
	ids := map[string]uint64{}
	for _, p := range mustDue(t, db, farFuture) {
		ids[p.ItemID] = p.ID
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
		{"busy skipped", 5 * time.Minute, 2, func(id uint64) bool { return id == ids["1"] }, []string{"3", "2"}},
		{"all busy", 5 * time.Minute, 10, func(uint64) bool { return true }, nil},
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
	// Many busy entries ahead of the due ones are passed over.
	var more []tilecast.Notification
	for i := range 300 {
		more = append(more, toast(ch, "news", fmt.Sprint("m", i)))
	}
	must(t, db.Enqueue(more))
	all := mustDue(t, db, farFuture)
	busy := map[uint64]bool{}
	for _, p := range all[:250] {
		busy[p.ID] = true
	}
	ps, err := db.Due(farFuture, 20, func(id uint64) bool { return busy[id] })
	if err != nil || len(ps) != 20 || ps[0].ID != all[250].ID || ps[19].ID != all[269].ID {
		t.Errorf("Due past 250 busy entries = %d entries from %v, %v; want 20 from %d", len(ps), items(ps[:min(1, len(ps))]), err, all[250].ID)
	}
}

func testNextDueEmpty(t *testing.T, newState NewState) {
	db := newHarness(t, newState).db
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

// Every op, with the entry found by its due time (what the deliverer
// passes) and by search (Due zero).
func testRecordOps(t *testing.T, newState NewState) {
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
		// A send that got no answer never reached the push service: in
		// the ledger and the streak, not in the daily count.
		{name: "retry unanswered", rec: tilecast.Record{Op: tilecast.OpRetry, NextAttempt: later, Sent: true, Unanswered: true,
			Outcome: tilecast.Outcome{Action: tilecast.ActionRetry, Feed: "news", Kind: tilecast.KindToast}},
			wantEntry: true, wantAt: later, wantAtt: 2, wantChannel: true, wantLedger: 1, wantOutcome: "retry", wantStreak: 3},
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
	for _, tt := range tests {
		for _, byDue := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/by_due=%v", tt.name, byDue), func(t *testing.T) {
				testRecordOp(t, newState, tt, byDue)
			})
		}
	}
}

// testRecordOp records tt.rec for the first of three entries, locating
// it by its due time or by search.
func testRecordOp(t *testing.T, newState NewState, tt recordOpCase, byDue bool) {
	h := newHarness(t, newState)
	db, clk := h.db, h.clk
	ch := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/a"})
	other := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/b"})
	// Give the channel some history to see what changes: two retries.
	must(t, db.Record([]tilecast.Record{
		{ID: 1 << 40, Sent: true, Outcome: tilecast.Outcome{ChannelID: ch.ID, Action: tilecast.ActionRetry, Time: clk.Now().Add(-48 * time.Hour)}},
		{ID: 1 << 40, Sent: true, Outcome: tilecast.Outcome{ChannelID: ch.ID, Action: tilecast.ActionRetry, Time: clk.Now().Add(-48 * time.Hour)}},
	}))
	if c, _ := db.Channel(ch.ID); c.FailureStreak != 2 || c.LastOutcome != "retry" || c.SendsDay != "2026-02-27" {
		t.Fatalf("history: %+v", c)
	}
	ledgerBefore := 2
	n := toast(ch, "news", "1")
	n.Attempts = 1
	must(t, db.Enqueue([]tilecast.Notification{n, toast(ch, "news", "2"), toast(other, "news", "3")}))
	first := outboxOf(t, db, ch.ID, clk.Now())[0]
	rec := tt.rec
	rec.ID = first.ID
	if byDue {
		rec.Due = first.NextAttempt
	}
	must(t, db.Record([]tilecast.Record{rec}))
	ps := outboxOf(t, db, ch.ID, clk.Now())
	i := slices.IndexFunc(ps, func(p tilecast.Pending) bool { return p.ID == first.ID })
	if (i >= 0) != tt.wantEntry {
		t.Fatalf("entry present = %v, want %v", i >= 0, tt.wantEntry)
	}
	if i >= 0 {
		if !ps[i].NextAttempt.Equal(tt.wantAt) || ps[i].Attempts != tt.wantAtt {
			t.Errorf("entry at %v attempts %d, want %v, %d", ps[i].NextAttempt, ps[i].Attempts, tt.wantAt, tt.wantAtt)
		}
		if due, _ := db.Due(clk.Now(), 10, nil); slices.ContainsFunc(due, func(p tilecast.Pending) bool { return p.ID == first.ID }) {
			t.Error("moved entry is still due now")
		}
	}
	dl, _ := db.DeadLetters(0)
	if (len(dl) == 1) != tt.wantDead {
		t.Errorf("dead letters = %v", dl)
	}
	if tt.wantDead {
		d := dl[0]
		if d.Notification.ID != first.ID || d.Notification.Attempts != 2 || d.Outcome.Action != tilecast.ActionFailed ||
			string(d.Notification.Payload) != "toast 1" || d.Notification.ItemID != "1" || d.Notification.ChannelID != ch.ID ||
			d.Notification.Feed != "news" || d.Notification.Kind != tilecast.KindToast || !d.Notification.Created.Equal(clk.Now()) {
			t.Errorf("dead letter = %+v", d)
		}
	}
	got, err := db.Channel(ch.ID)
	if (err == nil) != tt.wantChannel {
		t.Fatalf("Channel = %v, want present %v", err, tt.wantChannel)
	}
	if tt.wantChannel {
		if got.LastOutcome != tt.wantOutcome && tt.wantOutcome != "" {
			t.Errorf("LastOutcome = %q, want %q", got.LastOutcome, tt.wantOutcome)
		}
		if got.FailureStreak != tt.wantStreak {
			t.Errorf("streak %d, want %d", got.FailureStreak, tt.wantStreak)
		}
		if tt.wantSends > 0 && (got.SendsToday != tt.wantSends || got.SendsDay != "2026-03-01" || !got.LastOutcomeAt.Equal(clk.Now())) {
			t.Errorf("sends %d on %q, last outcome at %v; want %d today", got.SendsToday, got.SendsDay, got.LastOutcomeAt, tt.wantSends)
		}
		if tt.wantSends == 0 && (got.SendsDay != "2026-02-27" || got.SendsToday != 2) {
			t.Errorf("sends %d on %q: a record without a send counted", got.SendsToday, got.SendsDay)
		}
		if !rec.ChannelWaitUntil.IsZero() && !got.NextAllowedAt.Equal(rec.ChannelWaitUntil) {
			t.Errorf("NextAllowedAt = %v", got.NextAllowedAt)
		}
	} else {
		if o := outboxOf(t, db, ch.ID, clk.Now()); len(o) != 0 {
			t.Errorf("removed channel keeps %d entries", len(o))
		}
		if _, err := db.ChannelByURI(ch.URI); !errors.Is(err, tilecast.ErrNotFound) {
			t.Errorf("removed channel's URI: %v", err)
		}
	}
	led, _ := db.Outcomes(ch.ID, "", clk.Now().Add(-time.Hour))
	if len(led) != tt.wantLedger {
		t.Errorf("ledger = %v, want %d entries", led, tt.wantLedger)
	}
	if len(led) == 1 && (led[0].ChannelID != ch.ID || !led[0].Time.Equal(clk.Now()) || led[0].Action != rec.Outcome.Action ||
		led[0].Feed != "news" || led[0].Kind != tilecast.KindToast) {
		t.Errorf("ledger entry = %+v", led[0])
	}
	if all, _ := db.Outcomes(ch.ID, "", time.Time{}); len(all) != ledgerBefore+tt.wantLedger {
		t.Errorf("whole ledger %d entries, want %d", len(all), ledgerBefore+tt.wantLedger)
	}
	// The other channel is untouched.
	if o := outboxOf(t, db, other.ID, clk.Now()); len(o) != 1 {
		t.Errorf("other channel has %d entries", len(o))
	}
}

// A Record whose Due is not where its entry is (the entry moved) leaves
// the entry alone; its channel effects apply, as for an entry already gone.
func testRecordDueElsewhere(t *testing.T, newState NewState) {
	h := newHarness(t, newState)
	db, clk := h.db, h.clk
	ch := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/a"})
	must(t, db.Enqueue([]tilecast.Notification{toast(ch, "news", "1")}))
	ps, err := db.Due(clk.Now(), 10, nil)
	if err != nil || len(ps) != 1 {
		t.Fatalf("Due = %d, %v", len(ps), err)
	}
	rec := tilecast.Record{ID: ps[0].ID, Due: ps[0].NextAttempt.Add(time.Millisecond), Op: tilecast.OpDone, Sent: true,
		Outcome: tilecast.Outcome{Action: tilecast.ActionDelivered, ChannelID: ch.ID}}
	must(t, db.Record([]tilecast.Record{rec}))
	if o := outboxOf(t, db, ch.ID, clk.Now()); len(o) != 1 {
		t.Errorf("outbox holds %d entries, want the 1 the record did not locate", len(o))
	}
	if got, err := db.Channel(ch.ID); err != nil || got.SendsToday != 1 || got.LastOutcome != "delivered" {
		t.Errorf("channel = %+v, %v; want the send counted", got, err)
	}
	rec.Due = ps[0].NextAttempt
	must(t, db.Record([]tilecast.Record{rec}))
	if o := outboxOf(t, db, ch.ID, clk.Now()); len(o) != 0 {
		t.Errorf("outbox holds %d entries after the record with the right Due", len(o))
	}
}

// One batch reads and writes a channel once and every record's effect
// accumulates: the failure streak, the daily count per UTC day, the wait;
// records for entries already gone still count their sends.
func testRecordChannelEffects(t *testing.T, newState NewState) {
	db := newHarness(t, newState).db
	ch := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/a"})
	var ns []tilecast.Notification
	for i := range 6 {
		ns = append(ns, toast(ch, "news", fmt.Sprint(i)))
	}
	must(t, db.Enqueue(ns))
	id := map[int]uint64{}
	for _, p := range mustDue(t, db, farFuture) {
		var i int
		fmt.Sscan(p.ItemID, &i)
		id[i+1] = p.ID
	}
	out := func(a tilecast.Action, at time.Time) tilecast.Outcome {
		return tilecast.Outcome{Action: a, Time: at, Feed: "news"}
	}
	day1 := time.Date(2026, 3, 1, 23, 59, 0, 0, time.UTC)
	day2 := time.Date(2026, 3, 2, 0, 1, 0, 0, time.UTC)
	must(t, db.Record([]tilecast.Record{
		{ID: id[1], Op: tilecast.OpRetry, Sent: true, Outcome: out(tilecast.ActionRetry, day1)},
		{ID: id[2], Op: tilecast.OpRetry, Sent: true, Outcome: out(tilecast.ActionRetry, day1)},
		{ID: id[3], Op: tilecast.OpDone, Sent: true, Outcome: out(tilecast.ActionFailed, day1)},
	}))
	got, _ := db.Channel(ch.ID)
	if got.FailureStreak != 3 || got.SendsToday != 3 || got.SendsDay != "2026-03-01" || got.LastOutcome != "failed" {
		t.Errorf("after day 1: %+v", got)
	}
	wait := day2.Add(61 * time.Minute)
	must(t, db.Record([]tilecast.Record{
		{ID: id[4], Op: tilecast.OpDone, Sent: true, Outcome: out(tilecast.ActionDelivered, day2)},
		{ID: id[5], Op: tilecast.OpPostpone, Sent: true, Outcome: out(tilecast.ActionRetry, day2), ChannelWaitUntil: wait, NextAttempt: wait},
		{ID: 1 << 40, Op: tilecast.OpDone}, // unknown ID: ignored
	}))
	got, _ = db.Channel(ch.ID)
	if got.FailureStreak != 1 || got.SendsToday != 2 || got.SendsDay != "2026-03-02" || !got.NextAllowedAt.Equal(wait) || !got.LastOutcomeAt.Equal(day2) {
		t.Errorf("after day 2: %+v", got)
	}
	// Records for entries already gone change no entry; a sent one still
	// reaches the ledger and the counters through Outcome.ChannelID.
	gone := out(tilecast.ActionDelivered, day2)
	gone.ChannelID = ch.ID
	must(t, db.Record([]tilecast.Record{{ID: id[4], Op: tilecast.OpRetry, Sent: true, Outcome: gone}, {ID: id[3], Op: tilecast.OpDead}}))
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
	// The same entry twice in a batch: the second record finds it where
	// the first left it (moved, by its ID), or not at all (deleted, or
	// not at the due time it names).
	due5 := wait
	must(t, db.Record([]tilecast.Record{
		{ID: id[1], Op: tilecast.OpRetry, NextAttempt: wait},
		{ID: id[1], Op: tilecast.OpRetry, NextAttempt: wait.Add(time.Hour)},
		{ID: id[2], Op: tilecast.OpDone},
		{ID: id[2], Op: tilecast.OpDead},
		{ID: id[5], Due: due5, Op: tilecast.OpPostpone, NextAttempt: wait.Add(2 * time.Hour)},
		{ID: id[5], Due: due5, Op: tilecast.OpDead},
	}))
	left := map[uint64]tilecast.Pending{}
	for _, p := range mustDue(t, db, farFuture) {
		left[p.ID] = p
	}
	if e := left[id[1]]; len(left) != 3 || e.Attempts != 3 || !e.NextAttempt.Equal(wait.Add(time.Hour)) {
		t.Errorf("after records for one entry twice: %+v; want 1 retried twice more (attempts 3), 5 and 6", left)
	}
	if e := left[id[5]]; !e.NextAttempt.Equal(wait.Add(2 * time.Hour)) {
		t.Errorf("entry 5 = %+v: the record naming its old due time found it", e)
	}
	if dl, _ := db.DeadLetters(0); len(dl) != 0 {
		t.Errorf("dead letters %v: the second record of a deleted entry found it", dl)
	}
	// OpRemoveChannel for a gone entry still removes the channel.
	rm := out(tilecast.ActionChannelRemoved, day2)
	rm.ChannelID = ch.ID
	must(t, db.Record([]tilecast.Record{{ID: id[4], Op: tilecast.OpRemoveChannel, Sent: true, Outcome: rm}, {ID: id[6], Op: tilecast.OpDone, Sent: true, Outcome: rm}}))
	if _, err := db.Channel(ch.ID); !errors.Is(err, tilecast.ErrNotFound) {
		t.Errorf("channel not removed: %v", err)
	}
	if s, _ := db.Counts(); s.OutboxDepth != 0 || s.Channels != 0 {
		t.Errorf("Stats = %+v", s)
	}
	if led, _ := db.Outcomes(ch.ID, "", time.Time{}); len(led) != 8 {
		t.Errorf("ledger of the removed channel = %d entries, want 8 (kept)", len(led))
	}
	if err := db.Record([]tilecast.Record{{ID: id[1], Op: tilecast.Op(42)}}); err != nil {
		t.Errorf("record for a gone entry with a bad op: %v", err)
	}
}

func testRecordUnknownOp(t *testing.T, newState NewState) {
	db := newHarness(t, newState).db
	ch := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/a"})
	must(t, db.Enqueue([]tilecast.Notification{toast(ch, "news", "1")}))
	ps := mustDue(t, db, farFuture)
	if err := db.Record([]tilecast.Record{{ID: ps[0].ID, Op: tilecast.Op(42)}}); err == nil {
		t.Error("unknown op accepted")
	}
	if left := mustDue(t, db, farFuture); len(left) != 1 {
		t.Errorf("the failed batch changed the outbox: %d entries", len(left))
	}
}

// The ledger keeps the last 7 days and at most 100 entries per channel:
// a write prunes the channel it grew, PruneLedger every channel.
func testLedgerPruning(t *testing.T, newState NewState) {
	h := newHarness(t, newState)
	db, clk := h.db, h.clk
	a := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/a"})
	b := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/b"})
	sentTo := func(ch tilecast.Channel, n int, at time.Time) {
		t.Helper()
		var recs []tilecast.Record
		for range n {
			recs = append(recs, tilecast.Record{ID: 1 << 40, Sent: true,
				Outcome: tilecast.Outcome{ChannelID: ch.ID, Action: tilecast.ActionDelivered, Time: at, Feed: "news"}})
		}
		must(t, db.Record(recs))
	}
	start := clk.Now()
	sentTo(a, 60, start)
	sentTo(b, 5, start)
	clk.Add(time.Hour)
	sentTo(a, 60, clk.Now())
	if led, _ := db.Outcomes(a.ID, "", time.Time{}); len(led) != rules.LedgerPerChannel || !led[0].Time.Equal(start) || !led[99].Time.Equal(clk.Now()) {
		t.Errorf("ledger of a = %d entries, want the newest %d", len(led), rules.LedgerPerChannel)
	}
	// 7 days later: the next write drops what is older than 7 days.
	clk.Add(rules.LedgerRetention - time.Hour + time.Second)
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
	// A removed channel's ledger is pruned too.
	must(t, db.RemoveChannel(a.ID))
	clk.Add(rules.LedgerRetention + time.Hour)
	if n, err := db.PruneLedger(); err != nil || n != 61 {
		t.Errorf("PruneLedger after removal = %d, %v; want 61", n, err)
	}
}

// Draining thousands of entries with Due + Record processes each exactly
// once (reliability.md S8); removing the channels removes what is left.
func testDrainExactlyOnce(t *testing.T, newState NewState) {
	h := newHarness(t, newState)
	db, clk := h.db, h.clk
	var chs []tilecast.Channel
	for i := range 10 {
		chs = append(chs, addChannel(t, db, tilecast.Channel{URI: fmt.Sprintf("http://127.0.0.1/%d", i)}))
	}
	const total = 5000
	var ns []tilecast.Notification
	for i := range total {
		n := toast(chs[i%len(chs)], "news", fmt.Sprint(i))
		n.NextAttempt = clk.Now().Add(time.Duration(i%7) * time.Millisecond)
		ns = append(ns, n)
	}
	must(t, db.Enqueue(ns))
	if s, _ := db.Counts(); s.OutboxDepth != total {
		t.Fatalf("outbox depth %d, want %d", s.OutboxDepth, total)
	}
	seen := map[string]int{}
	for rounds := 0; rounds < 1000; rounds++ {
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
		must(t, db.Record(recs))
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
	if nd, _ := db.NextDue(); !nd.IsZero() {
		t.Errorf("NextDue = %v after drain", nd)
	}
	must(t, db.Enqueue(ns))
	for _, ch := range chs {
		must(t, db.RemoveChannel(ch.ID))
	}
	if s, _ := db.Counts(); s.OutboxDepth != 0 {
		t.Errorf("outbox depth %d after removing every channel", s.OutboxDepth)
	}
}

func testDeadLettersNewestFirst(t *testing.T, newState NewState) {
	db := newHarness(t, newState).db
	ch := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/a"})
	must(t, db.Enqueue([]tilecast.Notification{toast(ch, "news", "1"), toast(ch, "news", "2"), toast(ch, "news", "3")}))
	var recs []tilecast.Record
	for i, p := range mustDue(t, db, farFuture) {
		recs = append(recs, tilecast.Record{ID: p.ID, Op: tilecast.OpDead, Outcome: tilecast.Outcome{Action: tilecast.ActionFailed, Error: fmt.Sprint("e", i+1)}})
	}
	must(t, db.Record(recs))
	dl, err := db.DeadLetters(2)
	if err != nil || len(dl) != 2 || dl[0].Notification.ItemID != "3" || dl[1].Outcome.Error != "e2" {
		t.Errorf("DeadLetters(2) = %+v, %v", dl, err)
	}
	if s, _ := db.Counts(); s.DeadLetters != 3 || s.OutboxDepth != 0 || s.Channels != 1 {
		t.Errorf("Stats = %+v", s)
	}
	// A dead letter outlives its channel.
	must(t, db.RemoveChannel(ch.ID))
	if dl, _ := db.DeadLetters(0); len(dl) != 3 {
		t.Errorf("dead letters after removing the channel: %d, want 3", len(dl))
	}
}

// An entry's creation time is the notification's, as the caller made it
// (zero: the time of the enqueue), and stays through retries,
// postponements and a device moving to a new channel URI: its time to
// live counts from it.
func testCreatedKept(t *testing.T, newState NewState) {
	h := newHarness(t, newState)
	db, clk := h.db, h.clk
	ch := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/a", Device: "phone"})
	made := clk.Now().Add(-time.Hour)
	a := toast(ch, "news", "a")
	a.Created = made
	must(t, db.Enqueue([]tilecast.Notification{a, toast(ch, "news", "b")}))
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
	must(t, db.Record([]tilecast.Record{
		{ID: ps[0].ID, Due: ps[0].NextAttempt, Op: tilecast.OpRetry, NextAttempt: clk.Now().Add(time.Hour), Sent: true,
			Outcome: tilecast.Outcome{Action: tilecast.ActionRetry, Feed: "news", Kind: tilecast.KindToast}},
		{ID: ps[1].ID, Due: ps[1].NextAttempt, Op: tilecast.OpPostpone, NextAttempt: clk.Now().Add(2 * time.Hour)},
	}))
	check("retried and postponed", ch.ID)

	moved := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/a2", Device: "phone"})
	check("moved to the device's new channel", moved.ID)
}

// Entries sharing a payload each read it whole, through every way an
// entry goes: a fan-out page of one payload drained in parts, dead
// letters keeping theirs after the entries are gone.
func testPayloadsShared(t *testing.T, newState NewState) {
	h := newHarness(t, newState)
	db := h.db
	chs := addChannels(t, db, 150)
	big := make([]byte, 3000)
	for i := range big {
		big[i] = byte(i)
	}
	var ns []tilecast.Notification
	for _, ch := range chs {
		ns = append(ns, tilecast.Notification{ChannelID: ch.ID, Feed: "news", Kind: tilecast.KindToast, Payload: big},
			tile(ch, "news", "shared tile"))
	}
	must(t, db.Enqueue(ns))
	ps := mustDue(t, db, farFuture)
	if len(ps) != 300 {
		t.Fatalf("%d entries, want 300", len(ps))
	}
	var recs []tilecast.Record
	for i, p := range ps {
		want := "shared tile"
		if p.Kind == tilecast.KindToast {
			want = string(big)
		}
		if string(p.Payload) != want {
			t.Fatalf("entry %d payload of %d bytes, want %d", p.ID, len(p.Payload), len(want))
		}
		op := tilecast.OpDone
		if i%10 == 0 {
			op = tilecast.OpDead
		}
		if i < 200 {
			recs = append(recs, tilecast.Record{ID: p.ID, Due: p.NextAttempt, Op: op, Sent: true, Outcome: tilecast.Outcome{Action: tilecast.ActionDelivered}})
		}
	}
	must(t, db.Record(recs))
	if _, err := db.PruneLedger(); err != nil {
		t.Fatal(err)
	}
	if nd, err := db.NextDue(); err != nil || nd.IsZero() {
		t.Fatalf("NextDue = %v, %v", nd, err)
	}
	for _, p := range mustDue(t, db, farFuture) {
		if want := map[tilecast.Kind]int{tilecast.KindToast: len(big), tilecast.KindTile: 11}[p.Kind]; len(p.Payload) != want {
			t.Errorf("left entry %d payload %d bytes, want %d", p.ID, len(p.Payload), want)
		}
	}
	dl, _ := db.DeadLetters(0)
	if len(dl) != 20 {
		t.Errorf("%d dead letters, want 20", len(dl))
	}
	for _, d := range dl {
		if len(d.Notification.Payload) == 0 {
			t.Errorf("dead letter %d lost its payload", d.Notification.ID)
		}
	}
	// Drained, the payloads are cleared; new entries of the same payload work.
	var rest []tilecast.Record
	for _, p := range mustDue(t, db, farFuture) {
		rest = append(rest, tilecast.Record{ID: p.ID, Due: p.NextAttempt, Op: tilecast.OpDone})
	}
	must(t, db.Record(rest))
	if nd, err := db.NextDue(); err != nil || !nd.IsZero() {
		t.Fatalf("NextDue = %v, %v after draining", nd, err)
	}
	must(t, db.Enqueue(ns[:2]))
	if ps := mustDue(t, db, farFuture); len(ps) != 1 || string(ps[0].Payload) != string(big) {
		t.Errorf("after clearing, %d entries; want the new toast (the tile equals the delivered one)", len(ps))
	}
}
