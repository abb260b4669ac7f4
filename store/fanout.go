package store

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/tilecast/tilecast"
	bolt "go.etcd.io/bbolt"
)

// bucketFanOut holds the paged deliveries in progress (tilecast.FanOutJob):
// feed name → JSON job. Created by the first job, so older files need no
// migration; a missing bucket reads as "no jobs".
const bucketFanOut = "fanout"

// SubscribersAfter pages the subscribers of global feed f in feed-index
// order: the channels listing no feeds (index prefix NUL) come first, then
// those naming f. The cursor is the index key of the last channel of the
// previous page. A full page returns its last key as the next cursor even
// when nothing follows (the next call then returns an empty last page). A
// channel removed meanwhile is not found. A channel registered meanwhile
// is returned wherever its key sorts; the caller skips those created
// after its run started (Channel.Created), which got the feed's tile on
// subscribing and are not that run's business.
func (db *DB) SubscribersAfter(f *tilecast.Feed, cursor string, limit int) ([]tilecast.Channel, string, error) {
	if f.PerUser() || f.Name == "" {
		return nil, "", fmt.Errorf("subscribers of %q: paging is for global feeds", f.Name)
	}
	limit = max(limit, 1)
	var out []tilecast.Channel
	next := ""
	err := db.view(func(b *buckets) error {
		cur := []byte(cursor)
		c := b.chanFeed.Cursor()
		scanned := 0
		for _, p := range [][]byte{prefix(""), prefix(f.Name)} { // key order: NUL first
			seek := p
			if bytes.Compare(cur, p) > 0 {
				seek = cur
			}
			for k, _ := c.Seek(seek); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
				if bytes.Equal(k, cur) {
					continue
				}
				ch, ok, err := b.getChannel(string(k[len(p):]))
				if err != nil {
					return err
				}
				if ok && ch.Subscribed(f) {
					out = append(out, ch)
				}
				if scanned++; scanned == limit {
					next = string(k)
					return nil
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("subscribers of %s: %w", f.Name, err)
	}
	return out, next, nil
}

// FanOutStep enqueues one page of a paged delivery and, in the same
// transaction, saves the job with its moved cursor, or deletes it when done.
// from is the cursor the page was read at; a job stored at another cursor
// (or gone) is refused with tilecast.ErrFanOutMoved. One process holds a
// bbolt file, whose Bot runs one delivery per feed, so that refusal only
// catches a caller's mistake here (on PostgreSQL it keeps instances apart).
func (db *DB) FanOutStep(job tilecast.FanOutJob, from string, ns []tilecast.Notification, done bool) error {
	var v []byte
	if !done {
		var err error
		if v, err = json.Marshal(&job); err != nil {
			return fmt.Errorf("encode fan-out job %s: %w", job.Feed, err)
		}
	}
	now := job.Now
	if now.IsZero() {
		now = db.now()
	}
	err := db.update(func(b *buckets) error {
		jobs, err := b.tx.CreateBucketIfNotExists([]byte(bucketFanOut))
		if err != nil {
			return err
		}
		stored := jobs.Get([]byte(job.Feed))
		if stored == nil {
			// Finished or dropped meanwhile: enqueueing again would
			// send this page twice.
			return fmt.Errorf("no fan-out job for %s: %w", job.Feed, tilecast.ErrFanOutMoved)
		}
		var cur struct{ Cursor string }
		if err := json.Unmarshal(stored, &cur); err != nil {
			return fmt.Errorf("%w: fan-out job %s: %w", ErrCorrupt, job.Feed, err)
		}
		if cur.Cursor != from {
			return fmt.Errorf("page at %q of %s: the job is at %q: %w", from, job.Feed, cur.Cursor, tilecast.ErrFanOutMoved)
		}
		q := b.enqueuer(now)
		for i := range ns {
			if err := q.add(ns[i]); err != nil {
				return err
			}
		}
		if err := q.flush(); err != nil {
			return err
		}
		if done {
			return jobs.Delete([]byte(job.Feed))
		}
		return jobs.Put([]byte(job.Feed), v)
	})
	if err != nil {
		return fmt.Errorf("fan-out %s: %w", job.Feed, err)
	}
	return nil
}

// FanOutJobs returns the paged deliveries in progress, by feed name.
func (db *DB) FanOutJobs() ([]tilecast.FanOutJob, error) {
	var out []tilecast.FanOutJob
	err := db.bolt.View(func(tx *bolt.Tx) error {
		jobs := tx.Bucket([]byte(bucketFanOut))
		if jobs == nil {
			return nil
		}
		return jobs.ForEach(func(k, v []byte) error {
			var job tilecast.FanOutJob
			if err := json.Unmarshal(v, &job); err != nil {
				return fmt.Errorf("%w: fan-out job %s: %w", ErrCorrupt, k, err)
			}
			out = append(out, job)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("fan-out jobs: %w", err)
	}
	return out, nil
}

// startFanOut saves the job a Commit starts (see tilecast.Commit.FanOut).
func startFanOut(b *buckets, job *tilecast.FanOutJob) error {
	jobs, err := b.tx.CreateBucketIfNotExists([]byte(bucketFanOut))
	if err != nil {
		return err
	}
	if jobs.Get([]byte(job.Feed)) != nil {
		return fmt.Errorf("feed %s still has an unfinished delivery", job.Feed)
	}
	v, err := json.Marshal(job)
	if err != nil {
		return fmt.Errorf("encode fan-out job %s: %w", job.Feed, err)
	}
	return jobs.Put([]byte(job.Feed), v)
}
