package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tilecast/tilecast"
)

// What the instances sharing the database learn about the push services
// (schema 5): the push hosts whose circuit is open, and the WNS access
// tokens. Each instance would otherwise find a failing host, or fetch a
// token, on its own; shared, one instance's finding serves all.

var _ tilecast.HostHealth = (*DB)(nil)

// staleHost is how long past its probe time an open host's row is kept:
// a host nobody pushes to any more is not probed, so its row would stay.
const staleHost = 24 * time.Hour

// HostOpened records that host's circuit is open until probeAt (the next
// probe), or moves its probe time. It implements tilecast.HostHealth.
func (db *DB) HostOpened(ctx context.Context, host string, probeAt time.Time) error {
	if !okText(host) {
		return fmt.Errorf("push host %q cannot be stored", host)
	}
	ctx, cancel := db.bound(ctx)
	defer cancel()
	now := db.now()
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO push_hosts (host, probe_at, opened) VALUES ($1, $2, $3)
		ON CONFLICT (host) DO UPDATE SET probe_at = excluded.probe_at`, host, probeAt, now)
	b.Queue("DELETE FROM push_hosts WHERE probe_at < $1", now.Add(-staleHost))
	if err := db.pool.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("open push host %s: %w", host, err)
	}
	return nil
}

// HostClosed records that host answered again: its circuit is closed for
// every instance. It implements tilecast.HostHealth.
func (db *DB) HostClosed(ctx context.Context, host string) error {
	ctx, cancel := db.bound(ctx)
	defer cancel()
	if _, err := db.pool.Exec(ctx, "DELETE FROM push_hosts WHERE host = $1", host); err != nil {
		return fmt.Errorf("close push host %s: %w", host, err)
	}
	return nil
}

// OpenHosts returns the hosts whose circuit is open, with their next
// probe time (which may have passed: a probe is due). It implements
// tilecast.HostHealth.
func (db *DB) OpenHosts(ctx context.Context) (map[string]time.Time, error) {
	ctx, cancel := db.bound(ctx)
	defer cancel()
	rows, err := db.pool.Query(ctx, "SELECT host, probe_at FROM push_hosts WHERE probe_at >= $1",
		db.now().Add(-staleHost))
	if err != nil {
		return nil, fmt.Errorf("open push hosts: %w", err)
	}
	defer rows.Close()
	out := map[string]time.Time{}
	for rows.Next() {
		var host string
		var at time.Time
		if err := rows.Scan(&host, &at); err != nil {
			return nil, fmt.Errorf("open push hosts: %w", err)
		}
		out[host] = at
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("open push hosts: %w", err)
	}
	return out, nil
}

// LoadWNSToken returns the WNS access token saved under key, when it
// expires and when it is due for renewal; "" when there is none (or only
// an expired one). It implements wns.TokenCache. The token is a bearer
// secret: it is in no error.
func (db *DB) LoadWNSToken(ctx context.Context, key string) (token string, expires, renewAt time.Time, err error) {
	ctx, cancel := db.bound(ctx)
	defer cancel()
	err = db.pool.QueryRow(ctx, "SELECT token, expires, renew_at FROM wns_tokens WHERE key = $1 AND expires > $2",
		key, db.now()).Scan(&token, &expires, &renewAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", time.Time{}, time.Time{}, nil
	}
	if err != nil {
		return "", time.Time{}, time.Time{}, fmt.Errorf("load wns token: %w", err)
	}
	return token, expires, renewAt, nil
}

// SaveWNSToken saves a newly obtained WNS access token under key,
// replacing the one there unless that one expires later (another instance
// saved a newer token meanwhile). It implements wns.TokenCache.
func (db *DB) SaveWNSToken(ctx context.Context, key, token string, expires, renewAt time.Time) error {
	if !okText(key) || !okText(token) {
		return errors.New("save wns token: key or token cannot be stored")
	}
	ctx, cancel := db.bound(ctx)
	defer cancel()
	_, err := db.pool.Exec(ctx, `INSERT INTO wns_tokens (key, token, expires, renew_at, saved) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (key) DO UPDATE SET token = excluded.token, expires = excluded.expires,
			renew_at = excluded.renew_at, saved = excluded.saved
		WHERE wns_tokens.expires <= excluded.expires`, key, token, expires, renewAt, db.now())
	if err != nil {
		return fmt.Errorf("save wns token: %w", err)
	}
	return nil
}

// DropWNSToken deletes the token saved under key if it is token (WNS
// refused it): a newer token another instance saved meanwhile stays. It
// implements wns.TokenCache.
func (db *DB) DropWNSToken(ctx context.Context, key, token string) error {
	ctx, cancel := db.bound(ctx)
	defer cancel()
	if _, err := db.pool.Exec(ctx, "DELETE FROM wns_tokens WHERE key = $1 AND token = $2", key, token); err != nil {
		return fmt.Errorf("drop wns token: %w", err)
	}
	return nil
}

// bound limits a call with a caller's ctx to the store's timeout.
func (db *DB) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, db.timeout)
}
