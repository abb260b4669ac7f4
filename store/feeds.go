package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/store/rules"
	bolt "go.etcd.io/bbolt"
)

// SeenRetention is how long an item ID stays in a seen set after the feed
// last listed it.
const SeenRetention = rules.SeenRetention

// FeedState returns the state saved for k; the bool is false when none is.
func (db *DB) FeedState(k tilecast.FeedKey) (tilecast.FeedState, bool, error) {
	var st tilecast.FeedState
	var ok bool
	fk, err := feedKey(k)
	if err != nil {
		return st, false, err
	}
	err = db.viewBucket(bucketFeedState, func(b *bolt.Bucket) error {
		v := b.Get(fk)
		if v == nil {
			return nil
		}
		ok = true
		var err error
		st, err = decodeFeedState(v)
		return err
	})
	if err != nil {
		return tilecast.FeedState{}, false, fmt.Errorf("feed state %s: %w", k, err)
	}
	return st, ok, nil
}

// SaveFeedState replaces the state of k.
func (db *DB) SaveFeedState(k tilecast.FeedKey, st tilecast.FeedState) error {
	fk, err := feedKey(k)
	if err != nil {
		return err
	}
	v := encodeFeedState(&st)
	err = db.batch(func(b *buckets) error {
		old := b.feedState.Get(fk)
		b.feedStateWritten(fk, old, st.Broken)
		return b.feedState.Put(fk, withUnknown(v, old, feedStateKnown))
	})
	if err != nil {
		return fmt.Errorf("save feed state %s: %w", k, err)
	}
	return nil
}

// FeedStates returns every saved feed state.
func (db *DB) FeedStates() (map[tilecast.FeedKey]tilecast.FeedState, error) {
	out := map[tilecast.FeedKey]tilecast.FeedState{}
	err := db.view(func(b *buckets) error {
		return b.feedState.ForEach(func(k, v []byte) error {
			st, err := decodeFeedState(v)
			if err != nil {
				return fmt.Errorf("feed state %q: %w", k, err)
			}
			out[parseFeedKey(k)] = st
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("feed states: %w", err)
	}
	return out, nil
}

// Unseen returns the ids that are not in k's seen set, in the given order,
// without duplicates. Empty ids are never returned (they cannot be stored).
func (db *DB) Unseen(k tilecast.FeedKey, ids []string) ([]string, error) {
	fk, err := feedKey(k)
	if err != nil {
		return nil, err
	}
	var out []string
	err = db.viewBucket(bucketSeen, func(b *bolt.Bucket) error {
		set := b.Bucket(fk)
		dup := make(map[string]struct{}, len(ids))
		for _, id := range ids {
			if id == "" {
				continue
			}
			if _, ok := dup[id]; ok {
				continue
			}
			dup[id] = struct{}{}
			if set == nil || set.Get(seenKey(id)) == nil {
				out = append(out, id)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("unseen %s: %w", k, err)
	}
	return out, nil
}

// Commit is one feed run's write, in a single transaction: every id in
// c.Seen and every new notification's item is marked seen at c.Now (zero:
// the store's clock), ids the feed has not listed for SeenRetention are
// dropped, c.State is saved and c.Notifications are enqueued (see Enqueue).
//
// Pruning only runs when c.Seen is non-empty: a commit that carries no item
// list (a 304 or a failed fetch) says nothing about which items are gone,
// and pruning then would make a feed that was quiet for a month flood.
func (db *DB) Commit(c tilecast.Commit) error {
	fk, err := feedKey(c.Key)
	if err != nil {
		return err
	}
	now := c.Now
	if now.IsZero() {
		now = db.now()
	}
	state := encodeFeedState(&c.State)
	err = db.batch(func(b *buckets) error {
		set, err := b.seen.CreateBucketIfNotExists(fk)
		if err != nil {
			return fmt.Errorf("seen set: %w", err)
		}
		// Sorted, so the puts land in key order (see enqueuer).
		ids := make([][]byte, 0, len(c.Seen)+len(c.Notifications))
		for _, id := range c.Seen {
			if id != "" {
				ids = append(ids, seenKey(id))
			}
		}
		for i := range c.Notifications {
			if id := c.Notifications[i].ItemID; id != "" {
				ids = append(ids, seenKey(id))
			}
		}
		slices.SortFunc(ids, bytes.Compare)
		ids = slices.CompactFunc(ids, bytes.Equal)
		ts := binary.BigEndian.AppendUint64(nil, uint64(now.Unix()))
		for _, id := range ids {
			if err := set.Put(id, ts); err != nil {
				return fmt.Errorf("mark seen: %w", err)
			}
		}
		if len(c.Seen) > 0 {
			cutoff := now.Add(-SeenRetention).Unix()
			var old [][]byte
			cur := set.Cursor()
			for k, v := cur.First(); k != nil; k, v = cur.Next() {
				if len(v) != 8 || int64(binary.BigEndian.Uint64(v)) < cutoff {
					old = append(old, append([]byte(nil), k...))
				}
			}
			if err := deleteKeys(set, old); err != nil {
				return fmt.Errorf("prune seen: %w", err)
			}
		}
		old := b.feedState.Get(fk)
		b.feedStateWritten(fk, old, c.State.Broken)
		if err := b.feedState.Put(fk, withUnknown(state, old, feedStateKnown)); err != nil {
			return fmt.Errorf("save state: %w", err)
		}
		if c.FanOut != nil {
			if len(c.Notifications) > 0 {
				return fmt.Errorf("a commit starts a paged delivery or enqueues notifications, not both")
			}
			if err := startFanOut(b, c.FanOut); err != nil {
				return err
			}
		}
		q := b.enqueuer(now)
		for i := range c.Notifications {
			if err := q.add(c.Notifications[i]); err != nil {
				return err
			}
		}
		if err := q.flush(); err != nil {
			return err
		}
		if db.beforeCommit != nil {
			if err := db.beforeCommit(); err != nil {
				return err
			}
		}
		db.hit(tilecast.FailInCommit)
		return nil
	})
	if err != nil {
		return fmt.Errorf("commit %s: %w", c.Key, err)
	}
	return nil
}
