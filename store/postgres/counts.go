package postgres

import (
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/tilecast/tilecast"
)

// Running counts (tilecast.Counts) live in two tables (migrations/001):
// counts, 16 shards of channels / outbox entries / dead letters whose sums
// are the counts, and broken_counts, the broken feed states by feed name,
// which triggers on feed_states keep. A write transaction notes what it
// changes in txn.delta (from the rows its statements affected) and adds
// it to one shard just before it commits (saveCounts), so the counts
// commit, or roll back, with the change. Reading them is 16 rows and the broken list, whatever the size
// of the state: /healthz and /metrics never count rows.
//
// Where each count changes:
//
//	channels  addChannel, importing new channels; removeChannels (RemoveChannel,
//	          two channels made one by a rotation, Record's OpRemoveChannel)
//	outbox    enqueue (Commit, Enqueue, FanOutStep) and the tiles it replaces;
//	          Record's deletes; channel removal and takeOver; Due's orphans
//	dead      Record's OpDead

// shards is the number of rows in counts.
const shards = 16

// countDelta is what one transaction changed in the counts.
type countDelta struct{ channels, outbox, dead int64 }

// saveCounts adds the transaction's changes to the counts.
func (t *txn) saveCounts() error {
	d := &t.delta
	if d.channels == 0 && d.outbox == 0 && d.dead == 0 && !t.notify {
		return nil
	}
	from := ""
	if t.notify {
		// New work wakes the idle instances (listen) when this commits;
		// in the same statement, for nothing more to send.
		from = " FROM (SELECT pg_notify('" + workChannel + "', current_schema())) AS wake"
	}
	_, err := t.Exec(t.ctx, `UPDATE counts SET channels = channels + $1, outbox = outbox + $2, dead = dead + $3`+from+`
		WHERE shard = pg_backend_pid() % $4`, d.channels, d.outbox, d.dead, shards)
	if err != nil {
		return fmt.Errorf("save counts: %w", err)
	}
	return nil
}

// Counts returns the running counts: channels, outbox depth, dead letters
// and broken feed states. It reads the count rows, not the data they
// count, so it costs the same for any size of state.
func (db *DB) Counts() (tilecast.Counts, error) {
	ctx, cancel := db.opCtx()
	defer cancel()
	var c tilecast.Counts
	var b pgx.Batch
	b.Queue("SELECT coalesce(sum(channels), 0), coalesce(sum(outbox), 0), coalesce(sum(dead), 0) FROM counts").
		QueryRow(func(row pgx.Row) error {
			var ch, ob, dl int64
			if err := row.Scan(&ch, &ob, &dl); err != nil {
				return err
			}
			c.Channels, c.OutboxDepth, c.DeadLetters = max(int(ch), 0), max(int(ob), 0), max(int(dl), 0)
			return nil
		})
	b.Queue("SELECT feed, global, users FROM broken_counts WHERE global > 0 OR users > 0").
		Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var feed string
				var s tilecast.BrokenStates
				if err := rows.Scan(&feed, &s.Global, &s.Users); err != nil {
					return err
				}
				if c.Broken == nil {
					c.Broken = map[string]tilecast.BrokenStates{}
				}
				c.Broken[feed] = tilecast.BrokenStates{Global: max(s.Global, 0), Users: max(s.Users, 0)}
			}
			return rows.Err()
		})
	if err := db.pool.SendBatch(ctx, &b).Close(); err != nil {
		return tilecast.Counts{}, fmt.Errorf("counts: %w", err)
	}
	return c, nil
}

// Recount sets the counts from the rows themselves: after rows were
// written behind the store's back (a state copy, an operator's SQL). It
// reads every channel, entry, dead letter and feed state, so it is for
// tools, not for the daemon.
func (db *DB) Recount() (tilecast.Counts, error) {
	err := db.write("", func(t *txn) error {
		_, err := t.Exec(t.ctx, `
			UPDATE counts SET channels = 0, outbox = 0, dead = 0;
			UPDATE counts SET channels = (SELECT count(*) FROM channels),
				outbox = (SELECT count(*) FROM outbox),
				dead = (SELECT count(*) FROM dead_letters)
			WHERE shard = 0;
			DELETE FROM broken_counts;
			INSERT INTO broken_counts (feed, global, users)
				SELECT feed, count(*) FILTER (WHERE user_name = ''), count(*) FILTER (WHERE user_name <> '')
				FROM feed_states WHERE broken GROUP BY feed`)
		return err
	})
	if err != nil {
		return tilecast.Counts{}, fmt.Errorf("recount: %w", err)
	}
	return db.Counts()
}
