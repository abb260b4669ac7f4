package store

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
)

func sampleNotifications() []tilecast.Notification {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 123, time.UTC)
	return []tilecast.Notification{
		{},
		{ID: 1, ChannelID: "c1", Feed: "news", Kind: tilecast.KindToast, NextAttempt: t0, Created: t0},
		{
			ID: 1 << 60, ChannelID: "0123456789abcdef", Feed: "weather", User: "ana", ItemID: "urn:x:1",
			Kind:        tilecast.KindTile,
			Payload:     []byte("<?xml version=\"1.0\"?>\x00\xff…"),
			Attempts:    7,
			NextAttempt: time.Date(1960, 1, 1, 0, 0, 0, 999999999, time.UTC),
			Created:     time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC),
		},
		{Kind: tilecast.KindRaw, Attempts: -3, Payload: make([]byte, 5000)},
		{Kind: "badge", Payload: []byte(`{"badge":3}`)},
	}
}

// sampleEntries are the sample notifications with their payload inline,
// and again shared.
func sampleEntries() []entry {
	var es []entry
	for i, n := range sampleNotifications() {
		es = append(es, entry{n: n})
		shared := entry{n: n, ref: payloadKeyOf([]byte{byte(i)}), hasRef: true}
		shared.n.Payload = nil
		es = append(es, shared)
	}
	return es
}

func TestEntryRoundTrip(t *testing.T) {
	for i, e := range sampleEntries() {
		b := encodeEntry(nil, &e)
		if b[0] != recordV4 {
			t.Errorf("%d: version %d, want 4", i, b[0])
		}
		got, err := decodeEntry(b)
		if err != nil {
			t.Fatalf("%d: decode: %v", i, err)
		}
		if !reflect.DeepEqual(got, e) {
			t.Errorf("%d: round trip\n got %+v\nwant %+v", i, got, e)
		}
		var a arena
		if into := encodeEntryInto(&a, &e); !bytes.Equal(into, b) || cap(into) != len(into) {
			t.Errorf("%d: encodeEntryInto = % x (cap %d), want % x", i, into, cap(into), b)
		}
	}
}

// The version 4 layout, byte by byte, as codec.go and tlv.go document it.
func TestEncodeEntryGolden(t *testing.T) {
	n := tilecast.Notification{ID: 300, ChannelID: "c", Feed: "f", Kind: "badge", Payload: []byte("<b/>"),
		Attempts: -1, NextAttempt: time.Unix(2, 0)}
	want := slices.Concat(
		[]byte{4},                // version
		[]byte{1, 2, 0xac, 0x02}, // 1 ID 300
		[]byte("\x02\x01c"),      // 2 ChannelID
		[]byte("\x03\x01f"),      // 3 Feed
		[]byte("\x06\x05badge"),  // 6 Kind: a string, so a new kind is no new version
		[]byte("\x07\x04<b/>"),   // 7 Payload inline
		[]byte{9, 1, 1},          // 9 Attempts: zigzag(-1)
		[]byte{10, 2, 4, 0},      // 10 NextAttempt: zigzag(2) s, 0 ns
	)
	if got := encodeEntry(nil, &entry{n: n}); !bytes.Equal(got, want) {
		t.Fatalf("encodeEntry =\n% x\nwant\n% x", got, want)
	}
	k := payloadKeyOf(n.Payload)
	shared := entry{n: n, ref: k, hasRef: true}
	shared.n.Payload = nil
	got := encodeEntry(nil, &shared)
	if !bytes.Contains(got, append([]byte{8, 32}, k[:]...)) || bytes.Contains(got, []byte("<b/>")) {
		t.Errorf("shared entry = % x: want field 8 with the key, no payload", got)
	}
}

func TestDecodeEntryRejects(t *testing.T) {
	good := encodeEntry(nil, &entry{n: sampleNotifications()[2]})
	shared := encodeEntry(nil, &entry{n: sampleNotifications()[1], hasRef: true})
	tests := map[string][]byte{
		"empty":            nil,
		"old version":      v1Record,
		"version 3":        legacyV3Record(sampleNotifications()[2], nil),
		"truncated":        good[:len(good)-1],
		"trailing":         append(bytes.Clone(good), 0),
		"short key":        {4, 8, 31},
		"key and payload":  slices.Concat([]byte{4, 7, 1, 'x', 8, 32}, make([]byte, 32)),
		"string past end":  {4, 2, 50, 'a'},
		"varint overflow":  {4, 1, 10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
		"nanoseconds":      {4, 10, 6, 0, 0x80, 0x94, 0xeb, 0xdc, 0x03},
		"out of order":     {4, 3, 1, 'f', 2, 1, 'c'},
		"json":             []byte(`{"id":1}`),
		"shared truncated": shared[:len(shared)-3],
	}
	for name, b := range tests {
		t.Run(name, func(t *testing.T) {
			if e, err := decodeEntry(b); !errors.Is(err, errRecord) {
				t.Errorf("decode = %+v, %v; want errRecord", e, err)
			}
		})
	}
}

// An entry keeps the fields a newer tilecast wrote when it is rewritten
// (a retry re-keys it), in tag order.
func TestEntryUnknownFields(t *testing.T) {
	n := sampleNotifications()[1]
	rec := encodeEntry(nil, &entry{n: n})
	// Tags 12 and 50 are unknown to this build.
	future := slices.Concat(rec, []byte{12, 1, 'x'}, []byte{50, 0})
	e, err := decodeEntry(future)
	if err != nil || !reflect.DeepEqual(e.n, n) || len(e.unknown) != 2 {
		t.Fatalf("decodeEntry = %+v, %v", e, err)
	}
	e.n.Attempts = 5
	got := encodeEntry(nil, &e)
	want := slices.Concat(encodeEntry(nil, &entry{n: e.n}), []byte{12, 1, 'x'}, []byte{50, 0})
	if !bytes.Equal(got, want) {
		t.Fatalf("rewritten =\n% x\nwant\n% x", got, want)
	}

	// Through the store: a retried entry keeps them.
	db, clk := mustOpen(t)
	ch := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/a"})
	if err := db.Enqueue([]tilecast.Notification{toast(ch, "news", "1")}); err != nil {
		t.Fatal(err)
	}
	extra := []byte{60, 2, 'h', 'i'}
	if err := db.update(func(b *buckets) error {
		k, v := b.outbox.Cursor().First()
		return b.outbox.Put(bytes.Clone(k), slices.Concat(v, extra))
	}); err != nil {
		t.Fatal(err)
	}
	ps := allPending(t, db, clk.Now())
	if len(ps) != 1 {
		t.Fatalf("%d pending", len(ps))
	}
	if err := db.Record([]tilecast.Record{{ID: ps[0].ID, Due: ps[0].NextAttempt, Op: tilecast.OpRetry,
		NextAttempt: clk.Now().Add(time.Minute)}}); err != nil {
		t.Fatal(err)
	}
	if err := db.view(func(b *buckets) error {
		_, v := b.outbox.Cursor().First()
		if !bytes.HasSuffix(v, extra) {
			t.Errorf("retried entry = % x, lost % x", v, extra)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func TestDecodePayload(t *testing.T) {
	p := sampleNotifications()[2].Payload
	got, err := decodePayload(payloadKeyOf(p), payloadV2, p)
	if err != nil || !bytes.Equal(got, p) {
		t.Fatalf("layout 2: %q, %v", got, err)
	}
	old := legacyRequest(legacyHeaders, p)
	for name, bad := range map[string]struct {
		k      payloadKey
		layout byte
		p      []byte
	}{
		"other key":          {payloadKey{}, payloadV2, p},
		"layout 1 key for 2": {payloadKey(sha256.Sum256(p)), payloadV2, p},
		"layout 1":           {payloadKey(sha256.Sum256(old)), oldPayloadV1, old},
		"unknown layout":     {payloadKeyOf(p), 3, p},
	} {
		if _, err := decodePayload(bad.k, bad.layout, bad.p); !errors.Is(err, errRecord) {
			t.Errorf("%s: err = %v, want errRecord", name, err)
		}
	}
	if _, _, _, err := splitPayloadValue(payloadValue(oldPayloadV1, 1, old)); !errors.Is(err, errRecord) {
		t.Errorf("a layout 1 value splits: %v", err)
	}
}

// FuzzOutboxRecord: the decoder never panics and rejects what it cannot
// read with errRecord; whatever it accepts re-encodes to a record that
// decodes to the same entry and re-encodes to itself.
func FuzzOutboxRecord(f *testing.F) {
	for _, e := range sampleEntries() {
		f.Add(encodeEntry(nil, &e))
	}
	f.Add(v1Record)
	f.Add([]byte{})
	f.Add([]byte{4})
	f.Add([]byte{4, 0x80})
	f.Add([]byte{4, 8, 31})
	f.Add([]byte{4, 12, 1, 'x', 50, 0})
	f.Add([]byte(`{"id":1,"channel":"x"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeEntry(b)
		if err != nil {
			if !errors.Is(err, errRecord) {
				t.Fatalf("error %v is not errRecord", err)
			}
			return
		}
		again := encodeEntry(nil, &e)
		back, err := decodeEntry(again)
		if err != nil {
			t.Fatalf("own encoding rejected: %v", err)
		}
		if !reflect.DeepEqual(back, e) {
			t.Fatalf("re-encode changed the entry\n got %+v\nwant %+v", back, e)
		}
		if twice := encodeEntry(nil, &back); !bytes.Equal(twice, again) {
			t.Fatalf("not a fixed point:\n% x\n% x", again, twice)
		}
	})
}

// FuzzPayloadValue: a bodies value never panics the reader, and a payload
// that decodes is stored again under the same key.
func FuzzPayloadValue(f *testing.F) {
	for _, n := range sampleNotifications() {
		f.Add(payloadValue(payloadV2, 3, n.Payload))
		f.Add(payloadValue(oldPayloadV1, 1, legacyRequest(legacyHeaders, n.Payload)))
	}
	f.Add([]byte{payloadV2, 0x80})
	f.Add([]byte{3, 1, 0, 0})
	f.Fuzz(func(t *testing.T, v []byte) {
		layout, content, refs, err := splitPayloadValue(v)
		if err != nil {
			if !errors.Is(err, errRecord) {
				t.Fatalf("error %v is not errRecord", err)
			}
			return
		}
		p, err := decodePayload(payloadKeyOf(content), layout, content)
		if err != nil {
			t.Fatalf("payload under its own key: %v", err)
		}
		if !bytes.Equal(p, content) {
			t.Fatalf("payload %q, content %q", p, content)
		}
		// Rewriting a count keeps layout and content.
		l2, c2, r2, err := splitPayloadValue(payloadValue(layout, refs+1, content))
		if err != nil || l2 != layout || !bytes.Equal(c2, content) || r2 != refs+1 {
			t.Fatalf("rewritten value reads as %d %q %d, %v", l2, c2, r2, err)
		}
	})
}

// sameDeadLetter compares dead letters as a round trip keeps them: times
// as instants, payloads by content (nil and empty alike).
func sameDeadLetter(a, b DeadLetter) bool {
	x, y := a.Notification, b.Notification
	return x.ID == y.ID && x.ChannelID == y.ChannelID && x.Feed == y.Feed && x.User == y.User &&
		x.ItemID == y.ItemID && x.Kind == y.Kind && bytes.Equal(x.Payload, y.Payload) &&
		x.Attempts == y.Attempts && x.NextAttempt.Equal(y.NextAttempt) && x.Created.Equal(y.Created) &&
		outcomeSame(a.Outcome, b.Outcome)
}

func TestDeadLetterRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	cases := []DeadLetter{{}}
	for _, n := range sampleNotifications() {
		cases = append(cases, DeadLetter{Notification: n, Outcome: randCodecOutcome(r)})
	}
	for i, d := range cases {
		v := encodeDeadLetter(&d)
		if v[0] != deadV1 {
			t.Fatalf("%d: version %d", i, v[0])
		}
		got, err := decodeDeadLetter(v)
		if err != nil || !sameDeadLetter(got, d) {
			t.Fatalf("%d: round trip %+v, %v; want %+v", i, got, err, d)
		}
		if again := encodeDeadLetter(&got); !bytes.Equal(again, v) {
			t.Fatalf("%d: re-encoding differs", i)
		}
	}
	for name, bad := range map[string][]byte{
		"empty":          nil,
		"json":           []byte(`{"notification":{}}`),
		"shared payload": slices.Concat([]byte{deadV1, 1, 34, 8, 32}, make([]byte, 32)),
		"bad outcome":    {deadV1, 2, 2, 1, 9},
		"past end":       {deadV1, 1, 9},
	} {
		if d, err := decodeDeadLetter(bad); !errors.Is(err, errRecord) || !strings.HasPrefix(err.Error(), "decode dead letter: ") {
			t.Errorf("%s: %+v, %v; want a dead letter errRecord", name, d, err)
		}
	}
}

func FuzzDecodeDeadLetter(f *testing.F) {
	r := rand.New(rand.NewPCG(8, 9))
	for _, n := range sampleNotifications()[:3] {
		d := DeadLetter{Notification: n, Outcome: randCodecOutcome(r)}
		f.Add(encodeDeadLetter(&d))
	}
	f.Add([]byte{deadV1, 1, 0, 2, 0, 3, 0})
	f.Fuzz(func(t *testing.T, v []byte) {
		d, err := decodeDeadLetter(v)
		if err != nil {
			if !errors.Is(err, errRecord) {
				t.Fatalf("error %v is not errRecord", err)
			}
			return
		}
		enc := encodeDeadLetter(&d)
		back, err := decodeDeadLetter(enc)
		if err != nil || !sameDeadLetter(back, d) {
			t.Fatalf("re-encoded: %+v, %v; want %+v", back, err, d)
		}
		if twice := encodeDeadLetter(&back); !bytes.Equal(twice, enc) {
			t.Fatalf("not a fixed point")
		}
	})
}
