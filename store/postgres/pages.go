package postgres

import (
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/store/rules"
)

// Paged listings (design.md §11): each page is one query that seeks past
// the previous page's last key with a row comparison on an index and
// reads at most limit+1 rows (the extra one says whether a next page
// exists). The order is key order, which is what makes a cursor stable
// while others write: a row inserted behind the cursor is not seen, one
// inserted ahead of it is, and no row that existed when the listing
// started is returned twice or skipped. The cursors are rules'.
//
//	ChannelsPage     channels by ID
//	OutcomesPage     ledger entries by channel ID, time, sequence
//	DeadLettersPage  dead letters newest first (by ID, descending)

// ChannelsPage returns up to limit channels (tilecast.PageLimit) in ID
// order after cursor ("" = from the start), and the cursor of the next
// page ("" when this page is the last). f.User narrows it to one user's
// channels.
func (db *DB) ChannelsPage(f tilecast.ChannelFilter, cursor string, limit int) ([]tilecast.Channel, string, error) {
	limit = tilecast.PageLimit(limit)
	after, err := rules.DecodeCursor(cursor, rules.CursorChannels)
	if err != nil {
		return nil, "", err
	}
	if after != nil {
		if err := rules.ChannelPosition(after); err != nil {
			return nil, "", err
		}
	}
	if !okText(f.User) {
		return nil, "", nil // no such user
	}
	ctx, cancel := db.opCtx()
	defer cancel()
	q := "SELECT " + chanCols + " FROM channels WHERE id > $1 ORDER BY id LIMIT $2"
	args := []any{string(after), limit + 1}
	if f.User != "" {
		q = "SELECT " + chanCols + " FROM channels WHERE user_name = $3 AND id > $1 ORDER BY id LIMIT $2"
		args = append(args, f.User)
	}
	rows, err := db.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, "", fmt.Errorf("list channels: %w", err)
	}
	out, err := scanChannels(rows, nil)
	if err != nil {
		return nil, "", fmt.Errorf("list channels: %w", err)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = rules.EncodeCursor(rules.CursorChannels, []byte(out[limit-1].ID))
	}
	return out, next, nil
}

// ledgerKey is a ledger row's position as a cursor key: channel ID + NUL
// + 8-byte BE Unix nanoseconds + 8-byte BE sequence (rules' layout).
func ledgerKey(ch string, at time.Time, seq int64) []byte {
	k := make([]byte, 0, len(ch)+17)
	k = append(k, ch...)
	k = append(k, 0)
	k = binary.BigEndian.AppendUint64(k, uint64(at.UnixNano()))
	return binary.BigEndian.AppendUint64(k, uint64(seq))
}

// OutcomesPage returns up to limit ledger entries (tilecast.PageLimit)
// after cursor ("" = from the start) that pass f, ordered by channel ID
// and then oldest first, and the cursor of the next page ("" when this
// page is the last). With f.Channel a cursor from another channel's
// listing is tilecast.ErrBadCursor.
func (db *DB) OutcomesPage(f tilecast.OutcomeFilter, cursor string, limit int) ([]tilecast.Outcome, string, error) {
	limit = tilecast.PageLimit(limit)
	after, err := rules.DecodeCursor(cursor, rules.CursorOutcomes)
	if err != nil {
		return nil, "", err
	}
	var afterCh string
	var afterT time.Time
	afterSeq := int64(-1)
	if after != nil {
		ch, nanos, seq, err := rules.LedgerPosition(after)
		if err != nil {
			return nil, "", err
		}
		afterCh, afterT, afterSeq = ch, time.Unix(0, int64(nanos)), int64(seq)
		if f.Channel != "" && afterCh != f.Channel {
			return nil, "", fmt.Errorf("%w: it belongs to another channel's listing", tilecast.ErrBadCursor)
		}
	}
	if !okText(f.Channel) || !okText(f.Feed) {
		return nil, "", nil // no such channel or feed
	}
	ctx, cancel := db.opCtx()
	defer cancel()
	var conds []string
	args := []any{limit + 1}
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if f.Channel != "" {
		conds = append(conds, "channel_id = "+arg(f.Channel))
	}
	if f.Feed != "" {
		conds = append(conds, "feed = "+arg(f.Feed))
	}
	if !f.Since.IsZero() {
		conds = append(conds, "time >= "+arg(f.Since))
	}
	if after != nil {
		conds = append(conds, fmt.Sprintf("(channel_id, time, seq) > (%s, %s, %s)", arg(afterCh), arg(afterT), arg(afterSeq)))
	}
	where := ""
	if len(conds) > 0 {
		where = " WHERE " + strings.Join(conds, " AND ")
	}
	rows, err := db.pool.Query(ctx, "SELECT outcome, channel_id, time, seq FROM ledger"+where+" ORDER BY channel_id, time, seq LIMIT $1", args...)
	if err != nil {
		return nil, "", fmt.Errorf("outcomes: %w", err)
	}
	var keys [][]byte
	var ch string
	var at time.Time
	var seq int64
	out, err := collectOutcomes(rows, func() []any {
		if ch != "" {
			keys = append(keys, ledgerKey(ch, at, seq))
		}
		return []any{&ch, &at, &seq}
	})
	if err != nil {
		return nil, "", fmt.Errorf("outcomes: %w", err)
	}
	if ch != "" {
		keys = append(keys, ledgerKey(ch, at, seq))
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = rules.EncodeCursor(rules.CursorOutcomes, keys[limit-1])
	}
	return out, next, nil
}

// DeadLettersPage returns up to limit dead letters (tilecast.PageLimit)
// older than cursor ("" = from the newest), newest first, and the cursor
// of the next page ("" when this page is the last).
func (db *DB) DeadLettersPage(cursor string, limit int) ([]tilecast.DeadLetter, string, error) {
	limit = tilecast.PageLimit(limit)
	after, err := rules.DecodeCursor(cursor, rules.CursorDead)
	if err != nil {
		return nil, "", err
	}
	if after != nil && len(after) != 8 {
		return nil, "", fmt.Errorf("%w: not a dead letter position", tilecast.ErrBadCursor)
	}
	before := uint64(1<<63 - 1)
	if after != nil {
		before = min(binary.BigEndian.Uint64(after), before)
	}
	ctx, cancel := db.opCtx()
	defer cancel()
	rows, err := db.pool.Query(ctx, "SELECT "+deadCols+" FROM dead_letters WHERE id < $1 ORDER BY id DESC LIMIT $2", int64(before), limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("dead letters: %w", err)
	}
	out, err := scanDead(rows)
	if err != nil {
		return nil, "", fmt.Errorf("dead letters: %w", err)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = rules.EncodeCursor(rules.CursorDead, binary.BigEndian.AppendUint64(nil, out[limit-1].Notification.ID))
	}
	return out, next, nil
}
