package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/channeluri"
	"github.com/tilecast/tilecast/store/rules"
)

func errNoChannel(id string) error { return fmt.Errorf("channel %s: %w", id, tilecast.ErrNotFound) }

// getChannel returns the channel and whether it exists.
func (t *txn) getChannel(id string) (tilecast.Channel, bool, error) {
	return getChannel(t.ctx, t.Tx, "id", id)
}

// querier is what the reads need of a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// getChannel reads the channel whose column col (id, uri) is v.
func getChannel(ctx context.Context, q querier, col, v string) (tilecast.Channel, bool, error) {
	if !okText(v) {
		return tilecast.Channel{}, false, nil
	}
	rows, err := q.Query(ctx, "SELECT "+chanCols+" FROM channels WHERE "+col+" = $1", v)
	if err != nil {
		return tilecast.Channel{}, false, err
	}
	chs, err := scanChannels(rows, nil)
	if err != nil || len(chs) == 0 {
		return tilecast.Channel{}, false, err
	}
	return chs[0], true, nil
}

// AddChannel registers a channel with the rules of the bbolt store's
// AddChannel (which documents them): deduplicated by canonical URI, a
// device ID scoped to its user, a device's new URI rotating its channel,
// two channels made one when the new URI has its own. Rotations are
// logged once the transaction commits.
func (db *DB) AddChannel(ch tilecast.Channel) (tilecast.Channel, bool, error) {
	if err := rules.Prepare(&ch); err != nil {
		return tilecast.Channel{}, false, err
	}
	var out tilecast.Channel
	var created bool
	var rotated []rules.Rotation
	err := db.write("", func(t *txn) error {
		rotated = nil
		if err := t.lockChannels(); err != nil {
			return err
		}
		var err error
		out, created, err = t.addChannel(&ch, db.now(), &rotated)
		return err
	})
	if err != nil {
		return tilecast.Channel{}, false, fmt.Errorf("add channel: %w", err)
	}
	rules.LogRotations(db.log, rotated)
	return out, created, nil
}

// addChannel is AddChannel inside a transaction that holds lockChannels,
// shared with ImportChannels. ch has been prepared (rules.Prepare); now is
// the Created time of a new channel.
func (t *txn) addChannel(ch *tilecast.Channel, now time.Time, rotated *[]rules.Rotation) (tilecast.Channel, bool, error) {
	cur, found, err := getChannel(t.ctx, t.Tx, "uri", ch.URI)
	if err != nil {
		return tilecast.Channel{}, false, err
	}
	if ch.Device != "" {
		// The channel of this user's device, when it is not cur.
		var devID string
		err := t.QueryRow(t.ctx, "SELECT id FROM channels WHERE user_name = $1 AND device = $2", ch.User, ch.Device).Scan(&devID)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return tilecast.Channel{}, false, err
		}
		if devID != "" && (!found || devID != cur.ID) {
			dev, ok, err := t.getChannel(devID)
			if err != nil {
				return tilecast.Channel{}, false, err
			}
			if ok {
				return t.rotate(ch, dev, cur, found, rotated)
			}
		}
	}
	if found && rules.Unchanged(&cur, ch) {
		// Apps re-register on every start and imports are re-run: an
		// unchanged channel needs no write. (The device index cannot
		// name another channel: it is a unique index of this table.)
		return cur, false, nil
	}
	if found {
		rules.Register(&cur, ch)
		return cur, false, t.updateChannel(&cur)
	}
	cur = tilecast.Channel{URI: ch.URI, Created: now, ID: rules.NewChannelID()}
	rules.Register(&cur, ch)
	if err := t.insertChannels([]tilecast.Channel{cur}); err != nil {
		return tilecast.Channel{}, false, err
	}
	return cur, true, nil
}

// insertChannels inserts new channels (with their feed rows) and counts them.
func (t *txn) insertChannels(chs []tilecast.Channel) error {
	if len(chs) == 0 {
		return nil
	}
	if len(chs) < 8 {
		var b pgx.Batch
		for i := range chs {
			c := &chs[i]
			p, a := keyArgs(c.Keys)
			b.Queue(`INSERT INTO channels (`+chanCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`,
				c.ID, c.URI, c.User, c.Device, feedsArg(c.Feeds), c.Created, string(c.Transport), p, a, ts(c.Expires),
				c.LastOutcome, ts(c.LastOutcomeAt), c.FailureStreak, ts(c.NextAllowedAt), c.SendsDay, c.SendsToday)
		}
		if err := t.SendBatch(t.ctx, &b).Close(); err != nil {
			return err
		}
	} else {
		cols := strings.Split(chanCols, ", ")
		_, err := t.CopyFrom(t.ctx, pgx.Identifier{"channels"}, cols, pgx.CopyFromSlice(len(chs), func(i int) ([]any, error) {
			c := &chs[i]
			p, a := keyArgs(c.Keys)
			return []any{c.ID, c.URI, c.User, c.Device, feedsArg(c.Feeds), c.Created, string(c.Transport), p, a, ts(c.Expires),
				c.LastOutcome, ts(c.LastOutcomeAt), c.FailureStreak, ts(c.NextAllowedAt), c.SendsDay, c.SendsToday}, nil
		}))
		if err != nil {
			return err
		}
	}
	t.delta.channels += int64(len(chs))
	return t.indexFeeds(chs, false)
}

// indexFeeds writes the channel_feeds rows of chs (replacing theirs when
// replace is set): one per feed named, feed "" when none is.
func (t *txn) indexFeeds(chs []tilecast.Channel, replace bool) error {
	var ids, feeds []string
	for i := range chs {
		if len(chs[i].Feeds) == 0 {
			ids, feeds = append(ids, chs[i].ID), append(feeds, "")
		}
		for _, f := range chs[i].Feeds {
			ids, feeds = append(ids, chs[i].ID), append(feeds, f)
		}
	}
	var b pgx.Batch
	if replace {
		all := make([]string, len(chs))
		for i := range chs {
			all[i] = chs[i].ID
		}
		b.Queue("DELETE FROM channel_feeds WHERE channel_id = ANY($1)", all)
	}
	b.Queue("INSERT INTO channel_feeds (channel_id, feed) SELECT * FROM unnest($1::text[], $2::text[])", ids, feeds)
	return t.SendBatch(t.ctx, &b).Close()
}

// updateChannel writes every field of c but its ID and Created, and
// rewrites its feed rows.
func (t *txn) updateChannel(c *tilecast.Channel) error {
	p, a := keyArgs(c.Keys)
	tag, err := t.Exec(t.ctx, `UPDATE channels SET uri = $2, user_name = $3, device = $4, feeds = $5, transport = $6,
		p256dh = $7, auth = $8, expires = $9, last_outcome = $10, last_outcome_at = $11, failure_streak = $12,
		next_allowed_at = $13, sends_day = $14, sends_today = $15 WHERE id = $1`,
		c.ID, c.URI, c.User, c.Device, feedsArg(c.Feeds), string(c.Transport), p, a, ts(c.Expires),
		c.LastOutcome, ts(c.LastOutcomeAt), c.FailureStreak, ts(c.NextAllowedAt), c.SendsDay, c.SendsToday)
	if err != nil {
		return err
	}
	if tag.RowsAffected() != 1 {
		return errNoChannel(c.ID)
	}
	return t.indexFeeds([]tilecast.Channel{*c}, true)
}

// rotate moves device channel dev to the registration's URI: in place,
// or, when cur (found) holds that URI already, by making the two one
// (the older stays, takes over the other's waiting notifications that it
// would get, and the other goes; its ledger stays).
func (t *txn) rotate(ch *tilecast.Channel, dev, cur tilecast.Channel, found bool, rotated *[]rules.Rotation) (tilecast.Channel, bool, error) {
	keep, gone := dev, tilecast.Channel{}
	if found {
		gone = cur
		if rules.Older(&cur, &dev) {
			keep, gone = cur, dev
		}
	}
	if keep.URI != ch.URI {
		// Another URI is another app install or subscription: its tile
		// is not known to show what this one showed.
		if _, err := t.Exec(t.ctx, "DELETE FROM tile_last WHERE channel_id = $1", keep.ID); err != nil {
			return tilecast.Channel{}, false, err
		}
	}
	keep.URI = ch.URI
	rules.Register(&keep, ch)
	if found {
		// Before keep takes the URI and the device, which gone may hold.
		if err := t.takeOver(gone.ID, &keep); err != nil {
			return tilecast.Channel{}, false, err
		}
	}
	if err := t.updateChannel(&keep); err != nil {
		return tilecast.Channel{}, false, err
	}
	r := rules.Rotation{Channel: keep.ID, OldChannel: dev.ID, NewChannel: dev.ID, User: ch.User, Device: ch.Device, Host: rules.URIHost(ch.URI)}
	if found {
		r.NewChannel = cur.ID
	}
	*rotated = append(*rotated, r)
	return keep, false, nil
}

// takeOver moves the waiting notifications of channel oldID that ch would
// get (rules.Moves) to ch, drops the others and removes oldID. Of two
// waiting tiles (badges) for one feed the newer (higher ID) stays.
func (t *txn) takeOver(oldID string, ch *tilecast.Channel) error {
	rows, err := t.Query(t.ctx, "SELECT id, channel_id, feed, user_name, kind FROM outbox WHERE channel_id = ANY($1) ORDER BY id",
		[]string{oldID, ch.ID})
	if err != nil {
		return err
	}
	type waiting struct {
		id                      int64
		channel, feed, user, kd string
	}
	var ents []waiting
	for rows.Next() {
		var w waiting
		if err := rows.Scan(&w.id, &w.channel, &w.feed, &w.user, &w.kd); err != nil {
			rows.Close()
			return err
		}
		ents = append(ents, w)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	tiles := map[stateKey]int64{} // ch's waiting tiles and badges
	for _, w := range ents {
		if w.channel == ch.ID && isState(tilecast.Kind(w.kd)) {
			tiles[stateKey{ch.ID, w.feed, w.kd}] = w.id
		}
	}
	var drop, move []int64
	for _, w := range ents {
		if w.channel != oldID {
			continue
		}
		n := tilecast.Notification{Feed: w.feed, User: w.user, Kind: tilecast.Kind(w.kd)}
		if !rules.Moves(&n, ch) {
			drop = append(drop, w.id)
			continue
		}
		if isState(n.Kind) {
			k := stateKey{ch.ID, w.feed, w.kd}
			if other, ok := tiles[k]; ok {
				if other > w.id {
					drop = append(drop, w.id)
					continue
				}
				drop = append(drop, other)
			}
			tiles[k] = w.id
		}
		move = append(move, w.id)
	}
	var b pgx.Batch
	b.Queue("DELETE FROM outbox WHERE id = ANY($1)", drop).Exec(func(tag pgconn.CommandTag) error {
		t.delta.outbox -= tag.RowsAffected()
		return nil
	})
	b.Queue("UPDATE outbox SET channel_id = $1 WHERE id = ANY($2)", ch.ID, move)
	if err := t.SendBatch(t.ctx, &b).Close(); err != nil {
		return err
	}
	if len(drop) > 0 {
		t.garbage = true
	}
	_, err = t.removeChannels([]string{oldID})
	return err
}

// removeChannels deletes channels with their feed rows, outbox entries
// and last tiles; their ledgers stay, so operators can see why they went.
// It returns how many existed.
func (t *txn) removeChannels(ids []string) (int64, error) {
	var n int64
	var b pgx.Batch
	b.Queue("DELETE FROM outbox WHERE channel_id = ANY($1)", ids).Exec(func(tag pgconn.CommandTag) error {
		t.delta.outbox -= tag.RowsAffected()
		if tag.RowsAffected() > 0 {
			t.garbage = true
		}
		return nil
	})
	b.Queue("DELETE FROM tile_last WHERE channel_id = ANY($1)", ids)
	b.Queue("DELETE FROM channels WHERE id = ANY($1)", ids).Exec(func(tag pgconn.CommandTag) error {
		n = tag.RowsAffected()
		t.delta.channels -= n
		return nil
	})
	err := t.SendBatch(t.ctx, &b).Close()
	return n, err
}

// Channel returns the channel with the given ID (tilecast.ErrNotFound if unknown).
func (db *DB) Channel(id string) (tilecast.Channel, error) {
	ctx, cancel := db.opCtx()
	defer cancel()
	ch, ok, err := getChannel(ctx, db.pool, "id", id)
	if err != nil {
		return ch, fmt.Errorf("channel %s: %w", id, err)
	}
	if !ok {
		return ch, errNoChannel(id)
	}
	return ch, nil
}

// ChannelByURI returns the channel registered for uri, in whichever
// spelling it is given (tilecast.ErrNotFound if none).
func (db *DB) ChannelByURI(uri string) (tilecast.Channel, error) {
	ctx, cancel := db.opCtx()
	defer cancel()
	keys := []string{uri}
	if c, err := channeluri.Canonical(uri); err == nil && c != uri {
		keys = []string{c, uri}
	}
	for _, k := range keys {
		ch, ok, err := getChannel(ctx, db.pool, "uri", k)
		if err != nil {
			return ch, fmt.Errorf("channel uri: %w", err)
		}
		if ok {
			return ch, nil
		}
	}
	return tilecast.Channel{}, fmt.Errorf("channel uri: %w", tilecast.ErrNotFound)
}

// RemoveChannel deletes a channel and everything waiting for it (its ledger
// stays). tilecast.ErrNotFound if unknown.
func (db *DB) RemoveChannel(id string) error {
	if !okText(id) {
		return errNoChannel(id)
	}
	return db.write("", func(t *txn) error {
		if err := t.lockChannels(); err != nil {
			return err
		}
		n, err := t.removeChannels([]string{id})
		if err != nil {
			return fmt.Errorf("remove channel %s: %w", id, err)
		}
		if n == 0 {
			return errNoChannel(id)
		}
		return nil
	})
}

// Channels returns the channels of user ("" = every channel), sorted by
// Created, then ID.
func (db *DB) Channels(user string) ([]tilecast.Channel, error) {
	if !okText(user) {
		return nil, nil
	}
	ctx, cancel := db.opCtx()
	defer cancel()
	q := "SELECT " + chanCols + " FROM channels ORDER BY created, id"
	args := []any{}
	if user != "" {
		q = "SELECT " + chanCols + " FROM channels WHERE user_name = $1 ORDER BY created, id"
		args = append(args, user)
	}
	rows, err := db.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list channels: %w", err)
	}
	out, err := scanChannels(rows, nil)
	if err != nil {
		return nil, fmt.Errorf("list channels: %w", err)
	}
	return out, nil
}

// Subscribers returns the channels that get feed f: for a per-user feed
// the channels of user that name it, else the channels that name it plus
// those listing no feeds.
func (db *DB) Subscribers(f *tilecast.Feed, user string) ([]tilecast.Channel, error) {
	ctx, cancel := db.opCtx()
	defer cancel()
	var rows pgx.Rows
	var err error
	if f.PerUser() {
		if user == "" || !okText(user) || !okText(f.Name) {
			return nil, nil
		}
		rows, err = db.pool.Query(ctx, "SELECT "+chanCols+" FROM channels WHERE user_name = $1 AND $2 = ANY(feeds) ORDER BY id", user, f.Name)
	} else {
		if !okText(f.Name) {
			return nil, nil
		}
		rows, err = db.pool.Query(ctx, "SELECT "+chanColsOf("c")+` FROM channel_feeds cf JOIN channels c ON c.id = cf.channel_id
			WHERE cf.feed = '' OR cf.feed = $1 ORDER BY cf.feed, cf.channel_id`, f.Name)
	}
	if err != nil {
		return nil, fmt.Errorf("subscribers of %s: %w", f.Name, err)
	}
	out, err := scanChannels(rows, nil)
	if err != nil {
		return nil, fmt.Errorf("subscribers of %s: %w", f.Name, err)
	}
	return slices.DeleteFunc(out, func(ch tilecast.Channel) bool {
		return !ch.Subscribed(f) || (f.PerUser() && ch.User != user)
	}), nil
}

// SubscribersAfter pages the subscribers of global feed f in the order of
// channel_feeds' key (feed, channel ID): the channels listing no feeds
// (feed "") first, then those naming f. The cursor is that key of the
// last channel of the previous page, feed + NUL + channel ID, as the
// bbolt store's (so a fan-out job copied between stores resumes where it
// was). A full page returns its last key as the next cursor even when
// nothing follows. A channel registered meanwhile is returned wherever
// its key sorts; the caller skips those created after its run started.
func (db *DB) SubscribersAfter(f *tilecast.Feed, cursor string, limit int) ([]tilecast.Channel, string, error) {
	if f.PerUser() || f.Name == "" || !okText(f.Name) {
		return nil, "", fmt.Errorf("subscribers of %q: paging is for global feeds", f.Name)
	}
	limit = max(limit, 1)
	afterFeed, afterID, _ := strings.Cut(cursor, "\x00")
	if cursor != "" && ((afterFeed != "" && afterFeed != f.Name) || !okText(afterID)) {
		return nil, "", fmt.Errorf("subscribers of %s: cursor %q is not one of this feed's", f.Name, cursor)
	}
	ctx, cancel := db.opCtx()
	defer cancel()
	q := "SELECT " + chanColsOf("c") + ` FROM channel_feeds cf JOIN channels c ON c.id = cf.channel_id
		WHERE cf.feed = $1 AND cf.channel_id > $2 ORDER BY cf.channel_id LIMIT $3`
	var out []tilecast.Channel
	groups := []string{"", f.Name} // key order: "" first
	if cursor != "" && afterFeed != "" {
		groups = groups[1:]
	}
	last := ""
	for i, g := range groups {
		after := ""
		if i == 0 && cursor != "" {
			after = afterID
		}
		rows, err := db.pool.Query(ctx, q, g, after, limit-len(out))
		if err != nil {
			return nil, "", fmt.Errorf("subscribers of %s: %w", f.Name, err)
		}
		page, err := scanChannels(rows, nil)
		if err != nil {
			return nil, "", fmt.Errorf("subscribers of %s: %w", f.Name, err)
		}
		if len(page) > 0 {
			last = g + "\x00" + page[len(page)-1].ID
		}
		out = append(out, page...)
		if len(out) == limit {
			return out, last, nil
		}
	}
	return out, "", nil
}

// FeedUsers returns the sorted distinct non-empty users of the channels
// that name feed.
func (db *DB) FeedUsers(feed string) ([]string, error) {
	if feed == "" || !okText(feed) {
		return nil, nil
	}
	ctx, cancel := db.opCtx()
	defer cancel()
	rows, err := db.pool.Query(ctx, `SELECT DISTINCT c.user_name FROM channel_feeds cf JOIN channels c ON c.id = cf.channel_id
		WHERE cf.feed = $1 AND c.user_name <> '' ORDER BY 1`, feed)
	if err != nil {
		return nil, fmt.Errorf("users of %s: %w", feed, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("users of %s: %w", feed, err)
	}
	return out, nil
}

// ImportChannels adds or updates many channels with AddChannel's rules,
// rules.ImportBatch per transaction, as the bbolt store's ImportChannels
// (which documents it): every channel is validated before anything is
// written; added counts new channels, updated the others. New URIs of
// channels without a device known to the store, not repeated in their
// batch, are inserted together (COPY); the others one at a time.
func (db *DB) ImportChannels(chs []tilecast.Channel) (added, updated int, err error) {
	clean := make([]tilecast.Channel, len(chs))
	for i := range chs {
		ch := chs[i]
		if err := rules.Prepare(&ch); err != nil {
			return 0, 0, fmt.Errorf("import channel %d: %w", i, err)
		}
		clean[i] = ch
	}
	for start := 0; start < len(clean); start += rules.ImportBatch {
		batch := clean[start:min(start+rules.ImportBatch, len(clean))]
		var a, u int
		var rotated []rules.Rotation
		err := db.write("", func(t *txn) error {
			a, u, rotated = 0, 0, nil
			if err := t.lockChannels(); err != nil {
				return err
			}
			var err error
			a, u, err = t.importBatch(batch, db.now(), &rotated, start)
			return err
		})
		if err != nil {
			return added, updated, fmt.Errorf("import channels: %w", err)
		}
		rules.LogRotations(db.log, rotated)
		added += a
		updated += u
	}
	return added, updated, nil
}

func (t *txn) importBatch(batch []tilecast.Channel, now time.Time, rotated *[]rules.Rotation, start int) (added, updated int, err error) {
	uris := make([]string, len(batch))
	uriCount := map[string]int{}
	devCount := map[[2]string]int{}
	var devUsers, devIDs []string
	for i := range batch {
		uris[i] = batch[i].URI
		uriCount[batch[i].URI]++
		if d := batch[i].Device; d != "" {
			devCount[[2]string{batch[i].User, d}]++
			devUsers, devIDs = append(devUsers, batch[i].User), append(devIDs, d)
		}
	}
	known := map[string]bool{}
	rows, err := t.Query(t.ctx, "SELECT uri FROM channels WHERE uri = ANY($1)", uris)
	if err != nil {
		return 0, 0, err
	}
	for rows.Next() {
		var u string
		if err := rows.Scan(&u); err != nil {
			rows.Close()
			return 0, 0, err
		}
		known[u] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, 0, err
	}
	knownDev := map[[2]string]bool{}
	if len(devIDs) > 0 {
		rows, err := t.Query(t.ctx, `SELECT c.user_name, c.device FROM channels c
			JOIN unnest($1::text[], $2::text[]) AS d(u, dev) ON c.user_name = d.u AND c.device = d.dev`, devUsers, devIDs)
		if err != nil {
			return 0, 0, err
		}
		for rows.Next() {
			var k [2]string
			if err := rows.Scan(&k[0], &k[1]); err != nil {
				rows.Close()
				return 0, 0, err
			}
			knownDev[k] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return 0, 0, err
		}
	}
	var fresh []tilecast.Channel
	for i := range batch {
		ch := &batch[i]
		dk := [2]string{ch.User, ch.Device}
		if !known[ch.URI] && uriCount[ch.URI] == 1 && (ch.Device == "" || (!knownDev[dk] && devCount[dk] == 1)) {
			c := tilecast.Channel{URI: ch.URI, Created: now, ID: rules.NewChannelID()}
			rules.Register(&c, ch)
			fresh = append(fresh, c)
			continue
		}
		_, created, err := t.addChannel(ch, now, rotated)
		if err != nil {
			return 0, 0, fmt.Errorf("channel %d: %w", start+i, err)
		}
		if created {
			added++
		} else {
			updated++
		}
	}
	if err := t.insertChannels(fresh); err != nil {
		return 0, 0, err
	}
	return added + len(fresh), updated, nil
}

// ExpiredChannels returns up to limit channels (tilecast.PageLimit) whose
// expires is set and not after now, the earliest expiry first (then by
// ID), read through the partial index channels_expires: channels that
// never expire are not in it and cost nothing.
func (db *DB) ExpiredChannels(now time.Time, limit int) ([]tilecast.Channel, error) {
	limit = tilecast.PageLimit(limit)
	ctx, cancel := db.opCtx()
	defer cancel()
	rows, err := db.pool.Query(ctx, "SELECT "+chanCols+
		" FROM channels WHERE expires IS NOT NULL AND expires <= $1 ORDER BY expires, id LIMIT $2", now, limit)
	if err != nil {
		return nil, fmt.Errorf("expired channels: %w", err)
	}
	out, err := scanChannels(rows, nil)
	if err != nil {
		return nil, fmt.Errorf("expired channels: %w", err)
	}
	return out, nil
}

// RemoveExpiredChannel removes the channel id, with what waits for it, if
// its expires is set and not after now, and reports whether it did. It
// holds the channels lock every channel write takes, so a re-subscription
// (a later expiry, or none) that committed after a sweep listed the
// channel keeps it. An unknown id is (false, nil).
func (db *DB) RemoveExpiredChannel(id string, now time.Time) (bool, error) {
	if !okText(id) {
		return false, nil
	}
	removed := false
	err := db.write("", func(t *txn) error {
		if err := t.lockChannels(); err != nil {
			return err
		}
		var expired bool
		err := t.QueryRow(t.ctx, "SELECT expires IS NOT NULL AND expires <= $2 FROM channels WHERE id = $1", id, now).Scan(&expired)
		if errors.Is(err, pgx.ErrNoRows) || (err == nil && !expired) {
			return nil
		}
		if err != nil {
			return err
		}
		n, err := t.removeChannels([]string{id})
		removed = n > 0
		return err
	})
	if err != nil {
		return false, fmt.Errorf("remove expired channel %s: %w", id, err)
	}
	return removed, nil
}
