package store

import (
	"bytes"
	"crypto/sha256"
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
			Kind: tilecast.KindTile,
			Request: tilecast.Request{
				Headers: []tilecast.Header{{Name: "Content-Type", Value: "text/xml"}, {Name: "X-NotificationClass", Value: "1"}, {Name: "", Value: ""}},
				Body:    []byte("<?xml version=\"1.0\"?>\x00\xff…"),
			},
			Attempts:    7,
			NextAttempt: time.Date(1960, 1, 1, 0, 0, 0, 999999999, time.UTC),
			Created:     time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC),
		},
		{Kind: tilecast.KindRaw, Attempts: -3, Request: tilecast.Request{Body: make([]byte, 5000)}},
	}
}

func TestNotificationRoundTrip(t *testing.T) {
	for i, n := range sampleNotifications() {
		b := encodeNotification(nil, &n)
		if len(b) > encodedLen(&n) {
			t.Errorf("%d: encoded %d bytes, encodedLen said %d", i, len(b), encodedLen(&n))
		}
		got, err := decodeNotification(b)
		if err != nil {
			t.Fatalf("%d: decode: %v", i, err)
		}
		if !reflect.DeepEqual(got, n) {
			t.Errorf("%d: round trip\n got %+v\nwant %+v", i, got, n)
		}
	}
}

func TestDecodeNotificationRejects(t *testing.T) {
	n := sampleNotifications()[2]
	good := encodeNotification(nil, &n)
	tests := map[string][]byte{
		"empty":           nil,
		"version":         append([]byte{3}, good[1:]...),
		"v2 short key":    append(encodeEntry(nil, &entry{hasRef: true})[:7], 0, 0),
		"v2 v1 layout":    append([]byte{2}, good[1:]...),
		"reserved header": encodeEntry(nil, &entry{n: tilecast.Notification{Request: refRequest(payloadKey{1})}}),
		"truncated":       good[:len(good)-1],
		"trailing":        append(append([]byte(nil), good...), 0),
		"header count":    {1, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"string past end": {1, 0, 50, 'a'},
		"varint overflow": {1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
		"time tag":        {1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0},
		"nanoseconds":     {1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0x80, 0x94, 0xeb, 0xdc, 0x03, 0},
		"json":            []byte(`{"id":1}`),
	}
	for name, b := range tests {
		t.Run(name, func(t *testing.T) {
			if n, err := decodeNotification(b); !errors.Is(err, errRecord) {
				t.Errorf("decode = %+v, %v; want errRecord", n, err)
			}
		})
	}
}

// v1Record is a version 1 record, byte for byte as the encoder before
// shared payloads wrote it; such files are in the field, and the decoder
// must keep reading them.
var v1Record = []byte{
	1, 1, // version, ID
	2, 'c', '1', 4, 'n', 'e', 'w', 's', 0, 0, 5, 't', 'o', 'a', 's', 't', // channel, feed, user, item, kind
	1, 12, 'C', 'o', 'n', 't', 'e', 'n', 't', '-', 'T', 'y', 'p', 'e', 8, 't', 'e', 'x', 't', '/', 'x', 'm', 'l', // headers
	3, '<', 'a', '>', // body
	4,                                     // attempts 2 (zigzag)
	1, 0x80, 0xa9, 0xa1, 0x9a, 0x0d, 0x7b, // next attempt 2026-03-01 12:00:00.000000123 UTC
	0, // created: zero
}

func TestDecodeVersion1(t *testing.T) {
	want := tilecast.Notification{
		ID: 1, ChannelID: "c1", Feed: "news", Kind: tilecast.KindToast,
		Request:  tilecast.Request{Headers: []tilecast.Header{{Name: "Content-Type", Value: "text/xml"}}, Body: []byte("<a>")},
		Attempts: 2, NextAttempt: time.Date(2026, 3, 1, 12, 0, 0, 123, time.UTC),
	}
	e, err := decodeEntry(v1Record)
	if err != nil {
		t.Fatal(err)
	}
	if e.hasRef || !reflect.DeepEqual(e.n, want) {
		t.Errorf("decodeEntry = %+v (ref %v), want %+v", e.n, e.hasRef, want)
	}
	// Without a payload key it is written back as version 1, byte for byte.
	if again := encodeEntry(nil, &e); !bytes.Equal(again, v1Record) {
		t.Errorf("re-encoded as %v", again)
	}
}

func TestEntryRoundTrip(t *testing.T) {
	for i, n := range sampleNotifications() {
		for _, ref := range []bool{false, true} {
			e := entry{n: n, hasRef: ref}
			if ref {
				e.ref = payloadKey(sha256.Sum256([]byte{byte(i)}))
				e.n.Request = tilecast.Request{}
			}
			b := encodeEntry(nil, &e)
			if len(b) > entryLen(&e) {
				t.Errorf("%d: encoded %d bytes, entryLen said %d", i, len(b), entryLen(&e))
			}
			if want := byte(recordV1); ref {
				if b[0] != recordV2 {
					t.Errorf("%d: version %d, want 2", i, b[0])
				}
			} else if b[0] != want {
				t.Errorf("%d: version %d, want 1", i, b[0])
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
}

// TestNotificationKeepsPayloadKey: code that decodes a version 2 record as
// a Notification, edits it and encodes it again (device replacement) keeps
// the payload reference.
func TestNotificationKeepsPayloadKey(t *testing.T) {
	e := entry{n: sampleNotifications()[1], ref: payloadKey{0: 7, 31: 9}, hasRef: true}
	n, err := decodeNotification(encodeEntry(nil, &e))
	if err != nil {
		t.Fatal(err)
	}
	if k, ok := refOf(&n.Request); !ok || k != e.ref {
		t.Fatalf("request %+v does not carry the key", n.Request)
	}
	n.ChannelID = "other"
	got, err := decodeEntry(encodeNotification(nil, &n))
	if err != nil {
		t.Fatal(err)
	}
	if !got.hasRef || got.ref != e.ref || got.n.ChannelID != "other" || len(got.n.Request.Headers) != 0 {
		t.Errorf("re-encoded entry = %+v", got)
	}
}

func TestDecodePayload(t *testing.T) {
	req := sampleNotifications()[2].Request
	req.Headers = req.Headers[:2]
	p := appendPayload(nil, &req)
	k := payloadKey(sha256.Sum256(p))
	got, err := decodePayload(k, p)
	if err != nil || !reflect.DeepEqual(got, req) {
		t.Fatalf("decodePayload = %+v, %v", got, err)
	}
	for name, bad := range map[string]struct {
		k payloadKey
		p []byte
	}{
		"other key": {payloadKey{}, p},
		"truncated": {payloadKey(sha256.Sum256(p[:len(p)-1])), p[:len(p)-1]},
		"trailing":  {payloadKey(sha256.Sum256(append(bytes.Clone(p), 0))), append(bytes.Clone(p), 0)},
	} {
		if _, err := decodePayload(bad.k, bad.p); !errors.Is(err, errRecord) {
			t.Errorf("%s: err = %v, want errRecord", name, err)
		}
	}
}

// FuzzOutboxRecord: the decoder never panics, rejects what it cannot read,
// and whatever it accepts survives re-encoding unchanged. Version 2 records
// go through decodeNotification's payload-key request.
func FuzzOutboxRecord(f *testing.F) {
	for i, n := range sampleNotifications() {
		f.Add(encodeNotification(nil, &n))
		e := entry{n: n, ref: payloadKey{0: byte(i), 31: 0xff}, hasRef: true}
		e.n.Request = tilecast.Request{}
		f.Add(encodeEntry(nil, &e))
	}
	f.Add(v1Record)
	f.Add([]byte{})
	f.Add([]byte{1})
	f.Add([]byte{1, 0x80})
	f.Add([]byte(`{"id":1,"channel":"x"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := decodeNotification(b)
		if err != nil {
			if !errors.Is(err, errRecord) {
				t.Fatalf("error %v is not errRecord", err)
			}
			return
		}
		again := encodeNotification(nil, &n)
		if len(again) > encodedLen(&n) {
			t.Fatalf("encoded %d > encodedLen %d", len(again), encodedLen(&n))
		}
		m, err := decodeNotification(again)
		if err != nil {
			t.Fatalf("own encoding rejected: %v", err)
		}
		if !reflect.DeepEqual(m, n) {
			t.Fatalf("re-encode changed the record\n got %+v\nwant %+v", m, n)
		}
		e, err := decodeEntry(b)
		if err != nil {
			t.Fatalf("decodeNotification accepted what decodeEntry rejects: %v", err)
		}
		if !bytes.Equal(encodeEntry(nil, &e), again) {
			t.Fatal("encodeEntry and encodeNotification disagree")
		}
	})
}

// FuzzPayloadValue: a bodies value never panics the reader, and a payload
// that decodes re-encodes to the same bytes.
func FuzzPayloadValue(f *testing.F) {
	for _, n := range sampleNotifications() {
		p := appendPayload(nil, &n.Request)
		f.Add(append([]byte{payloadV1, 3}, p...))
	}
	f.Add([]byte{payloadV1})
	f.Add([]byte{payloadV1, 0x80})
	f.Add([]byte{2, 1, 0, 0})
	f.Add([]byte{payloadV1, 0, 0, 0x88, 0, '0', '0', '0', '0', '0', '0', '0', '0'}) // non-minimal body length
	f.Fuzz(func(t *testing.T, v []byte) {
		p, _, err := splitPayloadValue(v)
		if err != nil {
			if !errors.Is(err, errRecord) {
				t.Fatalf("error %v is not errRecord", err)
			}
			return
		}
		req, err := decodePayload(payloadKey(sha256.Sum256(p)), p)
		if err != nil {
			if !errors.Is(err, errRecord) {
				t.Fatalf("error %v is not errRecord", err)
			}
			return
		}
		// Varints need not be minimal, so compare requests, not bytes.
		again := appendPayload(nil, &req)
		if back, err := decodePayload(payloadKey(sha256.Sum256(again)), again); err != nil || !reflect.DeepEqual(back, req) {
			t.Fatalf("re-encoded payload reads as %+v, %v; want %+v", back, err, req)
		}
	})
}
