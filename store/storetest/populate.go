package storetest

import (
	"bytes"
	"cmp"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
)

// Populate fills db, through its public methods at clk's times, with a
// state that has one of everything a store keeps: channels of every
// transport (Web Push keys and expiry), users, devices (one rotated),
// feed lists; global and per-user feed states, one broken; seen sets with
// a long and an odd item ID; waiting toasts, tiles and raw entries,
// retried and postponed ones, delivered tiles and a badge (last tiles),
// a waiting badge, a channel
// told to wait; dead letters; ledger entries, some of a removed channel
// and an expiry; a paged delivery half done. State copies are tested on
// it (tilecast state copy).
func Populate(t testing.TB, db Backend, clk *Clock) {
	t.Helper()
	add := func(ch tilecast.Channel) tilecast.Channel {
		t.Helper()
		clk.Add(time.Second)
		return addChannel(t, db, ch)
	}
	var chs []tilecast.Channel
	for i := range 12 {
		ch := tilecast.Channel{URI: fmt.Sprintf("http://127.0.0.1/p/%02d", i)}
		switch i % 4 {
		case 0:
			ch.Feeds = []string{"news"}
		case 1:
			ch.User, ch.Feeds = "ana", []string{"inbox", "news"}
		case 2:
			ch.User, ch.Device = "bob", fmt.Sprint("dev", i)
		}
		chs = append(chs, add(ch))
	}
	wp := add(tilecast.Channel{URI: "https://127.0.0.1/push/wp", Transport: tilecast.TransportWebPush, User: "ana",
		Keys:    &tilecast.PushKeys{P256DH: bytes.Repeat([]byte{4}, 65), Auth: bytes.Repeat([]byte{7}, 16)},
		Expires: clk.Now().Add(30 * 24 * time.Hour)})
	wns := add(tilecast.Channel{URI: "https://wns2-par02p.notify.windows.com/w/?token=AwY", Transport: tilecast.TransportWNS, Feeds: []string{"news"}})
	chs = append(chs, wp, wns)
	gone := add(tilecast.Channel{URI: "http://127.0.0.1/p/gone", Feeds: []string{"news"}})

	news := tilecast.FeedKey{Feed: "news"}
	inbox := tilecast.FeedKey{Feed: "inbox", User: "ana"}
	long := strings.Repeat("L", 3000)
	st := tilecast.FeedState{Validators: tilecast.Validators{ETag: `"e1"`, LastModified: "Sun, 01 Mar 2026 11:00:00 GMT"},
		Baselined: true, LastFetch: clk.Now(), LastResult: "ok", LastSuccess: clk.Now(), Title: "News", Link: "http://127.0.0.1/news",
		SeenRefreshed: clk.Now(), Latest: &tilecast.TemplateData{Feed: tilecast.FeedInfo{Name: "news", Title: "News"}, NewCount: 2,
			Item:  tilecast.Item{ID: "n2", Title: "Two", Published: clk.Now()},
			Items: []tilecast.Item{{ID: "n2", Title: "Two", Published: clk.Now()}, {ID: "n1", Title: "One"}}}}
	var ns []tilecast.Notification
	for i, ch := range chs {
		ns = append(ns, toast(ch, "news", fmt.Sprint("n", i)), tile(ch, "news", fmt.Sprint("tile ", i%3)))
	}
	ns = append(ns, toast(gone, "news", "g1"), badge(wns, "news", "badge 2"))
	raw := tilecast.Notification{ChannelID: chs[1].ID, Feed: "inbox", User: "ana", ItemID: "odd\x00\xff", Kind: tilecast.KindRaw,
		Payload: []byte{0, 1, 0xfe, 0xff}, Created: clk.Now().Add(-time.Hour), NextAttempt: clk.Now().Add(time.Minute)}
	must(t, db.Commit(tilecast.Commit{Key: news, State: st, Seen: []string{"n1", "n2", long, "odd\x00\xff"}, Now: clk.Now(), Notifications: ns}))
	clk.Add(time.Minute)
	must(t, db.Commit(tilecast.Commit{Key: inbox, State: tilecast.FeedState{Baselined: true, LastResult: "ok"}, Seen: []string{"i1"},
		Now: clk.Now(), Notifications: []tilecast.Notification{raw}}))
	must(t, db.SaveFeedState(tilecast.FeedKey{Feed: "weather"}, tilecast.FeedState{LastResult: "http 500: down", Failures: 9,
		FailingSince: clk.Now().Add(-48 * time.Hour), Broken: true, NextFetch: clk.Now().Add(time.Hour)}))
	must(t, db.SaveFeedState(tilecast.FeedKey{Feed: "inbox", User: "bob"}, tilecast.FeedState{Broken: true}))

	// Results: delivered (tiles become last tiles), retried, postponed
	// with a wait, dead, expired, the removal of a channel.
	clk.Add(time.Minute)
	ps, err := db.Due(clk.Now(), 1000, nil)
	if err != nil {
		t.Fatal(err)
	}
	var recs []tilecast.Record
	for i, p := range ps {
		o := tilecast.Outcome{ChannelID: p.ChannelID, Feed: p.Feed, ItemID: p.ItemID, Kind: p.Kind, Status: 200,
			Notification: "Received", Subscription: "Active", Device: "Connected", Attempt: p.Attempts + 1,
			Duration: 12 * time.Millisecond, Time: clk.Now(), Transport: p.Channel.Transport}
		r := tilecast.Record{ID: p.ID, Due: p.NextAttempt, Sent: true}
		switch {
		case p.ChannelID == gone.ID:
			r.Op, o.Action, o.Status = tilecast.OpRemoveChannel, tilecast.ActionChannelRemoved, 404
		case p.Kind == tilecast.KindTile && i%3 != 0, p.Kind == tilecast.KindBadge:
			r.Op, o.Action = tilecast.OpDone, tilecast.ActionDelivered
		case i%5 == 0:
			r.Op, o.Action, o.Status, o.Error = tilecast.OpDead, tilecast.ActionFailed, 400, "bad request"
		case i%5 == 1:
			r.Op, r.NextAttempt, o.Action, o.Status, o.RetryIn = tilecast.OpRetry, clk.Now().Add(4*time.Minute), tilecast.ActionRetry, 503, 4*time.Minute
		case i%5 == 2:
			r.Op, r.Sent, r.NextAttempt, r.ChannelWaitUntil = tilecast.OpPostpone, false, clk.Now().Add(61*time.Minute), clk.Now().Add(61*time.Minute)
		case i%5 == 3:
			r.Op, r.Sent, o.Action, o.Status, o.Notification, o.Subscription, o.Device = tilecast.OpExpire, false, tilecast.ActionExpired, 0, "", "", ""
		default:
			continue // waits
		}
		r.Outcome = o
		recs = append(recs, r)
	}
	must(t, db.Record(recs))
	// A newer badge waits (the delivered one is its channel's last badge).
	must(t, db.Enqueue([]tilecast.Notification{badge(wns, "news", "badge 3")}))

	// A device rotates to a new URI: its channel keeps its entries, loses
	// its last tiles.
	clk.Add(time.Minute)
	if _, _, err := db.AddChannel(tilecast.Channel{URI: "http://127.0.0.1/p/02-new", User: "bob", Device: "dev2"}); err != nil {
		t.Fatal(err)
	}

	// A paged delivery of "sports" with one page done.
	clk.Add(time.Minute)
	job := tilecast.FanOutJob{Feed: "sports", Info: tilecast.FeedInfo{Name: "sports", Title: "Sports"},
		Fresh: []tilecast.Item{{ID: "s1", Title: "Goal", Published: clk.Now()}}, Now: clk.Now()}
	must(t, db.Commit(tilecast.Commit{Key: tilecast.FeedKey{Feed: "sports"}, State: tilecast.FeedState{Baselined: true},
		Seen: []string{"s1"}, Now: clk.Now(), FanOut: &job}))
	page, next, err := db.SubscribersAfter(&tilecast.Feed{Name: "sports"}, "", 3)
	if err != nil || next == "" {
		t.Fatalf("SubscribersAfter = %d, %q, %v", len(page), next, err)
	}
	var pageNs []tilecast.Notification
	for _, ch := range page {
		n := toast(ch, "sports", "s1")
		n.Created = job.Now
		pageNs = append(pageNs, n)
	}
	job.Cursor = next
	must(t, db.FanOutStep(job, "", pageNs, false))
}

// Snapshot is every listing of a state, in a canonical order, for
// comparing two states.
type Snapshot struct {
	Channels   []tilecast.Channel
	FeedStates map[tilecast.FeedKey]tilecast.FeedState
	Outbox     []tilecast.Pending
	Dead       []tilecast.DeadLetter
	Ledger     []tilecast.Outcome
	Jobs       []tilecast.FanOutJob
	Counts     tilecast.Counts
	Unseen     map[tilecast.FeedKey][]string // of SeenProbes
	Subscribed map[string][]string           // feed → subscriber IDs (Subscribers, FeedUsers)
	Expired    []string                      // IDs of the channels that expire (ExpiredChannels), by expiry
}

// SeenProbes are the item IDs Snapshot asks each feed's seen set about.
var SeenProbes = []string{"n1", "n2", strings.Repeat("L", 3000), "odd\x00\xff", "i1", "s1", "nope"}

// Take reads every listing of db.
func Take(t testing.TB, db Backend) Snapshot {
	t.Helper()
	var s Snapshot
	var err error
	if s.Channels, err = db.Channels(""); err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(s.Channels, func(a, b tilecast.Channel) int { return cmp.Compare(a.ID, b.ID) })
	if s.FeedStates, err = db.FeedStates(); err != nil {
		t.Fatal(err)
	}
	s.Outbox = mustDue(t, db, farFuture)
	slices.SortFunc(s.Outbox, func(a, b tilecast.Pending) int { return cmp.Compare(a.ID, b.ID) })
	if s.Dead, err = db.DeadLetters(0); err != nil {
		t.Fatal(err)
	}
	if s.Ledger, err = db.Outcomes("", "", time.Time{}); err != nil {
		t.Fatal(err)
	}
	if s.Jobs, err = db.FanOutJobs(); err != nil {
		t.Fatal(err)
	}
	if s.Counts, err = db.Counts(); err != nil {
		t.Fatal(err)
	}
	s.Unseen = map[tilecast.FeedKey][]string{}
	for k := range s.FeedStates {
		if s.Unseen[k], err = db.Unseen(k, SeenProbes); err != nil {
			t.Fatal(err)
		}
	}
	s.Subscribed = map[string][]string{}
	for _, f := range []tilecast.Feed{{Name: "news"}, {Name: "sports"}} {
		subs, err := db.Subscribers(&f, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, ch := range subs {
			s.Subscribed[f.Name] = append(s.Subscribed[f.Name], ch.ID)
		}
		slices.Sort(s.Subscribed[f.Name])
	}
	users, err := db.FeedUsers("inbox")
	if err != nil {
		t.Fatal(err)
	}
	s.Subscribed["inbox users"] = users
	expiring, err := db.ExpiredChannels(farFuture, tilecast.MaxPageLimit)
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range expiring {
		s.Expired = append(s.Expired, ch.ID)
	}
	return s
}

// Diff describes how two snapshots differ ("" when they are equal).
func (s Snapshot) Diff(o Snapshot) string {
	var out []string
	a, b := reflect.ValueOf(s), reflect.ValueOf(o)
	for i := range a.NumField() {
		x, y := a.Field(i).Interface(), b.Field(i).Interface()
		if reflect.DeepEqual(x, y) {
			continue
		}
		name := a.Type().Field(i).Name
		if xa, ok := sliceOf(a.Field(i)); ok {
			ya, _ := sliceOf(b.Field(i))
			if len(xa) != len(ya) {
				out = append(out, fmt.Sprintf("%s: %d vs %d", name, len(xa), len(ya)))
				continue
			}
			for j := range xa {
				if !reflect.DeepEqual(xa[j], ya[j]) {
					out = append(out, fmt.Sprintf("%s[%d]:\n  %+v\n  %+v", name, j, xa[j], ya[j]))
					break
				}
			}
			continue
		}
		out = append(out, fmt.Sprintf("%s:\n  %+v\n  %+v", name, x, y))
	}
	return strings.Join(out, "\n")
}

func sliceOf(v reflect.Value) ([]any, bool) {
	if v.Kind() != reflect.Slice {
		return nil, false
	}
	out := make([]any, v.Len())
	for i := range out {
		out[i] = v.Index(i).Interface()
	}
	return out, true
}
