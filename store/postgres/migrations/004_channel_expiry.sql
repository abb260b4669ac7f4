-- Schema 4: the expiry sweep reads only the channels that expired
-- (store/postgres, doc.go; ExpiredChannels).

-- channels.expires is a Web Push subscription's expirationTime, NULL for
-- a channel that never expires (most of them): the partial index holds
-- only the others, in the order the sweep reads them (earliest first,
-- then ID), so a sweep costs what expired, not how many channels exist.
CREATE INDEX channels_expires ON channels (expires, id) WHERE expires IS NOT NULL;
