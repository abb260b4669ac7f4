package store

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/tilecast/tilecast"
)

// outcomeV2 is the version byte of a ledger value in tagged form
// (tlv.go). Version 1 and JSON values are older forms (migrate_old.go).
const outcomeV2 = 2

// Ledger value, version 2: tagged fields (tlv.go)
//
//	1 time Time           7  int  Status          13 int  RetryIn (ns)
//	2 str  ChannelID      8  str  Notification    14 int  Duration (ns)
//	3 str  User           9  str  Subscription    15 str  Error
//	4 str  Feed           10 str  Device
//	5 str  ItemID         11 str  Action          16 str  Transport
//	6 str  Kind           12 int  Attempt         17 str  MsgID (WNS)
//	                                              18 str  DebugTrace (WNS)
//	                                              19 str  CorrelationVector (WNS)
//	                                              20 bool TokenRefreshed (WNS)
//	                                              21 str  DeviceID
//
// Binary instead of JSON because Record appends one ledger value per sent
// outcome, and at a 100k-channel fan-out Record dominates: JSON encoding
// (reflection, time formatting, string escaping) was a large share of it.
// Kind and Action are strings, so new kinds and actions need no new
// version. A round trip keeps what the channel record keeps
// (chancodec.go): every string byte for byte, each time's instant
// returned in UTC.
const (
	outTagTime = 1 + iota
	outTagChannel
	outTagUser
	outTagFeed
	outTagItem
	outTagKind
	outTagStatus
	outTagNotification
	outTagSubscription
	outTagDevice
	outTagAction
	outTagAttempt
	outTagRetryIn
	outTagDuration
	outTagError
	outTagTransport
	outTagMsgID
	outTagDebugTrace
	outTagCorrelationVector
	outTagTokenRefreshed
	outTagDeviceID
)

// appendOutcomeFields appends o's fields (no version byte).
func appendOutcomeFields(dst []byte, o *tilecast.Outcome) []byte {
	dst = appendTimeField(dst, outTagTime, o.Time)
	dst = appendStrField(dst, outTagChannel, o.ChannelID)
	dst = appendStrField(dst, outTagUser, o.User)
	dst = appendStrField(dst, outTagFeed, o.Feed)
	dst = appendStrField(dst, outTagItem, o.ItemID)
	dst = appendStrField(dst, outTagKind, string(o.Kind))
	dst = appendIntField(dst, outTagStatus, int64(o.Status))
	dst = appendStrField(dst, outTagNotification, o.Notification)
	dst = appendStrField(dst, outTagSubscription, o.Subscription)
	dst = appendStrField(dst, outTagDevice, o.Device)
	dst = appendStrField(dst, outTagAction, string(o.Action))
	dst = appendIntField(dst, outTagAttempt, int64(o.Attempt))
	dst = appendIntField(dst, outTagRetryIn, int64(o.RetryIn))
	dst = appendIntField(dst, outTagDuration, int64(o.Duration))
	dst = appendStrField(dst, outTagError, o.Error)
	dst = appendStrField(dst, outTagTransport, string(o.Transport))
	dst = appendStrField(dst, outTagMsgID, o.MsgID)
	dst = appendStrField(dst, outTagDebugTrace, o.DebugTrace)
	dst = appendStrField(dst, outTagCorrelationVector, o.CorrelationVector)
	dst = appendBoolField(dst, outTagTokenRefreshed, o.TokenRefreshed)
	return appendStrField(dst, outTagDeviceID, o.DeviceID)
}

// appendOutcome appends o's value to dst.
func appendOutcome(dst []byte, o *tilecast.Outcome) []byte {
	return appendOutcomeFields(append(dst, outcomeV2), o)
}

// encodeOutcome returns o's value in a new slice of its own.
func encodeOutcome(o *tilecast.Outcome) []byte {
	n := 1 + outTagDeviceID*(maxFieldHead+2*binary.MaxVarintLen64)
	n += len(o.ChannelID) + len(o.User) + len(o.Feed) + len(o.ItemID) + len(o.Kind) + len(o.Notification) +
		len(o.Subscription) + len(o.Device) + len(o.Action) + len(o.Error) + len(o.Transport) + len(o.MsgID) +
		len(o.DebugTrace) + len(o.CorrelationVector) + len(o.DeviceID)
	return appendOutcome(make([]byte, 0, n), o)
}

// encodeOutcomeInto encodes o into memory taken from a: bbolt keeps a Put
// value until the transaction ends, and Record puts one per outcome.
func encodeOutcomeInto(a *arena, o *tilecast.Outcome) []byte {
	a.scratch = appendOutcome(a.scratch[:0], o)
	v := a.take(len(a.scratch))
	copy(v, a.scratch)
	return v
}

// decodeOutcome parses a ledger value. The result shares nothing with v,
// which bbolt only keeps valid inside the transaction; an outcome costs
// one allocation.
func decodeOutcome(v []byte) (tilecast.Outcome, error) {
	var o tilecast.Outcome
	if err := checkVersion(v, outcomeV2); err != nil {
		return o, fmt.Errorf("decode outcome: %w", err)
	}
	r := newReader(string(v), 1)
	r.outcome(&o)
	if r.err != nil {
		return tilecast.Outcome{}, fmt.Errorf("decode outcome: %w", r.err)
	}
	return o, nil
}

// outcome reads the fields of an outcome (a ledger value's or a dead
// letter's) into o.
func (r *recordReader) outcome(o *tilecast.Outcome) {
	for r.more() {
		switch r.next() {
		case outTagTime:
			o.Time = r.timeVal()
		case outTagChannel:
			o.ChannelID = r.rest()
		case outTagUser:
			o.User = r.rest()
		case outTagFeed:
			o.Feed = r.rest()
		case outTagItem:
			o.ItemID = r.rest()
		case outTagKind:
			o.Kind = tilecast.Kind(r.rest())
		case outTagStatus:
			o.Status = r.int()
		case outTagNotification:
			o.Notification = r.rest()
		case outTagSubscription:
			o.Subscription = r.rest()
		case outTagDevice:
			o.Device = r.rest()
		case outTagAction:
			o.Action = tilecast.Action(r.rest())
		case outTagAttempt:
			o.Attempt = r.int()
		case outTagRetryIn:
			o.RetryIn = time.Duration(r.varint())
		case outTagDuration:
			o.Duration = time.Duration(r.varint())
		case outTagError:
			o.Error = r.rest()
		case outTagTransport:
			o.Transport = tilecast.Transport(r.rest())
		case outTagMsgID:
			o.MsgID = r.rest()
		case outTagDebugTrace:
			o.DebugTrace = r.rest()
		case outTagDeviceID:
			o.DeviceID = r.rest()
		case outTagCorrelationVector:
			o.CorrelationVector = r.rest()
		case outTagTokenRefreshed:
			o.TokenRefreshed = r.boolVal()
		default:
			r.skip()
		}
		r.done()
	}
}
