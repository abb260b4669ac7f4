package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/store/dump"
)

// Export calls fn with every record of the state (dump.Item), kind by
// kind in dump.Kinds' order, from one REPEATABLE READ transaction: a
// consistent snapshot. Rows stream from the server a query at a time.
func (db *DB) Export(ctx context.Context, fn func(dump.Item) error) error {
	err := pgx.BeginTxFunc(ctx, db.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		each := func(q string, scan func(rows pgx.Rows) (dump.Item, error)) error {
			rows, err := tx.Query(ctx, q)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				it, err := scan(rows)
				if err != nil {
					return err
				}
				if err := fn(it); err != nil {
					return err
				}
			}
			return rows.Err()
		}
		steps := []struct {
			what, q string
			scan    func(rows pgx.Rows) (dump.Item, error)
		}{
			{dump.KindChannel, "SELECT " + chanCols + " FROM channels ORDER BY id", func(rows pgx.Rows) (dump.Item, error) {
				var s channelScan
				if err := rows.Scan(s.dest()...); err != nil {
					return dump.Item{}, err
				}
				ch := s.channel()
				return dump.Item{Channel: &ch}, nil
			}},
			{dump.KindFeedState, "SELECT feed, user_name, state FROM feed_states ORDER BY feed, user_name", func(rows pgx.Rows) (dump.Item, error) {
				var fs dump.FeedState
				var v []byte
				if err := rows.Scan(&fs.Key.Feed, &fs.Key.User, &v); err != nil {
					return dump.Item{}, err
				}
				var err error
				fs.State, err = parseState(v)
				return dump.Item{FeedState: &fs}, err
			}},
			{dump.KindSeen, "SELECT feed, user_name, item, listed FROM seen ORDER BY feed, user_name, item", func(rows pgx.Rows) (dump.Item, error) {
				var s dump.Seen
				var listed int64
				if err := rows.Scan(&s.Key.Feed, &s.Key.User, &s.Item, &listed); err != nil {
					return dump.Item{}, err
				}
				s.Listed = time.Unix(listed, 0).UTC()
				return dump.Item{Seen: &s}, nil
			}},
			{dump.KindJob, "SELECT job FROM fanout_jobs ORDER BY feed", func(rows pgx.Rows) (dump.Item, error) {
				var v []byte
				if err := rows.Scan(&v); err != nil {
					return dump.Item{}, err
				}
				var job tilecast.FanOutJob
				if err := json.Unmarshal(v, &job); err != nil {
					return dump.Item{}, fmt.Errorf("fan-out job: %w", err)
				}
				return dump.Item{Job: &job}, nil
			}},
		}
		for _, s := range steps {
			if err := each(s.q, s.scan); err != nil {
				return fmt.Errorf("%s: %w", s.what, err)
			}
		}
		// The entries' payloads: few rows, each shared by many entries.
		bodies := map[int64][]byte{}
		rows, err := tx.Query(ctx, "SELECT p.id, p.body FROM payloads p WHERE EXISTS (SELECT 1 FROM outbox o WHERE o.payload_id = p.id)")
		if err != nil {
			return fmt.Errorf("payloads: %w", err)
		}
		for rows.Next() {
			var id int64
			var body []byte
			if err := rows.Scan(&id, &body); err != nil {
				rows.Close()
				return fmt.Errorf("payloads: %w", err)
			}
			bodies[id] = body
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("payloads: %w", err)
		}
		steps = []struct {
			what, q string
			scan    func(rows pgx.Rows) (dump.Item, error)
		}{
			{dump.KindEntry, "SELECT " + entryCols + " FROM outbox o ORDER BY o.next_attempt, o.id", func(rows pgx.Rows) (dump.Item, error) {
				var e entry
				if err := rows.Scan(e.dest()...); err != nil {
					return dump.Item{}, err
				}
				e.fix()
				body, ok := bodies[e.payload]
				if !ok {
					return dump.Item{}, fmt.Errorf("entry %d: payload %d is missing", e.n.ID, e.payload)
				}
				e.n.Payload = body
				return dump.Item{Entry: &e.n}, nil
			}},
			{dump.KindLastTile, "SELECT channel_id, feed, kind, sum FROM tile_last ORDER BY channel_id, feed, kind", func(rows pgx.Rows) (dump.Item, error) {
				var l dump.LastTile
				err := rows.Scan(&l.Channel, &l.Feed, (*kindScan)(&l.Kind), &l.Sum)
				return dump.Item{LastTile: &l}, err
			}},
			{dump.KindDead, "SELECT " + deadCols + " FROM dead_letters ORDER BY id", func(rows pgx.Rows) (dump.Item, error) {
				ds, err := scanDeadRow(rows)
				return dump.Item{Dead: &ds}, err
			}},
			{dump.KindOutcome, "SELECT channel_id, outcome FROM ledger ORDER BY channel_id, time, seq", func(rows pgx.Rows) (dump.Item, error) {
				var ch string
				var v []byte
				if err := rows.Scan(&ch, &v); err != nil {
					return dump.Item{}, err
				}
				o, err := parseOutcome(v)
				if o.ChannelID == "" {
					o.ChannelID = ch
				}
				return dump.Item{Outcome: &o}, err
			}},
		}
		for _, s := range steps {
			if err := each(s.q, s.scan); err != nil {
				return fmt.Errorf("%s: %w", s.what, err)
			}
		}
		return nil
	})
	if err == nil {
		// What was read is a state no tilecast wrote meanwhile only if the
		// copy's lock lasted (while its records were written elsewhere).
		err = db.stillHeld(ctx)
	}
	if err != nil {
		return fmt.Errorf("export %s: %w", db.url, err)
	}
	return nil
}

// Importer returns a dump.Writer that writes a state's items into this
// database, which is meant to be empty (the caller checks), a batch of
// each kind per transaction with COPY, keeping the counts. Entries keep
// their IDs; outbox_ids is moved past the largest.
func (db *DB) Importer() dump.Writer { return &importer{db: db} }

type importer struct {
	db    *DB
	kind  string
	items []dump.Item
}

// importBatch is how many items of a kind one transaction writes.
const importBatch = 5000

func (im *importer) Write(it dump.Item) error {
	if k := it.Kind(); k != im.kind {
		if err := im.flush(); err != nil {
			return err
		}
		im.kind = k
	}
	im.items = append(im.items, it)
	if len(im.items) >= importBatch {
		return im.flush()
	}
	return nil
}

func (im *importer) Close() error {
	if err := im.flush(); err != nil {
		return err
	}
	err := im.db.write("", func(t *txn) error {
		_, err := t.Exec(t.ctx, "SELECT setval('outbox_ids', greatest((SELECT max(id) FROM outbox), (SELECT max(id) FROM dead_letters), 1))")
		return err
	})
	if err != nil {
		return err
	}
	// A bulk load leaves the planner's statistics behind (analyze.go):
	// the daemon started next plans from what is there now.
	ctx, cancel := im.db.opCtx()
	defer cancel()
	if _, err := im.db.pool.Exec(ctx, "ANALYZE"); err != nil {
		return fmt.Errorf("import into %s: analyze: %w", im.db.url, err)
	}
	// A tilecast that started while the copy's lock was lost may have
	// written between the batches.
	if err := im.db.stillHeld(ctx); err != nil {
		return fmt.Errorf("import into %s: %w", im.db.url, err)
	}
	return nil
}

func (im *importer) flush() error {
	items := im.items
	im.items = nil
	if len(items) == 0 {
		return nil
	}
	err := im.db.write("", func(t *txn) error { return t.importItems(im.kind, items) })
	if err != nil {
		return fmt.Errorf("import %s into %s: %w", im.kind, im.db.url, err)
	}
	return nil
}

// copyRows writes rows with COPY.
func (t *txn) copyRows(table string, cols []string, n int, row func(i int) ([]any, error)) (int64, error) {
	return t.CopyFrom(t.ctx, pgx.Identifier{table}, cols, pgx.CopyFromSlice(n, row))
}

func (t *txn) importItems(kind string, items []dump.Item) error {
	n := len(items)
	switch kind {
	case dump.KindChannel:
		chs := make([]tilecast.Channel, n)
		for i := range items {
			chs[i] = *items[i].Channel
		}
		return t.insertChannels(chs)
	case dump.KindFeedState:
		for i := range items {
			fs := items[i].FeedState
			if err := checkKey(fs.Key); err != nil {
				return err
			}
			v, err := json.Marshal(&fs.State)
			if err != nil {
				return err
			}
			if err := t.saveState(fs.Key, fs.State.Broken, v); err != nil {
				return err
			}
		}
		return nil
	case dump.KindSeen:
		_, err := t.copyRows("seen", []string{"feed", "user_name", "item", "listed"}, n, func(i int) ([]any, error) {
			s := items[i].Seen
			return []any{s.Key.Feed, s.Key.User, s.Item, s.Listed.Unix()}, nil
		})
		return err
	case dump.KindJob:
		for i := range items {
			v, err := json.Marshal(items[i].Job)
			if err != nil {
				return err
			}
			if _, err := t.Exec(t.ctx, "INSERT INTO fanout_jobs (feed, job) VALUES ($1, $2)", items[i].Job.Feed, string(v)); err != nil {
				return err
			}
		}
		return nil
	case dump.KindEntry:
		// One payload row per distinct payload of the batch.
		ids := map[string]int64{}
		var b pgx.Batch
		for i := range items {
			p := string(items[i].Entry.Payload)
			if _, ok := ids[p]; ok {
				continue
			}
			ids[p] = 0
			sum := sha256.Sum256([]byte(p))
			b.Queue("INSERT INTO payloads (sum, body) VALUES ($1, $2) RETURNING id", sum[:], []byte(p)).QueryRow(func(row pgx.Row) error {
				var id int64
				err := row.Scan(&id)
				ids[p] = id
				return err
			})
		}
		if err := t.SendBatch(t.ctx, &b).Close(); err != nil {
			return err
		}
		cols := append([]string{"id"}, outboxCols...)
		copied, err := t.copyRows("outbox", cols, n, func(i int) ([]any, error) {
			e := items[i].Entry
			if !okText(e.ChannelID) || !okText(e.Feed) || !okText(e.User) {
				return nil, fmt.Errorf("entry %d: channel, feed or user is not UTF-8 without NUL", e.ID)
			}
			return []any{int64(e.ID), e.ChannelID, e.Feed, e.User, []byte(e.ItemID), string(e.Kind), ids[string(e.Payload)],
				int32(e.Attempts), e.NextAttempt, e.Created}, nil
		})
		t.delta.outbox += copied
		return err
	case dump.KindLastTile:
		_, err := t.copyRows("tile_last", []string{"channel_id", "feed", "kind", "sum"}, n, func(i int) ([]any, error) {
			l := items[i].LastTile
			if !isState(l.Kind) {
				return nil, fmt.Errorf("last tile of channel %s, feed %s: kind %q is not state", l.Channel, l.Feed, l.Kind)
			}
			return []any{l.Channel, l.Feed, string(l.Kind), l.Sum}, nil
		})
		return err
	case dump.KindDead:
		copied, err := t.copyRows("dead_letters", strings.Split(deadCols, ", "), n, func(i int) ([]any, error) {
			d := items[i].Dead
			nt := &d.Notification
			o, err := outcomeJSON(&d.Outcome)
			if err != nil {
				return nil, err
			}
			payload := nt.Payload
			if payload == nil {
				payload = []byte{}
			}
			return []any{int64(nt.ID), nt.ChannelID, nt.Feed, nt.User, []byte(nt.ItemID), string(nt.Kind), payload,
				int32(nt.Attempts), ts(nt.NextAttempt), ts(nt.Created), o}, nil
		})
		t.delta.dead += copied
		return err
	case dump.KindOutcome:
		_, err := t.copyRows("ledger", []string{"channel_id", "time", "feed", "outcome"}, n, func(i int) ([]any, error) {
			o := items[i].Outcome
			v, err := outcomeJSON(o)
			if err != nil {
				return nil, err
			}
			return []any{o.ChannelID, o.Time, validText(o.Feed), v}, nil
		})
		return err
	}
	return fmt.Errorf("unknown kind of item %q", kind)
}

// scanDeadRow reads one dead_letters row (deadCols).
func scanDeadRow(rows pgx.Rows) (tilecast.DeadLetter, error) {
	var d tilecast.DeadLetter
	n := &d.Notification
	var next, made pgtype.Timestamptz
	var o []byte
	if err := rows.Scan(&n.ID, &n.ChannelID, &n.Feed, &n.User, (*itemScan)(&n.ItemID), (*kindScan)(&n.Kind),
		&n.Payload, &n.Attempts, &next, &made, &o); err != nil {
		return d, err
	}
	n.NextAttempt, n.Created = tm(next), tm(made)
	if len(n.Payload) == 0 {
		n.Payload = nil
	}
	var err error
	d.Outcome, err = parseOutcome(o)
	return d, err
}
