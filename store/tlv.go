package store

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"time"
)

// Tagged records.
//
// Every record type (channel, outbox entry, ledger entry, feed state, dead
// letter) is stored as one version byte followed by tagged fields:
//
//	byte     version
//	field*   uvarint tag (≥ 1), uvarint length, length bytes of value
//
// Fields come in strictly ascending tag order, each tag at most once. A
// field whose value is the zero value (empty string, 0, zero time, false,
// nil list) is left out, so an empty record is just its version byte.
// Value encodings (uvarint / varint = encoding/binary):
//
//	str     the bytes themselves (the field length is the string length)
//	uint    uvarint
//	int     varint (zigzag)
//	time    varint Unix seconds, uvarint nanoseconds (< 1e9)
//	bool    uvarint 1
//	nested  tagged fields as above, without a version byte
//	list    elements, each a uvarint length and that many bytes
//
// Why: the next issues add fields (transport, subscription keys, WNS message
// ids) and each one would otherwise need a new version and a rewrite of
// every record. A reader skips the tags it does not know, and a writer that
// rewrites a record keeps the fields it does not know (withUnknown), so a
// file written by a newer tilecast survives being run by an older one. The
// version byte changes only for a change a reader cannot skip; a reader
// refuses a version it does not know.
//
// Decoding is strict about structure (tag order, lengths inside the record,
// minimal varints, a known field's value exactly filling its length) and
// lenient about content (a zero value written out is accepted), so a
// decoded record re-encodes to a record that decodes to the same value and
// re-encodes to itself (the fuzz targets check it). No version byte may be
// '{': records written before binary ones were JSON.

// uvarintLen is the length of x as a uvarint.
func uvarintLen(x uint64) int { return (bits.Len64(x|1) + 6) / 7 }

func zigzag(x int64) uint64 {
	ux := uint64(x) << 1
	if x < 0 {
		ux = ^ux
	}
	return ux
}

func varintLen(x int64) int { return uvarintLen(zigzag(x)) }

// maxFieldHead bounds the length of a field's tag and length.
const maxFieldHead = 2 * binary.MaxVarintLen64

// appendHead appends a field's tag and length.
func appendHead(dst []byte, tag uint64, n int) []byte {
	dst = binary.AppendUvarint(dst, tag)
	return binary.AppendUvarint(dst, uint64(n))
}

// appendStrField appends s as field tag, nothing when s is empty.
func appendStrField(dst []byte, tag uint64, s string) []byte {
	if s == "" {
		return dst
	}
	dst = appendHead(dst, tag, len(s))
	return append(dst, s...)
}

// appendBytesField appends b as field tag, nothing when b is empty.
func appendBytesField(dst []byte, tag uint64, b []byte) []byte {
	if len(b) == 0 {
		return dst
	}
	dst = appendHead(dst, tag, len(b))
	return append(dst, b...)
}

func appendUintField(dst []byte, tag, x uint64) []byte {
	if x == 0 {
		return dst
	}
	dst = appendHead(dst, tag, uvarintLen(x))
	return binary.AppendUvarint(dst, x)
}

func appendIntField(dst []byte, tag uint64, x int64) []byte {
	if x == 0 {
		return dst
	}
	dst = appendHead(dst, tag, varintLen(x))
	return binary.AppendVarint(dst, x)
}

func appendBoolField(dst []byte, tag uint64, b bool) []byte {
	if !b {
		return dst
	}
	return append(appendHead(dst, tag, 1), 1)
}

func appendTimeField(dst []byte, tag uint64, t time.Time) []byte {
	if t.IsZero() {
		return dst
	}
	sec, nsec := t.Unix(), uint64(t.Nanosecond())
	dst = appendHead(dst, tag, varintLen(sec)+uvarintLen(nsec))
	dst = binary.AppendVarint(dst, sec)
	return binary.AppendUvarint(dst, nsec)
}

// appendStrList appends ss as a list field, nothing when it is empty.
func appendStrList(dst []byte, tag uint64, ss []string) []byte {
	if len(ss) == 0 {
		return dst
	}
	n := 0
	for _, s := range ss {
		n += uvarintLen(uint64(len(s))) + len(s)
	}
	dst = appendHead(dst, tag, n)
	for _, s := range ss {
		dst = binary.AppendUvarint(dst, uint64(len(s)))
		dst = append(dst, s...)
	}
	return dst
}

// appendNested appends field tag holding what fill appends (a nested
// record or a list). scratch is reused for the value; fill must not
// return nil for a present field (an empty value is a length of 0).
func appendNested(dst []byte, tag uint64, scratch *[]byte, fill func([]byte) []byte) []byte {
	v := fill((*scratch)[:0])
	*scratch = v
	dst = appendHead(dst, tag, len(v))
	return append(dst, v...)
}

// recordReader reads a record: s[off:end] is what is left of it, or of
// the field being read (next to done). All strings are cut from one string
// copy of the record, so decoding costs a few allocations however many
// fields there are. It is strict: every value has one encoding (no
// overlong varint), and the first problem is kept in err with its byte
// offset; later reads return zero values.
type recordReader struct {
	s        string
	off, end int
	err      error
	lastTag  uint64 // tag of the last field read (next)
	field    uint64 // tag of the field being read; 0 between fields
	recEnd   int    // end of the record while a field is read
}

// newReader reads s from byte off to its end.
func newReader(s string, off int) recordReader {
	return recordReader{s: s, off: off, end: len(s)}
}

func (r *recordReader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s at byte %d", errRecord, what, r.off)
	}
}

func (r *recordReader) uvarint() uint64 {
	// Tags, lengths and most values are one byte.
	if r.err == nil && r.off < r.end {
		if c := r.s[r.off]; c < 0x80 {
			r.off++
			return uint64(c)
		}
	}
	return r.uvarintLong()
}

func (r *recordReader) uvarintLong() uint64 {
	if r.err != nil {
		return 0
	}
	var v uint64
	var shift uint
	for i := 0; i < binary.MaxVarintLen64; i++ {
		if r.off >= r.end {
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
	if r.off >= r.end {
		r.fail("truncated")
		return 0
	}
	c := r.s[r.off]
	r.off++
	return c
}

// str reads a uvarint length and that many bytes.
func (r *recordReader) str() string {
	n := r.uvarint()
	if r.err != nil {
		return ""
	}
	if n > uint64(r.end-r.off) {
		r.fail("length past end")
		return ""
	}
	v := r.s[r.off : r.off+int(n)]
	r.off += int(n)
	return v
}

// raw returns the next n bytes.
func (r *recordReader) raw(n int) string {
	if r.err != nil {
		return ""
	}
	if n > r.end-r.off {
		r.fail("truncated")
		return ""
	}
	v := r.s[r.off : r.off+n]
	r.off += n
	return v
}

// more reports whether fields are left to read.
func (r *recordReader) more() bool { return r.err == nil && r.off < r.end }

// next reads the next field's tag and length and returns the tag; the
// caller reads the value (or skips it: unknown tags) and then calls done.
// Until then r reads the field's value only. Tags must ascend. On an error
// it returns 0 (no tag is 0).
func (r *recordReader) next() uint64 {
	var tag, n uint64
	if r.err == nil && r.off+1 < r.end && r.s[r.off] < 0x80 && r.s[r.off+1] < 0x80 {
		// Tag and length of one byte each: nearly every field.
		tag, n = uint64(r.s[r.off]), uint64(r.s[r.off+1])
		r.off += 2
	} else {
		tag = r.uvarint()
		n = r.uvarint()
	}
	switch {
	case r.err != nil:
	case tag == 0:
		r.fail("field tag 0")
	case tag <= r.lastTag:
		r.fail(fmt.Sprintf("field %d after field %d", tag, r.lastTag))
	case n > uint64(r.end-r.off):
		r.fail(fmt.Sprintf("field %d: length past end", tag))
	}
	if r.err != nil {
		return 0
	}
	r.lastTag, r.field = tag, tag
	r.recEnd, r.end = r.end, r.off+int(n)
	return tag
}

// done ends the field next began: its value must have been read to its
// end; an error in it is wrapped with its tag.
func (r *recordReader) done() {
	if r.field == 0 {
		return
	}
	if r.err == nil && r.off != r.end {
		r.fail("trailing bytes in field")
	}
	if r.err != nil {
		r.err = fmt.Errorf("field %d: %w", r.field, r.err)
	}
	r.off, r.end, r.field = r.end, r.recEnd, 0
}

// skip passes over an unknown field's value.
func (r *recordReader) skip() { r.off = r.end }

// rest is a field's value as a string.
func (r *recordReader) rest() string {
	v := r.s[r.off:r.end]
	r.off = r.end
	return v
}

// bytesVal is a field's value as a byte slice of its own (nil when empty).
func (r *recordReader) bytesVal() []byte {
	if v := r.rest(); v != "" {
		return []byte(v)
	}
	return nil
}

func (r *recordReader) boolVal() bool {
	switch r.uvarint() {
	case 0:
		return false
	case 1:
		return true
	}
	r.fail("bool is not 0 or 1")
	return false
}

func (r *recordReader) timeVal() time.Time {
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
		return time.Time{} // written out although zero: the same value
	}
	return t
}

// strList reads a list of strings (nil when empty).
func (r *recordReader) strList() []string {
	// Each element takes at least one byte: counting first sizes the
	// slice, and a hostile length cannot make it allocate more than the
	// record's size.
	c := *r
	n := 0
	for c.err == nil && c.off < c.end {
		c.str()
		n++
	}
	if c.err != nil {
		r.err = c.err
		return nil
	}
	if n == 0 {
		return nil
	}
	out := make([]string, n)
	for i := range out {
		out[i] = r.str()
	}
	return out
}

// nested returns a reader of the nested record that the field being read
// holds, and passes over it in r.
func (r *recordReader) nested() recordReader {
	n := recordReader{s: r.s, off: r.off, end: r.end}
	r.off = r.end
	return n
}

// closeNested takes the error of nested record n (see nested).
func (r *recordReader) closeNested(n *recordReader) {
	if r.err == nil && n.err != nil {
		r.err = n.err
	}
}

// knownTags reports, per tag, whether this build reads it.
type knownTags func(tag uint64) bool

// withUnknown returns fresh, a record just encoded, with the fields of old
// (the record it replaces, of the same version) whose tags this build
// does not know merged in at their place: a field a newer tilecast wrote
// survives a rewrite by this one. Without such fields fresh is returned
// as it is; so is fresh when old cannot be read.
func withUnknown(fresh, old []byte, known knownTags) []byte {
	if len(old) < 2 || len(fresh) == 0 || old[0] != fresh[0] || !hasUnknown(old, known) {
		return fresh
	}
	return mergeFields(fresh, unknownFields(old, known))
}

// mergeFields returns record fresh (version byte and fields) with the
// fields keep (ascending, none of them known to fresh's writer) merged in
// by tag, in a new slice. A field of fresh with the same tag as one of
// keep wins. A malformed fresh is returned as it is.
func mergeFields(fresh []byte, keep []rawField) []byte {
	if len(keep) == 0 {
		return fresh
	}
	out := make([]byte, 0, len(fresh)+len(keep)*16)
	out = append(out, fresh[0])
	r := newReader(string(fresh), 1)
	for r.more() {
		start := r.off
		tag := r.next()
		for len(keep) > 0 && keep[0].tag < tag {
			out = append(out, keep[0].raw...)
			keep = keep[1:]
		}
		if len(keep) > 0 && keep[0].tag == tag {
			keep = keep[1:]
		}
		out = append(out, fresh[start:r.end]...)
		r.skip()
		r.done()
	}
	if r.err != nil {
		return fresh
	}
	for _, k := range keep {
		out = append(out, k.raw...)
	}
	return out
}

// hasUnknown is a quick look, without allocating, for a tag of v that
// known does not know; unknownFields then checks the record properly.
func hasUnknown(v []byte, known knownTags) bool {
	for i := 1; i < len(v); {
		tag, n := binary.Uvarint(v[i:])
		if n <= 0 {
			return false
		}
		i += n
		l, n := binary.Uvarint(v[i:])
		if n <= 0 || l > uint64(len(v)-i-n) {
			return false
		}
		if !known(tag) {
			return true
		}
		i += n + int(l)
	}
	return false
}

type rawField struct {
	tag uint64
	raw string // tag, length and value as stored
}

// unknownFields returns the fields of record v that known does not know,
// nil when v is malformed.
func unknownFields(v []byte, known knownTags) []rawField {
	var out []rawField
	r := newReader(string(v), 1)
	for r.more() {
		start := r.off
		if tag := r.next(); r.err == nil && !known(tag) {
			out = append(out, rawField{tag: tag, raw: r.s[start:r.end]})
		}
		r.skip()
		r.done()
	}
	if r.err != nil {
		return nil
	}
	return out
}
