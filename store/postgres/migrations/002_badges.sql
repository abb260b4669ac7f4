-- Schema 2: badges are state beside tiles (store/postgres, doc.go).

-- A badge is state like a tile, apart from it: at most one waits per
-- channel, feed and kind, and the last delivered one is kept per kind.
DROP INDEX outbox_tile;
CREATE UNIQUE INDEX outbox_state ON outbox (channel_id, feed, kind) WHERE kind IN ('tile', 'badge');
ALTER TABLE tile_last ADD COLUMN kind text COLLATE "C" NOT NULL DEFAULT 'tile';
ALTER TABLE tile_last DROP CONSTRAINT tile_last_pkey;
ALTER TABLE tile_last ADD PRIMARY KEY (channel_id, feed, kind);
