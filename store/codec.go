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

// Record version bytes. A new layout gets a new byte; the decoder keeps
// reading the old ones.
const (
	recordV1 = 1 // request inline (files written before payloads were shared)
	recordV2 = 2 // request stored once in the bodies bucket, referenced by key
)

// Outbox record (uvarint = encoding/binary Uvarint, str = uvarint length +
// bytes, time = byte 0 (zero time) or 1 + varint Unix seconds + uvarint
// nanoseconds):
//
//	byte    version (1 or 2)
//	uvarint ID
//	str     ChannelID, Feed, User, ItemID, Kind
//	v1:     payload (uvarint header count, per header str Name, str Value;
//	        str Request.Body)
//	v2:     32 bytes payload key (bodies.go)
//	varint  Attempts
//	time    NextAttempt, Created
//
// Binary instead of JSON because a fan-out writes one record per channel and
// the body would otherwise be base64-encoded. Version 2 exists because a
// global feed's fan-out gives every channel the same request: stored inline
// that is ~1 KB per entry, referenced it is 32 bytes.
//
// The enqueuer writes only version 2. Version 1 entries are read and, when
// re-keyed by a retry, written back as version 1, so a file in the field
// drains without a migration.

var errRecord = errors.New("bad record")

// payloadKey is the sha256 of a payload's encoding (encodePayload).
type payloadKey [sha256.Size]byte

// entry is a decoded outbox record. A version 2 record has hasRef set and
// n.Request empty; a version 1 record carries its request in n.Request.
type entry struct {
	n      tilecast.Notification
	ref    payloadKey
	hasRef bool
}

// refHeader is the header name by which decodeNotification hands a version 2
// record's payload key to code that only knows tilecast.Notification (the
// codec tests and the record fuzz target round-trip through it; store code
// uses decodeEntry/encodeEntry), and by which encodeNotification recognises it. A real header name never
// contains NUL, and the version 1 decoder rejects this one.
const refHeader = "\x00payload-ref"

func refRequest(k payloadKey) tilecast.Request {
	return tilecast.Request{Headers: []tilecast.Header{{Name: refHeader, Value: string(k[:])}}}
}

// refOf reports the payload key r stands for, if it is a refRequest.
func refOf(r *tilecast.Request) (payloadKey, bool) {
	var k payloadKey
	if len(r.Headers) != 1 || r.Headers[0].Name != refHeader || len(r.Headers[0].Value) != len(k) || len(r.Body) != 0 {
		return k, false
	}
	copy(k[:], r.Headers[0].Value)
	return k, true
}

func strLen(v string) int { return binary.MaxVarintLen64 + len(v) }

// payloadLen bounds the length of encodePayload(r).
func payloadLen(r *tilecast.Request) int {
	l := binary.MaxVarintLen64
	for _, h := range r.Headers {
		l += strLen(h.Name) + strLen(h.Value)
	}
	return l + binary.MaxVarintLen64 + len(r.Body)
}

// appendPayload appends r's headers and body (the version 1 inline layout).
func appendPayload(dst []byte, r *tilecast.Request) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(r.Headers)))
	for _, h := range r.Headers {
		dst = appendStr(dst, h.Name)
		dst = appendStr(dst, h.Value)
	}
	dst = binary.AppendUvarint(dst, uint64(len(r.Body)))
	return append(dst, r.Body...)
}

// entryLen bounds the length of encodeEntry(e).
func entryLen(e *entry) int {
	n := &e.n
	l := 1 + binary.MaxVarintLen64 + strLen(n.ChannelID) + strLen(n.Feed) + strLen(n.User) + strLen(n.ItemID) + strLen(string(n.Kind))
	if e.hasRef {
		l += len(e.ref)
	} else {
		l += payloadLen(&n.Request)
	}
	l += binary.MaxVarintLen64
	return l + 2*(1+2*binary.MaxVarintLen64)
}

// encodedLen bounds the length of encodeNotification(n).
func encodedLen(n *tilecast.Notification) int {
	e := entry{n: *n}
	e.ref, e.hasRef = refOf(&n.Request)
	return entryLen(&e)
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

// encodeEntry appends e's record to dst: version 2 when it has a payload
// key, else version 1 with the request inline.
func encodeEntry(dst []byte, e *entry) []byte {
	n := &e.n
	if e.hasRef {
		dst = append(dst, recordV2)
	} else {
		dst = append(dst, recordV1)
	}
	dst = binary.AppendUvarint(dst, n.ID)
	dst = appendStr(dst, n.ChannelID)
	dst = appendStr(dst, n.Feed)
	dst = appendStr(dst, n.User)
	dst = appendStr(dst, n.ItemID)
	dst = appendStr(dst, string(n.Kind))
	if e.hasRef {
		dst = append(dst, e.ref[:]...)
	} else {
		dst = appendPayload(dst, &n.Request)
	}
	dst = binary.AppendVarint(dst, int64(n.Attempts))
	dst = appendTime(dst, n.NextAttempt)
	return appendTime(dst, n.Created)
}

// encodeEntryInto encodes e into memory taken from a (see arena).
func encodeEntryInto(a *arena, e *entry) []byte {
	return encodeEntry(a.take(entryLen(e))[:0], e)
}

// encodeNotification appends n's record to dst: version 2 when n.Request is
// a refRequest (a version 2 record decoded by decodeNotification), else
// version 1.
func encodeNotification(dst []byte, n *tilecast.Notification) []byte {
	e := entry{n: *n}
	if e.ref, e.hasRef = refOf(&n.Request); e.hasRef {
		e.n.Request = tilecast.Request{}
	}
	return encodeEntry(dst, &e)
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

// decodeEntry parses a record made by encodeEntry. It copies what it keeps
// (bbolt's value is only valid inside the transaction) and rejects anything
// malformed, including trailing bytes.
func decodeEntry(b []byte) (entry, error) {
	var e entry
	if len(b) == 0 {
		return e, fmt.Errorf("%w: empty", errRecord)
	}
	if b[0] != recordV1 && b[0] != recordV2 {
		return e, fmt.Errorf("%w: unknown version %d", errRecord, b[0])
	}
	r := &recordReader{s: string(b), off: 1}
	n := &e.n
	n.ID = r.uvarint()
	n.ChannelID = r.str()
	n.Feed = r.str()
	n.User = r.str()
	n.ItemID = r.str()
	n.Kind = tilecast.Kind(r.str())
	if b[0] == recordV2 {
		if k := r.raw(len(e.ref)); r.err == nil {
			copy(e.ref[:], k)
			e.hasRef = true
		}
	} else {
		n.Request = r.payload(false)
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

// payload reads appendPayload's layout. The body is a length-prefixed
// string, or with bodyToEnd everything that is left (the bodies bucket).
func (r *recordReader) payload(bodyToEnd bool) tilecast.Request {
	var req tilecast.Request
	hc := r.uvarint()
	// Each header takes at least two bytes: a count beyond that is garbage,
	// and checking it first keeps a hostile count from allocating.
	if r.err == nil && hc > uint64(len(r.s)-r.off)/2 {
		r.fail("header count past end")
	}
	if r.err == nil && hc > 0 {
		req.Headers = make([]tilecast.Header, hc)
		for i := range req.Headers {
			req.Headers[i] = tilecast.Header{Name: r.str(), Value: r.str()}
			if req.Headers[i].Name == refHeader {
				r.fail("reserved header name")
			}
		}
	}
	body := ""
	if bodyToEnd {
		body = r.raw(len(r.s) - r.off)
	} else {
		body = r.str()
	}
	if len(body) > 0 && r.err == nil {
		req.Body = []byte(body)
	}
	return req
}

// decodeNotification is decodeEntry for code that only handles
// tilecast.Notification: a version 2 record's request is the refRequest of
// its payload key, which encodeNotification writes back as the same key.
// It is not a sendable request; Due resolves payloads.
func decodeNotification(b []byte) (tilecast.Notification, error) {
	e, err := decodeEntry(b)
	if err != nil {
		return tilecast.Notification{}, err
	}
	if e.hasRef {
		e.n.Request = refRequest(e.ref)
	}
	return e.n, nil
}
