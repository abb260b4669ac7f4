package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
)

// Shared payloads.
//
// A global feed's fan-out gives every channel the same payload. Outbox
// entries (codec.go, field 8) therefore hold only its key; the payload
// itself is stored once in the bodies bucket with a reference count:
//
//	bodies   payload key → layout byte (2) + uvarint references + payload;
//	         key = sha256("tilecast payload" + 0x00 + payload)
//
// Layout 1, a whole stored request keyed by its plain sha256, was written
// before payloads replaced requests; the schema 4 migration rewrites those
// (migrate.go), so only layout 2 is read here. The keys of the two layouts
// are hashes of different strings, so a payload can never be taken for an
// old request.
//
// The bucket is created by the first write that needs it, so older files
// need no migration; a missing bucket reads as "no payloads".
//
// Counting without a rewrite per entry: the writers that touch many entries
// in one transaction (the enqueuer, Record, dropStale) collect the changes
// per key in buckets.refs and apply them once (applyRefs), so a 100k fan-out
// writes its payload once and a Record batch of 1024 outcomes rewrites it
// once. Other callers of dropEntry (takeOver in channels.go) apply each
// change at once, or with the batch in the migration. Moving an entry
// (retry, postpone, takeOver) keeps its key and changes no count.
//
// A count that ends too high only wastes space until the outbox drains
// (clearIdlePayloads) or PruneLedger recounts (sweepPayloads); a count too
// low would lose a payload, so every decrement comes from deleting an entry
// whose record was read in the same transaction.

// payloadV2 is the layout byte of a bodies value: the payload.
const payloadV2 = 2

// payloadDomain prefixes what a layout 2 key hashes (see above).
const payloadDomain = "tilecast payload\x00"

// payloadKeyOf returns the key of payload p (layout 2).
func payloadKeyOf(p []byte) payloadKey {
	h := sha256.New()
	h.Write([]byte(payloadDomain))
	h.Write(p)
	var k payloadKey
	h.Sum(k[:0])
	return k
}

// payloadRefs are the reference count changes of one transaction.
type payloadRefs struct {
	delta map[payloadKey]int
	data  map[payloadKey][]byte // the payloads of keys added in this transaction
}

// collectRefs makes ref changes wait for applyRefs.
func (b *buckets) collectRefs() {
	if b.refs == nil {
		b.refs = &payloadRefs{delta: map[payloadKey]int{}, data: map[payloadKey][]byte{}}
	}
}

// addRef counts one more entry referencing key, whose payload is p (kept
// until applyRefs; it must not change meanwhile).
func (b *buckets) addRef(k payloadKey, p []byte) {
	b.collectRefs()
	b.refs.delta[k]++
	if p == nil {
		p = []byte{} // an empty payload is still one
	}
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

// changeRef adds delta to key's count, deleting the value at zero. A
// value that exists keeps its content; a new one is payload p.
func (b *buckets) changeRef(k payloadKey, delta int, p []byte) error {
	layout, cur, old, err := b.payloadValue(k)
	if err != nil {
		return err
	}
	refs := int64(delta)
	if cur != nil {
		refs += int64(old)
		p = cur
	} else {
		layout = payloadV2
	}
	if refs <= 0 {
		if cur == nil {
			return nil // already gone (a recount dropped it)
		}
		return b.del(b.bodies, k[:])
	}
	if p == nil && cur == nil {
		return fmt.Errorf("payload %x: %d references but no payload", k[:8], refs)
	}
	if b.bodies == nil {
		bk, err := b.tx.CreateBucketIfNotExists([]byte(bucketBodies))
		if err != nil {
			return fmt.Errorf("create bucket %s: %w", bucketBodies, err)
		}
		b.bodies = bk
	}
	if err := b.bodies.Put(k[:], payloadValue(layout, uint64(refs), p)); err != nil {
		return fmt.Errorf("store payload: %w", err)
	}
	return nil
}

// payloadValue is a bodies value: layout, references, content.
func payloadValue(layout byte, refs uint64, content []byte) []byte {
	v := make([]byte, 0, 1+binary.MaxVarintLen64+len(content))
	v = append(v, layout)
	v = binary.AppendUvarint(v, refs)
	return append(v, content...)
}

// payloadValue splits key's stored value into its layout, content (still
// bbolt's memory) and count; content is nil when there is no value.
func (b *buckets) payloadValue(k payloadKey) (byte, []byte, uint64, error) {
	if b.bodies == nil {
		return 0, nil, 0, nil
	}
	v := b.get(b.bodies, k[:])
	if v == nil {
		return 0, nil, 0, nil
	}
	layout, content, refs, err := splitPayloadValue(v)
	if err != nil {
		return 0, nil, 0, fmt.Errorf("payload %x: %w", k[:8], err)
	}
	if content == nil {
		content = []byte{} // an empty payload is a value too
	}
	return layout, content, refs, nil
}

func splitPayloadValue(v []byte) (byte, []byte, uint64, error) {
	if len(v) == 0 || v[0] != payloadV2 {
		return 0, nil, 0, fmt.Errorf("%w: bad payload layout", errRecord)
	}
	refs, n := binary.Uvarint(v[1:])
	if n <= 0 {
		return 0, nil, 0, fmt.Errorf("%w: bad payload reference count", errRecord)
	}
	return v[0], v[1+n:], refs, nil
}

// decodePayload returns the payload of a bodies value's content (a copy),
// checking it against its key.
func decodePayload(k payloadKey, layout byte, content []byte) ([]byte, error) {
	switch layout {
	case payloadV2:
		if payloadKeyOf(content) != k {
			return nil, fmt.Errorf("%w: payload does not match its key", errRecord)
		}
		if len(content) == 0 {
			return nil, nil
		}
		return bytes.Clone(content), nil
	}
	return nil, fmt.Errorf("%w: bad payload layout %d", errRecord, layout)
}

// payloads resolves payload keys within one transaction, each once: a page
// of a fan-out usually shares one. Resolved payloads share their memory, so
// callers must not modify them.
type payloads struct {
	b *buckets
	m map[payloadKey]*resolvedPayload
}

type resolvedPayload struct {
	payload []byte
	err     error
	sum     *[sha256.Size]byte
}

func newPayloads(b *buckets) *payloads {
	return &payloads{b: b, m: map[payloadKey]*resolvedPayload{}}
}

func (ps *payloads) get(k payloadKey) *resolvedPayload {
	if r, ok := ps.m[k]; ok {
		return r
	}
	r := &resolvedPayload{}
	layout, content, _, err := ps.b.payloadValue(k)
	switch {
	case err != nil:
		r.err = err
	case content == nil:
		r.err = fmt.Errorf("%w: payload %x is missing", errRecord, k[:8])
	default:
		r.payload, r.err = decodePayload(k, layout, content)
	}
	ps.m[k] = r
	return r
}

// payload returns e's payload: inline or resolved.
func (ps *payloads) payload(e *entry) ([]byte, error) {
	if !e.hasRef {
		return e.n.Payload, nil
	}
	r := ps.get(e.ref)
	return r.payload, r.err
}

// sum returns the sha256 of e's payload (what tile_last holds).
func (ps *payloads) sum(e *entry) ([sha256.Size]byte, error) {
	if !e.hasRef {
		return sha256.Sum256(e.n.Payload), nil
	}
	r := ps.get(e.ref)
	if r.err != nil {
		return [sha256.Size]byte{}, r.err
	}
	if r.sum == nil {
		s := sha256.Sum256(r.payload)
		r.sum = &s
	}
	return *r.sum, nil
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
		if e, err := decodeEntry(v); err == nil && e.hasRef {
			counts[e.ref]++
		}
	}
	type fix struct {
		key    []byte
		refs   uint64
		layout byte
		p      []byte
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
		layout, p, refs, err := splitPayloadValue(v)
		if err != nil {
			want = 0 // unreadable: the entries referencing it cannot be sent anyway
		}
		if err == nil && refs == want {
			continue
		}
		fixes = append(fixes, fix{key: bytes.Clone(k), refs: want, layout: layout, p: bytes.Clone(p)})
	}
	for _, f := range fixes {
		var err error
		if f.refs == 0 {
			err = b.del(b.bodies, f.key)
		} else {
			err = b.bodies.Put(f.key, payloadValue(f.layout, f.refs, f.p))
		}
		if err != nil {
			return 0, fmt.Errorf("sweep payloads: %w", err)
		}
	}
	return len(fixes), nil
}
