package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/tilecast/tilecast"
)

// Shared payloads.
//
// A global feed's fan-out gives every channel the same request (headers and
// body). Outbox entries (version 2, codec.go) therefore hold only the sha256
// of the request's encoding; the request itself is stored once in the bodies
// bucket with a reference count:
//
//	bodies   payload key → byte 1 (layout version) + uvarint references +
//	         appendPayload(request); key = sha256(appendPayload(request))
//
// The bucket is created by the first write that needs it, so older files
// need no migration; a missing bucket reads as "no payloads".
//
// Counting without a rewrite per entry: the writers that touch many entries
// in one transaction (the enqueuer, Record, dropStale) collect the changes
// per key in buckets.refs and apply them once (applyRefs), so a 100k fan-out
// writes its payload once and a Record batch of 1024 outcomes rewrites it
// once. Other callers of dropEntry (device replacement in channels.go) apply
// each change at once. Moving an entry (retry, postpone, device replacement)
// keeps its key and changes no count.
//
// A count that ends too high only wastes space until the outbox drains
// (clearIdlePayloads) or PruneLedger recounts (sweepPayloads); a count too
// low would lose a request, so every decrement comes from deleting an entry
// whose record was read in the same transaction.

// payloadV1 is the layout byte of a bodies value.
const payloadV1 = 1

// payloadRefs are the reference count changes of one transaction.
type payloadRefs struct {
	delta map[payloadKey]int
	data  map[payloadKey][]byte // appendPayload bytes of keys added in this transaction
}

// collectRefs makes ref changes wait for applyRefs.
func (b *buckets) collectRefs() {
	if b.refs == nil {
		b.refs = &payloadRefs{delta: map[payloadKey]int{}, data: map[payloadKey][]byte{}}
	}
}

// addRef counts one more entry referencing key, whose encoding is p (kept
// until applyRefs; it must not change meanwhile).
func (b *buckets) addRef(k payloadKey, p []byte) {
	b.collectRefs()
	b.refs.delta[k]++
	if _, ok := b.refs.data[k]; !ok {
		b.refs.data[k] = p
	}
}

// unref counts one entry referencing key less: collected when collectRefs
// is on, else applied now.
func (b *buckets) unref(k payloadKey) error {
	if b.refs != nil {
		b.refs.delta[k]--
		return nil
	}
	return b.changeRef(k, -1, nil)
}

// applyRefs writes the collected changes in key order and stops collecting.
func (b *buckets) applyRefs() error {
	rs := b.refs
	b.refs = nil
	if rs == nil {
		return nil
	}
	keys := make([]payloadKey, 0, len(rs.delta))
	for k, d := range rs.delta {
		if d != 0 {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(x, y payloadKey) int { return bytes.Compare(x[:], y[:]) })
	for _, k := range keys {
		if err := b.changeRef(k, rs.delta[k], rs.data[k]); err != nil {
			return err
		}
	}
	return nil
}

// changeRef adds delta to key's count, deleting the payload at zero. A new
// payload needs its encoding p.
func (b *buckets) changeRef(k payloadKey, delta int, p []byte) error {
	cur, old, err := b.payloadValue(k)
	if err != nil {
		return err
	}
	refs := int64(delta)
	if cur != nil {
		refs += int64(old)
		p = cur
	}
	if refs <= 0 {
		if cur == nil {
			return nil // already gone (a recount dropped it)
		}
		return b.del(b.bodies, k[:])
	}
	if p == nil {
		return fmt.Errorf("payload %x: %d references but no request", k[:8], refs)
	}
	if b.bodies == nil {
		bk, err := b.tx.CreateBucketIfNotExists([]byte(bucketBodies))
		if err != nil {
			return fmt.Errorf("create bucket %s: %w", bucketBodies, err)
		}
		b.bodies = bk
	}
	v := make([]byte, 0, 1+binary.MaxVarintLen64+len(p))
	v = append(v, payloadV1)
	v = binary.AppendUvarint(v, uint64(refs))
	v = append(v, p...)
	if err := b.bodies.Put(k[:], v); err != nil {
		return fmt.Errorf("store payload: %w", err)
	}
	return nil
}

// payloadValue splits key's stored value into its payload encoding (still
// bbolt's memory) and count; nil when there is none.
func (b *buckets) payloadValue(k payloadKey) ([]byte, uint64, error) {
	if b.bodies == nil {
		return nil, 0, nil
	}
	v := b.get(b.bodies, k[:])
	if v == nil {
		return nil, 0, nil
	}
	p, refs, err := splitPayloadValue(v)
	if err != nil {
		return nil, 0, fmt.Errorf("payload %x: %w", k[:8], err)
	}
	return p, refs, nil
}

func splitPayloadValue(v []byte) ([]byte, uint64, error) {
	if len(v) == 0 || v[0] != payloadV1 {
		return nil, 0, fmt.Errorf("%w: bad payload layout", errRecord)
	}
	refs, n := binary.Uvarint(v[1:])
	if n <= 0 {
		return nil, 0, fmt.Errorf("%w: bad payload reference count", errRecord)
	}
	return v[1+n:], refs, nil
}

// decodePayload parses appendPayload bytes, checking them against their key.
func decodePayload(k payloadKey, p []byte) (tilecast.Request, error) {
	if sha256.Sum256(p) != k {
		return tilecast.Request{}, fmt.Errorf("%w: payload does not match its key", errRecord)
	}
	r := &recordReader{s: string(p)}
	req := r.payload(false)
	if r.err == nil && r.off != len(r.s) {
		r.fail("trailing bytes")
	}
	if r.err != nil {
		return tilecast.Request{}, r.err
	}
	return req, nil
}

// payloads resolves payload keys within one transaction, each once: a page
// of a fan-out usually shares one. Resolved requests share their memory, so
// callers must not modify them.
type payloads struct {
	b *buckets
	m map[payloadKey]*resolvedPayload
}

type resolvedPayload struct {
	req     tilecast.Request
	err     error
	bodySum *[sha256.Size]byte
}

func newPayloads(b *buckets) *payloads {
	return &payloads{b: b, m: map[payloadKey]*resolvedPayload{}}
}

func (ps *payloads) get(k payloadKey) *resolvedPayload {
	if r, ok := ps.m[k]; ok {
		return r
	}
	r := &resolvedPayload{}
	p, _, err := ps.b.payloadValue(k)
	switch {
	case err != nil:
		r.err = err
	case p == nil:
		r.err = fmt.Errorf("%w: payload %x is missing", errRecord, k[:8])
	default:
		r.req, r.err = decodePayload(k, p)
	}
	ps.m[k] = r
	return r
}

// request returns e's request: inline (version 1) or resolved.
func (ps *payloads) request(e *entry) (tilecast.Request, error) {
	if !e.hasRef {
		return e.n.Request, nil
	}
	r := ps.get(e.ref)
	return r.req, r.err
}

// bodySum returns the sha256 of e's request body (what tile_last holds).
func (ps *payloads) bodySum(e *entry) ([sha256.Size]byte, error) {
	if !e.hasRef {
		return sha256.Sum256(e.n.Request.Body), nil
	}
	r := ps.get(e.ref)
	if r.err != nil {
		return [sha256.Size]byte{}, r.err
	}
	if r.bodySum == nil {
		s := sha256.Sum256(r.req.Body)
		r.bodySum = &s
	}
	return *r.bodySum, nil
}

// clearIdlePayloads deletes every payload when the outbox is empty: then
// nothing references them, whatever the counts say.
func (b *buckets) clearIdlePayloads() error {
	if b.bodies == nil {
		return nil
	}
	if k, _ := b.bodies.Cursor().First(); k == nil {
		return nil
	}
	if k, _ := b.outbox.Cursor().First(); k != nil {
		return nil
	}
	var keys [][]byte
	c := b.bodies.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		keys = append(keys, bytes.Clone(k))
	}
	return deleteKeys(b.bodies, keys)
}

// sweepPayloads recounts the references of every payload from the outbox:
// unreferenced payloads are deleted, wrong counts rewritten. It reports how
// many payloads it changed. It reads every outbox entry, so it is for
// maintenance (PruneLedger), not for every transaction.
func (b *buckets) sweepPayloads() (int, error) {
	if b.bodies == nil {
		return 0, nil
	}
	if b.refs != nil {
		return 0, fmt.Errorf("sweep payloads: reference changes pending")
	}
	counts := map[payloadKey]uint64{}
	c := b.outbox.Cursor()
	for _, v := c.First(); v != nil; _, v = c.Next() {
		if len(v) == 0 || v[0] != recordV2 {
			continue
		}
		if e, err := decodeEntry(v); err == nil {
			counts[e.ref]++
		}
	}
	type fix struct {
		key  []byte
		refs uint64
		p    []byte
	}
	var fixes []fix
	bc := b.bodies.Cursor()
	for k, v := bc.First(); k != nil; k, v = bc.Next() {
		var pk payloadKey
		want := uint64(0)
		if len(k) == len(pk) {
			copy(pk[:], k)
			want = counts[pk]
		}
		p, refs, err := splitPayloadValue(v)
		if err != nil {
			want = 0 // unreadable: the entries referencing it cannot be sent anyway
		}
		if err == nil && refs == want {
			continue
		}
		fixes = append(fixes, fix{key: bytes.Clone(k), refs: want, p: bytes.Clone(p)})
	}
	for _, f := range fixes {
		var err error
		if f.refs == 0 {
			err = b.del(b.bodies, f.key)
		} else {
			v := append([]byte{payloadV1}, binary.AppendUvarint(nil, f.refs)...)
			err = b.bodies.Put(f.key, append(v, f.p...))
		}
		if err != nil {
			return 0, fmt.Errorf("sweep payloads: %w", err)
		}
	}
	return len(fixes), nil
}
