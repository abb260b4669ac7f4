package store

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
)

// normFeedState is st as a binary round trip returns it: times as plain
// UTC instants, an empty Items as nil (see feedcodec.go).
func normFeedState(st tilecast.FeedState) tilecast.FeedState {
	utc := func(t *time.Time) {
		if t.IsZero() {
			*t = time.Time{}
		} else {
			*t = t.Round(0).UTC()
		}
	}
	for _, t := range []*time.Time{&st.LastFetch, &st.LastSuccess, &st.FailingSince, &st.NextFetch, &st.SeenRefreshed} {
		utc(t)
	}
	if st.Latest != nil {
		l := *st.Latest
		utc(&l.Item.Published)
		if len(l.Items) == 0 {
			l.Items = nil
		} else {
			l.Items = slices.Clone(l.Items)
			for i := range l.Items {
				utc(&l.Items[i].Published)
			}
		}
		st.Latest = &l
	}
	return st
}

// The version 1 layout, byte by byte, as feedcodec.go documents it.
func TestEncodeFeedStateGolden(t *testing.T) {
	st := tilecast.FeedState{
		Validators: tilecast.Validators{ETag: `"e"`, LastModified: "lm"},
		Baselined:  true, LastFetch: time.Unix(2, 0), LastResult: "ok", Failures: -1,
		Title: "T", SeenRefreshed: time.Unix(3, 7),
		Latest: &tilecast.TemplateData{Feed: tilecast.FeedInfo{Name: "n"}, Item: tilecast.Item{ID: "i"},
			Items: []tilecast.Item{{Title: "x"}}, NewCount: 1, User: "u"},
	}
	want := slices.Concat(
		[]byte{1},                             // version
		[]byte("\x03\"e\"\x02lm"),             // ETag, LastModified
		[]byte{feedBaselined | feedHasLatest}, // flags
		[]byte{1, 4, 0},                       // LastFetch
		[]byte("\x02ok"),                      // LastResult
		[]byte{0},                             // LastSuccess
		[]byte{1},                             // Failures -1
		[]byte{0, 0},                          // FailingSince, NextFetch
		[]byte("\x01T\x00"),                   // Title, Link
		[]byte{1, 6, 7},                       // SeenRefreshed
		[]byte("\x01n\x00\x00"),               // Feed
		[]byte("\x01i\x00\x00\x00\x00\x00"),   // Item
		[]byte{1},                             // one item
		[]byte("\x00\x01x\x00\x00\x00\x00"),   // Items[0]
		[]byte{2},                             // NewCount 1
		[]byte("\x01u"),                       // User
	)
	if got := encodeFeedState(&st); !bytes.Equal(got, want) {
		t.Fatalf("encodeFeedState =\n% x\nwant\n% x", got, want)
	}
}

func randFeedState(r *rand.Rand) tilecast.FeedState {
	g := codecGen{r}
	str, tm := g.str, g.time
	item := func() tilecast.Item {
		return tilecast.Item{ID: str(), Title: str(), Link: str(), Summary: str(), Published: tm(), Image: str()}
	}
	st := tilecast.FeedState{
		Validators: tilecast.Validators{ETag: str(), LastModified: str()},
		Baselined:  r.IntN(2) == 0, LastFetch: tm(), LastResult: str(), LastSuccess: tm(),
		Failures: g.int(), FailingSince: tm(), Broken: r.IntN(2) == 0, NextFetch: tm(),
		Title: str(), Link: str(), SeenRefreshed: tm(),
	}
	if r.IntN(3) > 0 {
		l := &tilecast.TemplateData{Feed: tilecast.FeedInfo{Name: str(), Title: str(), Link: str()},
			Item: item(), NewCount: r.IntN(50), User: str()}
		for range r.IntN(4) {
			l.Items = append(l.Items, item())
		}
		st.Latest = l
	}
	return st
}

func TestFeedStateRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	cases := []tilecast.FeedState{{}, {Latest: &tilecast.TemplateData{}}}
	for range 500 {
		cases = append(cases, randFeedState(r))
	}
	for i, st := range cases {
		enc := encodeFeedState(&st)
		got, err := decodeFeedState(enc)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if want := normFeedState(st); !reflect.DeepEqual(got, want) {
			t.Fatalf("case %d: round trip\n%+v\nwant\n%+v", i, got, want)
		}
		if again := encodeFeedState(&got); !bytes.Equal(again, enc) {
			t.Fatalf("case %d: re-encoding differs", i)
		}
	}
}

// Feed states written as JSON before the binary record still read, and
// read the same after being rewritten.
func TestDecodeFeedStateJSON(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 5, time.FixedZone("", -3600))
	full := tilecast.FeedState{
		Validators: tilecast.Validators{ETag: `"v1"`, LastModified: "Sun, 01 Mar 2026 10:00:00 GMT"},
		Baselined:  true, LastFetch: at, LastResult: "ok", LastSuccess: at.Add(-time.Hour), Failures: 3,
		FailingSince: at.Add(-2 * time.Hour), Broken: true, NextFetch: at.Add(time.Hour),
		Title: "Ünïcode", Link: "https://e/", SeenRefreshed: at,
		Latest: &tilecast.TemplateData{Feed: tilecast.FeedInfo{Name: "news", Title: "News", Link: "https://e/"},
			Item:  tilecast.Item{ID: "g1", Title: "One", Published: time.Date(2026, 3, 1, 1, 0, 0, 0, time.UTC)},
			Items: []tilecast.Item{{ID: "g1"}, {ID: "g0", Image: "https://e/i.png"}}, NewCount: 2, User: "ana"},
	}
	marshalled, err := json.Marshal(&full)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		rec  string
		want tilecast.FeedState
	}{
		{"marshalled", string(marshalled), full},
		// Verbatim as the JSON encoder wrote it.
		{"verbatim", `{"ETag":"\"x\"","LastModified":"Sun, 01 Mar 2026 10:00:00 GMT","baselined":true,` +
			`"last_fetch":"2026-03-01T12:00:00+01:00","last_result":"ok","failures":2,"next_fetch":"2026-03-01T13:00:00Z",` +
			`"title":"T","seen_refreshed":"2026-03-01T11:00:00Z","latest":{"Feed":{"Name":"n","Title":"T","Link":""},` +
			`"Item":{"ID":"i","Title":"t","Link":"l","Summary":"s","Published":"2026-03-01T10:00:00Z","Image":""},` +
			`"Items":null,"NewCount":1,"User":""}}`,
			tilecast.FeedState{Validators: tilecast.Validators{ETag: `"x"`, LastModified: "Sun, 01 Mar 2026 10:00:00 GMT"},
				Baselined: true, LastFetch: time.Date(2026, 3, 1, 11, 0, 0, 0, time.UTC), LastResult: "ok", Failures: 2,
				NextFetch: time.Date(2026, 3, 1, 13, 0, 0, 0, time.UTC), Title: "T",
				SeenRefreshed: time.Date(2026, 3, 1, 11, 0, 0, 0, time.UTC),
				Latest: &tilecast.TemplateData{Feed: tilecast.FeedInfo{Name: "n", Title: "T"},
					Item:     tilecast.Item{ID: "i", Title: "t", Link: "l", Summary: "s", Published: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)},
					NewCount: 1}}},
		{"minimal", `{"baselined":false}`, tilecast.FeedState{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeFeedState([]byte(tt.rec))
			if err != nil {
				t.Fatal(err)
			}
			want := normFeedState(tt.want)
			if !reflect.DeepEqual(normFeedState(got), want) {
				t.Fatalf("decodeFeedState =\n%+v\nwant\n%+v", got, want)
			}
			bin, err := decodeFeedState(encodeFeedState(&got))
			if err != nil || !reflect.DeepEqual(bin, want) {
				t.Fatalf("after re-encoding: %+v, %v", bin, err)
			}
		})
	}
}

func TestDecodeFeedStateErrors(t *testing.T) {
	valid := encodeFeedState(&tilecast.FeedState{Baselined: true, Latest: &tilecast.TemplateData{NewCount: 1}})
	// Up to the flags byte: version, ETag "", LastModified "".
	head := []byte{1, 0, 0}
	tests := []decodeErrCase{
		{"empty", nil, ": empty"},
		{"unknown version", append([]byte{2}, valid[1:]...), "unknown version 2"},
		{"bad json", []byte(`{"baselined":`), "unexpected end of JSON input"},
		{"json wrong type", []byte(`{"failures":"x"}`), "cannot unmarshal string"},
		{"version only", []byte{feedStateV1}, "truncated varint at byte 1"},
		{"truncated", valid[:len(valid)-1], "truncated varint"},
		{"trailing byte", append(bytes.Clone(valid), 0), "trailing bytes"},
		{"unknown flag", slices.Concat(head, []byte{8}, valid[4:]), "unknown flags"},
		{"bad time tag", slices.Concat(head, []byte{0, 9}), "bad time tag at byte 5"},
		{"huge item count", slices.Concat(head, []byte{feedHasLatest, 0, 0, 0, 0, 0, 0, 0, 0, 0},
			[]byte{0, 0, 0}, []byte{0, 0, 0, 0, 0, 0}, []byte{0xff, 0xff, 0xff, 0xff, 0x0f}), "item count past end"},
	}
	testDecodeErrors(t, "feed state", decodeFeedState, tests)
}

// A state file whose feed states are JSON works without a migration: the
// state reads, and the next save writes it in binary.
func TestOldJSONFeedStateInStore(t *testing.T) {
	db, _ := mustOpen(t)
	k := tilecast.FeedKey{Feed: "news"}
	fk, err := feedKey(k)
	if err != nil {
		t.Fatal(err)
	}
	old := tilecast.FeedState{Validators: tilecast.Validators{ETag: `"a"`}, Baselined: true, Title: "News",
		LastFetch: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
		Latest:    &tilecast.TemplateData{Feed: tilecast.FeedInfo{Name: "news"}, NewCount: 3}}
	v, err := json.Marshal(&old)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.update(func(b *buckets) error { return b.feedState.Put(fk, v) }); err != nil {
		t.Fatal(err)
	}
	got, ok, err := db.FeedState(k)
	if err != nil || !ok || !reflect.DeepEqual(got, normFeedState(old)) {
		t.Fatalf("FeedState = %+v, %v, %v; want %+v", got, ok, err, old)
	}
	all, err := db.FeedStates()
	if err != nil || !reflect.DeepEqual(all[k], normFeedState(old)) {
		t.Fatalf("FeedStates = %+v, %v", all, err)
	}
	got.Failures = 1
	if err := db.SaveFeedState(k, got); err != nil {
		t.Fatal(err)
	}
	var raw []byte
	if err := db.view(func(b *buckets) error { raw = bytes.Clone(b.feedState.Get(fk)); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(raw) == 0 || raw[0] != feedStateV1 {
		t.Fatalf("saved record starts % x, want the binary version", raw[:min(len(raw), 4)])
	}
	again, _, err := db.FeedState(k)
	if err != nil || !reflect.DeepEqual(again, got) {
		t.Fatalf("after save: %+v, %v; want %+v", again, err, got)
	}
}

func FuzzDecodeFeedState(f *testing.F) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 6 {
		st := randFeedState(r)
		f.Add(encodeFeedState(&st))
	}
	f.Add(encodeFeedState(&tilecast.FeedState{}))
	f.Add([]byte(`{"ETag":"x","baselined":true,"last_fetch":"2026-03-01T12:00:00+02:00","latest":{"Items":[]}}`))
	f.Add([]byte{1, 0, 0, feedHasLatest, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0x0f})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := decodeFeedState(data)
		if err != nil {
			return
		}
		enc := encodeFeedState(&st)
		if data[0] == feedStateV1 {
			if !bytes.Equal(enc, data) {
				t.Fatalf("re-encoded\n% x\nfrom\n% x", enc, data)
			}
			return
		}
		again, err := decodeFeedState(enc)
		if err != nil || !reflect.DeepEqual(again, normFeedState(st)) {
			t.Fatalf("JSON record %q: binary round trip = %+v, %v; want %+v", data, again, err, normFeedState(st))
		}
	})
}

func BenchmarkDecodeFeedState(b *testing.B) {
	// A typical feed after a 200 with one new item.
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	st := tilecast.FeedState{
		Validators: tilecast.Validators{ETag: `"5f2c-1a9b"`, LastModified: "Sun, 01 Mar 2026 11:58:00 GMT"},
		Baselined:  true, LastFetch: at, LastResult: "ok", LastSuccess: at, NextFetch: at.Add(15 * time.Minute),
		Title: "Bench news", Link: "https://example.org/", SeenRefreshed: at,
	}
	st.Latest = &tilecast.TemplateData{Feed: tilecast.FeedInfo{Name: "news", Title: "Bench news", Link: "https://example.org/"},
		Item: tilecast.Item{ID: "https://example.org/1/2", Title: "Feed 1 item 2 with a typical headline length",
			Link: "https://example.org/1/2", Summary: "Summary of item 2, a paragraph of text as feeds carry it.",
			Published: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}, NewCount: 1}
	benchDecode(b, st, encodeFeedState, decodeFeedState)
}
