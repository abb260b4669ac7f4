package store

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/tilecast/tilecast"
	bolt "go.etcd.io/bbolt"
)

// The expiry index (bucket channel_expiry): one key per channel whose
// Expires is set (a Web Push subscription's expirationTime), 8-byte BE
// Unix nanoseconds of the expiry + 0x00 + channel ID, value empty. The
// hourly sweep (tilecast.Bot.SweepExpired) reads the keys up to now
// instead of every channel, so its cost follows the channels that expired,
// not the number that never do. index and unindex (channels.go) keep it,
// so every write that creates, updates, rotates, merges, imports or
// removes a channel keeps it in the same transaction.

// schemaExpiryIndex is the schema whose migration (buildExpiryIndex)
// creates channel_expiry: every file at it or later has the bucket.
const schemaExpiryIndex = 5

// expiryKey is ch's channel_expiry key; ch.Expires must be set.
func expiryKey(ch *tilecast.Channel) []byte {
	k := make([]byte, 0, 9+len(ch.ID))
	k = binary.BigEndian.AppendUint64(k, timeNanos(ch.Expires))
	k = append(k, 0)
	return append(k, ch.ID...)
}

func (b *buckets) indexExpiry(ch *tilecast.Channel) error {
	if ch.Expires.IsZero() || b.chanExpiry == nil {
		// nil: a migration before schema 5, which builds the index after.
		return nil
	}
	return b.chanExpiry.Put(expiryKey(ch), nil)
}

func (b *buckets) unindexExpiry(ch *tilecast.Channel) error {
	if ch.Expires.IsZero() || b.chanExpiry == nil {
		return nil
	}
	return b.del(b.chanExpiry, expiryKey(ch))
}

// ExpiredChannels returns up to limit channels (tilecast.PageLimit) whose
// Expires is set and not after now, the earliest expiry first (then by
// ID). It reads the expiry index alone up to now: channels that never
// expire, or expire later, cost nothing. A caller that removes what it got
// calls again for the next ones.
func (db *DB) ExpiredChannels(now time.Time, limit int) ([]tilecast.Channel, error) {
	limit = tilecast.PageLimit(limit)
	end := timeNanos(now)
	var out []tilecast.Channel
	err := db.view(func(b *buckets) error {
		if b.chanExpiry == nil { // a read of a file not migrated yet
			return fmt.Errorf("%w: bucket %s is missing", ErrCorrupt, bucketChannelExpiry)
		}
		c := b.chanExpiry.Cursor()
		for k, _ := c.First(); k != nil && len(out) < limit; k, _ = c.Next() {
			if len(k) < 9 || k[8] != 0 {
				return fmt.Errorf("%w: %s key %x", ErrCorrupt, bucketChannelExpiry, k)
			}
			if binary.BigEndian.Uint64(k[:8]) > end {
				break
			}
			ch, ok, err := b.getChannel(string(k[9:]))
			if err != nil {
				return err
			}
			if ok {
				out = append(out, ch)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("expired channels: %w", err)
	}
	return out, nil
}

// buildExpiryIndex is the schema 5 migration: the channel_expiry bucket,
// made anew from the channel records. A record that cannot be read is
// left out: the schema 4 migration logged it and kept it as it was, and
// nothing sends to it.
func buildExpiryIndex(tx *bolt.Tx) error {
	if tx.Bucket([]byte(bucketChannelExpiry)) != nil {
		// A file that went back to an older schema (a test, a restored
		// schema number) may hold a stale one.
		if err := tx.DeleteBucket([]byte(bucketChannelExpiry)); err != nil {
			return fmt.Errorf("delete bucket %s: %w", bucketChannelExpiry, err)
		}
	}
	idx, err := tx.CreateBucket([]byte(bucketChannelExpiry))
	if err != nil {
		return fmt.Errorf("create bucket %s: %w", bucketChannelExpiry, err)
	}
	channels := tx.Bucket([]byte(bucketChannels))
	if channels == nil {
		return fmt.Errorf("%w: bucket %s is missing", ErrCorrupt, bucketChannels)
	}
	return channels.ForEach(func(k, v []byte) error {
		ch, err := decodeChannel(v)
		if err != nil || ch.Expires.IsZero() {
			return nil
		}
		ch.ID = string(k) // the key is the ID every index names
		return idx.Put(expiryKey(&ch), nil)
	})
}

// RemoveExpiredChannel removes the channel id, with what waits for it, if
// its Expires is set and not after now, and reports whether it did. The
// check and the removal are one transaction: a browser that re-subscribed
// (a later expirationTime, or none) after a sweep listed its channel keeps
// it. An unknown id is (false, nil): someone else removed it.
func (db *DB) RemoveExpiredChannel(id string, now time.Time) (bool, error) {
	removed := false
	err := db.update(func(b *buckets) error {
		ch, ok, err := b.getChannel(id)
		if err != nil || !ok || ch.Expires.IsZero() || ch.Expires.After(now) {
			return err
		}
		removed, err = b.removeChannel(id)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("remove expired channel %s: %w", id, err)
	}
	return removed, nil
}
