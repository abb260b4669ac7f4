package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/tilecast/tilecast"
)

// recordV1 is the version byte of the outbox record encoding. A new layout
// gets a new byte; the decoder keeps reading the old ones.
const recordV1 = 1

// Outbox record, version 1 (uvarint = encoding/binary Uvarint, str = uvarint
// length + bytes):
//
//	byte    version (1)
//	uvarint ID
//	str     ChannelID, Feed, User, ItemID, Kind
//	uvarint header count, then per header: str Name, str Value
//	str     Request.Body
//	varint  Attempts
//	time    NextAttempt, Created: byte 0 (zero time) or 1 + varint Unix seconds + uvarint nanoseconds
//
// Binary instead of JSON because a fan-out writes one record per channel and
// the body would otherwise be base64-encoded.

var errRecord = errors.New("bad outbox record")

func encodedLen(n *tilecast.Notification) int {
	s := func(v string) int { return binary.MaxVarintLen64 + len(v) }
	l := 1 + binary.MaxVarintLen64 + s(n.ChannelID) + s(n.Feed) + s(n.User) + s(n.ItemID) + s(string(n.Kind))
	l += binary.MaxVarintLen64
	for _, h := range n.Request.Headers {
		l += s(h.Name) + s(h.Value)
	}
	l += binary.MaxVarintLen64 + len(n.Request.Body)
	l += binary.MaxVarintLen64
	l += 2 * (1 + 2*binary.MaxVarintLen64)
	return l
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

// encodeNotification appends n's record to dst.
func encodeNotification(dst []byte, n *tilecast.Notification) []byte {
	dst = append(dst, recordV1)
	dst = binary.AppendUvarint(dst, n.ID)
	dst = appendStr(dst, n.ChannelID)
	dst = appendStr(dst, n.Feed)
	dst = appendStr(dst, n.User)
	dst = appendStr(dst, n.ItemID)
	dst = appendStr(dst, string(n.Kind))
	dst = binary.AppendUvarint(dst, uint64(len(n.Request.Headers)))
	for _, h := range n.Request.Headers {
		dst = appendStr(dst, h.Name)
		dst = appendStr(dst, h.Value)
	}
	dst = binary.AppendUvarint(dst, uint64(len(n.Request.Body)))
	dst = append(dst, n.Request.Body...)
	dst = binary.AppendVarint(dst, int64(n.Attempts))
	dst = appendTime(dst, n.NextAttempt)
	return appendTime(dst, n.Created)
}

// encodeInto encodes n into memory taken from a (see arena).
func encodeInto(a *arena, n *tilecast.Notification) []byte {
	buf := a.take(encodedLen(n))
	return encodeNotification(buf[:0], n)
}

// recordReader reads a record. All strings are cut from one string copy of
// the record, so decoding costs a few allocations however many fields there are.
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
		if nsec >= uint64(time.Second) {
			r.fail("nanoseconds out of range")
			return time.Time{}
		}
		return time.Unix(sec, int64(nsec)).UTC()
	default:
		r.fail("bad time tag")
		return time.Time{}
	}
}

// decodeNotification parses a record made by encodeNotification. It copies
// what it keeps (bbolt's value is only valid inside the transaction) and
// rejects anything malformed, including trailing bytes.
func decodeNotification(b []byte) (tilecast.Notification, error) {
	var n tilecast.Notification
	if len(b) == 0 {
		return n, fmt.Errorf("%w: empty", errRecord)
	}
	if b[0] != recordV1 {
		return n, fmt.Errorf("%w: unknown version %d", errRecord, b[0])
	}
	r := &recordReader{s: string(b), off: 1}
	n.ID = r.uvarint()
	n.ChannelID = r.str()
	n.Feed = r.str()
	n.User = r.str()
	n.ItemID = r.str()
	n.Kind = tilecast.Kind(r.str())
	hc := r.uvarint()
	// Each header takes at least two bytes: a count beyond that is garbage,
	// and checking it first keeps a hostile count from allocating.
	if r.err == nil && hc > uint64(len(r.s)-r.off)/2 {
		r.fail("header count past end")
	}
	if r.err == nil && hc > 0 {
		n.Request.Headers = make([]tilecast.Header, hc)
		for i := range n.Request.Headers {
			n.Request.Headers[i] = tilecast.Header{Name: r.str(), Value: r.str()}
		}
	}
	if body := r.str(); len(body) > 0 {
		n.Request.Body = []byte(body)
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
		return tilecast.Notification{}, r.err
	}
	return n, nil
}
