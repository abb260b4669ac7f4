// Package postgres keeps tilecast's state in a PostgreSQL database, with
// the behaviour of the bbolt store (package store) — the conformance suite
// store/storetest runs against both — through github.com/jackc/pgx/v5: a
// pgxpool pool, statements prepared and cached per connection (pgx's
// default mode), pgx.Batch to send a transaction's independent statements
// in one round trip, and COPY for bulk inserts (fan-out pages, imports).
// `state = "postgres://…"` (or postgresql://) in the config selects it.
//
// # Schema
//
// Embedded SQL files (migrations/NNN_name.sql) are applied by Open, each
// in a transaction with its row in tilecast_schema, under an advisory
// lock, so instances starting together migrate once. A database whose
// schema is newer than the binary is refused with both versions named.
// Advisory lock keys include current_schema(): several states may share
// a database in different schemas (search_path in the URL).
//
//	channels       id (PK), uri (unique, canonical), user_name + device
//	               (unique when device is set), feeds (text[], in order),
//	               transport, p256dh/auth (bytea), expires (NULL: never;
//	               a partial index (expires, id) where set, for
//	               ExpiredChannels), the delivery counters
//	channel_feeds  (feed, channel_id) PK: feed "" is the default list; the
//	               subscribers of a global feed are paged in this key's
//	               order, so the fan-out cursor is the bbolt store's
//	feed_states    (feed, user_name) PK → state (JSON), broken
//	seen           (feed, user_name, item bytea) PK → listed (Unix s)
//	payloads       id → sum (SHA-256), body: written once per transaction
//	               for the entries it adds, never reused, so unreferenced
//	               rows can be deleted at any time (NextDue, PruneLedger)
//	outbox         id (from outbox_ids, in enqueue order), channel, feed,
//	               user, item (bytea), kind, payload_id, attempts,
//	               next_attempt, created; index (next_attempt, id) for Due,
//	               channel_id, and a unique (channel_id, feed, kind) for
//	               tiles and badges (state: a newer one replaces it).
//	               lease_owner / lease_until are for several instances
//	               sharing the outbox (claims with SKIP LOCKED); one
//	               instance leaves them NULL
//	tile_last      (channel_id, feed, kind) PK → SHA-256 of the last
//	               delivered tile or badge
//	dead_letters   id (the notification's) PK → the entry, its payload and
//	               last outcome (JSON)
//	ledger         (channel_id, time, seq) PK → outcome (JSON); index on time
//	fanout_jobs    feed PK → tilecast.FanOutJob (JSON)
//	counts         16 shards of the running counts (counts.go)
//	broken_counts  feed PK → broken global state, broken per-user states
//	instances      id PK → host, pid, version, started, heartbeat
//	feed_ticks     (feed, user_name, at) PK → instance, claimed, done
//	daily_caps     channel_id PK → day, n: sends reserved that UTC day
//	               toward the daily cap (caps.go); index on day
//	push_hosts     host PK → probe_at, opened: open circuits (HostHealth)
//	wns_tokens     key PK (hash of client id + token URL) → token,
//	               expires, renew_at, saved (wns.TokenCache)
//
// Item IDs are bytea because a feed may send any bytes; outcomes, feed
// states and jobs are JSON (the json type, which keeps what jsonb cannot,
// such as \u0000). Times are timestamptz: kept to the microsecond, where
// bbolt keeps nanoseconds.
//
// # Transactions
//
// Every method is one transaction (READ COMMITTED). Registrations and
// removals take a transaction-level advisory lock, since they read the
// channels of a URI and of a device before writing. A transaction that
// loses a deadlock or a unique race is run again. Record locks the
// entries and channels of its batch (FOR UPDATE, in ID order).
//
// # The run lock
//
// Hold takes a session advisory lock ("run"): shared by the daemons (run,
// once), exclusive for `state copy`. A session lock ends with its
// session, which a cut network or a restart of the server ends at any
// time, so with the shared lock every pooled connection takes it too
// before its first use (the pool's PrepareConn): a connection whose
// session does not hold it is never used, and while a copy holds the
// exclusive lock every call fails with tilecast.ErrStateLocked. One
// connection is kept holding it even while the daemon is idle, checked
// every Options.HoldCheck and replaced when lost, so a copy is refused
// while a daemon runs. A copy's lost exclusive lock is never taken again:
// its Export and import then fail.
//
// # Several instances
//
// Any number of daemons may share one database (design.md §10). Each
// opens it with Options.Instance, its name, and then:
//
//   - heartbeats into instances every 24th of its lease (5 s), from a
//     loop of its own, and every quarter lease extends the leases it
//     holds, so a live instance keeps them however long its sends wait,
//     and one that died loses them a lease later, or at once when it
//     opens the database again under the same name (its first heartbeat
//     ends its dead run's leases);
//   - claims due entries in Due with UPDATE … FOR UPDATE SKIP LOCKED,
//     leasing them (lease_owner, lease_until): instances never wait for
//     each other's claims and never get the same entry while a lease
//     lasts. Record gives an entry it keeps back (retry, postpone); a
//     stop (Close) gives back all of the instance's leases;
//   - counts the entries it takes over from ended leases as possible
//     duplicates (Options.PossibleDuplicates): they were handed to a
//     send that left no outcome. There is no local send log: a lease is
//     the record of a send that may be in flight, so Options.LeaseBatch
//     keeps what one Due leases near the daemon's send window;
//   - claims each scheduled tick of a feed key (ClaimTick, the
//     tilecast.TickClaimer of the Bot) under feed_ticks' primary key, so
//     exactly one instance fetches and commits it; a tick waits for no
//     earlier run of its key but a live instance's, and an instance
//     silent for a sixth of its lease (20 s: four heartbeats) is not
//     live, so a dead instance's feed goes to another at the next tick
//     that far after its last heartbeat, not a lease later;
//   - steps a paged delivery (FanOutStep) under the job's row lock
//     (SELECT … FOR UPDATE), enqueueing the page only while the stored
//     cursor is still the one the page was read at, so instances that
//     all resume the same job at start enqueue each page once;
//   - reserves the sends to an unauthenticated channel in daily_caps
//     (ReserveSends, the tilecast.DailyCaps of the Bot) before sending
//     them, so the instances together never pass a channel's daily cap;
//   - with Options.Wake, LISTENs on a connection of its own: a
//     transaction that adds outbox entries NOTIFYs tilecast_work (with
//     its schema) as it commits, so idle instances look at once instead
//     of at their next poll, which stays the fallback; a lost listening
//     connection (application_name "… listen NAME") is made again every
//     few seconds, and its return wakes the instance once;
//   - shares what it learns about the push services (shared.go): the
//     open circuits of tilecast.Breaker (tilecast.HostHealth: written on
//     open and close, read every few seconds) and the WNS access tokens
//     (wns.TokenCache: read before a token request, written after one; a
//     refused token deleted by value, so a newer one stays). Neither is
//     part of a state copy: both are relearnt in seconds.
package postgres
