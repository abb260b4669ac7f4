package store

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/tilecast/tilecast"
)

// Outbox record version bytes. A new layout gets a new byte; the decoder
// keeps reading the old ones.
const (
	recordV1 = 1 // request inline: headers + body (files written before payloads were shared)
	recordV2 = 2 // request stored once in the bodies bucket, referenced by key
	recordV3 = 3 // the payload only, inline or referenced (the current form)
)

// Payload forms of a version 3 record.
const (
	payloadInline = 0
	payloadShared = 1
)

// Outbox record (uvarint = encoding/binary Uvarint, str = uvarint length +
// bytes, time = byte 0 (zero time) or 1 + varint Unix seconds + uvarint
// nanoseconds):
//
//	byte    version (3; 1 and 2 are read)
//	uvarint ID
//	str     ChannelID, Feed, User, ItemID, Kind
//	v3:     byte payload form: 0 = str payload inline, 1 = 32-byte key of
//	        the payload in bodies (bodies.go)
//	v2:     32-byte key of a stored request (headers + body) in bodies
//	v1:     the request inline: uvarint header count, per header str Name,
//	        str Value; str body
//	varint  Attempts
//	time    NextAttempt, Created
//
// An entry keeps what the notification is (kind, payload, creation time),
// not how it is sent: the transport builds its request at send time.
// Versions 1 and 2 stored the whole MPNS request; their body is the
// payload, and their headers followed from the kind, so they are read
// and dropped.
//
// Binary instead of JSON because a fan-out writes one record per channel and
// the payload would otherwise be base64-encoded. The payload is shared
// because a global feed's fan-out gives every channel the same one: stored
// inline that is ~1 KB per entry, referenced it is 32 bytes.
//
// The encoder writes only version 3: the enqueuer with a shared payload; an
// older entry that is rewritten (a retry re-keys it) keeps its reference
// (version 2 → 3 shared) or its body inline (version 1 → 3 inline), so a
// file in the field drains without a migration.

var errRecord = errors.New("bad record")

// payloadKey names a stored payload (bodies.go).
type payloadKey [sha256.Size]byte

// entry is a decoded outbox record: its notification, and the key of its
// payload when the payload is shared (n.Payload is then nil).
type entry struct {
	n      tilecast.Notification
	ref    payloadKey
	hasRef bool
}

func strLen(v string) int { return binary.MaxVarintLen64 + len(v) }

// entryLen bounds the length of encodeEntry(e).
func entryLen(e *entry) int {
	n := &e.n
	l := 1 + binary.MaxVarintLen64 + strLen(n.ChannelID) + strLen(n.Feed) + strLen(n.User) + strLen(n.ItemID) + strLen(string(n.Kind))
	l++ // payload form
	if e.hasRef {
		l += len(e.ref)
	} else {
		l += binary.MaxVarintLen64 + len(n.Payload)
	}
	l += binary.MaxVarintLen64
	return l + 2*(1+2*binary.MaxVarintLen64)
}

func appendStr(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendTime(dst []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(dst, 0)
	}
	dst = append(dst, 1)
	dst = binary.AppendVarint(dst, t.Unix())
	return binary.AppendUvarint(dst, uint64(t.Nanosecond()))
}

// encodeEntry appends e's record to dst, in version 3.
func encodeEntry(dst []byte, e *entry) []byte {
	n := &e.n
	dst = append(dst, recordV3)
	dst = binary.AppendUvarint(dst, n.ID)
	dst = appendStr(dst, n.ChannelID)
	dst = appendStr(dst, n.Feed)
	dst = appendStr(dst, n.User)
	dst = appendStr(dst, n.ItemID)
	dst = appendStr(dst, string(n.Kind))
	if e.hasRef {
		dst = append(dst, payloadShared)
		dst = append(dst, e.ref[:]...)
	} else {
		dst = append(dst, payloadInline)
		dst = binary.AppendUvarint(dst, uint64(len(n.Payload)))
		dst = append(dst, n.Payload...)
	}
	dst = binary.AppendVarint(dst, int64(n.Attempts))
	dst = appendTime(dst, n.NextAttempt)
	return appendTime(dst, n.Created)
}

// encodeEntryInto encodes e into memory taken from a (see arena).
func encodeEntryInto(a *arena, e *entry) []byte {
	return encodeEntry(a.take(entryLen(e))[:0], e)
}

// decodeVersioned decodes a record of any version: binary (the first byte
// is version, and bin reads the rest) or the JSON written before binary
// records existed (first byte '{'). what names the record in errors.
func decodeVersioned[T any](what string, v []byte, version byte, bin func([]byte) (T, error)) (T, error) {
	var zero T
	if len(v) == 0 {
		return zero, fmt.Errorf("decode %s: %w: empty", what, errRecord)
	}
	switch v[0] {
	case version:
		return bin(v)
	case '{':
		return decodeJSON[T](what, v)
	default:
		return zero, fmt.Errorf("decode %s: %w: unknown version %d", what, errRecord, v[0])
	}
}

// decodeJSON is decodeVersioned's JSON branch, apart so that the value it
// decodes into (which escapes) is only allocated for JSON records.
func decodeJSON[T any](what string, v []byte) (T, error) {
	x := new(T)
	if err := json.Unmarshal(v, x); err != nil {
		var zero T
		return zero, fmt.Errorf("decode %s: %w", what, err)
	}
	return *x, nil
}

// recordReader reads a record. All strings are cut from one string copy of
// the record, so decoding costs a few allocations however many fields there are.
// It is strict: every value has one encoding (no overlong varint, no zero
// time under tag 1), which is what the encoders write, so a decoded record
// re-encodes to the same bytes (the codec fuzz targets check it).
type recordReader struct {
	s   string
	off int
	err error
}

func (r *recordReader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s at byte %d", errRecord, what, r.off)
	}
}

func (r *recordReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	var v uint64
	var shift uint
	for i := 0; i < binary.MaxVarintLen64; i++ {
		if r.off >= len(r.s) {
			r.fail("truncated varint")
			return 0
		}
		c := r.s[r.off]
		r.off++
		if i == binary.MaxVarintLen64-1 && c > 1 {
			r.fail("varint overflow")
			return 0
		}
		if c < 0x80 {
			if c == 0 && i > 0 {
				r.fail("overlong varint")
				return 0
			}
			return v | uint64(c)<<shift
		}
		v |= uint64(c&0x7f) << shift
		shift += 7
	}
	r.fail("varint overflow")
	return 0
}

func (r *recordReader) varint() int64 {
	ux := r.uvarint()
	x := int64(ux >> 1)
	if ux&1 != 0 {
		x = ^x
	}
	return x
}

func (r *recordReader) int() int {
	x := r.varint()
	if x < math.MinInt || x > math.MaxInt {
		r.fail("int out of range")
		return 0
	}
	return int(x)
}

func (r *recordReader) byte() byte {
	if r.err != nil {
		return 0
	}
	if r.off >= len(r.s) {
		r.fail("truncated")
		return 0
	}
	c := r.s[r.off]
	r.off++
	return c
}

func (r *recordReader) str() string {
	n := r.uvarint()
	if r.err != nil {
		return ""
	}
	if n > uint64(len(r.s)-r.off) {
		r.fail("length past end")
		return ""
	}
	v := r.s[r.off : r.off+int(n)]
	r.off += int(n)
	return v
}

func (r *recordReader) time() time.Time {
	switch r.byte() {
	case 0:
		return time.Time{}
	case 1:
		sec := r.varint()
		nsec := r.uvarint()
		if r.err != nil {
			return time.Time{}
		}
		if nsec >= uint64(time.Second) {
			r.fail("nanoseconds out of range")
			return time.Time{}
		}
		t := time.Unix(sec, int64(nsec)).UTC()
		if t.IsZero() {
			r.fail("zero time with tag 1")
			return time.Time{}
		}
		return t
	default:
		r.fail("bad time tag")
		return time.Time{}
	}
}

// decodeEntry parses an outbox record of any version. It copies what it
// keeps (bbolt's value is only valid inside the transaction) and rejects
// anything malformed, including trailing bytes.
func decodeEntry(b []byte) (entry, error) {
	var e entry
	if len(b) == 0 {
		return e, fmt.Errorf("%w: empty", errRecord)
	}
	version := b[0]
	if version != recordV1 && version != recordV2 && version != recordV3 {
		return e, fmt.Errorf("%w: unknown version %d", errRecord, version)
	}
	r := &recordReader{s: string(b), off: 1}
	n := &e.n
	n.ID = r.uvarint()
	n.ChannelID = r.str()
	n.Feed = r.str()
	n.User = r.str()
	n.ItemID = r.str()
	n.Kind = tilecast.Kind(r.str())
	form := byte(payloadShared) // version 2
	switch version {
	case recordV1:
		form = payloadInline
		r.requestHeaders()
	case recordV3:
		form = r.byte()
	}
	switch form {
	case payloadInline:
		if p := r.str(); len(p) > 0 && r.err == nil {
			n.Payload = []byte(p)
		}
	case payloadShared:
		if k := r.raw(len(e.ref)); r.err == nil {
			copy(e.ref[:], k)
			e.hasRef = true
		}
	default:
		r.fail("bad payload form")
	}
	att := r.varint()
	if att < math.MinInt || att > math.MaxInt {
		r.fail("attempts out of range")
	}
	n.Attempts = int(att)
	n.NextAttempt = r.time()
	n.Created = r.time()
	if r.err == nil && r.off != len(r.s) {
		r.fail("trailing bytes")
	}
	if r.err != nil {
		return entry{}, r.err
	}
	return e, nil
}

// raw returns the next n bytes.
func (r *recordReader) raw(n int) string {
	if r.err != nil {
		return ""
	}
	if n > len(r.s)-r.off {
		r.fail("truncated")
		return ""
	}
	v := r.s[r.off : r.off+n]
	r.off += n
	return v
}

// requestHeaders reads and drops the headers of a stored request (record
// version 1, bodies layout 1): uvarint count, then str name and str value
// each. They were the MPNS headers of the entry's kind, which the
// transport now builds when it sends.
func (r *recordReader) requestHeaders() {
	hc := r.uvarint()
	// Each header takes at least two bytes: a count beyond that is garbage,
	// and checking it first keeps a hostile count from looping long.
	if r.err == nil && hc > uint64(len(r.s)-r.off)/2 {
		r.fail("header count past end")
	}
	for i := uint64(0); i < hc && r.err == nil; i++ {
		r.str()
		r.str()
	}
}
