package store

import (
	"bytes"
	"encoding/binary"
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
	return got.ID == want.ID && got.URI == want.URI && got.User == want.User &&
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
	for _, t := range []time.Time{ch.Created, ch.LastOutcomeAt, ch.NextAllowedAt} {
		if t != t.Round(0).UTC() {
			return false
		}
	}
	return true
}

// The version 1 layout, byte by byte, as chancodec.go documents it. A
// change to the shared helpers in codec.go that altered the bytes would
// make existing records unreadable; this catches it.
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
		[]byte{1},                // version
		[]byte("\x02ab"),         // ID
		[]byte("\x08http://h"),   // URI
		[]byte("\x01u"),          // User
		[]byte("\x02\x01n\x02é"), // Feeds: count, then each
		[]byte{0},                // Device ""
		[]byte{1, 2, 5},          // Created: tag, zigzag(1), 5 ns
		[]byte("\x05retry"),      // LastOutcome
		[]byte{0},                // LastOutcomeAt: zero
		[]byte{3},                // FailureStreak: zigzag(-2)
		[]byte{1, 0xd8, 0x04, 0}, // NextAllowedAt: zigzag(300) = 600, 0 ns
		[]byte("\x0a2026-03-01"), // SendsDay
		[]byte{0x80, 0x01},       // SendsToday: zigzag(64) = 128
	)
	got := encodeChannel(&ch)
	if !bytes.Equal(got, want) {
		t.Fatalf("encodeChannel =\n% x\nwant\n% x", got, want)
	}
	if cap(got) != len(got) {
		t.Errorf("cap = %d, len = %d: channelLen is not exact", cap(got), len(got))
	}
	dec, err := decodeChannel(want)
	if err != nil || !codecSame(dec, ch) || !codecUTCTimes(dec) {
		t.Fatalf("decodeChannel = %+v, %v; want %+v", dec, err, ch)
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
		if len(enc) != channelLen(&ch) {
			t.Fatalf("case %d: len %d, channelLen %d", i, len(enc), channelLen(&ch))
		}
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

// Records written the old way (json.Marshal of the Channel) keep reading.
func TestDecodeChannelJSON(t *testing.T) {
	full := tilecast.Channel{
		ID: "0123456789abcdef", URI: "https://db3.notify.live.net/x?a=1&b=2", User: "ana",
		Feeds: []string{"news", "inbox"}, Device: "phone-1",
		Created:     time.Date(2026, 3, 1, 12, 0, 0, 123, time.UTC),
		LastOutcome: "delivered", LastOutcomeAt: time.Date(2026, 3, 2, 1, 2, 3, 0, time.FixedZone("", 3600)),
		FailureStreak: 3, NextAllowedAt: time.Date(2026, 3, 2, 2, 0, 0, 0, time.UTC),
		SendsDay: "2026-03-02", SendsToday: 17,
	}
	marshalled, err := json.Marshal(&full)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		rec  string
		want tilecast.Channel
	}{
		{"marshalled", string(marshalled), full},
		// Verbatim as the JSON encoder wrote it, so a change to the
		// struct tags cannot silently drop old fields.
		{"verbatim", `{"id":"c1","uri":"http://127.0.0.1/a","user":"bo","feeds":["news"],"device":"d",` +
			`"created":"2026-03-01T12:00:00Z","last_outcome":"retry","last_outcome_at":"2026-03-01T13:00:00.5+01:00",` +
			`"failure_streak":2,"next_allowed_at":"2026-03-01T14:00:00Z","sends_day":"2026-03-01","sends_today":4}`,
			tilecast.Channel{ID: "c1", URI: "http://127.0.0.1/a", User: "bo", Feeds: []string{"news"}, Device: "d",
				Created: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), LastOutcome: "retry",
				LastOutcomeAt: time.Date(2026, 3, 1, 12, 0, 0, 5e8, time.UTC), FailureStreak: 2,
				NextAllowedAt: time.Date(2026, 3, 1, 14, 0, 0, 0, time.UTC), SendsDay: "2026-03-01", SendsToday: 4}},
		{"minimal", `{"id":"c2","uri":"http://127.0.0.1/b","created":"2026-03-01T12:00:00Z"}`,
			tilecast.Channel{ID: "c2", URI: "http://127.0.0.1/b", Created: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeChannel([]byte(tt.rec))
			if err != nil || !codecSame(got, tt.want) {
				t.Fatalf("decodeChannel = %+v, %v; want %+v", got, err, tt.want)
			}
			// Rewritten in binary it is still the same channel.
			bin, err := decodeChannel(encodeChannel(&got))
			if err != nil || !codecSame(bin, tt.want) {
				t.Fatalf("after re-encoding: %+v, %v", bin, err)
			}
		})
	}
}

func TestDecodeChannelErrors(t *testing.T) {
	valid := encodeChannel(&tilecast.Channel{ID: "a", URI: "u", Created: time.Unix(5, 0)})
	// valid ends: Device "" (00), Created 01 0a 00, LastOutcome 00,
	// LastOutcomeAt 00, streak 00, NextAllowedAt 00, SendsDay 00, today 00.
	tests := []decodeErrCase{
		{"empty", nil, ": empty"},
		{"unknown version", append([]byte{2}, valid[1:]...), "unknown version 2"},
		{"json array", []byte(`[1]`), "unknown version 91"},
		{"bad json", []byte(`{"id":`), "unexpected end of JSON input"},
		{"json wrong type", []byte(`{"failure_streak":"x"}`), "cannot unmarshal string"},
		{"version only", []byte{channelV1}, "truncated varint at byte 1"},
		{"truncated", valid[:len(valid)-1], "truncated varint"},
		{"trailing byte", append(bytes.Clone(valid), 0), "trailing bytes"},
		{"overlong string length", slices.Concat([]byte{1, 0x81, 0x00}, valid[2:]), "overlong varint at byte 3"},
		{"string past end", []byte{1, 0x7f, 'a'}, "length past end"},
		{"varint overflow", slices.Concat([]byte{1}, bytes.Repeat([]byte{0xff}, 10)), "varint overflow"},
		{"huge feed count", []byte{1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}, "feed count past end"},
		{"bad time tag", []byte{1, 0, 0, 0, 0, 0, 7}, "bad time tag at byte 7"},
		{"nanoseconds out of range", slices.Concat([]byte{1, 0, 0, 0, 0, 0, 1, 0, 0x80, 0x94, 0xeb, 0xdc, 0x03},
			make([]byte, 6)), "nanoseconds out of range"},
		{"zero time with tag 1", slices.Concat([]byte{1, 0, 0, 0, 0, 0, 1},
			binary.AppendVarint(nil, time.Time{}.Unix()), make([]byte, 7)), "zero time with tag 1"},
	}
	testDecodeErrors(t, "channel", decodeChannel, tests)
}

// decodeErrCase is a malformed record and what its decode error must say.
type decodeErrCase struct {
	name string
	rec  []byte
	msg  string // in the error
}

// testDecodeErrors checks that dec (decodeChannel, decodeOutcome, ...)
// refuses every record with an error that names the record (what) and the
// problem, and that binary records fail with errRecord.
func testDecodeErrors[T any](t *testing.T, what string, dec func([]byte) (T, error), tests []decodeErrCase) {
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
			if binary := len(tt.rec) == 0 || tt.rec[0] != '{'; binary != errors.Is(err, errRecord) {
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

// putJSONChannelRecord stores ch the way the store did before binary records.
func putJSONChannelRecord(tb testing.TB, db *DB, ch tilecast.Channel) {
	tb.Helper()
	v, err := json.Marshal(&ch)
	if err != nil {
		tb.Fatal(err)
	}
	if err := db.update(func(b *buckets) error { return b.channels.Put([]byte(ch.ID), v) }); err != nil {
		tb.Fatal(err)
	}
}

// A state file with JSON channel records works without a migration: every
// read path decodes them, and a channel is rewritten in binary when it
// changes.
func TestOldJSONChannelsInStore(t *testing.T) {
	db, clk := mustOpen(t)
	ana := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/ana", User: "ana", Feeds: []string{"news"}, Device: "p1"})
	bo := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/bo"})
	if v := rawChannelRecord(t, db, ana.ID); v[0] != channelV1 {
		t.Fatalf("new record starts with %q, want version byte %d", v[0], channelV1)
	}
	ana.LastOutcome, ana.FailureStreak, ana.SendsDay, ana.SendsToday = "retry", 2, "2026-03-01", 3
	putJSONChannelRecord(t, db, ana)
	putJSONChannelRecord(t, db, bo)
	if v := rawChannelRecord(t, db, ana.ID); v[0] != '{' {
		t.Fatalf("setup: record is not JSON: %q", v)
	}

	if got, err := db.Channel(ana.ID); err != nil || !codecSame(got, ana) {
		t.Errorf("Channel = %+v, %v; want %+v", got, err, ana)
	}
	if got, err := db.ChannelByURI(bo.URI); err != nil || !codecSame(got, bo) {
		t.Errorf("ChannelByURI = %+v, %v; want %+v", got, err, bo)
	}
	if all, err := db.Channels(""); err != nil || len(all) != 2 {
		t.Errorf("Channels = %d, %v; want 2", len(all), err)
	}
	news := &tilecast.Feed{Name: "news", URL: "http://127.0.0.1/news"}
	if subs, err := db.Subscribers(news, ""); err != nil || len(subs) != 2 {
		t.Errorf("Subscribers = %d, %v; want 2", len(subs), err)
	}
	// An unchanged re-registration writes nothing: the record stays JSON.
	if _, created, err := db.AddChannel(tilecast.Channel{URI: bo.URI}); err != nil || created {
		t.Fatalf("AddChannel = %v, %v", created, err)
	}
	if v := rawChannelRecord(t, db, bo.ID); v[0] != '{' {
		t.Errorf("unchanged channel was rewritten: % x", v)
	}

	if err := db.Enqueue([]tilecast.Notification{toast(ana, "news", "1")}); err != nil {
		t.Fatal(err)
	}
	ps, err := db.Due(clk.Now(), 10, nil)
	if err != nil || len(ps) != 1 || !codecSame(ps[0].Channel, ana) {
		t.Fatalf("Due = %+v, %v; want one entry for %+v", ps, err, ana)
	}
	at := clk.Now()
	if err := db.Record([]tilecast.Record{{ID: ps[0].ID, Due: ps[0].NextAttempt, Op: tilecast.OpDone, Sent: true,
		Outcome: tilecast.Outcome{ChannelID: ana.ID, Action: tilecast.ActionDelivered, Status: 200, Time: at}}}); err != nil {
		t.Fatal(err)
	}
	if v := rawChannelRecord(t, db, ana.ID); v[0] != channelV1 {
		t.Errorf("changed channel still JSON: %q", v)
	}
	want := ana
	want.LastOutcome, want.LastOutcomeAt, want.FailureStreak = "delivered", at, 0
	want.SendsToday = 4 // same UTC day: the count read from JSON goes on
	if got, err := db.Channel(ana.ID); err != nil || !codecSame(got, want) {
		t.Errorf("after Record: %+v, %v; want %+v", got, err, want)
	}

	// A changed registration rewrites; removal unindexes a JSON record.
	if _, _, err := db.AddChannel(tilecast.Channel{URI: bo.URI, User: "bo"}); err != nil {
		t.Fatal(err)
	}
	if v := rawChannelRecord(t, db, bo.ID); v[0] != channelV1 {
		t.Errorf("updated channel still JSON: %q", v)
	}
	putJSONChannelRecord(t, db, want)
	if err := db.RemoveChannel(ana.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ChannelByURI(ana.URI); !errors.Is(err, tilecast.ErrNotFound) {
		t.Errorf("ChannelByURI after remove = %v, want ErrNotFound", err)
	}
}

// FuzzDecodeChannel: decoding never panics, and whatever decodes is a
// fixed point — a binary record re-encodes to the same bytes, a JSON one
// to a binary record holding the same channel.
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
	f.Add([]byte(`{"id":"c1","uri":"http://127.0.0.1/a","feeds":["news"],"created":"2026-03-01T12:00:00+02:00","sends_today":4}`))
	f.Add([]byte(`{"created":"0001-01-01T00:00:00Z","last_outcome_at":"0001-01-01T00:00:00+01:00"}`))
	f.Add([]byte{1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte{1, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		ch, err := decodeChannel(data)
		if err != nil {
			return
		}
		enc := encodeChannel(&ch)
		if len(enc) != channelLen(&ch) {
			t.Fatalf("channelLen %d, encoded %d", channelLen(&ch), len(enc))
		}
		if data[0] == channelV1 {
			if !bytes.Equal(enc, data) {
				t.Fatalf("re-encoded\n% x\nfrom\n% x", enc, data)
			}
			if !codecUTCTimes(ch) {
				t.Fatalf("times not plain UTC: %+v", ch)
			}
			return
		}
		again, err := decodeChannel(enc)
		if err != nil || !codecSame(again, ch) {
			t.Fatalf("JSON record %q: binary round trip = %+v, %v; want %+v", data, again, err, ch)
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

// benchDecode compares decoding v's JSON form (the old records) with its
// binary form, through dec, which reads both.
func benchDecode[T any](b *testing.B, v T, enc func(*T) []byte, dec func([]byte) (T, error)) {
	js, err := json.Marshal(&v)
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		rec  []byte
	}{{"json", js}, {"binary", enc(&v)}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.rec)))
			for b.Loop() {
				if _, err := dec(bc.rec); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
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
