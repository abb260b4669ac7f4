package store

import (
	"bytes"
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
		got.RetryIn == want.RetryIn && got.Duration == want.Duration && got.Error == want.Error &&
		got.Transport == want.Transport && got.MsgID == want.MsgID && got.DebugTrace == want.DebugTrace &&
		got.CorrelationVector == want.CorrelationVector && got.TokenRefreshed == want.TokenRefreshed &&
		got.DeviceID == want.DeviceID
}

// outcomeUTCTime reports whether a binary-decoded outcome's time is the
// zero Time or a plain UTC one (no location, no monotonic reading).
func outcomeUTCTime(o tilecast.Outcome) bool { return o.Time == o.Time.Round(0).UTC() }

// The version 2 layout, byte by byte, as ledgercodec.go and tlv.go
// document it.
func TestEncodeOutcomeGolden(t *testing.T) {
	o := tilecast.Outcome{
		Time: time.Unix(1, 5), ChannelID: "ab", Feed: "news", ItemID: "é",
		Kind: tilecast.KindTile, Status: 503, Notification: "QueueFull", Subscription: "Active",
		Action: tilecast.ActionRetry, Attempt: 2, RetryIn: -3, Duration: 150 * time.Millisecond,
		Error: "x",
	}
	want := slices.Concat(
		[]byte{2},                                   // version
		[]byte{1, 2, 2, 5},                          // 1 Time: zigzag(1) s, 5 ns
		[]byte("\x02\x02ab"),                        // 2 ChannelID (3 User "" left out)
		[]byte("\x04\x04news"),                      // 4 Feed
		[]byte("\x05\x02é"),                         // 5 ItemID: two UTF-8 bytes
		[]byte("\x06\x04tile"),                      // 6 Kind
		[]byte{7, 2, 0xee, 0x07},                    // 7 Status: zigzag(503) = 1006
		[]byte("\x08\x09QueueFull"),                 // 8 Notification
		[]byte("\x09\x06Active"),                    // 9 Subscription (10 Device "" left out)
		[]byte("\x0b\x05retry"),                     // 11 Action
		[]byte{12, 1, 4},                            // 12 Attempt: zigzag(2)
		[]byte{13, 1, 5},                            // 13 RetryIn: zigzag(-3 ns)
		[]byte{14, 5, 0x80, 0xc6, 0x86, 0x8f, 0x01}, // 14 Duration: zigzag(150e6 ns) = 300e6
		[]byte("\x0f\x01x"),                         // 15 Error
	)
	got := encodeOutcome(&o)
	if !bytes.Equal(got, want) {
		t.Fatalf("encodeOutcome =\n% x\nwant\n% x", got, want)
	}
	var a arena
	if into := encodeOutcomeInto(&a, &o); !bytes.Equal(into, want) || cap(into) != len(into) {
		t.Errorf("encodeOutcomeInto =\n% x\nwant\n% x", into, want)
	}
	dec, err := decodeOutcome(want)
	if err != nil || !outcomeSame(dec, o) || !outcomeUTCTime(dec) {
		t.Fatalf("decodeOutcome = %+v, %v; want %+v", dec, err, o)
	}

	// The WNS fields, and a kind that did not exist before (badge).
	w := tilecast.Outcome{Kind: "badge", Transport: tilecast.TransportWNS, MsgID: "1A2B", DebugTrace: "DB5", CorrelationVector: "cv.1",
		TokenRefreshed: true}
	want = slices.Concat(
		[]byte{2},               // version
		[]byte("\x06\x05badge"), // 6 Kind
		[]byte("\x10\x03wns"),   // 16 Transport
		[]byte("\x11\x041A2B"),  // 17 MsgID
		[]byte("\x12\x03DB5"),   // 18 DebugTrace
		[]byte("\x13\x04cv.1"),  // 19 CorrelationVector
		[]byte{20, 1, 1},        // 20 TokenRefreshed
	)
	if got := encodeOutcome(&w); !bytes.Equal(got, want) {
		t.Fatalf("WNS outcome =\n% x\nwant\n% x", got, want)
	}
	if dec, err := decodeOutcome(want); err != nil || !outcomeSame(dec, w) {
		t.Fatalf("decodeOutcome = %+v, %v; want %+v", dec, err, w)
	}
}

// The channel's device id (tag 21) round-trips; an outcome without one
// encodes as before.
func TestOutcomeDeviceID(t *testing.T) {
	o := tilecast.Outcome{Kind: tilecast.KindToast, DeviceID: "alice-phone"}
	want := slices.Concat([]byte{2}, []byte("\x06\x05toast"), []byte("\x15\x0balice-phone"))
	if got := encodeOutcome(&o); !bytes.Equal(got, want) {
		t.Fatalf("outcome with device id =\n% x\nwant\n% x", got, want)
	}
	if dec, err := decodeOutcome(want); err != nil || dec.DeviceID != "alice-phone" || !outcomeSame(dec, o) {
		t.Fatalf("decodeOutcome = %+v, %v", dec, err)
	}
}

// The new fields are kept through Record into the ledger and into a dead
// letter's outcome.
func TestLedgerKeepsWNSFields(t *testing.T) {
	db, clk := mustOpen(t)
	ch := addChannel(t, db, tilecast.Channel{URI: "https://wns2-par02p.notify.windows.com/w/?token=a", Transport: tilecast.TransportWNS})
	n := toast(ch, "news", "1")
	n.Kind = "badge"
	if err := db.Enqueue([]tilecast.Notification{n, toast(ch, "news", "2")}); err != nil {
		t.Fatal(err)
	}
	ps := allPending(t, db, clk.Now())
	if len(ps) != 2 || ps[0].Kind != "badge" {
		t.Fatalf("pending %+v", ps)
	}
	o := tilecast.Outcome{ChannelID: ch.ID, Kind: "badge", Status: 200, Action: tilecast.ActionDelivered, Time: clk.Now(),
		Transport: tilecast.TransportWNS, MsgID: "m-1", DebugTrace: "trace", CorrelationVector: "cv.7", TokenRefreshed: true}
	failed := o
	failed.Kind, failed.Status, failed.Action, failed.MsgID = tilecast.KindToast, 400, tilecast.ActionFailed, "m-2"
	if err := db.Record([]tilecast.Record{
		{ID: ps[0].ID, Due: ps[0].NextAttempt, Op: tilecast.OpDone, Sent: true, Outcome: o},
		{ID: ps[1].ID, Due: ps[1].NextAttempt, Op: tilecast.OpDead, Sent: true, Outcome: failed},
	}); err != nil {
		t.Fatal(err)
	}
	got, err := db.Outcomes(ch.ID, "", time.Time{})
	if err != nil || len(got) != 2 || !outcomeSame(got[0], o) || !outcomeSame(got[1], failed) {
		t.Errorf("Outcomes = %+v, %v; want %+v, %+v", got, err, o, failed)
	}
	dl, err := db.DeadLetters(0)
	if err != nil || len(dl) != 1 || !outcomeSame(dl[0].Outcome, failed) || dl[0].Notification.Kind != tilecast.KindToast {
		t.Errorf("dead letters = %+v, %v", dl, err)
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
		Transport: tilecast.Transport(str()), MsgID: str(), DebugTrace: str(), CorrelationVector: str(),
		TokenRefreshed: r.IntN(2) == 0, DeviceID: str(),
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

func TestDecodeOutcomeErrors(t *testing.T) {
	tests := []decodeErrCase{
		{"empty", nil, ": empty"},
		{"unknown version", []byte{1, 0}, "unknown version 1"},
		{"json", []byte(`{"channel":"c"}`), "unknown version 123"},
		{"truncated", []byte{2, 2, 3, 'a'}, "field 2: length past end"},
		{"overlong int", []byte{2, 7, 2, 0x81, 0x00}, "field 7: bad record: overlong varint"},
		{"trailing in field", []byte{2, 12, 2, 4, 0}, "trailing bytes in field"},
		{"nanoseconds out of range", []byte{2, 1, 6, 0, 0x80, 0x94, 0xeb, 0xdc, 0x03}, "nanoseconds out of range"},
		{"out of order", []byte{2, 4, 0, 2, 0}, "field 2 after field 4"},
	}
	testDecodeErrors(t, "outcome", decodeOutcome, tests)
}

// FuzzDecodeOutcome: decoding never panics, and whatever decodes is a
// fixed point after one rewrite.
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
	f.Add([]byte{2, 1, 11, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0})
	f.Add([]byte{2, 7, 2, 0x81, 0x00})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		o, err := decodeOutcome(data)
		if err != nil {
			if !errors.Is(err, errRecord) {
				t.Fatalf("error %v is not errRecord", err)
			}
			return
		}
		if !outcomeUTCTime(o) {
			t.Fatalf("time not plain UTC: %+v", o)
		}
		enc := encodeOutcome(&o)
		again, err := decodeOutcome(enc)
		if err != nil || !outcomeSame(again, o) {
			t.Fatalf("re-encoded: %+v, %v; want %+v", again, err, o)
		}
		if twice := encodeOutcome(&again); !bytes.Equal(twice, enc) {
			t.Fatalf("not a fixed point:\n% x\n% x", enc, twice)
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
