package store

import (
	"bytes"
	"errors"
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

// The version 2 layout, byte by byte, as feedcodec.go and tlv.go
// document it.
func TestEncodeFeedStateGolden(t *testing.T) {
	st := tilecast.FeedState{
		Validators: tilecast.Validators{ETag: `"e"`, LastModified: "lm"},
		Baselined:  true, LastFetch: time.Unix(2, 0), LastResult: "ok", Failures: -1,
		Title: "T", SeenRefreshed: time.Unix(3, 7),
		Latest: &tilecast.TemplateData{Feed: tilecast.FeedInfo{Name: "n"}, Item: tilecast.Item{ID: "i"},
			Items: []tilecast.Item{{Title: "x"}, {}}, NewCount: 1, User: "u"},
	}
	want := slices.Concat(
		[]byte{2},                           // version
		[]byte("\x01\x03\"e\"\x02\x02lm"),   // 1 ETag, 2 LastModified
		[]byte{3, 1, 1},                     // 3 Baselined (4 Broken: false, left out)
		[]byte{5, 2, 4, 0},                  // 5 LastFetch
		[]byte("\x06\x02ok"),                // 6 LastResult
		[]byte{8, 1, 1},                     // 8 Failures -1
		[]byte("\x0b\x01T"),                 // 11 Title
		[]byte{13, 2, 6, 7},                 // 13 SeenRefreshed
		[]byte{14, 21},                      // 14 Latest, 21 bytes:
		[]byte("\x01\x01n"),                 //   1 Feed.Name
		[]byte("\x04\x03\x01\x01i"),         //   4 Item: 1 ID
		[]byte("\x05\x05\x03\x02\x01x\x00"), //   5 Items: one of 3 bytes (2 Title), one empty
		[]byte{6, 1, 2},                     //   6 NewCount 1
		[]byte("\x07\x01u"),                 //   7 User
	)
	if got := encodeFeedState(&st); !bytes.Equal(got, want) {
		t.Fatalf("encodeFeedState =\n% x\nwant\n% x", got, want)
	}
	if got, err := decodeFeedState(want); err != nil || !reflect.DeepEqual(got, normFeedState(st)) {
		t.Fatalf("decodeFeedState = %+v, %v", got, err)
	}
	// An empty Latest is present, and empty.
	empty := encodeFeedState(&tilecast.FeedState{Latest: &tilecast.TemplateData{}})
	if !bytes.Equal(empty, []byte{2, 14, 0}) {
		t.Errorf("empty Latest = % x", empty)
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

func TestDecodeFeedStateErrors(t *testing.T) {
	tests := []decodeErrCase{
		{"empty", nil, ": empty"},
		{"unknown version", []byte{1, 0, 0}, "unknown version 1"},
		{"json", []byte(`{"baselined":true}`), "unknown version 123"},
		{"bool not 0 or 1", []byte{2, 3, 1, 2}, "field 3: bad record: bool is not 0 or 1"},
		{"truncated", []byte{2, 5, 2, 4}, "length past end"},
		{"latest past end", []byte{2, 14, 3, 1, 5, 'n'}, "field 14: bad record: field 1: length past end"},
		{"item list past end", []byte{2, 14, 4, 5, 2, 9, 0}, "length past end"},
		{"bad item", []byte{2, 14, 7, 5, 5, 4, 2, 0, 1, 0}, "field 1 after field 2"},
		{"out of order", []byte{2, 2, 0, 1, 0}, "field 1 after field 2"},
	}
	testDecodeErrors(t, "feed state", decodeFeedState, tests)
}

// A feed state keeps the fields a newer tilecast wrote through saves.
func TestFeedStateUnknownFields(t *testing.T) {
	db, _ := mustOpen(t)
	k := tilecast.FeedKey{Feed: "news"}
	fk, _ := feedKey(k)
	if err := db.SaveFeedState(k, tilecast.FeedState{Baselined: true}); err != nil {
		t.Fatal(err)
	}
	extra := []byte{40, 1, 7}
	if err := db.update(func(b *buckets) error {
		return b.feedState.Put(fk, slices.Concat(b.feedState.Get(fk), extra))
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.SaveFeedState(k, tilecast.FeedState{Baselined: true, Broken: true}); err != nil {
		t.Fatal(err)
	}
	if err := db.Commit(tilecast.Commit{Key: k, State: tilecast.FeedState{Baselined: true, Title: "T"}}); err != nil {
		t.Fatal(err)
	}
	var raw []byte
	if err := db.view(func(b *buckets) error { raw = bytes.Clone(b.feedState.Get(fk)); return nil }); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(raw, extra) {
		t.Errorf("record = % x, lost % x", raw, extra)
	}
	if st, _, err := db.FeedState(k); err != nil || st.Title != "T" || st.Broken {
		t.Errorf("FeedState = %+v, %v", st, err)
	}
}

func FuzzDecodeFeedState(f *testing.F) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 6 {
		st := randFeedState(r)
		f.Add(encodeFeedState(&st))
	}
	f.Add(encodeFeedState(&tilecast.FeedState{}))
	f.Add([]byte{2, 14, 7, 5, 5, 4, 2, 0, 1, 0})
	f.Add([]byte{2, 14, 4, 5, 2, 0, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := decodeFeedState(data)
		if err != nil {
			if !errors.Is(err, errRecord) {
				t.Fatalf("error %v is not errRecord", err)
			}
			return
		}
		enc := encodeFeedState(&st)
		again, err := decodeFeedState(enc)
		if err != nil || !reflect.DeepEqual(again, normFeedState(st)) {
			t.Fatalf("re-encoded: %+v, %v; want %+v", again, err, normFeedState(st))
		}
		if twice := encodeFeedState(&again); !bytes.Equal(twice, enc) {
			t.Fatalf("not a fixed point:\n% x\n% x", enc, twice)
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
