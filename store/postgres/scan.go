package postgres

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/tilecast/tilecast"
)

// Times: a zero time.Time is NULL, every other time is stored as the
// instant it is (to the microsecond, PostgreSQL's precision) and read
// back in UTC, as the bbolt store returns them.

// ts is t as a nullable timestamptz parameter.
func ts(t time.Time) pgtype.Timestamptz {
	if t.IsZero() {
		return pgtype.Timestamptz{}
	}
	return pgtype.Timestamptz{Time: t, Valid: true}
}

// tm is a nullable timestamptz as a time.Time (zero for NULL), in UTC.
func tm(v pgtype.Timestamptz) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return v.Time.UTC()
}

// micro is t as PostgreSQL keeps it: truncated to the microsecond.
func micro(t time.Time) time.Time { return t.Truncate(time.Microsecond) }

// chanCols are the columns scanChannel reads, in its order.
const chanCols = "id, uri, user_name, device, feeds, created, transport, p256dh, auth, expires, " +
	"last_outcome, last_outcome_at, failure_streak, next_allowed_at, sends_day, sends_today"

// chanColsOf is chanCols of table alias a.
func chanColsOf(a string) string {
	cols := strings.Split(chanCols, ", ")
	for i := range cols {
		cols[i] = a + "." + cols[i]
	}
	return strings.Join(cols, ", ")
}

// channelScan holds a channel row being scanned.
type channelScan struct {
	ch                               tilecast.Channel
	created                          time.Time
	p256dh, auth                     []byte
	expires, lastAt, nextAllowed     pgtype.Timestamptz
	transport, lastOutcome, sendsDay string
	failureStreak, sendsToday        int32
}

// dest returns the scan destinations of chanCols.
func (s *channelScan) dest() []any {
	c := &s.ch
	return []any{&c.ID, &c.URI, &c.User, &c.Device, &c.Feeds, &s.created, &s.transport, &s.p256dh, &s.auth,
		&s.expires, &s.lastOutcome, &s.lastAt, &s.failureStreak, &s.nextAllowed, &s.sendsDay, &s.sendsToday}
}

// channel returns the scanned channel.
func (s *channelScan) channel() tilecast.Channel {
	c := s.ch
	if len(c.Feeds) == 0 {
		c.Feeds = nil
	}
	c.Created = s.created.UTC()
	c.Transport = tilecast.Transport(s.transport)
	if s.p256dh != nil || s.auth != nil {
		c.Keys = &tilecast.PushKeys{P256DH: nilIfEmpty(s.p256dh), Auth: nilIfEmpty(s.auth)}
	}
	c.Expires = tm(s.expires)
	c.LastOutcome, c.LastOutcomeAt = s.lastOutcome, tm(s.lastAt)
	c.FailureStreak = int(s.failureStreak)
	c.NextAllowedAt = tm(s.nextAllowed)
	c.SendsDay, c.SendsToday = s.sendsDay, int(s.sendsToday)
	return c
}

func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// keyArgs are a channel's keys as the p256dh and auth parameters: both
// NULL without keys, never NULL with them (an empty key is stored empty).
func keyArgs(k *tilecast.PushKeys) (p256dh, auth []byte) {
	if k == nil {
		return nil, nil
	}
	p256dh, auth = k.P256DH, k.Auth
	if p256dh == nil {
		p256dh = []byte{}
	}
	if auth == nil {
		auth = []byte{}
	}
	return p256dh, auth
}

// feedsArg is a feed list as the feeds column's value (never NULL).
func feedsArg(feeds []string) []string {
	if feeds == nil {
		return []string{}
	}
	return feeds
}

// scanChannels reads every row of rows (chanCols, then extra columns
// into the destinations more returns for each row) as channels.
func scanChannels(rows pgx.Rows, more func() []any) ([]tilecast.Channel, error) {
	defer rows.Close()
	var out []tilecast.Channel
	for rows.Next() {
		var s channelScan
		dest := s.dest()
		if more != nil {
			dest = append(dest, more()...)
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		out = append(out, s.channel())
	}
	return out, rows.Err()
}

// outcomeJSON is o as the ledger's and dead letters' outcome column. An
// item ID that is not UTF-8 (a feed sends any bytes) goes in
// item_id_bytes: JSON would replace its bytes.
func outcomeJSON(o *tilecast.Outcome) (string, error) {
	v := storedOutcome{Outcome: *o}
	if !utf8.ValidString(o.ItemID) {
		v.ItemID, v.ItemIDBytes = "", []byte(o.ItemID)
	}
	b, err := json.Marshal(&v)
	if err != nil {
		return "", fmt.Errorf("encode outcome: %w", err)
	}
	return string(b), nil
}

// storedOutcome is an outcome column: the outcome, and an item ID that
// is not UTF-8 as bytes (base64 in JSON).
type storedOutcome struct {
	tilecast.Outcome
	ItemIDBytes []byte `json:"item_id_bytes,omitempty"`
}

// parseOutcome reads an outcome column.
func parseOutcome(b []byte) (tilecast.Outcome, error) {
	var v storedOutcome
	if err := json.Unmarshal(b, &v); err != nil {
		return v.Outcome, fmt.Errorf("decode outcome: %w", err)
	}
	o := v.Outcome
	if v.ItemIDBytes != nil {
		o.ItemID = string(v.ItemIDBytes)
	}
	if !o.Time.IsZero() {
		o.Time = o.Time.UTC()
	}
	return o, nil
}
