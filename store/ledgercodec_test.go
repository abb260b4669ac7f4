package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
)

// outcomeSame compares a decoded outcome with the one that was encoded:
// strings byte for byte, the time as an instant (see ledgercodec.go).
func outcomeSame(got, want tilecast.Outcome) bool {
	return got.Time.Equal(want.Time) && got.ChannelID == want.ChannelID && got.User == want.User &&
		got.Feed == want.Feed && got.ItemID == want.ItemID && got.Kind == want.Kind &&
		got.Status == want.Status && got.Notification == want.Notification &&
		got.Subscription == want.Subscription && got.Device == want.Device &&
		got.Action == want.Action && got.Attempt == want.Attempt &&
		got.RetryIn == want.RetryIn && got.Duration == want.Duration && got.Error == want.Error
}

// outcomeUTCTime reports whether a binary-decoded outcome's time is the
// zero Time or a plain UTC one (no location, no monotonic reading).
func outcomeUTCTime(o tilecast.Outcome) bool { return o.Time == o.Time.Round(0).UTC() }

// The version 1 layout, byte by byte, as ledgercodec.go documents it.
func TestEncodeOutcomeGolden(t *testing.T) {
	o := tilecast.Outcome{
		Time: time.Unix(1, 5), ChannelID: "ab", Feed: "news", ItemID: "é",
		Kind: tilecast.KindTile, Status: 503, Notification: "QueueFull", Subscription: "Active",
		Action: tilecast.ActionRetry, Attempt: 2, RetryIn: -3, Duration: 150 * time.Millisecond,
		Error: "x",
	}
	want := slices.Concat(
		[]byte{1},                            // version
		[]byte{1, 2, 5},                      // Time: tag, zigzag(1), 5 ns
		[]byte("\x02ab"),                     // ChannelID
		[]byte{0},                            // User ""
		[]byte("\x04news"),                   // Feed
		[]byte("\x02é"),                      // ItemID: two UTF-8 bytes
		[]byte("\x04tile"),                   // Kind
		[]byte{0xee, 0x07},                   // Status: zigzag(503) = 1006
		[]byte("\x09QueueFull"),              // Notification
		[]byte("\x06Active"),                 // Subscription
		[]byte{0},                            // Device ""
		[]byte("\x05retry"),                  // Action
		[]byte{4},                            // Attempt: zigzag(2)
		[]byte{5},                            // RetryIn: zigzag(-3 ns)
		[]byte{0x80, 0xc6, 0x86, 0x8f, 0x01}, // Duration: zigzag(150e6 ns) = 300e6
		[]byte("\x01x"),                      // Error
	)
	got := encodeOutcome(&o)
	if !bytes.Equal(got, want) {
		t.Fatalf("encodeOutcome =\n% x\nwant\n% x", got, want)
	}
	if cap(got) != len(got) {
		t.Errorf("cap = %d, len = %d: outcomeLen is not exact", cap(got), len(got))
	}
	var a arena
	if into := encodeOutcomeInto(&a, &o); !bytes.Equal(into, want) {
		t.Errorf("encodeOutcomeInto =\n% x\nwant\n% x", into, want)
	}
	dec, err := decodeOutcome(want)
	if err != nil || !outcomeSame(dec, o) || !outcomeUTCTime(dec) {
		t.Fatalf("decodeOutcome = %+v, %v; want %+v", dec, err, o)
	}
}

// randCodecOutcome makes an outcome with each field drawn from edge cases
// and random values: zero values, unicode and invalid UTF-8, zero, UTC,
// zoned and monotonic times, zero, negative and extreme durations and ints.
func randCodecOutcome(r *rand.Rand) tilecast.Outcome {
	g := codecGen{r}
	str, tm, num := g.str, g.time, g.int
	dur := func() time.Duration {
		switch r.IntN(7) {
		case 0, 1:
			return 0
		case 2:
			return -time.Duration(1 + r.Int64N(int64(time.Hour)))
		case 3:
			return math.MinInt64
		case 4:
			return math.MaxInt64
		default:
			return time.Duration(r.Int64N(int64(61 * time.Minute)))
		}
	}
	return tilecast.Outcome{
		Time: tm(), ChannelID: str(), User: str(), Feed: str(), ItemID: str(),
		Kind: tilecast.Kind(str()), Status: num(), Notification: str(), Subscription: str(),
		Device: str(), Action: tilecast.Action(str()), Attempt: num(),
		RetryIn: dur(), Duration: dur(), Error: str(),
	}
}

func TestOutcomeRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 17))
	cases := []tilecast.Outcome{{}, {RetryIn: -1, Duration: -1}, {Time: time.Unix(0, 0)}}
	for range 3000 {
		cases = append(cases, randCodecOutcome(r))
	}
	for i, o := range cases {
		enc := encodeOutcome(&o)
		if len(enc) != outcomeLen(&o) {
			t.Fatalf("case %d: len %d, outcomeLen %d", i, len(enc), outcomeLen(&o))
		}
		if enc[0] == '{' {
			t.Fatalf("case %d: value starts with '{'", i)
		}
		keep := bytes.Clone(enc)
		got, err := decodeOutcome(enc)
		if err != nil {
			t.Fatalf("case %d: %v\n%+v", i, err, o)
		}
		// The decoded outcome must not share memory with bbolt's value.
		for j := range enc {
			enc[j] = 0xAA
		}
		if !outcomeSame(got, o) || !outcomeUTCTime(got) {
			t.Fatalf("case %d: round trip\n got %+v\nwant %+v", i, got, o)
		}
		if again := encodeOutcome(&got); !bytes.Equal(again, keep) {
			t.Fatalf("case %d: re-encoding differs", i)
		}
	}
}

// Values written the old way (json.Marshal of the Outcome) keep reading.
func TestDecodeOutcomeJSON(t *testing.T) {
	full := tilecast.Outcome{
		Time:      time.Date(2026, 3, 1, 12, 0, 0, 123, time.FixedZone("", 3600)),
		ChannelID: "0123456789abcdef", User: "ana", Feed: "news", ItemID: "item-ü",
		Kind: tilecast.KindToast, Status: 200, Notification: "Received", Subscription: "Active",
		Device: "Connected", Action: tilecast.ActionDelivered, Attempt: 1,
		RetryIn: -time.Second, Duration: 87 * time.Millisecond, Error: "",
	}
	marshalled, err := json.Marshal(&full)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		rec  string
		want tilecast.Outcome
	}{
		{"marshalled", string(marshalled), full},
		// Verbatim as the JSON encoder wrote it, so a change to the
		// struct tags cannot silently drop old fields.
		{"verbatim", `{"time":"2026-03-01T13:00:00.5+01:00","channel":"c1","user":"bo","feed":"news",` +
			`"item":"i1","kind":"tile","status":503,"notification":"QueueFull","subscription":"Active",` +
			`"device":"TempDisconnected","outcome":"retry","attempt":2,"retry_in":60000000000,` +
			`"duration":1500000,"error":"503 Service Unavailable"}`,
			tilecast.Outcome{Time: time.Date(2026, 3, 1, 12, 0, 0, 5e8, time.UTC), ChannelID: "c1", User: "bo",
				Feed: "news", ItemID: "i1", Kind: tilecast.KindTile, Status: 503, Notification: "QueueFull",
				Subscription: "Active", Device: "TempDisconnected", Action: tilecast.ActionRetry, Attempt: 2,
				RetryIn: time.Minute, Duration: 1500 * time.Microsecond, Error: "503 Service Unavailable"}},
		{"minimal", `{"time":"2026-03-01T12:00:00Z","channel":"c2","feed":"f","kind":"raw","status":0,` +
			`"outcome":"failed","attempt":0,"duration":0}`,
			tilecast.Outcome{Time: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), ChannelID: "c2", Feed: "f",
				Kind: tilecast.KindRaw, Action: tilecast.ActionFailed}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeOutcome([]byte(tt.rec))
			if err != nil || !outcomeSame(got, tt.want) {
				t.Fatalf("decodeOutcome = %+v, %v; want %+v", got, err, tt.want)
			}
			bin, err := decodeOutcome(encodeOutcome(&got))
			if err != nil || !outcomeSame(bin, tt.want) {
				t.Fatalf("after re-encoding: %+v, %v", bin, err)
			}
		})
	}
}

func TestDecodeOutcomeErrors(t *testing.T) {
	valid := encodeOutcome(&tilecast.Outcome{ChannelID: "a"})
	// valid: 01, Time 00, ChannelID 01 'a', then 13 zero bytes (User, Feed,
	// ItemID, Kind, Status, Notification, Subscription, Device, Action,
	// Attempt, RetryIn, Duration, Error).
	tests := []decodeErrCase{
		{"empty", nil, ": empty"},
		{"unknown version", append([]byte{2}, valid[1:]...), "unknown version 2"},
		{"json array", []byte(`[1]`), "unknown version 91"},
		{"bad json", []byte(`{"channel":`), "unexpected end of JSON input"},
		{"json wrong type", []byte(`{"duration":"1s"}`), "cannot unmarshal string"},
		{"version only", []byte{outcomeV1}, "truncated at byte 1"},
		{"truncated", valid[:len(valid)-1], "truncated varint"},
		{"trailing byte", append(bytes.Clone(valid), 0), "trailing bytes"},
		{"overlong string length", []byte{1, 0, 0x81, 0x00}, "overlong varint at byte 4"},
		{"string past end", []byte{1, 0, 0x7f, 'a'}, "length past end"},
		{"varint overflow", slices.Concat([]byte{1, 0}, bytes.Repeat([]byte{0xff}, 10)), "varint overflow"},
		{"bad time tag", slices.Concat([]byte{1, 7}, valid[2:]), "bad time tag at byte 2"},
		{"nanoseconds out of range", slices.Concat([]byte{1, 1, 0, 0x80, 0x94, 0xeb, 0xdc, 0x03}, valid[2:]),
			"nanoseconds out of range"},
		{"zero time with tag 1", slices.Concat([]byte{1, 1}, binary.AppendVarint(nil, time.Time{}.Unix()), []byte{0}, valid[2:]),
			"zero time with tag 1"},
	}
	testDecodeErrors(t, "outcome", decodeOutcome, tests)
}

// ledgerValues returns the stored ledger values of channel id, in key order.
func ledgerValues(tb testing.TB, db *DB, id string) [][]byte {
	tb.Helper()
	var vs [][]byte
	if err := db.view(func(b *buckets) error {
		p := prefix(id)
		c := b.ledger.Cursor()
		for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
			vs = append(vs, bytes.Clone(v))
		}
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
	return vs
}

// putJSONLedgerValue stores o in chID's ledger the way Record did before
// binary values: json.Marshal, under the usual key.
func putJSONLedgerValue(tb testing.TB, db *DB, chID string, o tilecast.Outcome) {
	tb.Helper()
	v, err := json.Marshal(&o)
	if err != nil {
		tb.Fatal(err)
	}
	if err := db.update(func(b *buckets) error {
		seq, err := b.ledger.NextSequence()
		if err != nil {
			return err
		}
		k := binary.BigEndian.AppendUint64(prefix(chID), timeNanos(o.Time))
		return b.ledger.Put(binary.BigEndian.AppendUint64(k, seq), v)
	}); err != nil {
		tb.Fatal(err)
	}
}

// A state file with JSON ledger values works without a migration: Outcomes
// returns them next to binary ones, and Record's pruning counts them.
func TestOldJSONLedgerInStore(t *testing.T) {
	db, clk := mustOpen(t)
	ana := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/ana"})
	old := tilecast.Outcome{
		Time: clk.Now().Add(-time.Hour).In(time.FixedZone("", -5*3600)), ChannelID: ana.ID, Feed: "news",
		ItemID: "1", Kind: tilecast.KindToast, Status: 503, Notification: "QueueFull", Action: tilecast.ActionRetry,
		Attempt: 1, RetryIn: time.Minute, Duration: 20 * time.Millisecond, Error: "queue full",
	}
	putJSONLedgerValue(t, db, ana.ID, old)
	oldMail := old
	oldMail.Time, oldMail.Feed = old.Time.Add(time.Minute), "mail"
	putJSONLedgerValue(t, db, ana.ID, oldMail)

	at := clk.Now()
	sent := tilecast.Outcome{ChannelID: ana.ID, Feed: "news", ItemID: "1", Kind: tilecast.KindToast, Status: 200,
		Notification: "Received", Action: tilecast.ActionDelivered, Attempt: 2, Duration: 30 * time.Millisecond, Time: at}
	if err := db.Record([]tilecast.Record{{ID: 999, Op: tilecast.OpDone, Sent: true, Outcome: sent}}); err != nil {
		t.Fatal(err)
	}
	vs := ledgerValues(t, db, ana.ID)
	if len(vs) != 3 || vs[0][0] != '{' || vs[1][0] != '{' || vs[2][0] != outcomeV1 {
		t.Fatalf("ledger values = %q; want two JSON, then one starting with version byte %d", vs, outcomeV1)
	}

	got, err := db.Outcomes(ana.ID, "", time.Time{})
	if err != nil || len(got) != 3 || !outcomeSame(got[0], old) || !outcomeSame(got[1], oldMail) || !outcomeSame(got[2], sent) {
		t.Fatalf("Outcomes = %+v, %v; want %+v, %+v, %+v", got, err, old, oldMail, sent)
	}
	if got, err := db.Outcomes(ana.ID, "mail", time.Time{}); err != nil || len(got) != 1 || !outcomeSame(got[0], oldMail) {
		t.Errorf("Outcomes(mail) = %+v, %v; want the JSON one", got, err)
	}
	if got, err := db.Outcomes("", "news", old.Time); err != nil || len(got) != 2 || !outcomeSame(got[0], old) || !outcomeSame(got[1], sent) {
		t.Errorf("Outcomes(all, news) = %+v, %v", got, err)
	}

	// An unreadable value is reported, not skipped.
	if err := db.update(func(b *buckets) error {
		k := binary.BigEndian.AppendUint64(prefix(ana.ID), timeNanos(at))
		return b.ledger.Put(binary.BigEndian.AppendUint64(k, math.MaxUint64), []byte{9})
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Outcomes(ana.ID, "", time.Time{}); !errors.Is(err, errRecord) {
		t.Errorf("Outcomes with a bad value: err = %v, want errRecord", err)
	}
}

// FuzzDecodeOutcome: decoding never panics, and whatever decodes is a
// fixed point — a binary value re-encodes to the same bytes, a JSON one to
// a binary value holding the same outcome.
func FuzzDecodeOutcome(f *testing.F) {
	r := rand.New(rand.NewPCG(3, 5))
	for range 8 {
		o := randCodecOutcome(r)
		if len(o.Error) > 200 {
			o.Error = o.Error[:200]
		}
		f.Add(encodeOutcome(&o))
	}
	f.Add(encodeOutcome(&tilecast.Outcome{}))
	f.Add(encodeOutcome(&tilecast.Outcome{RetryIn: math.MinInt64, Duration: math.MaxInt64, Status: -1}))
	f.Add([]byte(`{"time":"2026-03-01T12:00:00+02:00","channel":"c1","feed":"news","kind":"toast","status":200,"outcome":"delivered","attempt":1,"duration":5}`))
	f.Add([]byte(`{"time":"0001-01-01T00:00:00+01:00","retry_in":-1}`))
	f.Add([]byte{1, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0})
	f.Add([]byte{1, 0, 0x81, 0x00})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		o, err := decodeOutcome(data)
		if err != nil {
			return
		}
		enc := encodeOutcome(&o)
		if len(enc) != outcomeLen(&o) {
			t.Fatalf("outcomeLen %d, encoded %d", outcomeLen(&o), len(enc))
		}
		if data[0] == outcomeV1 {
			if !bytes.Equal(enc, data) {
				t.Fatalf("re-encoded\n% x\nfrom\n% x", enc, data)
			}
			if !outcomeUTCTime(o) {
				t.Fatalf("time not plain UTC: %+v", o)
			}
			return
		}
		again, err := decodeOutcome(enc)
		if err != nil || !outcomeSame(again, o) {
			t.Fatalf("JSON value %q: binary round trip = %+v, %v; want %+v", data, again, err, o)
		}
	})
}

// codecBenchOutcome is a typical ledger entry: a delivered toast.
func codecBenchOutcome() tilecast.Outcome {
	return tilecast.Outcome{
		Time: time.Date(2026, 3, 1, 12, 34, 56, 789e6, time.UTC), ChannelID: "9e3779b97f4a7c15",
		Feed: "news", ItemID: "https://example.org/news/2026/03/01/some-article-slug", Kind: tilecast.KindToast,
		Status: 200, Notification: "Received", Subscription: "Active", Device: "Connected",
		Action: tilecast.ActionDelivered, Attempt: 1, Duration: 87 * time.Millisecond,
	}
}

func BenchmarkDecodeOutcome(b *testing.B) {
	benchDecode(b, codecBenchOutcome(), encodeOutcome, decodeOutcome)
}

func BenchmarkEncodeOutcome(b *testing.B) { benchEncode(b, codecBenchOutcome(), encodeOutcome) }
