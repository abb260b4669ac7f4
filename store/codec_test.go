package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"reflect"
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
		if len(b) > entryLen(&e) {
			t.Errorf("%d: encoded %d bytes, entryLen said %d", i, len(b), entryLen(&e))
		}
		if b[0] != recordV3 {
			t.Errorf("%d: version %d, want 3", i, b[0])
		}
		got, err := decodeEntry(b)
		if err != nil {
			t.Fatalf("%d: decode: %v", i, err)
		}
		if !reflect.DeepEqual(got, e) {
			t.Errorf("%d: round trip\n got %+v\nwant %+v", i, got, e)
		}
	}
}

func TestDecodeEntryRejects(t *testing.T) {
	good := encodeEntry(nil, &entry{n: sampleNotifications()[2]})
	shared := encodeEntry(nil, &entry{n: sampleNotifications()[1], hasRef: true})
	tests := map[string][]byte{
		"empty":           nil,
		"version":         append([]byte{4}, good[1:]...),
		"v3 bad form":     bytes.Replace(bytes.Clone(good), []byte{4, 't', 'i', 'l', 'e', payloadInline}, []byte{4, 't', 'i', 'l', 'e', 7}, 1),
		"v3 short key":    shared[:len(shared)-3],
		"v2 short key":    append(legacyV2Record(tilecast.Notification{}, payloadKey{})[:7], 0, 0),
		"truncated":       good[:len(good)-1],
		"trailing":        append(bytes.Clone(good), 0),
		"v1 header count": {1, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"string past end": {3, 0, 50, 'a'},
		"varint overflow": {3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
		"time tag":        {3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0},
		"nanoseconds":     {3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0x80, 0x94, 0xeb, 0xdc, 0x03, 0},
		"json":            []byte(`{"id":1}`),
	}
	for name, b := range tests {
		t.Run(name, func(t *testing.T) {
			if e, err := decodeEntry(b); !errors.Is(err, errRecord) {
				t.Errorf("decode = %+v, %v; want errRecord", e, err)
			}
		})
	}
}

// The forms written before notifications kept their payload instead of
// their request are still read: their body is the payload, their headers
// (which followed from the kind) are dropped. (A later migration may
// rewrite them; until then they must drain.)

// legacyRequest is a request as versions 1 and 2 stored it: uvarint header
// count, str name and str value per header, str body.
func legacyRequest(headers [][2]string, body []byte) []byte {
	var b []byte
	b = binary.AppendUvarint(b, uint64(len(headers)))
	for _, h := range headers {
		b = appendStr(b, h[0])
		b = appendStr(b, h[1])
	}
	b = binary.AppendUvarint(b, uint64(len(body)))
	return append(b, body...)
}

// legacyHeaders are the MPNS headers of an old toast record.
var legacyHeaders = [][2]string{{"Content-Type", "text/xml"}, {"Content-Length", "3"}, {"Accept", "application/*"},
	{"X-NotificationClass", "2"}, {"X-WindowsPhone-Target", "toast"}}

func legacyHead(version byte, n *tilecast.Notification) []byte {
	b := []byte{version}
	b = binary.AppendUvarint(b, n.ID)
	for _, s := range []string{n.ChannelID, n.Feed, n.User, n.ItemID, string(n.Kind)} {
		b = appendStr(b, s)
	}
	return b
}

func legacyTail(b []byte, n *tilecast.Notification) []byte {
	b = binary.AppendVarint(b, int64(n.Attempts))
	b = appendTime(b, n.NextAttempt)
	return appendTime(b, n.Created)
}

// legacyV1Record is a version 1 record: n with its request inline.
func legacyV1Record(n tilecast.Notification, headers [][2]string) []byte {
	b := legacyHead(recordV1, &n)
	b = append(b, legacyRequest(headers, n.Payload)...)
	return legacyTail(b, &n)
}

// legacyV2Record is a version 2 record: n referencing a stored request.
func legacyV2Record(n tilecast.Notification, k payloadKey) []byte {
	b := legacyHead(recordV2, &n)
	b = append(b, k[:]...)
	return legacyTail(b, &n)
}

// v1Record is a version 1 record, byte for byte as the encoder before
// shared payloads wrote it; such files are in the field.
var v1Record = []byte{
	1, 1, // version, ID
	2, 'c', '1', 4, 'n', 'e', 'w', 's', 0, 0, 5, 't', 'o', 'a', 's', 't', // channel, feed, user, item, kind
	1, 12, 'C', 'o', 'n', 't', 'e', 'n', 't', '-', 'T', 'y', 'p', 'e', 8, 't', 'e', 'x', 't', '/', 'x', 'm', 'l', // headers
	3, '<', 'a', '>', // body
	4,                                     // attempts 2 (zigzag)
	1, 0x80, 0xa9, 0xa1, 0x9a, 0x0d, 0x7b, // next attempt 2026-03-01 12:00:00.000000123 UTC
	0, // created: zero
}

func TestDecodeOldForms(t *testing.T) {
	want := tilecast.Notification{
		ID: 1, ChannelID: "c1", Feed: "news", Kind: tilecast.KindToast, Payload: []byte("<a>"),
		Attempts: 2, NextAttempt: time.Date(2026, 3, 1, 12, 0, 0, 123, time.UTC),
	}
	e, err := decodeEntry(v1Record)
	if err != nil {
		t.Fatal(err)
	}
	if e.hasRef || !reflect.DeepEqual(e.n, want) {
		t.Errorf("version 1: %+v (ref %v), want %+v", e.n, e.hasRef, want)
	}
	// Rewritten, it becomes version 3 with the payload inline.
	again, err := decodeEntry(encodeEntry(nil, &e))
	if err != nil || !reflect.DeepEqual(again, e) {
		t.Errorf("version 1 rewritten: %+v, %v", again, err)
	}
	if b := encodeEntry(nil, &e); b[0] != recordV3 {
		t.Errorf("version 1 rewritten as version %d", b[0])
	}
	if got, err := decodeEntry(legacyV1Record(want, legacyHeaders)); err != nil || !reflect.DeepEqual(got.n, want) {
		t.Errorf("version 1 with MPNS headers: %+v, %v", got.n, err)
	}

	k := payloadKey(sha256.Sum256(legacyRequest(legacyHeaders, []byte("<a>"))))
	e, err = decodeEntry(legacyV2Record(want, k))
	if err != nil {
		t.Fatal(err)
	}
	wantShared := want
	wantShared.Payload = nil
	if !e.hasRef || e.ref != k || !reflect.DeepEqual(e.n, wantShared) {
		t.Errorf("version 2: %+v (ref %v %x), want %+v with key %x", e.n, e.hasRef, e.ref[:4], wantShared, k[:4])
	}
	// Rewritten, it keeps its key.
	if again, err := decodeEntry(encodeEntry(nil, &e)); err != nil || !reflect.DeepEqual(again, e) {
		t.Errorf("version 2 rewritten: %+v, %v", again, err)
	}
}

func TestDecodePayload(t *testing.T) {
	p := sampleNotifications()[2].Payload
	got, err := decodePayload(payloadKeyOf(p), payloadV2, p)
	if err != nil || !bytes.Equal(got, p) {
		t.Fatalf("layout 2: %q, %v", got, err)
	}
	old := legacyRequest(legacyHeaders, p)
	got, err = decodePayload(payloadKey(sha256.Sum256(old)), payloadV1, old)
	if err != nil || !bytes.Equal(got, p) {
		t.Fatalf("layout 1: %q, %v; want its body", got, err)
	}
	// A payload and an old request of the same bytes have different keys.
	if payloadKeyOf(old) == payloadKey(sha256.Sum256(old)) {
		t.Error("layout 2 keys are plain hashes")
	}
	for name, bad := range map[string]struct {
		k      payloadKey
		layout byte
		p      []byte
	}{
		"other key":               {payloadKey{}, payloadV2, p},
		"layout 1 key for 2":      {payloadKey(sha256.Sum256(p)), payloadV2, p},
		"layout 2 key for 1":      {payloadKeyOf(old), payloadV1, old},
		"layout 1 truncated":      {payloadKey(sha256.Sum256(old[:len(old)-1])), payloadV1, old[:len(old)-1]},
		"layout 1 trailing":       {payloadKey(sha256.Sum256(append(bytes.Clone(old), 0))), payloadV1, append(bytes.Clone(old), 0)},
		"unknown layout":          {payloadKeyOf(p), 3, p},
		"layout 1 hostile counts": {payloadKey(sha256.Sum256([]byte{0xff, 0x0f})), payloadV1, []byte{0xff, 0x0f}},
	} {
		if _, err := decodePayload(bad.k, bad.layout, bad.p); !errors.Is(err, errRecord) {
			t.Errorf("%s: err = %v, want errRecord", name, err)
		}
	}
}

// FuzzOutboxRecord: the decoder never panics and rejects what it cannot
// read; whatever it accepts re-encodes (as version 3) to a record that
// decodes to the same entry, and a version 3 record re-encodes to the
// same bytes.
func FuzzOutboxRecord(f *testing.F) {
	for _, e := range sampleEntries() {
		f.Add(encodeEntry(nil, &e))
	}
	for i, n := range sampleNotifications() {
		f.Add(legacyV1Record(n, legacyHeaders))
		f.Add(legacyV2Record(n, payloadKey{0: byte(i), 31: 0xff}))
	}
	f.Add(v1Record)
	f.Add([]byte{})
	f.Add([]byte{3})
	f.Add([]byte{3, 0x80})
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
		if len(again) > entryLen(&e) {
			t.Fatalf("encoded %d > entryLen %d", len(again), entryLen(&e))
		}
		if b[0] == recordV3 && !bytes.Equal(again, b) {
			t.Fatalf("version 3 record re-encoded differently\n got %x\nwant %x", again, b)
		}
		back, err := decodeEntry(again)
		if err != nil {
			t.Fatalf("own encoding rejected: %v", err)
		}
		if !reflect.DeepEqual(back, e) {
			t.Fatalf("re-encode changed the entry\n got %+v\nwant %+v", back, e)
		}
	})
}

// FuzzPayloadValue: a bodies value never panics the reader, and a payload
// that decodes is stored again under the same key.
func FuzzPayloadValue(f *testing.F) {
	for _, n := range sampleNotifications() {
		f.Add(payloadValue(payloadV2, 3, n.Payload))
		f.Add(payloadValue(payloadV1, 1, legacyRequest(legacyHeaders, n.Payload)))
	}
	f.Add([]byte{payloadV1})
	f.Add([]byte{payloadV2, 0x80})
	f.Add([]byte{3, 1, 0, 0})
	f.Add([]byte{payloadV1, 0, 0, 0x88, 0, '0', '0', '0', '0', '0', '0', '0', '0'}) // non-minimal body length
	f.Fuzz(func(t *testing.T, v []byte) {
		layout, content, refs, err := splitPayloadValue(v)
		if err != nil {
			if !errors.Is(err, errRecord) {
				t.Fatalf("error %v is not errRecord", err)
			}
			return
		}
		k := payloadKeyOf(content)
		if layout == payloadV1 {
			k = sha256.Sum256(content)
		}
		p, err := decodePayload(k, layout, content)
		if err != nil {
			if !errors.Is(err, errRecord) {
				t.Fatalf("error %v is not errRecord", err)
			}
			return
		}
		if layout == payloadV2 && !bytes.Equal(p, content) {
			t.Fatalf("layout 2 payload %q, content %q", p, content)
		}
		// Rewriting a count keeps layout and content.
		l2, c2, r2, err := splitPayloadValue(payloadValue(layout, refs+1, content))
		if err != nil || l2 != layout || !bytes.Equal(c2, content) || r2 != refs+1 {
			t.Fatalf("rewritten value reads as %d %q %d, %v", l2, c2, r2, err)
		}
	})
}
