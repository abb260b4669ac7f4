package tilecast

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Deliver drains the outbox until ctx is cancelled: a dispatcher hands due
// entries to PushConcurrency workers, a recorder writes their results in
// batches (one transaction per batch) and logs one `push` line per send.
// On cancellation no new sends start; sends in flight finish (their own
// requests are bounded by the push timeout) and are recorded before it returns.
func (b *Bot) Deliver(ctx context.Context) error {
	return b.deliver(ctx, false)
}

// DeliverDue sends everything due now and returns when nothing is due any
// more (entries retried later stay in the outbox). It is `tilecast once`.
func (b *Bot) DeliverDue(ctx context.Context) error {
	return b.deliver(ctx, true)
}

// dispatched is an entry handed to a worker, with the time its time to
// live runs out.
type dispatched struct {
	Pending
	expires time.Time
	// capCount is the channel's count of sends today toward DailyCap
	// (nil for an https channel, and with Bot.Caps): a push that got no
	// answer never reached the push service and is taken back off it.
	capCount *atomic.Int64
	// capDay is the day of the entry's reservation in Bot.Caps ("" when
	// it has none): a push that got no answer gives it back.
	capDay string
}

type sendResult struct {
	p   Pending
	res Result
	at  time.Time
	// release: the day whose reservation (Bot.Caps) the send gives back,
	// as it never reached the push service; "" for none.
	release string
}

func (b *Bot) deliver(ctx context.Context, untilIdle bool) error {
	workers := b.PushConcurrency
	if workers <= 0 {
		workers = DefaultPushConcurrency
	}
	fl := newFlight()
	b.countUnfinished() // before this run logs any send

	work := make(chan dispatched)
	// The send window bounds what a crash can send twice (design.md §1):
	// the dispatcher takes one of its 2 × workers slots before it hands an
	// entry to a worker, and the recorder gives the slot back once the
	// entry's outcome is committed. Sends in flight plus answers not yet
	// recorded never exceed it, however the recorder batches; within it,
	// workers keep sending while the recorder commits.
	window := make(chan struct{}, 2*workers)
	// One result per slot at most: the buffer never blocks a worker.
	results := make(chan sendResult, cap(window))
	var wg sync.WaitGroup
	var logOnce sync.Once
	// Sends use their own context so that a shutdown lets in-flight requests
	// finish and be recorded; the push client's timeout bounds them.
	sendCtx := context.WithoutCancel(ctx)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range work {
				if b.SendLog != nil {
					if err := b.SendLog.Sending(p.ID); err != nil {
						logOnce.Do(func() {
							b.log().Warn("send log write failed: a crash now may leave duplicates uncounted", "error", err.Error())
						})
					}
				}
				start := b.now()
				// What is left of its time to live; one that ran out
				// since the dispatcher looked still gets a second.
				ttl := max(p.expires.Sub(start), time.Second)
				res := b.Pusher.Push(sendCtx, &p.Channel, &p.Notification, ttl)
				if res.Duration == 0 {
					res.Duration = b.now().Sub(start)
				}
				release := ""
				if !mayHaveReached(res) {
					if p.capCount != nil {
						p.capCount.Add(-1)
					}
					release = p.capDay
				}
				b.failpoint(FailAfterSend)
				results <- sendResult{p: p.Pending, res: res, at: b.now(), release: release}
			}
		}()
	}

	recErr := make(chan error, 1)
	go func() {
		// Sends dispatched and not yet answered: the window's taken slots
		// less the answers waiting to be recorded (a hint: it only
		// decides how long the recorder waits).
		inFlight := func(answered int) int { return len(window) - len(results) - answered }
		recErr <- b.recorder(ctx, results, cap(window), recordFillWait, inFlight, func(ids []uint64, committed bool) {
			if committed {
				fl.finish(ids)
			}
			for range ids {
				<-window
			}
			b.nudge() // the dispatcher may release them and look again
		})
	}()

	err := b.dispatch(ctx, untilIdle, work, window, fl)
	close(work)
	wg.Wait()
	close(results)
	return errors.Join(err, <-recErr)
}

// dispatch loops: fetch due entries, hold back those whose channel must wait
// (406/412 rest, daily cap), and hand the rest to the workers, each with a
// slot of the send window (see deliver).
func (b *Bot) dispatch(ctx context.Context, untilIdle bool, work chan<- dispatched, window chan<- struct{}, fl *flight) error {
	wake := b.wakeCh()
	// Sends per http channel in the current UTC day. A channel's count is
	// taken from the store the first time this run sees it (nothing of this
	// run is in flight to it then) and counted here from then on, so sends
	// in flight are never missed nor counted twice.
	//
	// The counts are pointers so that a send updates one without a map
	// assignment: assigning replaces the key, and ch.ID is cut from the
	// whole decoded channel record, which the map would then keep alive for
	// the rest of the day (~40 MB for 100k channels). Keys are copies.
	day, sentToday := "", map[string]*atomic.Int64{}
	// held are the postpone and expire records of a pass whose Record
	// failed, handed back again with the next pass's. Due cannot be
	// trusted to return those entries again: on PostgreSQL it leased them
	// to this instance, whose heartbeat keeps extending the lease, so they
	// would wait unsent until the instance stops. Until they are recorded
	// Due skips them (heldIDs) on bbolt too, so that an entry is neither
	// decided twice nor expired (ledger, push line) twice. A shutdown
	// drops them safely: bbolt still has them due, and PostgreSQL gives
	// the leases back at Close (or lets them end when it cannot).
	var held []Record
	heldIDs := map[uint64]bool{}
	busy := func(id uint64) bool { return heldIDs[id] || fl.busy(id) }
	for {
		if ctx.Err() != nil {
			return nil
		}
		// Entries recorded since the last pass are committed: a Due that
		// starts now sees them deleted or rescheduled, so they may leave
		// the busy set. (Releasing them while a Due was reading an older
		// snapshot would send them twice.)
		fl.release()
		b.lastPass.Store(time.Now().UnixNano())
		now := b.now()
		if d := now.UTC().Format(time.DateOnly); d != day {
			day, sentToday = d, map[string]*atomic.Int64{}
		}
		due, err := b.Store.Due(now, dueBatch, busy)
		if err != nil {
			// The store may recover (a full disk freed): keep the
			// deliverer alive and look again shortly.
			if untilIdle {
				return err // `once` reports it rather than waiting for the disk
			}
			b.log().Error("read due notifications; retrying", "error", err.Error())
			if !sleepCtx(ctx, 5*time.Second) {
				return nil
			}
			continue
		}
		// Entries not sent: postponed (OpPostpone) or expired (OpExpire),
		// after those of earlier passes not recorded yet.
		unsent := held
		midnight := now.UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
		// With shared caps, the sends this batch makes to unauthenticated
		// channels are reserved first, all at once; grants is what each
		// channel got, used up below. Whatever is left when the pass
		// stops early is given back.
		var grants map[string]int
		capsDown := false
		if b.Caps != nil {
			if grants, err = b.reserve(due, now, day, fl); err != nil {
				if untilIdle {
					return err
				}
				b.log().Error("reserve sends toward the daily cap; holding those entries back a little", "error", err.Error())
				capsDown = true
			}
		}
		stop := func() error {
			b.giveBack(day, grants)
			return nil
		}
		for _, p := range due {
			ch := &p.Channel
			rec, off, expires := b.putOff(&p, now, fl.channelBusy)
			if off {
				unsent = append(unsent, rec)
				continue
			}
			var capCount *atomic.Int64
			capDay := ""
			switch {
			case ch.Authenticated():
			case capsDown:
				unsent = append(unsent, Record{ID: p.ID, Due: p.NextAttempt, Op: OpPostpone, NextAttempt: now.Add(5 * time.Second)})
				continue
			case b.Caps != nil:
				// Another instance may have taken the rest of the day.
				if grants[ch.ID] <= 0 {
					unsent = append(unsent, Record{ID: p.ID, Due: p.NextAttempt, Op: OpPostpone, NextAttempt: midnight})
					continue
				}
				grants[ch.ID]--
				capDay = day
			default:
				capCount = sentToday[ch.ID]
				if capCount == nil {
					capCount = new(atomic.Int64)
					sentToday[strings.Clone(ch.ID)] = capCount
				}
				// What the store has recorded today plus what this
				// run has in flight: exact for a state only this
				// process sends from (bbolt). Instances sharing one
				// state would each see only their own sends in flight:
				// they reserve through Caps instead.
				if ch.SendsDay == day {
					raiseTo(capCount, int64(ch.SendsToday+fl.unrecordedTo(ch.ID)))
				}
				if capCount.Load() >= DailyCap {
					unsent = append(unsent, Record{ID: p.ID, Due: p.NextAttempt, Op: OpPostpone, NextAttempt: midnight})
					continue
				}
				capCount.Add(1)
			}
			select {
			case window <- struct{}{}:
			case <-ctx.Done():
				if capDay != "" {
					grants[ch.ID]++ // not sent
				}
				return stop()
			}
			fl.start(&p)
			select {
			case work <- dispatched{p, expires, capCount, capDay}:
			case <-ctx.Done():
				if capDay != "" {
					grants[ch.ID]++
				}
				return stop()
			}
			b.lastPass.Store(time.Now().UnixNano())
		}
		// The pass asked for what it sends, so nothing is left over; a
		// grant it did not use would otherwise count until midnight.
		b.giveBack(day, grants)
		if len(unsent) > 0 {
			if err := b.Store.Record(unsent); err != nil {
				// Not fatal: the records are kept and handed back with
				// the next pass's (see held).
				if untilIdle {
					return err
				}
				held = unsent
				for i := range held {
					heldIDs[held[i].ID] = true
				}
				b.log().Error("postpone or expire notifications; retrying", "error", err.Error(), "count", len(unsent))
				if !sleepCtx(ctx, 5*time.Second) {
					return nil
				}
				continue
			}
			held = nil
			clear(heldIDs)
			// Only now: a push line for an expiry the store did not
			// record would be repeated when it is recorded.
			for i := range unsent {
				if o := &unsent[i].Outcome; unsent[i].Op == OpExpire {
					b.logPush(o)
					if b.Observer != nil {
						b.Observer.ObservePush(*o)
					}
				}
			}
		}
		if len(due) > 0 {
			continue
		}
		// Nothing due that is not already in flight. With nothing in
		// flight either, the Due above saw every result committed: done.
		if untilIdle && fl.idle() {
			return nil
		}
		wait := time.Second
		if untilIdle {
			wait = 10 * time.Millisecond
		} else if next, err := b.Store.NextDue(); err == nil && !next.IsZero() {
			// An entry already due here is in flight: its result will nudge us.
			if d := next.Sub(b.now()); d > 0 {
				wait = min(d, time.Minute)
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// putOff returns the record that keeps due entry p from being sent at
// now, if anything does (off), and when p's time to live ends. busy
// reports whether an entry of a channel is in flight.
func (b *Bot) putOff(p *Pending, now time.Time, busy func(ch string) bool) (rec Record, off bool, expires time.Time) {
	ch := &p.Channel
	// Past its time to live an entry is stale news, whatever kept it (an
	// outage, a rest, a day at the cap): dropped before it could count
	// toward the cap or be sent.
	ttl := b.ttl(p.Feed, p.Kind)
	expires = p.Created.Add(ttl)
	if p.Created.IsZero() {
		expires = now.Add(ttl) // age unknown: the whole TTL
	}
	if !now.Before(expires) {
		return expire(p, ttl, now), true, expires
	}
	if wait := ch.NextAllowedAt; wait.After(now) {
		return Record{ID: p.ID, Due: p.NextAttempt, Op: OpPostpone, NextAttempt: wait}, true, expires
	}
	// A channel back from a 406/412 rest that has not succeeded since
	// gets one probe at a time: MPNS wants at most one retry an hour,
	// not the channel's whole backlog at the end of the rest.
	if !ch.NextAllowedAt.IsZero() && ch.FailureStreak > 0 && busy(ch.ID) {
		return Record{ID: p.ID, Due: p.NextAttempt, Op: OpPostpone, NextAttempt: now.Add(time.Minute)}, true, expires
	}
	return Record{}, false, expires
}

// reserve asks b.Caps for the sends the dispatch pass over due will make
// to unauthenticated channels on day — the entries putOff lets through,
// with the probes the pass itself starts — in one call, and returns what
// each channel got. The pass then sends only what was granted: the
// reservation, not a count read earlier, is what keeps the instances
// sharing the state within DailyCap together.
func (b *Bot) reserve(due []Pending, now time.Time, day string, fl *flight) (map[string]int, error) {
	want := map[string]int{}
	var ids []string
	started := map[string]bool{} // by this pass, were nothing refused
	busy := func(ch string) bool { return started[ch] || fl.channelBusy(ch) }
	for i := range due {
		p := &due[i]
		if p.Channel.Authenticated() {
			continue
		}
		if _, off, _ := b.putOff(p, now, busy); off {
			continue
		}
		id := p.Channel.ID
		started[id] = true
		if want[id] == 0 {
			ids = append(ids, id)
		}
		want[id]++
	}
	if len(ids) == 0 {
		return want, nil // empty: nothing to use up
	}
	n := make([]int, len(ids))
	for i, id := range ids {
		n[i] = want[id]
	}
	got, err := b.Caps.ReserveSends(day, ids, n, DailyCap)
	if err != nil {
		return nil, fmt.Errorf("reserve sends of %d channels: %w", len(ids), err)
	}
	grants := make(map[string]int, len(ids))
	for i, id := range ids {
		if i < len(got) && got[i] > 0 {
			grants[id] = min(got[i], want[id])
		}
	}
	return grants, nil
}

// giveBack returns to b.Caps the reservations of day a dispatch pass
// did not use (it stopped early, at shutdown).
func (b *Bot) giveBack(day string, grants map[string]int) {
	var ids []string
	for id, n := range grants {
		for range n {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return
	}
	if err := b.Caps.ReleaseSends(day, ids); err != nil {
		b.log().Warn("give back unused daily cap reservations: they count until the day ends", "error", err.Error(), "count", len(ids))
	}
}

// expire is the record of p dropped unsent at now: it waited longer than
// its kind's time to live.
func expire(p *Pending, ttl time.Duration, now time.Time) Record {
	o := Outcome{
		Time: now, ChannelID: p.ChannelID, User: p.User, Feed: p.Feed, ItemID: p.ItemID, Kind: p.Kind,
		Action: ActionExpired, Attempt: p.Attempts, Transport: TransportOf(&p.Channel), DeviceID: p.Channel.Device,
		Error: fmt.Sprintf("waited %s, longer than the %s time to live of %s",
			now.Sub(p.Created).Round(time.Second), p.Kind, ttl),
	}
	return Record{ID: p.ID, Due: p.NextAttempt, Op: OpExpire, Outcome: o}
}

// countUnfinished reports what the previous run sent without recording an
// outcome (see SendLog): those entries go out again, and each may arrive
// twice.
func (b *Bot) countUnfinished() {
	if b.SendLog == nil {
		return
	}
	n, err := b.SendLog.Unfinished()
	if err != nil {
		b.log().Error("read the send log of the previous run", "error", err.Error())
		return
	}
	if n == 0 {
		return
	}
	b.log().Warn("possible duplicates: the previous run stopped with sends whose outcome was not recorded; they are sent again",
		"count", n)
	if b.Observer != nil {
		b.Observer.ObservePossibleDuplicates(n)
	}
}

// recorder batches results into Store.Record calls and logs each send after
// its batch is committed. done is told the entries of each batch, committed
// or given up at shutdown, and gives their window slots back.
//
// A batch the store cannot write (disk full) is retried with backoff and its
// entries stay busy meanwhile: releasing them would re-send every one at
// once. Only a shutdown gives up; the entries then stay in the outbox and are
// sent again after the restart, which loses nothing. Each failure is noted
// for StoreWait: the full window then stops the dispatcher, and health
// checks must see a recorder retrying on time as working, not stuck.
//
// A batch holds at most limit results, the send window (a result holds
// its slot until done, so the window bounds a batch anyway). A commit
// writes its pages and an fsync pair however few outcomes it holds, so
// fuller batches cost less per outcome, and the recorder waits for more
// results, but no longer than fillWait nor than its last commit took (a
// wait longer than a commit costs more than a second commit would):
//
//   - under a burst (the previous batch held at least half the window),
//     for the whole window to be answered;
//   - otherwise for the sends in flight (inFlight, told how many answers
//     the batch holds), up to half the window: that many answers can wait
//     while every worker keeps sending, so the wait costs the sends
//     nothing. Slow sends (Web Push's encryption, a loaded machine) would
//     otherwise be committed a few at a time. With nothing in flight it
//     commits at once.
//
// The window, not the wait, bounds what a crash can send twice.
func (b *Bot) recorder(ctx context.Context, results <-chan sendResult, limit int, fillWait time.Duration, inFlight func(answered int) int, done func(ids []uint64, committed bool)) error {
	var errs []error
	var creds credentialWatch
	limit = max(limit, 1)
	batch := make([]sendResult, 0, limit)
	burst := false
	var lastCommit time.Duration
	flush := func() {
		if len(batch) == 0 {
			return
		}
		recs := make([]Record, len(batch))
		ids := make([]uint64, len(batch))
		var refused []bool // per rec: the transport refused the credentials
		maybeTwice := 0    // retries of sends that may have arrived
		for i, r := range batch {
			recs[i] = b.classify(r)
			ids[i] = r.p.ID
			if recs[i].Op == OpRetry && r.res.Status == 0 && errors.Is(r.res.Err, ErrSentUnanswered) {
				maybeTwice++
			}
			if errors.Is(r.res.Err, ErrCredentials) {
				if refused == nil {
					refused = make([]bool, len(batch))
				}
				refused[i] = true
			}
		}
		b.releaseCaps(batch)
		batch = batch[:0]
		t0 := time.Now()
		for wait := time.Second; ; wait = min(2*wait, 30*time.Second) {
			err := b.Store.Record(recs)
			if err == nil {
				break
			}
			b.recordWait.failed(err, wait)
			b.log().Error("record outcomes; retrying", "error", err.Error(), "count", len(recs), "retry_in", wait)
			if sleepCtx(ctx, wait) {
				continue
			}
			// Shutting down: one last try (the disk may have room again)
			// before these outcomes are left unrecorded.
			if err = b.Store.Record(recs); err == nil {
				break
			}
			b.recordWait.clear() // the deliverer stops: nothing waits any more
			errs = append(errs, fmt.Errorf("record %d outcomes at shutdown: %w", len(recs), err))
			done(ids, false) // not released: nothing more is dispatched after shutdown
			return
		}
		b.recordWait.clear()
		if b.SendLog != nil {
			if err := b.SendLog.Recorded(ids); err != nil {
				b.log().Warn("send log write failed: the next start may count these as possible duplicates",
					"error", err.Error(), "count", len(ids))
			}
		}
		lastCommit = time.Since(t0)
		b.failpoint(FailAfterRecord)
		done(ids, true) // before the log lines: the window's slots are free now
		for i := range recs {
			if !recs[i].Sent {
				continue
			}
			b.logPush(&recs[i].Outcome)
			creds.observe(b, &recs[i].Outcome, refused != nil && refused[i])
			if b.Observer != nil {
				b.Observer.ObservePush(recs[i].Outcome)
			}
		}
		if maybeTwice > 0 && b.Observer != nil {
			b.Observer.ObservePossibleDuplicates(maybeTwice)
		}
	}
	for r := range results {
		// Group commit: take whatever else has already arrived, then write.
		batch = gather(append(batch, r), results, limit, nil)
		target := limit
		if !burst {
			target = min(limit/2, len(batch)+inFlight(len(batch)))
		}
		if len(batch) < target {
			t := time.NewTimer(min(fillWait, lastCommit))
			batch = gather(batch, results, target, t.C)
			t.Stop()
			batch = gather(batch, results, limit, nil) // and what came meanwhile
		}
		burst = 2*len(batch) >= limit
		flush()
	}
	flush()
	return errors.Join(errs...)
}

// releaseCaps gives back to b.Caps, in one call per day, the reservations
// of the sends of batch that never reached the push service. One that
// cannot be given back counts until its day ends: the cap may then hold
// a channel to a few sends less that day, never more.
func (b *Bot) releaseCaps(batch []sendResult) {
	var days map[string][]string
	for i := range batch {
		if d := batch[i].release; d != "" {
			if days == nil {
				days = map[string][]string{}
			}
			days[d] = append(days[d], batch[i].p.Channel.ID)
		}
	}
	for d, ids := range days {
		if err := b.Caps.ReleaseSends(d, ids); err != nil {
			b.log().Warn("give back the daily cap reservations of sends that got no answer: they count until the day ends",
				"error", err.Error(), "count", len(ids))
		}
	}
}

// gather appends results to batch until it holds limit or results is
// closed; with wait nil it stops when nothing more has arrived, else when
// wait fires.
func gather(batch []sendResult, results <-chan sendResult, limit int, wait <-chan time.Time) []sendResult {
	for len(batch) < limit {
		var r sendResult
		var ok bool
		if wait == nil {
			select {
			case r, ok = <-results:
			default:
				return batch
			}
		} else {
			select {
			case r, ok = <-results:
			case <-wait:
				return batch
			}
		}
		if !ok {
			return batch
		}
		batch = append(batch, r)
	}
	return batch
}

// mayHaveReached reports whether a send may have reached the push service:
// it answered, or the request left in full before the connection failed
// or the deadline passed (ErrSentUnanswered). Such a send counts toward
// the daily cap, since the service may have counted it; one that never
// left (refused connection, no route, the guard) does not.
func mayHaveReached(res Result) bool {
	return res.Status != 0 || errors.Is(res.Err, ErrSentUnanswered)
}

// classify maps a transport verdict to what happens to the entry and the channel.
func (b *Bot) classify(r sendResult) Record {
	p, res := r.p, r.res
	attempt := p.Attempts + 1
	o := Outcome{
		Time: r.at, ChannelID: p.ChannelID, User: p.User, Feed: p.Feed, ItemID: p.ItemID, Kind: p.Kind,
		Status: res.Status, Notification: res.Notification, Subscription: res.Subscription,
		Device: res.Device, DeviceID: p.Channel.Device, Attempt: attempt, Duration: res.Duration,
		Transport: TransportOf(&p.Channel), MsgID: res.MsgID, DebugTrace: res.DebugTrace,
		CorrelationVector: res.CorrelationVector, TokenRefreshed: res.TokenRefreshed,
	}
	if res.Err != nil {
		o.Error = res.Err.Error()
	}
	if errors.Is(res.Err, ErrCircuitOpen) {
		// Never sent: the host's circuit is open. Not an attempt, not in
		// the ledger or the daily count; look again at the next probe.
		return Record{ID: p.ID, Due: p.NextAttempt, Op: OpPostpone, NextAttempt: r.at.Add(max(res.Wait, time.Second)), Outcome: o}
	}
	rec := Record{ID: p.ID, Due: p.NextAttempt, Sent: true, Unanswered: !mayHaveReached(res)}
	maxAttempts := b.attemptLimit()
	retry := func(delay time.Duration) {
		if attempt >= maxAttempts {
			rec.Op, o.Action = OpDead, ActionFailed
			if o.Error == "" {
				o.Error = "gave up after max_attempts"
			}
			return
		}
		rec.Op, o.Action = OpRetry, ActionRetry
		rec.NextAttempt = r.at.Add(delay)
		o.RetryIn = delay
	}
	switch res.Verdict {
	case VerdictDelivered:
		rec.Op, o.Action = OpDone, ActionDelivered
	case VerdictSuppressed:
		rec.Op, o.Action = OpDone, ActionDropped
	case VerdictGone:
		rec.Op, o.Action = OpRemoveChannel, ActionChannelRemoved
	case VerdictFailed:
		// Refused for good (400, 403, …): sending again would fail the
		// same way, but the notification is kept for the operator, with
		// the reason, as after max_attempts.
		rec.Op, o.Action = OpDead, ActionFailed
		if o.Error == "" {
			o.Error = fmt.Sprintf("refused by the push service (HTTP %d)", res.Status)
		}
	case VerdictWait:
		wait := max(res.Wait, ChannelWait)
		rec.ChannelWaitUntil = r.at.Add(wait)
		retry(wait)
	default: // VerdictRetry
		base := b.RetryBase
		if base <= 0 {
			base = retryBase
		}
		delay := b.jitter(min(base<<min(p.Attempts, 10), retryCap))
		retry(max(delay, res.Wait))
	}
	rec.Outcome = o
	return rec
}

// logPush writes the one `push` line per send with the stable keys of
// design.md §7, then the transport's: transport, and what WNS answers
// with for support cases (msg_id, debug_trace, ms_cv; empty elsewhere)
// and whether the access token was renewed within the attempt.
func (b *Bot) logPush(o *Outcome) {
	b.log().Info("push",
		"channel", o.ChannelID, "user", o.User, "feed", o.Feed, "item", o.ItemID, "kind", string(o.Kind),
		"status", o.Status, "notification", o.Notification, "subscription", o.Subscription,
		"device", o.Device, "device_id", o.DeviceID, "outcome", string(o.Action), "attempt", o.Attempt,
		"retry_in", o.RetryIn, "duration", o.Duration, "error", o.Error,
		"transport", string(o.Transport), "msg_id", o.MsgID, "debug_trace", o.DebugTrace, "ms_cv", o.CorrelationVector,
		"token_refreshed", o.TokenRefreshed)
}

// credentialWatch turns the sends a transport refuses for its credentials
// (ErrCredentials: WNS 403, or 401 with a renewed token; Web Push 401 or 403, a
// VAPID key or subject the push service refuses) into one error
// line per run of such refusals, not one per channel: the cause is the
// configuration, and every channel of the transport would repeat it. The
// run ends with the transport's next delivery, logged with how many
// sends it refused. Only the recorder goroutine uses it.
type credentialWatch struct {
	failing map[Transport]int // refusals in the current run
}

func (w *credentialWatch) observe(b *Bot, o *Outcome, credentials bool) {
	t := o.Transport
	switch {
	case credentials:
		if w.failing == nil {
			w.failing = make(map[Transport]int)
		}
		if w.failing[t] == 0 {
			b.log().Error("configuration error: the push service refuses tilecast's credentials for this channel; "+
				credentialsHint(t)+"; further refusals are not logged as errors until a send succeeds",
				"transport", string(t), "channel", o.ChannelID, "feed", o.Feed, "status", o.Status, "error", o.Error)
		}
		w.failing[t]++
	case o.Action == ActionDelivered && w.failing[t] > 0:
		b.log().Info("the push service accepts tilecast's credentials again", "transport", string(t),
			"refused", w.failing[t])
		delete(w.failing, t)
	}
}

// credentialsHint says which credentials of transport t to check.
func credentialsHint(t Transport) string {
	switch t {
	case TransportWNS:
		return "check [push.wns] client_id and the secret of the app that owns the channels"
	case TransportWebPush:
		return "check [push.webpush] vapid_private_key_file (the key the subscriptions were made with) and subject"
	}
	return "check the transport's credentials"
}

// flight tracks the outbox entries handed to workers and not yet released.
// An entry stays busy from dispatch until the dispatcher's next pass after
// its result was committed.
type flight struct {
	mu       sync.Mutex
	busyIDs  map[uint64]string // entry → channel
	perChan  map[string]int    // channel → busy entries
	finished []uint64          // recorded, to be released on the next pass
	// unrecorded counts, per channel, the entries handed to a worker
	// whose outcome is not committed yet (busy until the next pass, but
	// counted by the store's SendsToday from their commit on).
	unrecorded map[string]int
}

func newFlight() *flight {
	return &flight{busyIDs: make(map[uint64]string), perChan: make(map[string]int), unrecorded: make(map[string]int)}
}

// unrecordedTo returns how many entries of channel ch are sent or being
// sent without their outcome committed.
func (f *flight) unrecordedTo(ch string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.unrecorded[ch]
}

func (f *flight) busy(id uint64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.busyIDs[id]
	return ok
}

// channelBusy reports whether an entry of channel ch is in flight.
func (f *flight) channelBusy(ch string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.perChan[ch] > 0
}

func (f *flight) start(p *Pending) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.busyIDs[p.ID] = p.ChannelID
	f.perChan[p.ChannelID]++
	f.unrecorded[p.ChannelID]++
}

// finish is called by the recorder after the results of ids are committed.
func (f *flight) finish(ids []uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.finished = append(f.finished, ids...)
	for _, id := range ids {
		if ch, ok := f.busyIDs[id]; ok {
			if f.unrecorded[ch]--; f.unrecorded[ch] <= 0 {
				delete(f.unrecorded, ch)
			}
		}
	}
}

func (f *flight) release() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range f.finished {
		if ch, ok := f.busyIDs[id]; ok {
			delete(f.busyIDs, id)
			if f.perChan[ch]--; f.perChan[ch] <= 0 {
				delete(f.perChan, ch)
			}
		}
	}
	f.finished = f.finished[:0]
}

// idle reports whether nothing is in flight (after a release).
func (f *flight) idle() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.busyIDs) == 0
}

// sleepCtx waits d; false if ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// raiseTo sets a to v if v is larger; workers lower a at the same time
// (a send that got no answer is taken back).
func raiseTo(a *atomic.Int64, v int64) {
	for c := a.Load(); c < v && !a.CompareAndSwap(c, v); c = a.Load() {
	}
}
