// Package store keeps tilecast's state in one bbolt file (state.db): push
// channels, feed state and seen sets, the outbox of pending notifications,
// dead letters and the delivery ledger. *DB implements tilecast.Store; every
// method is one transaction, so "seen" and "queued" commit together.
//
// # Buckets
//
// Keys joined with 0x00 rely on their first part (feed, user, channel ID)
// never containing NUL; AddChannel rejects such names. Times in keys are
// 8-byte big-endian Unix nanoseconds, so keys sort by time.
//
//	meta            "schema" → decimal schema version (migrations());
//	                "counts" and "broken" + 0x00 + feed → the running counts
//	                (counts.go), updated by every write that changes them;
//	                "migrate4" → where an unfinished schema 4 migration got
//	                to (migrate.go)
//	channels        channel ID → channel record (chancodec.go)
//	channel_uri     URI → channel ID (registrations are deduplicated by URI,
//	                in its channeluri.Canonical form; schema 4 put every
//	                stored URI in that form, except URIs that no longer
//	                canonicalise, which are kept as they were)
//	channel_device  user + 0x00 + device → channel ID: a device ID is
//	                scoped to its user (rotation, AddChannel). Before
//	                schema 4 the key was the device alone
//	channel_feed    feed + 0x00 + channel ID → the channel's user. Feed "" is
//	                the default list: channels that list no feeds. Subscribers
//	                of a global feed = its entries + the default list, so only
//	                subscribers are decoded; FeedUsers reads the values alone.
//	channel_user    user + 0x00 + channel ID → empty (per-user feed runs and
//	                Channels(user))
//	channel_expiry  Expires (8-byte BE Unix nanoseconds) + 0x00 + channel
//	                ID → empty, for the channels whose Expires is set (a
//	                Web Push subscription's expirationTime): the expiry
//	                sweep reads only those due (ExpiredChannels, expiry.go).
//	                Kept by every write of a channel; schema 5 built it
//	feedstate       feed [+ 0x00 + user] → feed state record (feedcodec.go)
//	seen            one sub-bucket per feed [+ 0x00 + user]: item ID → 8-byte
//	                BE Unix seconds when the feed last listed it. IDs over
//	                1 KiB are stored as "sha256:" + their hash.
//	outbox          NextAttempt + 8-byte BE sequence → outbox record
//	                (codec.go); the sequence is the Notification.ID. A
//	                record holds what the notification is (kind, payload,
//	                creation time), not its request: the payload inline or
//	                the 32-byte key of a shared one in bodies. Record finds
//	                an entry from its ID and due time (tilecast.Record.Due);
//	                schema 1 also kept an index outbox_id (sequence →
//	                outbox key), which schema 2 drops
//	bodies          payload key → layout byte + uvarint count of entries
//	                referencing it + the payload (bodies.go): a fan-out
//	                stores its payload once. Created by the first write that
//	                needs it
//	outbox_channel  channel ID + 0x00 + outbox key → empty (a channel's entries)
//	tile_waiting    channel ID + 0x00 + feed → outbox key of the waiting tile
//	                (a newer tile replaces it); channel ID + 0x00 + feed +
//	                0x00 + "badge" → the same for the waiting badge. A key
//	                may name an entry sent or dropped since (recording an
//	                outcome leaves it): readers check the outbox
//	tile_last       channel ID + 0x00 + feed (+ 0x00 + "badge") → sha256 of
//	                the last delivered tile (badge) payload (an identical
//	                one is not sent again)
//	dead            8-byte BE sequence → dead letter record (codec.go)
//	ledger          channel ID + 0x00 + outcome time + 8-byte BE sequence →
//	                ledger value (ledgercodec.go). Last 7 days, ≤ 100 per
//	                channel, pruned when Record writes; PruneLedger sweeps
//	                the rest
//	fanout          feed name → JSON tilecast.FanOutJob (fanout.go)
//
// # Records
//
// Every record is a version byte and tagged fields (tlv.go): a reader skips
// fields it does not know and a rewrite keeps them, so a field added later
// needs neither a new version nor a rewrite of the file. Files written
// before schema 4 held older forms (JSON, untagged binary, whole MPNS
// requests); the schema 4 migration rewrote every record (migrate.go), and
// only it reads those forms (migrate_old.go).
//
// # Caveats
//
// Deleting under a live bbolt cursor can skip keys, so deletions always
// collect their keys first. Open never repairs a damaged file: it returns
// ErrCorrupt with the recovery steps. One damaged meta page alone is not
// damage: bbolt falls back to the other, which is how it survives a torn
// write. A new file whose first pages a power loss kept from the disk is
// no damage either, as it provably holds nothing: Open moves it aside and
// starts a new one (newfile.go).
package store
