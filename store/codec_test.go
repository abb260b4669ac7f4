package store

import (
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
		"version":         append([]byte{2}, good[1:]...),
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

// FuzzOutboxRecord: the decoder never panics, rejects what it cannot read,
// and whatever it accepts survives re-encoding unchanged.
func FuzzOutboxRecord(f *testing.F) {
	for _, n := range sampleNotifications() {
		f.Add(encodeNotification(nil, &n))
	}
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
	})
}
