-- Schema 6: the daily cap of an unauthenticated channel (500 sends per UTC
-- day, tilecast.DailyCap) held exactly across instances (caps.go).

-- One row per channel that was sent to: the UTC day of its reservations
-- and how many sends of that day are reserved — sent, in flight, or left
-- by an instance that died mid-send. A dispatcher reserves before it hands
-- an entry to a worker (n < limit, atomically, under the row's lock) and
-- gives a reservation back only when the send never reached the push
-- service. The first reservation of a new day starts from what the
-- channel has recorded that day (channels.sends_today). Rows are not
-- tied to channels: heartbeats drop those of days before yesterday.
CREATE TABLE daily_caps (
    channel_id text COLLATE "C" PRIMARY KEY,
    day        date NOT NULL,
    n          integer NOT NULL CHECK (n >= 0)
);
CREATE INDEX daily_caps_day ON daily_caps (day);
