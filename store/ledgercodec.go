package store

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/tilecast/tilecast"
)

// outcomeV1 is the version byte of the binary ledger value. Values written
// before it are JSON and so start with '{'; like channelV1, no version byte
// may ever be '{' (or anything else a JSON text can start with), so
// decodeOutcome can tell the two apart by the first byte alone.
const outcomeV1 = 1

// Ledger value, version 1 (the channel record's encodings, see
// chancodec.go: uvarint / varint = encoding/binary, str = uvarint length +
// bytes, time = byte 0 for the zero time, else 1 + varint Unix seconds +
// uvarint nanoseconds):
//
//	byte    version (1)
//	time    Time
//	str     ChannelID, User, Feed, ItemID, Kind
//	varint  Status
//	str     Notification, Subscription, Device, Action
//	varint  Attempt
//	varint  RetryIn, Duration (nanoseconds)
//	str     Error
//
// Binary instead of JSON because Record appends one ledger value per sent
// outcome, and at a 100k-channel fan-out Record dominates: JSON encoding
// (reflection, time formatting, string escaping) was a large share of it.
// There is no migration: a JSON value stays readable until pruning drops
// it (at most LedgerRetention later).
//
// A round trip keeps what the channel record keeps (chancodec.go): every
// string byte for byte, each time's instant returned in UTC. Decoding is
// as strict, so a value has exactly one encoding.

// outcomeLen is the exact length of o's version 1 value.
func outcomeLen(o *tilecast.Outcome) int {
	l := 1 + chanTimeLen(o.Time)
	l += chanStrLen(o.ChannelID) + chanStrLen(o.User) + chanStrLen(o.Feed) + chanStrLen(o.ItemID) + chanStrLen(string(o.Kind))
	l += chanVarintLen(int64(o.Status))
	l += chanStrLen(o.Notification) + chanStrLen(o.Subscription) + chanStrLen(o.Device) + chanStrLen(string(o.Action))
	l += chanVarintLen(int64(o.Attempt))
	l += chanVarintLen(int64(o.RetryIn)) + chanVarintLen(int64(o.Duration))
	return l + chanStrLen(o.Error)
}

// appendOutcome appends o's version 1 value to dst.
func appendOutcome(dst []byte, o *tilecast.Outcome) []byte {
	dst = append(dst, outcomeV1)
	dst = appendTime(dst, o.Time)
	dst = appendStr(dst, o.ChannelID)
	dst = appendStr(dst, o.User)
	dst = appendStr(dst, o.Feed)
	dst = appendStr(dst, o.ItemID)
	dst = appendStr(dst, string(o.Kind))
	dst = binary.AppendVarint(dst, int64(o.Status))
	dst = appendStr(dst, o.Notification)
	dst = appendStr(dst, o.Subscription)
	dst = appendStr(dst, o.Device)
	dst = appendStr(dst, string(o.Action))
	dst = binary.AppendVarint(dst, int64(o.Attempt))
	dst = binary.AppendVarint(dst, int64(o.RetryIn))
	dst = binary.AppendVarint(dst, int64(o.Duration))
	return appendStr(dst, o.Error)
}

// encodeOutcome returns o's value in a new slice of its own.
func encodeOutcome(o *tilecast.Outcome) []byte {
	return appendOutcome(make([]byte, 0, outcomeLen(o)), o)
}

// encodeOutcomeInto encodes o into memory taken from a: bbolt keeps a Put
// value until the transaction ends, and Record puts one per outcome.
func encodeOutcomeInto(a *arena, o *tilecast.Outcome) []byte {
	return appendOutcome(a.take(outcomeLen(o))[:0], o)
}

// decodeOutcome parses a ledger value of any version: binary (the first
// byte is a version byte) or the JSON written before it (first byte '{').
// The result shares nothing with v, which bbolt only keeps valid inside
// the transaction.
func decodeOutcome(v []byte) (tilecast.Outcome, error) {
	return decodeVersioned("outcome", v, outcomeV1, decodeOutcomeV1)
}

// decodeOutcomeV1 cuts every string from one string copy of v, so an
// outcome costs one allocation.
func decodeOutcomeV1(v []byte) (tilecast.Outcome, error) {
	var o tilecast.Outcome
	r := &recordReader{s: string(v), off: 1}
	o.Time = r.time()
	o.ChannelID = r.str()
	o.User = r.str()
	o.Feed = r.str()
	o.ItemID = r.str()
	o.Kind = tilecast.Kind(r.str())
	o.Status = r.int()
	o.Notification = r.str()
	o.Subscription = r.str()
	o.Device = r.str()
	o.Action = tilecast.Action(r.str())
	o.Attempt = r.int()
	o.RetryIn = time.Duration(r.varint())
	o.Duration = time.Duration(r.varint())
	o.Error = r.str()
	if r.err == nil && r.off != len(r.s) {
		r.fail("trailing bytes")
	}
	if r.err != nil {
		return tilecast.Outcome{}, fmt.Errorf("decode outcome: %w", r.err)
	}
	return o, nil
}
