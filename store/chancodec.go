package store

import (
	"encoding/binary"
	"fmt"

	"github.com/tilecast/tilecast"
)

// channelV2 is the version byte of a channel record in tagged form
// (tlv.go). Version 1 and JSON records are older forms (migrate_old.go).
const channelV2 = 2

// Channel record, version 2: tagged fields (tlv.go)
//
//	1 str  ID              7  str  LastOutcome     13 str    Transport
//	2 str  URI             8  time LastOutcomeAt   14 nested Keys
//	3 str  User            9  int  FailureStreak   15 time   Expires
//	4 list Feeds (str)     10 time NextAllowedAt
//	5 str  Device          11 str  SendsDay
//	6 time Created         12 int  SendsToday
//
// Transport is left out for MPNS, and a record without it reads as MPNS:
// every channel stored before transports existed is one. Keys (Web Push)
// is present, possibly empty, when the channel has keys: 1 str P256DH,
// 2 str Auth.
//
// Binary instead of JSON because every due entry, every recorded outcome
// and every subscriber decodes a channel: JSON decoding was ~6 % of a
// fan-out's CPU.
//
// What a round trip keeps: every string byte for byte (JSON replaced
// invalid UTF-8), and each time's instant, returned in UTC (the daemon
// compares instants and formats in UTC). An empty Feeds comes back nil;
// the store never tells the two apart (index, Subscribed and normFeeds
// treat both as "every global feed").
const (
	chanTagID = 1 + iota
	chanTagURI
	chanTagUser
	chanTagFeeds
	chanTagDevice
	chanTagCreated
	chanTagLastOutcome
	chanTagLastOutcomeAt
	chanTagFailureStreak
	chanTagNextAllowedAt
	chanTagSendsDay
	chanTagSendsToday
	chanTagTransport
	chanTagKeys
	chanTagExpires
	chanTagMax = chanTagExpires
)

// Tags of Keys.
const (
	keysTagP256DH = 1
	keysTagAuth   = 2
)

func chanKnown(tag uint64) bool { return tag >= 1 && tag <= chanTagMax }

// appendChannel appends ch's record to dst.
func appendChannel(dst []byte, ch *tilecast.Channel) []byte {
	dst = append(dst, channelV2)
	dst = appendStrField(dst, chanTagID, ch.ID)
	dst = appendStrField(dst, chanTagURI, ch.URI)
	dst = appendStrField(dst, chanTagUser, ch.User)
	dst = appendStrList(dst, chanTagFeeds, ch.Feeds)
	dst = appendStrField(dst, chanTagDevice, ch.Device)
	dst = appendTimeField(dst, chanTagCreated, ch.Created)
	dst = appendStrField(dst, chanTagLastOutcome, ch.LastOutcome)
	dst = appendTimeField(dst, chanTagLastOutcomeAt, ch.LastOutcomeAt)
	dst = appendIntField(dst, chanTagFailureStreak, int64(ch.FailureStreak))
	dst = appendTimeField(dst, chanTagNextAllowedAt, ch.NextAllowedAt)
	dst = appendStrField(dst, chanTagSendsDay, ch.SendsDay)
	dst = appendIntField(dst, chanTagSendsToday, int64(ch.SendsToday))
	if ch.Transport != tilecast.TransportMPNS {
		dst = appendStrField(dst, chanTagTransport, string(ch.Transport))
	}
	if k := ch.Keys; k != nil {
		n := 0
		if len(k.P256DH) > 0 {
			n += uvarintLen(keysTagP256DH) + uvarintLen(uint64(len(k.P256DH))) + len(k.P256DH)
		}
		if len(k.Auth) > 0 {
			n += uvarintLen(keysTagAuth) + uvarintLen(uint64(len(k.Auth))) + len(k.Auth)
		}
		dst = appendHead(dst, chanTagKeys, n)
		dst = appendBytesField(dst, keysTagP256DH, k.P256DH)
		dst = appendBytesField(dst, keysTagAuth, k.Auth)
	}
	return appendTimeField(dst, chanTagExpires, ch.Expires)
}

// encodeChannel returns ch's record in a new slice of its own (bbolt keeps
// a Put value until the transaction ends, so it must not be reused).
func encodeChannel(ch *tilecast.Channel) []byte {
	return appendChannel(make([]byte, 0, channelSizeBound(ch)), ch)
}

// channelSizeBound bounds the length of ch's record: its bytes, and at
// most maxFieldHead + 2 varints' worth per field, so one allocation holds it.
func channelSizeBound(ch *tilecast.Channel) int {
	n := 1 + chanTagMax*(maxFieldHead+2*binary.MaxVarintLen64)
	n += len(ch.ID) + len(ch.URI) + len(ch.User) + len(ch.Device) + len(ch.LastOutcome) + len(ch.SendsDay) + len(ch.Transport)
	for _, f := range ch.Feeds {
		n += binary.MaxVarintLen64 + len(f)
	}
	if ch.Keys != nil {
		n += 2*maxFieldHead + len(ch.Keys.P256DH) + len(ch.Keys.Auth)
	}
	return n
}

// decodeChannel parses a channel record. The result shares nothing with
// v, which bbolt only keeps valid inside the transaction: every string is
// cut from one string copy of v, so a channel costs two allocations (that
// copy and, if any, the feed list).
func decodeChannel(v []byte) (tilecast.Channel, error) {
	var ch tilecast.Channel
	if err := checkVersion(v, channelV2); err != nil {
		return ch, fmt.Errorf("decode channel: %w", err)
	}
	r := newReader(string(v), 1)
	for r.more() {
		switch r.next() {
		case chanTagID:
			ch.ID = r.rest()
		case chanTagURI:
			ch.URI = r.rest()
		case chanTagUser:
			ch.User = r.rest()
		case chanTagFeeds:
			ch.Feeds = r.strList()
		case chanTagDevice:
			ch.Device = r.rest()
		case chanTagCreated:
			ch.Created = r.timeVal()
		case chanTagLastOutcome:
			ch.LastOutcome = r.rest()
		case chanTagLastOutcomeAt:
			ch.LastOutcomeAt = r.timeVal()
		case chanTagFailureStreak:
			ch.FailureStreak = r.int()
		case chanTagNextAllowedAt:
			ch.NextAllowedAt = r.timeVal()
		case chanTagSendsDay:
			ch.SendsDay = r.rest()
		case chanTagSendsToday:
			ch.SendsToday = r.int()
		case chanTagTransport:
			ch.Transport = tilecast.Transport(r.rest())
		case chanTagKeys:
			n := r.nested()
			ch.Keys = n.pushKeys()
			r.closeNested(&n)
		case chanTagExpires:
			ch.Expires = r.timeVal()
		default:
			r.skip()
		}
		r.done()
	}
	if r.err != nil {
		return tilecast.Channel{}, fmt.Errorf("decode channel: %w", r.err)
	}
	if ch.Transport == "" {
		ch.Transport = tilecast.TransportMPNS
	}
	return ch, nil
}

func (r *recordReader) pushKeys() *tilecast.PushKeys {
	k := &tilecast.PushKeys{}
	for r.more() {
		switch r.next() {
		case keysTagP256DH:
			k.P256DH = r.bytesVal()
		case keysTagAuth:
			k.Auth = r.bytesVal()
		default:
			r.skip()
		}
		r.done()
	}
	return k
}

// checkVersion checks the version byte of a record.
func checkVersion(v []byte, version byte) error {
	switch {
	case len(v) == 0:
		return fmt.Errorf("%w: empty", errRecord)
	case v[0] != version:
		return fmt.Errorf("%w: unknown version %d", errRecord, v[0])
	}
	return nil
}
