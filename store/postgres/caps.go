package postgres

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The daily cap of an unauthenticated channel across instances
// (tilecast.DailyCaps, migrations/006). Every instance's dispatcher
// reserves a channel's sends in daily_caps before it hands them to its
// workers, for the entries of one Due batch at once, and only a
// reservation it got is sent. The count is one row per channel, changed
// under the row's lock, so however instances interleave the reservations
// of a day never pass the limit. The row counts reservations, not
// recorded outcomes: a send counts from before its request until the end
// of the day, recorded or not, and an instance that dies mid-send leaves
// its reservations counted (the push may have reached the service, and
// the cap must not be passed; the entry's resend by another instance
// reserves again, so a crash can only cost a channel some of its day).
// channels.sends_today, what Record counts from outcomes, is what status
// shows. It only seeds a channel's first reservation of a day, with the
// sends recorded that day before any was reserved (made by a version
// before this schema, or reserved the day before and answered after
// midnight); it is never added to the reservations, so no send counts
// twice within a day.
//
// The day of a reservation is the dispatcher's when it reserves: a send
// reserved just before midnight and made just after counts toward the
// day it was reserved in (at most a send window of them per instance).

// capsRetention: rows of days before yesterday are dropped by heartbeats
// (a reservation of an older day is never asked for again).
const capsRetention = 24 * time.Hour

// ReserveSends reserves up to want[i] sends on day (UTC, "2006-01-02") to
// channel ids[i], a channel's reservations of the day never passing
// limit, and returns how many each got. An ID may not repeat. It is one
// round trip and one transaction whatever the number of channels: missing
// rows are inserted, then the rows are locked in ID order (no deadlock
// between instances) and raised, a row of an earlier day starting from
// the channel's recorded sends of this day. A row another instance has
// already moved to a later day (its clock is ahead) grants nothing: the
// caller holds the entries back to its next day.
func (db *DB) ReserveSends(day string, ids []string, want []int, limit int) ([]int, error) {
	if len(ids) != len(want) {
		return nil, fmt.Errorf("reserve sends: %d channels, %d wants", len(ids), len(want))
	}
	if _, err := time.Parse(time.DateOnly, day); err != nil {
		return nil, fmt.Errorf("reserve sends: day %q: %w", day, err)
	}
	granted := make([]int, len(ids))
	order := make([]int, 0, len(ids))
	for i, id := range ids {
		if want[i] > 0 && okText(id) {
			order = append(order, i)
		}
	}
	if len(order) == 0 || limit <= 0 {
		return granted, nil
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(ids[a], ids[b]) })
	cs, ks := make([]string, len(order)), make([]int32, len(order))
	at := make(map[string]int, len(order))
	for j, i := range order {
		if _, dup := at[ids[i]]; dup {
			return nil, fmt.Errorf("reserve sends: channel %s named twice", ids[i])
		}
		cs[j], ks[j], at[ids[i]] = ids[i], int32(min(want[i], limit)), i
	}
	ctx, cancel := db.opCtx()
	defer cancel()
	var b pgx.Batch
	// In ID order, so that inserting instances wait for each other in
	// one order. An existing row is left alone here (not locked).
	var inserted int64
	b.Queue(`INSERT INTO daily_caps (channel_id, day, n)
		SELECT c, '-infinity', 0 FROM unnest($1::text[]) AS c ORDER BY c
		ON CONFLICT (channel_id) DO NOTHING`, cs).Exec(func(tag pgconn.CommandTag) error {
		inserted = tag.RowsAffected()
		return nil
	})
	// FOR UPDATE reads each row's newest committed version and holds it
	// until the batch commits; the raise is computed from that version.
	b.Queue(`WITH o AS (
			SELECT r.channel_id, r.day, r.n FROM daily_caps r
			WHERE r.channel_id = ANY($1) ORDER BY r.channel_id FOR UPDATE
		), b AS (
			SELECT o.channel_id, u.k, CASE
				WHEN o.day = $2::date THEN o.n
				WHEN o.day < $2::date THEN coalesce((SELECT c.sends_today FROM channels c
					WHERE c.id = o.channel_id AND c.sends_day = to_char($2::date, 'YYYY-MM-DD')), 0)
				ELSE $4 END AS base
			FROM o JOIN unnest($1::text[], $3::int[]) AS u(c, k) ON u.c = o.channel_id
		)
		UPDATE daily_caps r SET day = $2::date, n = least($4, b.base + b.k)
		FROM b WHERE r.channel_id = b.channel_id AND b.base < $4
		RETURNING r.channel_id, r.n - b.base`, cs, day, ks, limit).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var id string
			var n int
			if err := rows.Scan(&id, &n); err != nil {
				return err
			}
			if i, ok := at[id]; ok {
				granted[i] = n
			}
		}
		return rows.Err()
	})
	if err := db.pool.SendBatch(ctx, &b).Close(); err != nil {
		return nil, fmt.Errorf("reserve sends: %w", err)
	}
	db.grew("daily_caps", inserted)
	return granted, nil
}

// ReleaseSends gives back one reservation of day for each element of ids
// (a channel repeats once per send): sends that never reached the push
// service. A reservation of a day the channel's row has left is not
// given back (that day is over). Rows are locked in ID order, as
// ReserveSends locks them.
func (db *DB) ReleaseSends(day string, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	if _, err := time.Parse(time.DateOnly, day); err != nil {
		return fmt.Errorf("release sends: day %q: %w", day, err)
	}
	cs := make([]string, 0, len(ids))
	for _, id := range ids {
		if okText(id) {
			cs = append(cs, id)
		}
	}
	ctx, cancel := db.opCtx()
	defer cancel()
	_, err := db.pool.Exec(ctx, `WITH u AS (
			SELECT c, count(*)::int AS k FROM unnest($1::text[]) AS c GROUP BY c
		), l AS (
			SELECT r.channel_id FROM daily_caps r
			WHERE r.channel_id IN (SELECT c FROM u) AND r.day = $2::date ORDER BY r.channel_id FOR UPDATE
		)
		UPDATE daily_caps r SET n = greatest(r.n - u.k, 0)
		FROM l JOIN u ON u.c = l.channel_id WHERE r.channel_id = l.channel_id`, cs, day)
	if err != nil {
		return fmt.Errorf("release sends: %w", err)
	}
	return nil
}

// Reserved returns the sends reserved on day to channel id (0 when none):
// for status and tests.
func (db *DB) Reserved(id, day string) (int, error) {
	ctx, cancel := db.opCtx()
	defer cancel()
	var n int
	err := db.pool.QueryRow(ctx, "SELECT coalesce((SELECT n FROM daily_caps WHERE channel_id = $1 AND day = $2::date), 0)", id, day).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("reserved sends of %s: %w", id, err)
	}
	return n, nil
}
