package postgres

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/store/rules"
)

// checkKey refuses a feed key that cannot name a stored state.
func checkKey(k tilecast.FeedKey) error {
	if k.Feed == "" {
		return fmt.Errorf("feed key %q: feed name is empty", k.String())
	}
	if !okText(k.Feed) || !okText(k.User) {
		return fmt.Errorf("feed key %q: not valid UTF-8 without NUL", k.String())
	}
	return nil
}

// FeedState returns the state saved for k; the bool is false when none is.
func (db *DB) FeedState(k tilecast.FeedKey) (tilecast.FeedState, bool, error) {
	if err := checkKey(k); err != nil {
		return tilecast.FeedState{}, false, err
	}
	ctx, cancel := db.opCtx()
	defer cancel()
	var v []byte
	err := db.pool.QueryRow(ctx, "SELECT state FROM feed_states WHERE feed = $1 AND user_name = $2", k.Feed, k.User).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return tilecast.FeedState{}, false, nil
	}
	if err != nil {
		return tilecast.FeedState{}, false, fmt.Errorf("feed state %s: %w", k, err)
	}
	st, err := parseState(v)
	if err != nil {
		return tilecast.FeedState{}, false, fmt.Errorf("feed state %s: %w", k, err)
	}
	return st, true, nil
}

// parseState reads a state column.
func parseState(v []byte) (tilecast.FeedState, error) {
	var st tilecast.FeedState
	if err := json.Unmarshal(v, &st); err != nil {
		return st, fmt.Errorf("decode feed state: %w", err)
	}
	return st, nil
}

// SaveFeedState replaces the state of k.
func (db *DB) SaveFeedState(k tilecast.FeedKey, st tilecast.FeedState) error {
	if err := checkKey(k); err != nil {
		return err
	}
	v, err := json.Marshal(&st)
	if err != nil {
		return fmt.Errorf("save feed state %s: %w", k, err)
	}
	err = db.write("", func(t *txn) error { return t.saveState(k, st.Broken, v) })
	if err != nil {
		return fmt.Errorf("save feed state %s: %w", k, err)
	}
	return nil
}

// saveState upserts a feed state. The broken counts follow by trigger
// (migrations/001).
func (t *txn) saveState(k tilecast.FeedKey, broken bool, v []byte) error {
	_, err := t.Exec(t.ctx, `INSERT INTO feed_states (feed, user_name, broken, state) VALUES ($1, $2, $3, $4)
		ON CONFLICT (feed, user_name) DO UPDATE SET broken = EXCLUDED.broken, state = EXCLUDED.state`,
		k.Feed, k.User, broken, string(v))
	if err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	return nil
}

// FeedStates returns every saved feed state.
func (db *DB) FeedStates() (map[tilecast.FeedKey]tilecast.FeedState, error) {
	ctx, cancel := db.opCtx()
	defer cancel()
	rows, err := db.pool.Query(ctx, "SELECT feed, user_name, state FROM feed_states")
	if err != nil {
		return nil, fmt.Errorf("feed states: %w", err)
	}
	defer rows.Close()
	out := map[tilecast.FeedKey]tilecast.FeedState{}
	for rows.Next() {
		var k tilecast.FeedKey
		var v []byte
		if err := rows.Scan(&k.Feed, &k.User, &v); err != nil {
			return nil, fmt.Errorf("feed states: %w", err)
		}
		st, err := parseState(v)
		if err != nil {
			return nil, fmt.Errorf("feed state %s: %w", k, err)
		}
		out[k] = st
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("feed states: %w", err)
	}
	return out, nil
}

// Unseen returns the ids that are not in k's seen set, in the given order,
// without duplicates. Empty ids are never returned (they cannot be stored).
func (db *DB) Unseen(k tilecast.FeedKey, ids []string) ([]string, error) {
	if err := checkKey(k); err != nil {
		return nil, err
	}
	var uniq []string
	dup := make(map[string]struct{}, len(ids))
	keys := make([][]byte, 0, len(ids))
	for _, id := range ids {
		if id == "" {
			continue
		}
		if _, ok := dup[id]; ok {
			continue
		}
		dup[id] = struct{}{}
		uniq = append(uniq, id)
		keys = append(keys, rules.SeenKey(id))
	}
	if len(uniq) == 0 {
		return nil, nil
	}
	ctx, cancel := db.opCtx()
	defer cancel()
	rows, err := db.pool.Query(ctx, "SELECT item FROM seen WHERE feed = $1 AND user_name = $2 AND item = ANY($3)", k.Feed, k.User, keys)
	if err != nil {
		return nil, fmt.Errorf("unseen %s: %w", k, err)
	}
	seen, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		return nil, fmt.Errorf("unseen %s: %w", k, err)
	}
	known := make(map[string]struct{}, len(seen))
	for _, s := range seen {
		known[string(s)] = struct{}{}
	}
	var out []string
	for i, id := range uniq {
		if _, ok := known[string(keys[i])]; !ok {
			out = append(out, id)
		}
	}
	return out, nil
}

// Commit is one feed run's write, in a single transaction: every id in
// c.Seen and every new notification's item is marked seen at c.Now (zero:
// the store's clock), ids the feed has not listed for rules.SeenRetention
// are dropped (only when c.Seen is non-empty: a commit without an item
// list says nothing about which items are gone), c.State is saved and
// c.Notifications are enqueued (see Enqueue), or c.FanOut is started.
func (db *DB) Commit(c tilecast.Commit) error {
	if err := checkKey(c.Key); err != nil {
		return err
	}
	if c.FanOut != nil && len(c.Notifications) > 0 {
		return fmt.Errorf("commit %s: a commit starts a paged delivery or enqueues notifications, not both", c.Key)
	}
	now := c.Now
	if now.IsZero() {
		now = db.now()
	}
	state, err := json.Marshal(&c.State)
	if err != nil {
		return fmt.Errorf("commit %s: %w", c.Key, err)
	}
	var job []byte
	if c.FanOut != nil {
		if job, err = json.Marshal(c.FanOut); err != nil {
			return fmt.Errorf("commit %s: encode fan-out job: %w", c.Key, err)
		}
	}
	ids := make([][]byte, 0, len(c.Seen)+len(c.Notifications))
	for _, id := range c.Seen {
		if id != "" {
			ids = append(ids, rules.SeenKey(id))
		}
	}
	for i := range c.Notifications {
		if id := c.Notifications[i].ItemID; id != "" {
			ids = append(ids, rules.SeenKey(id))
		}
	}
	// One row per item: an upsert may not touch a row twice.
	slices.SortFunc(ids, bytes.Compare)
	ids = slices.CompactFunc(ids, bytes.Equal)
	err = db.write(tilecast.FailInCommit, func(t *txn) error {
		var b pgx.Batch
		if len(ids) > 0 {
			b.Queue(`INSERT INTO seen (feed, user_name, item, listed) SELECT $1, $2, unnest($3::bytea[]), $4
				ON CONFLICT (feed, user_name, item) DO UPDATE SET listed = EXCLUDED.listed`, c.Key.Feed, c.Key.User, ids, now.Unix())
		}
		if len(c.Seen) > 0 {
			b.Queue("DELETE FROM seen WHERE feed = $1 AND user_name = $2 AND listed < $3",
				c.Key.Feed, c.Key.User, now.Add(-rules.SeenRetention).Unix())
		}
		if c.FanOut != nil {
			b.Queue("INSERT INTO fanout_jobs (feed, job) VALUES ($1, $2) ON CONFLICT (feed) DO NOTHING", c.FanOut.Feed, string(job)).
				Exec(func(tag pgconn.CommandTag) error {
					if tag.RowsAffected() == 0 {
						return fmt.Errorf("feed %s still has an unfinished delivery", c.FanOut.Feed)
					}
					return nil
				})
		}
		if b.Len() > 0 {
			if err := t.SendBatch(t.ctx, &b).Close(); err != nil {
				return err
			}
		}
		if err := t.saveState(c.Key, c.State.Broken, state); err != nil {
			return err
		}
		return t.enqueue(c.Notifications, now)
	})
	if err != nil {
		return fmt.Errorf("commit %s: %w", c.Key, err)
	}
	return nil
}

// FanOutStep enqueues one page of a paged delivery and, in the same
// transaction, saves the job with its moved cursor, or deletes it when done.
// from is the cursor the page was read at. Every instance resumes the
// unfinished jobs at start (Bot.ResumeFanOuts), so two may read the same
// page: the job's row is locked and its stored cursor compared with from
// in the transaction that enqueues, and the second step, which waited for
// the first's lock and then sees the moved cursor (or no job), enqueues
// nothing and returns tilecast.ErrFanOutMoved.
func (db *DB) FanOutStep(job tilecast.FanOutJob, from string, ns []tilecast.Notification, done bool) error {
	if !okText(job.Feed) {
		return fmt.Errorf("fan-out %q: no such job", job.Feed)
	}
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
	err := db.write("", func(t *txn) error {
		// Read committed: FOR UPDATE waits for a step holding the row and
		// then reads the row as that step left it. The cursor is compared
		// here, not in SQL: it may hold a NUL (the bbolt-compatible index
		// key), which PostgreSQL's text (job->>'Cursor') refuses.
		var stored []byte
		err := t.QueryRow(t.ctx, "SELECT job FROM fanout_jobs WHERE feed = $1 FOR UPDATE", job.Feed).Scan(&stored)
		if errors.Is(err, pgx.ErrNoRows) {
			// Finished or dropped meanwhile: enqueueing again would
			// send this page twice.
			return fmt.Errorf("no fan-out job for %s: %w", job.Feed, tilecast.ErrFanOutMoved)
		}
		if err != nil {
			return err
		}
		var cur struct{ Cursor string }
		if err := json.Unmarshal(stored, &cur); err != nil {
			return fmt.Errorf("stored fan-out job %s: %w", job.Feed, err)
		}
		if cur.Cursor != from {
			return fmt.Errorf("page at %q of %s: the job is at %q: %w", from, job.Feed, cur.Cursor, tilecast.ErrFanOutMoved)
		}
		if err := t.enqueue(ns, now); err != nil {
			return err
		}
		if done {
			_, err = t.Exec(t.ctx, "DELETE FROM fanout_jobs WHERE feed = $1", job.Feed)
		} else {
			_, err = t.Exec(t.ctx, "UPDATE fanout_jobs SET job = $2 WHERE feed = $1", job.Feed, string(v))
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("fan-out %s: %w", job.Feed, err)
	}
	return nil
}

// FanOutJobs returns the paged deliveries in progress, by feed name.
func (db *DB) FanOutJobs() ([]tilecast.FanOutJob, error) {
	ctx, cancel := db.opCtx()
	defer cancel()
	rows, err := db.pool.Query(ctx, "SELECT feed, job FROM fanout_jobs ORDER BY feed")
	if err != nil {
		return nil, fmt.Errorf("fan-out jobs: %w", err)
	}
	defer rows.Close()
	var out []tilecast.FanOutJob
	for rows.Next() {
		var feed string
		var v []byte
		if err := rows.Scan(&feed, &v); err != nil {
			return nil, fmt.Errorf("fan-out jobs: %w", err)
		}
		var job tilecast.FanOutJob
		if err := json.Unmarshal(v, &job); err != nil {
			return nil, fmt.Errorf("fan-out job %s: %w", feed, err)
		}
		out = append(out, job)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("fan-out jobs: %w", err)
	}
	return out, nil
}
