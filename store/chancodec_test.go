package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
)

// codecSame compares a decoded channel with the one that was encoded:
// strings byte for byte, times as instants, an empty Feeds as nil (see
// chancodec.go for what a round trip keeps).
func codecSame(got, want tilecast.Channel) bool {
	sameTime := func(a, b time.Time) bool { return a.Equal(b) }
	wantTransport := want.Transport
	if wantTransport == "" {
		wantTransport = tilecast.TransportMPNS // what a record without one reads as
	}
	sameKeys := (got.Keys == nil) == (want.Keys == nil)
	if sameKeys && got.Keys != nil {
		sameKeys = bytes.Equal(got.Keys.P256DH, want.Keys.P256DH) && bytes.Equal(got.Keys.Auth, want.Keys.Auth) &&
			(got.Keys.P256DH == nil) == (len(want.Keys.P256DH) == 0) && (got.Keys.Auth == nil) == (len(want.Keys.Auth) == 0)
	}
	return got.Transport == wantTransport && sameKeys && sameTime(got.Expires, want.Expires) &&
		got.ID == want.ID && got.URI == want.URI && got.User == want.User &&
		slices.Equal(got.Feeds, want.Feeds) && (got.Feeds == nil) == (len(want.Feeds) == 0) &&
		got.Device == want.Device && sameTime(got.Created, want.Created) &&
		got.LastOutcome == want.LastOutcome && sameTime(got.LastOutcomeAt, want.LastOutcomeAt) &&
		got.FailureStreak == want.FailureStreak && sameTime(got.NextAllowedAt, want.NextAllowedAt) &&
		got.SendsDay == want.SendsDay && got.SendsToday == want.SendsToday
}

// codecUTCTimes reports whether every time of a binary-decoded channel is the
// zero Time or a plain UTC one (no location, no monotonic reading), so
// == on decoded channels behaves like Equal.
func codecUTCTimes(ch tilecast.Channel) bool {
	for _, t := range []time.Time{ch.Created, ch.LastOutcomeAt, ch.NextAllowedAt, ch.Expires} {
		if t != t.Round(0).UTC() {
			return false
		}
	}
	return true
}

// The version 2 layout, byte by byte, as chancodec.go and tlv.go document
// it. A change to the shared helpers that altered the bytes would make
// existing records unreadable; this catches it.
func TestEncodeChannelGolden(t *testing.T) {
	ch := tilecast.Channel{
		ID: "ab", URI: "http://h", User: "u", Feeds: []string{"n", "é"},
		Created:       time.Unix(1, 5),
		LastOutcome:   "retry",
		FailureStreak: -2,
		NextAllowedAt: time.Unix(300, 0),
		SendsDay:      "2026-03-01", SendsToday: 64,
	}
	want := slices.Concat(
		[]byte{2},                    // version
		[]byte("\x01\x02ab"),         // 1 ID
		[]byte("\x02\x08http://h"),   // 2 URI
		[]byte("\x03\x01u"),          // 3 User
		[]byte("\x04\x05\x01n\x02é"), // 4 Feeds: 5 bytes, each length-prefixed
		[]byte{6, 2, 2, 5},           // 6 Created: zigzag(1) s, 5 ns (Device "" left out)
		[]byte("\x07\x05retry"),      // 7 LastOutcome (LastOutcomeAt zero: left out)
		[]byte{9, 1, 3},              // 9 FailureStreak: zigzag(-2)
		[]byte{10, 3, 0xd8, 0x04, 0}, // 10 NextAllowedAt: zigzag(300) = 600, 0 ns
		[]byte("\x0b\x0a2026-03-01"), // 11 SendsDay
		[]byte{12, 2, 0x80, 0x01},    // 12 SendsToday: zigzag(64) = 128
	)
	got := encodeChannel(&ch)
	if !bytes.Equal(got, want) {
		t.Fatalf("encodeChannel =\n% x\nwant\n% x", got, want)
	}
	dec, err := decodeChannel(want)
	if err != nil || !codecSame(dec, ch) || !codecUTCTimes(dec) {
		t.Fatalf("decodeChannel = %+v, %v; want %+v", dec, err, ch)
	}
	if empty := encodeChannel(&tilecast.Channel{}); !bytes.Equal(empty, []byte{channelV2}) {
		t.Errorf("empty channel = % x, want the version byte alone", empty)
	}
	// An MPNS channel is stored like one without a transport.
	if mpns := encodeChannel(&tilecast.Channel{Transport: tilecast.TransportMPNS}); !bytes.Equal(mpns, []byte{channelV2}) {
		t.Errorf("MPNS channel = % x, want the version byte alone", mpns)
	}

	// The transport fields, after the rest.
	wp := tilecast.Channel{ID: "w", Transport: tilecast.TransportWebPush,
		Keys:    &tilecast.PushKeys{P256DH: []byte{0x04, 0xaa}, Auth: []byte{0x10}},
		Expires: time.Unix(3, 0)}
	want = slices.Concat(
		[]byte{2},                 // version
		[]byte("\x01\x01w"),       // 1 ID
		[]byte("\x0d\x07webpush"), // 13 Transport
		[]byte{14, 7, 1, 2, 0x04, 0xaa, 2, 1, 0x10}, // 14 Keys: 1 P256DH, 2 Auth
		[]byte{15, 2, 6, 0},                         // 15 Expires
	)
	if got := encodeChannel(&wp); !bytes.Equal(got, want) {
		t.Fatalf("Web Push channel =\n% x\nwant\n% x", got, want)
	}
	if dec, err := decodeChannel(want); err != nil || !codecSame(dec, wp) {
		t.Fatalf("decodeChannel = %+v, %v; want %+v", dec, err, wp)
	}
	// Keys present but empty stay keys.
	if dec, err := decodeChannel([]byte{2, 14, 0}); err != nil || dec.Keys == nil || dec.Keys.P256DH != nil {
		t.Errorf("empty keys = %+v, %v", dec.Keys, err)
	}
}

// A channel record without a transport (every channel stored before
// transports) reads as MPNS. What the store does with transports is the
// conformance suite's (storetest ChannelTransport).
func TestChannelTransport(t *testing.T) {
	if ch, err := decodeChannel([]byte{2, 1, 1, 'a'}); err != nil || ch.Transport != tilecast.TransportMPNS {
		t.Errorf("record without transport = %+v, %v; want mpns", ch, err)
	}
}

// randCodecChannel makes a channel with each field drawn from edge cases and
// random values: zero values, unicode and invalid UTF-8, nil, empty and
// long feed lists, zero, UTC, zoned and monotonic times, extreme ints.
func randCodecChannel(r *rand.Rand) tilecast.Channel {
	g := codecGen{r}
	str, tm, num := g.str, g.time, g.int
	ch := tilecast.Channel{
		ID: str(), URI: str(), User: str(), Device: str(),
		Created: tm(), LastOutcome: str(), LastOutcomeAt: tm(),
		FailureStreak: num(), NextAllowedAt: tm(), SendsDay: str(), SendsToday: num(),
		Transport: []tilecast.Transport{"", tilecast.TransportMPNS, tilecast.TransportWNS, tilecast.TransportWebPush, "future"}[r.IntN(5)],
		Expires:   tm(),
	}
	switch r.IntN(4) {
	case 0:
		ch.Keys = &tilecast.PushKeys{}
	case 1:
		ch.Keys = &tilecast.PushKeys{P256DH: []byte(str()), Auth: []byte(str())}
	}
	switch r.IntN(4) {
	case 0: // nil
	case 1:
		ch.Feeds = []string{}
	default:
		for range 1 + r.IntN(20) {
			ch.Feeds = append(ch.Feeds, str())
		}
	}
	return ch
}

func TestChannelRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	cases := []tilecast.Channel{{}, {Feeds: []string{}}, {Feeds: []string{""}}}
	for range 3000 {
		cases = append(cases, randCodecChannel(r))
	}
	for i, ch := range cases {
		enc := encodeChannel(&ch)
		if enc[0] == '{' {
			t.Fatalf("case %d: record starts with '{'", i)
		}
		keep := bytes.Clone(enc)
		got, err := decodeChannel(enc)
		if err != nil {
			t.Fatalf("case %d: %v\n%+v", i, err, ch)
		}
		// The decoded channel must not share memory with bbolt's value.
		for j := range enc {
			enc[j] = 0xAA
		}
		if !codecSame(got, ch) || !codecUTCTimes(got) {
			t.Fatalf("case %d: round trip\n got %+v\nwant %+v", i, got, ch)
		}
		if again := encodeChannel(&got); !bytes.Equal(again, keep) {
			t.Fatalf("case %d: re-encoding differs", i)
		}
	}
}

func TestDecodeChannelErrors(t *testing.T) {
	valid := encodeChannel(&tilecast.Channel{ID: "a", URI: "u", Created: time.Unix(5, 0)})
	// valid: 02, 01 01 'a', 02 01 'u', 06 02 0a 00.
	tests := []decodeErrCase{
		{"empty", nil, ": empty"},
		{"unknown version", append([]byte{9}, valid[1:]...), "unknown version 9"},
		{"json", []byte(`{"id":"a"}`), "unknown version 123"},
		{"truncated", valid[:len(valid)-1], "field 6: length past end"},
		{"truncated head", []byte{2, 1}, "truncated varint at byte 2"},
		{"trailing byte in field", []byte{2, 6, 3, 0x0a, 0, 0}, "field 6: bad record: trailing bytes in field"},
		{"length past end", []byte{2, 1, 5, 'a'}, "field 1: length past end"},
		{"tag 0", []byte{2, 0, 0}, "field tag 0"},
		{"tags out of order", []byte{2, 2, 1, 'u', 1, 1, 'a'}, "field 1 after field 2"},
		{"tag twice", []byte{2, 1, 1, 'a', 1, 1, 'b'}, "field 1 after field 1"},
		{"overlong tag", []byte{2, 0x81, 0x00, 0}, "overlong varint at byte 3"},
		{"overlong int", []byte{2, 9, 2, 0x81, 0x00}, "field 9: bad record: overlong varint"},
		{"varint overflow", slices.Concat([]byte{2, 9, 11}, bytes.Repeat([]byte{0xff}, 11)), "varint overflow"},
		{"feed past end", []byte{2, 4, 2, 5, 'a'}, "field 4: bad record: length past end"},
		{"nanoseconds out of range", []byte{2, 6, 6, 0, 0x80, 0x94, 0xeb, 0xdc, 0x03}, "nanoseconds out of range"},
	}
	testDecodeErrors(t, "channel", decodeChannel, tests)
}

// Fields a newer tilecast wrote are skipped on read and kept when this one
// rewrites the record.
func TestChannelUnknownFields(t *testing.T) {
	ch := tilecast.Channel{ID: "a", URI: "http://127.0.0.1/a", Created: time.Unix(5, 0).UTC()}
	rec := encodeChannel(&ch)
	// Tag 90 (after every known tag) and tag 100 with a nested value.
	future := slices.Concat(rec, []byte{90, 3, 'n', 'e', 'w'}, []byte{100, 2, 1, 0})
	got, err := decodeChannel(future)
	if err != nil || !codecSame(got, ch) {
		t.Fatalf("decodeChannel(with unknown fields) = %+v, %v", got, err)
	}
	got.SendsToday = 3
	again := withUnknown(encodeChannel(&got), future, chanKnown)
	want := slices.Concat(encodeChannel(&got), []byte{90, 3, 'n', 'e', 'w'}, []byte{100, 2, 1, 0})
	if !bytes.Equal(again, want) {
		t.Fatalf("rewritten =\n% x\nwant\n% x", again, want)
	}
	// An unknown tag between known ones keeps its place.
	mid := slices.Concat([]byte{channelV2, 1, 1, 'a'}, []byte{2, 0}, []byte{3, 1, 'u'}) // tag 2 empty: still known
	if got := withUnknown([]byte{channelV2, 1, 1, 'b'}, mid, func(tag uint64) bool { return tag != 2 }); !bytes.Equal(got,
		[]byte{channelV2, 1, 1, 'b', 2, 0}) {
		t.Errorf("merged = % x", got)
	}
	// Nothing unknown: the fresh record as it is.
	fresh := encodeChannel(&got)
	if out := withUnknown(fresh, rec, chanKnown); &out[0] != &fresh[0] {
		t.Error("withUnknown copied a record with nothing to keep")
	}

	// In the store: a record with an unknown field keeps it through the
	// rewrites of Record and AddChannel.
	db, clk := mustOpen(t)
	a := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/a"})
	extra := []byte{99, 4, 'k', 'e', 'e', 'p'}
	if err := db.update(func(b *buckets) error {
		return b.channels.Put([]byte(a.ID), slices.Concat(b.channels.Get([]byte(a.ID)), extra))
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Record([]tilecast.Record{{ID: 1, Op: tilecast.OpDone, Sent: true,
		Outcome: tilecast.Outcome{ChannelID: a.ID, Action: tilecast.ActionDelivered, Time: clk.Now()}}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.AddChannel(tilecast.Channel{URI: a.URI, User: "u"}); err != nil {
		t.Fatal(err)
	}
	raw := rawChannelRecord(t, db, a.ID)
	if !bytes.HasSuffix(raw, extra) {
		t.Errorf("record after two rewrites = % x, lost % x", raw, extra)
	}
	if got, err := db.Channel(a.ID); err != nil || got.User != "u" || got.SendsToday != 1 {
		t.Errorf("Channel = %+v, %v", got, err)
	}
}

// decodeErrCase is a malformed record and what its decode error must say.
type decodeErrCase struct {
	name string
	rec  []byte
	msg  string // in the error
}

// testDecodeErrors checks that dec (decodeChannel, decodeOutcome, ...)
// refuses every record with an error that names the record (what) and the
// problem, and fails with errRecord.
func testDecodeErrors[T any](t *testing.T, what string, dec func([]byte) (T, error), tests []decodeErrCase) {
	t.Helper()
	testDecodeErrorsOf(t, what, dec, tests, false)
}

// testDecodeErrorsOf is testDecodeErrors; with readsJSON (the decoders of
// old forms) a record starting with '{' fails with JSON's error instead.
func testDecodeErrorsOf[T any](t *testing.T, what string, dec func([]byte) (T, error), tests []decodeErrCase, readsJSON bool) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := dec(tt.rec)
			if err == nil {
				t.Fatalf("decode %s(% x) = %+v, want an error", what, tt.rec, v)
			}
			if !strings.Contains(err.Error(), tt.msg) || !strings.HasPrefix(err.Error(), "decode "+what+": ") {
				t.Errorf("error %q, want \"decode %s: ...%s...\"", err, what, tt.msg)
			}
			if binary := !readsJSON || len(tt.rec) == 0 || tt.rec[0] != '{'; binary != errors.Is(err, errRecord) {
				t.Errorf("errors.Is(%v, errRecord) = %v, want %v", err, !binary, binary)
			}
		})
	}
}

// rawChannelRecord returns the stored record of channel id.
func rawChannelRecord(tb testing.TB, db *DB, id string) []byte {
	tb.Helper()
	var v []byte
	if err := db.view(func(b *buckets) error {
		v = bytes.Clone(b.channels.Get([]byte(id)))
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
	if v == nil {
		tb.Fatalf("channel %s has no record", id)
	}
	return v
}

// FuzzDecodeChannel: decoding never panics, and whatever decodes is a
// fixed point after one rewrite: the re-encoded record decodes to the same
// channel and re-encodes to itself; a record with nothing but known,
// non-zero fields re-encodes to the same bytes.
func FuzzDecodeChannel(f *testing.F) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 8 {
		ch := randCodecChannel(r)
		if len(ch.Feeds) > 3 {
			ch.Feeds = ch.Feeds[:3]
		}
		f.Add(encodeChannel(&ch))
	}
	f.Add(encodeChannel(&tilecast.Channel{}))
	f.Add([]byte{2, 4, 2, 5, 'a'})
	f.Add([]byte{2, 6, 6, 0, 0x80, 0x94, 0xeb, 0xdc, 0x03})
	f.Add([]byte{2, 1, 1, 'a', 90, 2, 1, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		ch, err := decodeChannel(data)
		if err != nil {
			if len(data) > 0 && data[0] == channelV2 && !errors.Is(err, errRecord) {
				t.Fatalf("error %v is not errRecord", err)
			}
			return
		}
		if data[0] != channelV2 {
			return // an old form (migrate_old_test.go fuzzes those)
		}
		if !codecUTCTimes(ch) {
			t.Fatalf("times not plain UTC: %+v", ch)
		}
		enc := encodeChannel(&ch)
		again, err := decodeChannel(enc)
		if err != nil || !codecSame(again, ch) {
			t.Fatalf("re-encoded record decodes to %+v, %v; want %+v", again, err, ch)
		}
		if twice := encodeChannel(&again); !bytes.Equal(twice, enc) {
			t.Fatalf("not a fixed point:\n% x\n% x", enc, twice)
		}
	})
}

// codecBenchChannel is a typical registration with some delivery history.
func codecBenchChannel() tilecast.Channel {
	at := time.Date(2026, 3, 1, 12, 34, 56, 789e6, time.UTC)
	return tilecast.Channel{
		ID:   "9e3779b97f4a7c15",
		URI:  "https://db3.notify.live.net/throttledthirdparty/01.00/AQHgHh6EuwNJRSmBNMyIHOgOAgAAAAADAQAAAAQUZm52OkJCMjg1QTg1QkZDMkUxREQFBlVTU0MwMQ",
		User: "ana", Feeds: []string{"news", "inbox"}, Device: "lumia-920-ana",
		Created: at.Add(-90 * 24 * time.Hour), LastOutcome: "delivered", LastOutcomeAt: at,
		NextAllowedAt: at.Add(time.Hour), SendsDay: "2026-03-01", SendsToday: 12,
	}
}

func BenchmarkDecodeChannel(b *testing.B) {
	benchDecode(b, codecBenchChannel(), encodeChannel, decodeChannel)
}

func BenchmarkEncodeChannel(b *testing.B) { benchEncode(b, codecBenchChannel(), encodeChannel) }

// benchDecode compares decoding v's JSON form (what records were before
// binary ones) with its binary form, through dec.
func benchDecode[T any](b *testing.B, v T, enc func(*T) []byte, dec func([]byte) (T, error)) {
	js, err := json.Marshal(&v)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("json", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(js)))
		for b.Loop() {
			var x T
			if err := json.Unmarshal(js, &x); err != nil {
				b.Fatal(err)
			}
		}
	})
	rec := enc(&v)
	b.Run("binary", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(rec)))
		for b.Loop() {
			if _, err := dec(rec); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// benchEncode compares encoding v as JSON and with enc.
func benchEncode[T any](b *testing.B, v T, enc func(*T) []byte) {
	b.Run("json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(&v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("binary", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			enc(&v)
		}
	})
}
