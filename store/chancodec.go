package store

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"time"

	"github.com/tilecast/tilecast"
)

// channelV1 is the version byte of the binary channel record. Records
// written before it are JSON and so start with '{'; no version byte may
// ever be '{' (or anything else a JSON text can start with), so
// decodeChannel can tell the two apart by the first byte alone.
const channelV1 = 1

// Channel record, version 1 (uvarint / varint = encoding/binary, str =
// uvarint length + bytes, time = byte 0 for the zero time, else 1 + varint
// Unix seconds + uvarint nanoseconds — the outbox record's encodings, see
// codec.go):
//
//	byte    version (1)
//	str     ID, URI, User
//	uvarint feed count, then str per feed
//	str     Device
//	time    Created
//	str     LastOutcome
//	time    LastOutcomeAt
//	varint  FailureStreak
//	time    NextAllowedAt
//	str     SendsDay
//	varint  SendsToday
//
// Binary instead of JSON because every due entry, every recorded outcome
// and every subscriber decodes a channel: JSON decoding was ~6 % of a
// fan-out's CPU. There is no migration: a JSON record stays readable and
// becomes binary the next time the channel is written.
//
// What a round trip keeps: every string byte for byte (JSON replaced
// invalid UTF-8), and each time's instant, returned in UTC (JSON kept the
// writer's UTC offset; the daemon compares instants and formats in UTC).
// An empty Feeds comes back nil, as it did through JSON's omitempty; the
// store never tells the two apart (index, Subscribed and normFeeds treat
// both as "every global feed").
//
// Decoding is strict so that a record has exactly one encoding: overlong
// varints, a zero time written with tag 1 and trailing bytes are errors.

// chanUvarintLen is the length of x as a uvarint.
func chanUvarintLen(x uint64) int { return (bits.Len64(x|1) + 6) / 7 }

func chanVarintLen(x int64) int {
	ux := uint64(x) << 1
	if x < 0 {
		ux = ^ux
	}
	return chanUvarintLen(ux)
}

func chanStrLen(s string) int { return chanUvarintLen(uint64(len(s))) + len(s) }

func chanTimeLen(t time.Time) int {
	if t.IsZero() {
		return 1
	}
	return 1 + chanVarintLen(t.Unix()) + chanUvarintLen(uint64(t.Nanosecond()))
}

// channelLen is the exact length of ch's version 1 record.
func channelLen(ch *tilecast.Channel) int {
	l := 1 + chanStrLen(ch.ID) + chanStrLen(ch.URI) + chanStrLen(ch.User)
	l += chanUvarintLen(uint64(len(ch.Feeds)))
	for _, f := range ch.Feeds {
		l += chanStrLen(f)
	}
	l += chanStrLen(ch.Device) + chanTimeLen(ch.Created)
	l += chanStrLen(ch.LastOutcome) + chanTimeLen(ch.LastOutcomeAt)
	l += chanVarintLen(int64(ch.FailureStreak)) + chanTimeLen(ch.NextAllowedAt)
	l += chanStrLen(ch.SendsDay) + chanVarintLen(int64(ch.SendsToday))
	return l
}

// appendChannel appends ch's version 1 record to dst.
func appendChannel(dst []byte, ch *tilecast.Channel) []byte {
	dst = append(dst, channelV1)
	dst = appendStr(dst, ch.ID)
	dst = appendStr(dst, ch.URI)
	dst = appendStr(dst, ch.User)
	dst = binary.AppendUvarint(dst, uint64(len(ch.Feeds)))
	for _, f := range ch.Feeds {
		dst = appendStr(dst, f)
	}
	dst = appendStr(dst, ch.Device)
	dst = appendTime(dst, ch.Created)
	dst = appendStr(dst, ch.LastOutcome)
	dst = appendTime(dst, ch.LastOutcomeAt)
	dst = binary.AppendVarint(dst, int64(ch.FailureStreak))
	dst = appendTime(dst, ch.NextAllowedAt)
	dst = appendStr(dst, ch.SendsDay)
	return binary.AppendVarint(dst, int64(ch.SendsToday))
}

// encodeChannel returns ch's record in a new slice of its own (bbolt keeps
// a Put value until the transaction ends, so it must not be reused).
func encodeChannel(ch *tilecast.Channel) []byte {
	return appendChannel(make([]byte, 0, channelLen(ch)), ch)
}

// decodeChannel parses a channel record of any version: binary (the first
// byte is a version byte) or the JSON written before it (first byte '{').
// The result shares nothing with v, which bbolt only keeps valid inside
// the transaction.
func decodeChannel(v []byte) (tilecast.Channel, error) {
	return decodeVersioned("channel", v, channelV1, decodeChannelV1)
}

// decodeChannelV1 cuts every string from one string copy of v, so a
// channel costs two allocations (that copy and, if any, the feed list).
func decodeChannelV1(v []byte) (tilecast.Channel, error) {
	var ch tilecast.Channel
	r := &recordReader{s: string(v), off: 1}
	ch.ID = r.str()
	ch.URI = r.str()
	ch.User = r.str()
	nf := r.uvarint()
	// Each feed takes at least one byte: checking the count first keeps a
	// hostile count from allocating.
	if r.err == nil && nf > uint64(len(r.s)-r.off) {
		r.fail("feed count past end")
	}
	if r.err == nil && nf > 0 {
		ch.Feeds = make([]string, nf)
		for i := range ch.Feeds {
			ch.Feeds[i] = r.str()
		}
	}
	ch.Device = r.str()
	ch.Created = r.time()
	ch.LastOutcome = r.str()
	ch.LastOutcomeAt = r.time()
	ch.FailureStreak = r.int()
	ch.NextAllowedAt = r.time()
	ch.SendsDay = r.str()
	ch.SendsToday = r.int()
	if r.err == nil && r.off != len(r.s) {
		r.fail("trailing bytes")
	}
	if r.err != nil {
		return tilecast.Channel{}, fmt.Errorf("decode channel: %w", r.err)
	}
	return ch, nil
}
