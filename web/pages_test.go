package web_test

// Bounded reads (issue 15): listings paged with limit and cursor and a
// Link header, over real HTTP against a real bbolt file.

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/store"
	"github.com/tilecast/tilecast/web"
)

// nextLinkRE is a Link header announcing a next page, as GitHub writes it.
var nextLinkRE = regexp.MustCompile(`^<([^>]+)>; rel="next"$`)

// walk follows a listing from path through its Link headers with key
// (hdr adds headers) and returns every page's items; between, when set,
// runs before each next page. It checks on the way that each page is a
// JSON array of at most limit items, that every Link keeps the request's
// other parameters and that only the last page lacks one.
func walk(t *testing.T, e *pagedEnv, path, key string, limit int, between func(), hdr ...string) []json.RawMessage {
	t.Helper()
	var all []json.RawMessage
	first, err := url.Parse(path)
	if err != nil {
		t.Fatal(err)
	}
	for pages := 0; ; pages++ {
		a := e.do(t, http.MethodGet, path, key, "", hdr...)
		if a.code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, a.code, a.body)
		}
		var items []json.RawMessage
		if err := json.Unmarshal(a.body, &items); err != nil || items == nil {
			t.Fatalf("GET %s: not a JSON array (%v): %.200s", path, err, a.body)
		}
		if len(items) > limit {
			t.Fatalf("GET %s: %d items, limit %d", path, len(items), limit)
		}
		all = append(all, items...)
		links := a.hdr.Values("Link")
		if len(links) == 0 {
			return all
		}
		m := nextLinkRE.FindStringSubmatch(links[0])
		if len(links) != 1 || m == nil {
			t.Fatalf("GET %s: Link %q, want one <URL>; rel=\"next\"", path, links)
		}
		if len(items) < limit {
			t.Errorf("GET %s: a short page (%d of %d) announces a next one", path, len(items), limit)
		}
		next, err := url.Parse(m[1])
		if err != nil || next.IsAbs() || next.Path != first.Path {
			t.Fatalf("Link URL %q: want a relative URL of %s (%v)", m[1], first.Path, err)
		}
		q, fq := next.Query(), first.Query()
		if q.Get("cursor") == "" || q.Get("limit") != fmt.Sprint(limit) {
			t.Fatalf("Link URL %q: want a cursor and limit=%d", m[1], limit)
		}
		for k := range fq {
			if k != "cursor" && k != "limit" && !slices.Equal(q[k], fq[k]) {
				t.Errorf("Link URL %q lost %s=%v", m[1], k, fq[k])
			}
		}
		if pages > 10_000 {
			t.Fatal("paging does not end")
		}
		if between != nil {
			between()
		}
		path = m[1]
	}
}

// pagedEnv is an accessEnv filled with channels, ledger entries and dead
// letters.
type pagedEnv struct {
	*accessEnv
	chans []tilecast.Channel // in ID order
	ana   []string           // IDs of ana's channels, in order
	dead  int
}

func newPagedEnv(t *testing.T) *pagedEnv {
	t.Helper()
	e := &pagedEnv{accessEnv: newAccessEnv(t, roleKeys, func(o *web.Options) {
		o.RatePerSecond, o.Burst = 1e6, 1e6 // a page per record is many requests
	})}
	db := e.db
	now := time.Now()
	var recs []tilecast.Record
	for i := range 157 {
		user := ""
		if i%4 == 0 {
			user = "ana"
		}
		ch, _, err := db.AddChannel(tilecast.Channel{URI: fmt.Sprintf("https://db3.notify.live.net/x/%d", i), User: user})
		if err != nil {
			t.Fatal(err)
		}
		e.chans = append(e.chans, ch)
		if user != "" {
			e.ana = append(e.ana, ch.ID)
		}
		for j, feed := range []string{"news", "weather", "news"} {
			recs = append(recs, tilecast.Record{ID: uint64(1e6 + 10*i + j), Op: tilecast.OpDone, Sent: true, Outcome: tilecast.Outcome{
				Time: now.Add(-time.Duration(3-j) * time.Hour), ChannelID: ch.ID, Feed: feed,
				ItemID: fmt.Sprintf("%s/%d", ch.ID, j), Action: tilecast.ActionDelivered}})
		}
	}
	if err := db.Record(recs); err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(e.chans, func(a, b tilecast.Channel) int { return strings.Compare(a.ID, b.ID) })
	slices.Sort(e.ana)
	// Dead letters: entries of the first channel given up on.
	e.dead = 31
	var ns []tilecast.Notification
	for i := range e.dead {
		ns = append(ns, tilecast.Notification{ChannelID: e.chans[0].ID, Feed: "news", ItemID: fmt.Sprint("d", i),
			Kind: tilecast.KindToast, Payload: []byte("<toast/>")})
	}
	if err := db.Enqueue(ns); err != nil {
		t.Fatal(err)
	}
	due, err := db.Due(now.Add(time.Hour), e.dead, nil)
	if err != nil || len(due) != e.dead {
		t.Fatalf("due: %d, %v", len(due), err)
	}
	recs = recs[:0]
	for _, p := range due {
		recs = append(recs, tilecast.Record{ID: p.ID, Due: p.NextAttempt, Op: tilecast.OpDead, Outcome: tilecast.Outcome{Action: tilecast.ActionFailed}})
	}
	if err := db.Record(recs); err != nil {
		t.Fatal(err)
	}
	return e
}

// ids decodes each item into v and returns key(v).
func ids[T any](t *testing.T, items []json.RawMessage, key func(T) string) []string {
	t.Helper()
	out := make([]string, len(items))
	for i, raw := range items {
		var v T
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Fatalf("item %d: %v", i, err)
		}
		out[i] = key(v)
	}
	return out
}

func chanID(ch tilecast.Channel) string { return ch.ID }
func itemID(o tilecast.Outcome) string  { return o.ItemID }
func deadID(d store.DeadLetter) string  { return d.Notification.ItemID }

// TestListingsPageThroughLinks: each listing, followed through its Link
// headers at several page sizes, returns every record exactly once, in
// the store's order, with the filters kept from page to page.
func TestListingsPageThroughLinks(t *testing.T) {
	e := newPagedEnv(t)
	allOutcomes, err := e.db.Outcomes("", "", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	// The store's order: by channel, then time.
	slices.SortStableFunc(allOutcomes, func(a, b tilecast.Outcome) int {
		if c := strings.Compare(a.ChannelID, b.ChannelID); c != 0 {
			return c
		}
		return a.Time.Compare(b.Time)
	})
	outcomesWhere := func(keep func(o tilecast.Outcome) bool) []string {
		var out []string
		for _, o := range allOutcomes {
			if keep(o) {
				out = append(out, o.ItemID)
			}
		}
		return out
	}
	cutoff := time.Now().Add(-150 * time.Minute)
	dead, err := e.db.DeadLetters(0)
	if err != nil || len(dead) != e.dead {
		t.Fatalf("dead letters: %d, %v", len(dead), err)
	}
	var wantDead []string
	for _, d := range dead {
		wantDead = append(wantDead, deadID(d))
	}
	target := e.chans[5]
	var allIDs []string
	for _, ch := range e.chans {
		allIDs = append(allIDs, ch.ID)
	}
	tests := []struct {
		name, path string
		key        func(t *testing.T, items []json.RawMessage) []string
		want       []string
		hdr        []string
		apiKey     string
	}{
		{"channels", "/v1/channels", func(t *testing.T, it []json.RawMessage) []string { return ids(t, it, chanID) },
			allIDs, nil, adminKey},
		{"ana's channels", "/v1/channels?user=ana", func(t *testing.T, it []json.RawMessage) []string { return ids(t, it, chanID) },
			e.ana, nil, adminKey},
		{"outcomes", "/v1/outcomes?since=240h", func(t *testing.T, it []json.RawMessage) []string { return ids(t, it, itemID) },
			outcomesWhere(func(tilecast.Outcome) bool { return true }), nil, adminKey},
		{"news outcomes since", "/v1/outcomes?feed=news&since=" + url.QueryEscape(cutoff.Format(time.RFC3339)),
			func(t *testing.T, it []json.RawMessage) []string { return ids(t, it, itemID) },
			outcomesWhere(func(o tilecast.Outcome) bool { return o.Feed == "news" && !o.Time.Before(cutoff.Truncate(time.Second)) }), nil, adminKey},
		{"a channel's outcomes (app key)", "/v1/channels/" + target.ID + "/outcomes",
			func(t *testing.T, it []json.RawMessage) []string { return ids(t, it, itemID) },
			outcomesWhere(func(o tilecast.Outcome) bool { return o.ChannelID == target.ID }),
			[]string{"X-Channel-URI", target.URI}, appKey},
		{"dead letters", "/v1/deadletters", func(t *testing.T, it []json.RawMessage) []string { return ids(t, it, deadID) },
			wantDead, nil, adminKey},
	}
	for _, tc := range tests {
		if len(tc.want) < 2 {
			t.Fatalf("%s: setup gives %d records; the test needs pages", tc.name, len(tc.want))
		}
		for _, limit := range []int{1, 2, 7, 100, 1000} {
			t.Run(fmt.Sprintf("%s/limit=%d", tc.name, limit), func(t *testing.T) {
				sep := "?"
				if strings.Contains(tc.path, "?") {
					sep = "&"
				}
				items := walk(t, e, tc.path+sep+"limit="+fmt.Sprint(limit), tc.apiKey, limit, nil, tc.hdr...)
				if got := tc.key(t, items); !slices.Equal(got, tc.want) {
					t.Errorf("got %d records, want %d in order\ngot  %.300v\nwant %.300v", len(got), len(tc.want), got, tc.want)
				}
			})
		}
		t.Run(tc.name+"/default limit", func(t *testing.T) {
			a := e.do(t, http.MethodGet, tc.path, tc.apiKey, "", tc.hdr...)
			var items []json.RawMessage
			if err := json.Unmarshal(a.body, &items); a.code != 200 || err != nil {
				t.Fatalf("%d %v", a.code, err)
			}
			if want := min(len(tc.want), tilecast.DefaultPageLimit); len(items) != want {
				t.Errorf("without limit: %d items, want %d", len(items), want)
			}
			if hasNext := a.hdr.Get("Link") != ""; hasNext != (len(tc.want) > tilecast.DefaultPageLimit) {
				t.Errorf("without limit: Link %q with %d records", a.hdr.Get("Link"), len(tc.want))
			}
		})
	}
}

// Registrations between pages: every channel that existed when the
// listing started comes exactly once; new ones may or may not.
func TestChannelsPagingWithInserts(t *testing.T) {
	e := newPagedEnv(t)
	n := 0
	items := walk(t, e, "/v1/channels?limit=10", adminKey, 10, func() {
		for range 3 {
			n++
			e.register(t, fmt.Sprintf("https://db3.notify.live.net/new/%d", n))
		}
	})
	got := ids(t, items, chanID)
	count := map[string]int{}
	for _, id := range got {
		count[id]++
	}
	for id, c := range count {
		if c > 1 {
			t.Errorf("channel %s listed %d times", id, c)
		}
	}
	for _, ch := range e.chans {
		if count[ch.ID] != 1 {
			t.Errorf("channel %s, there before the listing, listed %d times", ch.ID, count[ch.ID])
		}
	}
	if !slices.IsSorted(got) {
		t.Error("channels are not in ID order")
	}
}

// Bad limits and cursors are 400 with an error naming the parameter,
// never a 500 or a page from elsewhere.
func TestListingsRefuseBadLimitAndCursor(t *testing.T) {
	e := newPagedEnv(t)
	a := e.do(t, http.MethodGet, "/v1/outcomes?limit=2", adminKey, "")
	m := nextLinkRE.FindStringSubmatch(a.hdr.Get("Link"))
	if a.code != 200 || m == nil {
		t.Fatalf("first page: %d, Link %q", a.code, a.hdr.Get("Link"))
	}
	next, _ := url.Parse(m[1])
	good := next.Query().Get("cursor")
	raw, err := base64.RawURLEncoding.DecodeString(good)
	if err != nil {
		t.Fatalf("cursor %q is not base64url: %v", good, err)
	}
	tampered := func(i int) string {
		b := slices.Clone(raw)
		b[i] ^= 0x20
		return base64.RawURLEncoding.EncodeToString(b)
	}
	a = e.do(t, http.MethodGet, "/v1/channels?limit=2", adminKey, "")
	cm := nextLinkRE.FindStringSubmatch(a.hdr.Get("Link"))
	if cm == nil {
		t.Fatalf("channels first page: Link %q", a.hdr.Get("Link"))
	}
	cnext, _ := url.Parse(cm[1])
	chanCursor := cnext.Query().Get("cursor")
	// A cursor from one channel's ledger, tried on another channel by an
	// app key that holds the other channel.
	own, other := e.chans[1], e.chans[2]
	a = e.do(t, http.MethodGet, "/v1/channels/"+other.ID+"/outcomes?limit=1", adminKey, "")
	om := nextLinkRE.FindStringSubmatch(a.hdr.Get("Link"))
	if om == nil {
		t.Fatalf("channel outcomes first page: Link %q", a.hdr.Get("Link"))
	}
	onext, _ := url.Parse(om[1])
	otherCursor := onext.Query().Get("cursor")

	tests := []struct {
		path  string
		key   string
		hdr   []string
		param string
	}{
		{"/v1/outcomes?limit=0", adminKey, nil, "limit"},
		{"/v1/outcomes?limit=-5", adminKey, nil, "limit"},
		{"/v1/outcomes?limit=1001", adminKey, nil, "limit"},
		{"/v1/outcomes?limit=ten", adminKey, nil, "limit"},
		{"/v1/outcomes?limit=1.5", adminKey, nil, "limit"},
		{"/v1/outcomes?limit=99999999999999999999999", adminKey, nil, "limit"},
		{"/v1/outcomes?limit=5&limit=6", adminKey, nil, "limit"},
		{"/v1/channels?limit=", adminKey, nil, "limit"},
		{"/v1/deadletters?limit=2000", adminKey, nil, "limit"},
		{"/v1/outcomes?cursor=garbage!!", adminKey, nil, "cursor"},
		{"/v1/outcomes?cursor=" + good[:len(good)-2], adminKey, nil, "cursor"},
		{"/v1/outcomes?cursor=" + tampered(3), adminKey, nil, "cursor"},
		{"/v1/outcomes?cursor=" + tampered(len(raw)-1), adminKey, nil, "cursor"},
		{"/v1/outcomes?cursor=" + strings.Repeat("A", 5000), adminKey, nil, "cursor"},
		{"/v1/outcomes?cursor=" + chanCursor, adminKey, nil, "cursor"},
		{"/v1/outcomes?cursor=a&cursor=b", adminKey, nil, "cursor"},
		{"/v1/channels?cursor=" + good, adminKey, nil, "cursor"},
		{"/v1/deadletters?cursor=" + good, adminKey, nil, "cursor"},
		{"/v1/channels/" + own.ID + "/outcomes?cursor=" + otherCursor, appKey, []string{"X-Channel-URI", own.URI}, "cursor"},
		{"/v1/channels/" + own.ID + "/outcomes?cursor=" + good, adminKey, nil, "cursor"},
	}
	for _, tc := range tests {
		t.Run(tc.path[:min(len(tc.path), 80)], func(t *testing.T) {
			a := e.do(t, http.MethodGet, tc.path, tc.key, "", tc.hdr...)
			var eb struct {
				Error string `json:"error"`
			}
			if a.code != http.StatusBadRequest || json.Unmarshal(a.body, &eb) != nil || !strings.HasPrefix(eb.Error, tc.param) {
				t.Errorf("%d %s; want 400 with an error about %s", a.code, a.body, tc.param)
			}
			if a.hdr.Get("Link") != "" {
				t.Errorf("an error answer with a Link header %q", a.hdr.Get("Link"))
			}
		})
	}
	// The good cursors still work where they belong.
	for _, p := range []string{"/v1/outcomes?cursor=" + good, "/v1/channels?cursor=" + chanCursor,
		"/v1/channels/" + other.ID + "/outcomes?cursor=" + otherCursor} {
		if a := e.do(t, http.MethodGet, p, adminKey, ""); a.code != http.StatusOK {
			t.Errorf("GET %s: %d %s", p, a.code, a.body)
		}
	}
}
