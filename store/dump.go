package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/store/dump"
)

// Export calls fn with every record of the file (dump.Item), kind by kind
// in dump.Kinds' order, from one read transaction: a consistent snapshot.
// A record that cannot be read fails the export (a copy must not drop
// what it cannot read without saying so).
func (db *DB) Export(ctx context.Context, fn func(dump.Item) error) error {
	err := db.view(func(b *buckets) error {
		step := func(err error) error {
			if err != nil {
				return err
			}
			return ctx.Err()
		}
		err := b.channels.ForEach(func(k, v []byte) error {
			ch, err := decodeChannel(v)
			if err != nil {
				return fmt.Errorf("channel %s: %w", k, err)
			}
			return step(fn(dump.Item{Channel: &ch}))
		})
		if err != nil {
			return err
		}
		err = b.feedState.ForEach(func(k, v []byte) error {
			st, err := decodeFeedState(v)
			if err != nil {
				return fmt.Errorf("feed state %q: %w", k, err)
			}
			return step(fn(dump.Item{FeedState: &dump.FeedState{Key: parseFeedKey(k), State: st}}))
		})
		if err != nil {
			return err
		}
		err = b.seen.ForEach(func(fk, _ []byte) error {
			set := b.seen.Bucket(fk)
			if set == nil {
				return nil
			}
			key := parseFeedKey(fk)
			return set.ForEach(func(k, v []byte) error {
				if len(v) != 8 {
					return fmt.Errorf("seen item %q of %s: bad time", k, key)
				}
				s := &dump.Seen{Key: key, Item: bytes.Clone(k), Listed: time.Unix(int64(binary.BigEndian.Uint64(v)), 0).UTC()}
				return step(fn(dump.Item{Seen: s}))
			})
		})
		if err != nil {
			return err
		}
		if jobs := b.tx.Bucket([]byte(bucketFanOut)); jobs != nil {
			err = jobs.ForEach(func(k, v []byte) error {
				var job tilecast.FanOutJob
				if err := json.Unmarshal(v, &job); err != nil {
					return fmt.Errorf("fan-out job %s: %w", k, err)
				}
				return step(fn(dump.Item{Job: &job}))
			})
			if err != nil {
				return err
			}
		}
		pl := newPayloads(b)
		err = b.outbox.ForEach(func(k, v []byte) error {
			if len(k) != outboxKeyLen {
				return fmt.Errorf("outbox key %x: not an entry", k)
			}
			e, err := decodeEntry(v)
			if err == nil {
				e.n.Payload, err = pl.payload(&e)
			}
			if err != nil {
				return fmt.Errorf("outbox entry %x: %w", k, err)
			}
			n := e.n
			n.Payload = bytes.Clone(n.Payload)
			n.NextAttempt = nanosTime(outboxKeyTime(k)) // where the entry is
			return step(fn(dump.Item{Entry: &n}))
		})
		if err != nil {
			return err
		}
		err = b.tileLast.ForEach(func(k, v []byte) error {
			i := bytes.IndexByte(k, 0)
			if i < 0 {
				return fmt.Errorf("last tile key %q: no channel", k)
			}
			// A badge's key is channel + feed + "badge" (stateKey).
			l := dump.LastTile{Channel: string(k[:i]), Feed: string(k[i+1:]), Kind: tilecast.KindTile, Sum: bytes.Clone(v)}
			if f, ok := strings.CutSuffix(l.Feed, "\x00"+string(tilecast.KindBadge)); ok {
				l.Feed, l.Kind = f, tilecast.KindBadge
			}
			return step(fn(dump.Item{LastTile: &l}))
		})
		if err != nil {
			return err
		}
		err = b.dead.ForEach(func(k, v []byte) error {
			d, err := decodeDeadLetter(v)
			if err != nil {
				return fmt.Errorf("dead letter %x: %w", k, err)
			}
			return step(fn(dump.Item{Dead: &d}))
		})
		if err != nil {
			return err
		}
		return b.ledger.ForEach(func(k, v []byte) error {
			o, err := decodeOutcome(v)
			if err != nil {
				return fmt.Errorf("ledger entry %q: %w", k, err)
			}
			if i := bytes.IndexByte(k, 0); i > 0 && o.ChannelID == "" {
				o.ChannelID = string(k[:i])
			}
			return step(fn(dump.Item{Outcome: &o}))
		})
	})
	if err != nil {
		return fmt.Errorf("export %s: %w", db.path, err)
	}
	return nil
}

// importBatch is how many items Import writes per transaction.
const importBatch = 5000

// Importer returns a dump.Writer that writes a state's items into this
// file, which is meant to be empty (the caller checks), importBatch items
// per transaction, keeping the counts and indexes as the store's own
// writes do. Entries keep their IDs; the outbox sequence is moved past
// the largest.
func (db *DB) Importer() dump.Writer { return &importer{db: db} }

type importer struct {
	db    *DB
	items []dump.Item
}

func (im *importer) Write(it dump.Item) error {
	im.items = append(im.items, it)
	if len(im.items) >= importBatch {
		return im.flush()
	}
	return nil
}

func (im *importer) Close() error { return im.flush() }

func (im *importer) flush() error {
	if len(im.items) == 0 {
		return nil
	}
	items := im.items
	im.items = nil
	err := im.db.update(func(b *buckets) error {
		var a arena
		var maxID uint64
		b.collectRefs()
		for i := range items {
			if err := b.importItem(&a, &items[i], &maxID); err != nil {
				return err
			}
		}
		if err := b.applyRefs(); err != nil {
			return err
		}
		if maxID > b.outbox.Sequence() {
			return b.outbox.SetSequence(maxID)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("import into %s: %w", im.db.path, err)
	}
	return nil
}

func (b *buckets) importItem(a *arena, it *dump.Item, maxID *uint64) error {
	switch {
	case it.Channel != nil:
		ch := *it.Channel
		if b.get(b.channels, []byte(ch.ID)) != nil {
			return fmt.Errorf("channel %s is already there", ch.ID)
		}
		if err := b.putChannel(&ch); err != nil {
			return err
		}
		b.delta.channels++
		return b.index(&ch)
	case it.FeedState != nil:
		fk, err := feedKey(it.FeedState.Key)
		if err != nil {
			return err
		}
		b.feedStateWritten(fk, b.feedState.Get(fk), it.FeedState.State.Broken)
		return b.feedState.Put(fk, encodeFeedState(&it.FeedState.State))
	case it.Seen != nil:
		fk, err := feedKey(it.Seen.Key)
		if err != nil {
			return err
		}
		set, err := b.seen.CreateBucketIfNotExists(fk)
		if err != nil {
			return err
		}
		return set.Put(bytes.Clone(it.Seen.Item), binary.BigEndian.AppendUint64(nil, uint64(it.Seen.Listed.Unix())))
	case it.Job != nil:
		jobs, err := b.tx.CreateBucketIfNotExists([]byte(bucketFanOut))
		if err != nil {
			return err
		}
		v, err := json.Marshal(it.Job)
		if err != nil {
			return err
		}
		return jobs.Put([]byte(it.Job.Feed), v)
	case it.Entry != nil:
		n := *it.Entry
		*maxID = max(*maxID, n.ID)
		e := entry{n: n, ref: payloadKeyOf(n.Payload), hasRef: true}
		b.addRef(e.ref, bytes.Clone(n.Payload))
		e.n.Payload = nil
		key := outboxKey(a.take(outboxKeyLen)[:0], n.NextAttempt, n.ID)
		if b.get(b.outbox, key) != nil {
			return fmt.Errorf("outbox entry %d is already there", n.ID)
		}
		if err := b.outbox.Put(key, encodeEntryInto(a, &e)); err != nil {
			return err
		}
		b.delta.outbox++
		if err := b.outboxChan.Put(join(n.ChannelID, key), nil); err != nil {
			return err
		}
		if sk, ok := stateKey(&n); ok {
			return b.tileWaiting.Put(sk, key)
		}
		return nil
	case it.LastTile != nil:
		l := it.LastTile
		sk, ok := stateKey(&tilecast.Notification{ChannelID: l.Channel, Feed: l.Feed, Kind: l.Kind})
		if !ok {
			return fmt.Errorf("last tile of channel %s, feed %s: kind %q is not state", l.Channel, l.Feed, l.Kind)
		}
		return b.tileLast.Put(sk, bytes.Clone(l.Sum))
	case it.Dead != nil:
		return b.putDead(seqKey(it.Dead.Notification.ID), encodeDeadLetter(it.Dead))
	case it.Outcome != nil:
		o := it.Outcome
		if o.ChannelID == "" {
			return fmt.Errorf("ledger entry of %v without a channel", o.Time)
		}
		seq, err := b.ledger.NextSequence()
		if err != nil {
			return err
		}
		k := make([]byte, 0, len(o.ChannelID)+17)
		k = append(k, o.ChannelID...)
		k = append(k, 0)
		k = binary.BigEndian.AppendUint64(k, timeNanos(o.Time))
		k = binary.BigEndian.AppendUint64(k, seq)
		return b.ledger.Put(k, encodeOutcome(o))
	}
	return fmt.Errorf("an empty item")
}
