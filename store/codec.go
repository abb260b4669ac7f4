package store

import (
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/tilecast/tilecast"
)

// recordV4 is the version byte of an outbox record in tagged form
// (tlv.go). Versions 1 to 3 are older forms (migrate_old.go).
const recordV4 = 4

// Outbox record, version 4: tagged fields (tlv.go)
//
//	1 uint ID (the outbox sequence)    7  str  Payload, inline
//	2 str  ChannelID                   8  str  32-byte key of the payload
//	3 str  Feed                                in bodies (bodies.go)
//	4 str  User                        9  int  Attempts
//	5 str  ItemID                      10 time NextAttempt
//	6 str  Kind                        11 time Created
//
// An entry keeps what the notification is (kind, payload, creation time),
// not how it is sent: the transport builds its request at send time. Kind
// is a string, so a kind added later (the WNS badge) needs no new version.
// At most one of 7 and 8 is present; neither means an empty payload.
//
// Binary instead of JSON because a fan-out writes one record per channel and
// the payload would otherwise be base64-encoded. The payload is shared
// because a global feed's fan-out gives every channel the same one: stored
// inline that is ~1 KB per entry, referenced it is 32 bytes. The enqueuer
// writes shared payloads; inline ones come from entries written before
// payloads were shared.
const (
	entryTagID = 1 + iota
	entryTagChannel
	entryTagFeed
	entryTagUser
	entryTagItem
	entryTagKind
	entryTagPayload
	entryTagPayloadRef
	entryTagAttempts
	entryTagNextAttempt
	entryTagCreated
)

var errRecord = errors.New("bad record")

// payloadKey names a stored payload (bodies.go).
type payloadKey [sha256.Size]byte

// entry is a decoded outbox record: its notification, and the key of its
// payload when the payload is shared (n.Payload is then nil). unknown are
// the fields a newer tilecast wrote that this one does not read; they are
// written back when the entry is rewritten (a retry re-keys it).
type entry struct {
	n       tilecast.Notification
	ref     payloadKey
	hasRef  bool
	unknown []rawField
}

// appendNotification appends n's fields (tags 1–11), with ref as its
// payload when non-nil.
func appendNotification(dst []byte, n *tilecast.Notification, ref *payloadKey) []byte {
	dst = appendUintField(dst, entryTagID, n.ID)
	dst = appendStrField(dst, entryTagChannel, n.ChannelID)
	dst = appendStrField(dst, entryTagFeed, n.Feed)
	dst = appendStrField(dst, entryTagUser, n.User)
	dst = appendStrField(dst, entryTagItem, n.ItemID)
	dst = appendStrField(dst, entryTagKind, string(n.Kind))
	if ref != nil {
		dst = appendBytesField(dst, entryTagPayloadRef, ref[:])
	} else {
		dst = appendBytesField(dst, entryTagPayload, n.Payload)
	}
	dst = appendIntField(dst, entryTagAttempts, int64(n.Attempts))
	dst = appendTimeField(dst, entryTagNextAttempt, n.NextAttempt)
	return appendTimeField(dst, entryTagCreated, n.Created)
}

// encodeEntry appends e's record to dst.
func encodeEntry(dst []byte, e *entry) []byte {
	start := len(dst)
	dst = append(dst, recordV4)
	var ref *payloadKey
	if e.hasRef {
		ref = &e.ref
	}
	dst = appendNotification(dst, &e.n, ref)
	if len(e.unknown) > 0 {
		merged := mergeFields(dst[start:], e.unknown)
		dst = append(dst[:start], merged...)
	}
	return dst
}

// encodeEntryInto encodes e into memory taken from a (see arena).
func encodeEntryInto(a *arena, e *entry) []byte {
	a.scratch = encodeEntry(a.scratch[:0], e)
	v := a.take(len(a.scratch))
	copy(v, a.scratch)
	return v
}

// decodeEntry parses an outbox record. It copies what it keeps (bbolt's
// value is only valid inside the transaction) and rejects anything
// malformed.
func decodeEntry(b []byte) (entry, error) {
	var e entry
	if err := checkVersion(b, recordV4); err != nil {
		return e, err
	}
	r := newReader(string(b), 1)
	r.notification(&e, true)
	if r.err != nil {
		return entry{}, r.err
	}
	return e, nil
}

// notification reads the fields of a notification (an outbox record or a
// dead letter's) into e, keeping unknown fields when keep is set.
func (r *recordReader) notification(e *entry, keep bool) {
	n := &e.n
	for r.more() {
		start := r.off
		switch tag := r.next(); tag {
		case entryTagID:
			n.ID = r.uvarint()
		case entryTagChannel:
			n.ChannelID = r.rest()
		case entryTagFeed:
			n.Feed = r.rest()
		case entryTagUser:
			n.User = r.rest()
		case entryTagItem:
			n.ItemID = r.rest()
		case entryTagKind:
			n.Kind = tilecast.Kind(r.rest())
		case entryTagPayload:
			n.Payload = r.bytesVal()
		case entryTagPayloadRef:
			if n.Payload != nil {
				r.fail("payload both inline and stored")
			} else if k := r.rest(); len(k) != len(e.ref) {
				r.fail("payload key is not 32 bytes")
			} else {
				copy(e.ref[:], k)
				e.hasRef = true
			}
		case entryTagAttempts:
			n.Attempts = r.int()
		case entryTagNextAttempt:
			n.NextAttempt = r.timeVal()
		case entryTagCreated:
			n.Created = r.timeVal()
		default:
			if keep && r.err == nil {
				e.unknown = append(e.unknown, rawField{tag: tag, raw: r.s[start:r.end]})
			}
			r.skip()
		}
		r.done()
	}
}

// DeadLetter is a notification given up on with its last outcome: the
// root package's type, which both stores return.
type DeadLetter = tilecast.DeadLetter

// deadV1 is the version byte of a dead letter record. Dead letters were
// JSON before (migrate_old.go).
const deadV1 = 1

// Dead letter record, version 1: tagged fields (tlv.go)
//
//	1 nested  the notification: the outbox record's fields, its payload
//	          always inline (tag 7)
//	2 nested  the last outcome: the ledger value's fields (ledgercodec.go)
const (
	deadTagNotification = 1
	deadTagOutcome      = 2
)

// encodeDeadLetter returns d's record in a slice of its own.
func encodeDeadLetter(d *DeadLetter) []byte {
	var scratch []byte
	dst := []byte{deadV1}
	dst = appendNested(dst, deadTagNotification, &scratch, func(b []byte) []byte {
		return appendNotification(b, &d.Notification, nil)
	})
	return appendNested(dst, deadTagOutcome, &scratch, func(b []byte) []byte {
		return appendOutcomeFields(b, &d.Outcome)
	})
}

// decodeDeadLetter parses a dead letter record.
func decodeDeadLetter(v []byte) (DeadLetter, error) {
	var d DeadLetter
	if err := checkVersion(v, deadV1); err != nil {
		return d, fmt.Errorf("decode dead letter: %w", err)
	}
	r := newReader(string(v), 1)
	for r.more() {
		switch r.next() {
		case deadTagNotification:
			var e entry
			n := r.nested()
			n.notification(&e, false)
			if n.err == nil && e.hasRef {
				n.fail("payload not inline")
			}
			r.closeNested(&n)
			d.Notification = e.n
		case deadTagOutcome:
			n := r.nested()
			n.outcome(&d.Outcome)
			r.closeNested(&n)
		default:
			r.skip()
		}
		r.done()
	}
	if r.err != nil {
		return DeadLetter{}, fmt.Errorf("decode dead letter: %w", r.err)
	}
	return d, nil
}
