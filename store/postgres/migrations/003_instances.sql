-- Schema 3: several instances sharing one state (store/postgres, doc.go;
-- design.md §10).

-- Each running instance (Options.Instance) and its heartbeat: a heartbeat
-- older than the instance's lease names an instance that is gone.
CREATE TABLE instances (
    id        text COLLATE "C" PRIMARY KEY,
    host      text NOT NULL DEFAULT '',
    pid       integer NOT NULL DEFAULT 0,
    version   text NOT NULL DEFAULT '',
    started   timestamptz NOT NULL,
    heartbeat timestamptz NOT NULL,
    lease     interval NOT NULL
);

-- Scheduled ticks of a feed key and the instance that claimed each: the
-- primary key lets exactly one instance run a tick. done is set when
-- the run ends; rows older than two days are dropped by heartbeats.
CREATE TABLE feed_ticks (
    feed      text COLLATE "C" NOT NULL,
    user_name text COLLATE "C" NOT NULL DEFAULT '',
    at        timestamptz NOT NULL,
    instance  text COLLATE "C" NOT NULL,
    claimed   timestamptz NOT NULL,
    done      timestamptz,
    PRIMARY KEY (feed, user_name, at)
);
CREATE INDEX feed_ticks_running ON feed_ticks (feed, user_name) WHERE done IS NULL;

-- Leased outbox entries, by owner (heartbeats extend them, a stop
-- releases them) and by lease end (NextDue).
CREATE INDEX outbox_lease_owner ON outbox (lease_owner) WHERE lease_owner IS NOT NULL;
CREATE INDEX outbox_lease_until ON outbox (lease_until) WHERE lease_until IS NOT NULL;
