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
//	                (counts.go), updated by every write that changes them
//	channels        channel ID → binary tilecast.Channel (chancodec.go, version
//	                byte first); records written before it are JSON (first byte
//	                '{') and still read. No migration: a channel is rewritten in
//	                binary the next time it changes
//	channel_uri     URI → channel ID (registrations are deduplicated by URI,
//	                in its channeluri.Canonical form; records written before
//	                the store canonicalised may hold other spellings)
//	channel_device  device → channel ID (re-registration of a device)
//	channel_feed    feed + 0x00 + channel ID → the channel's user. Feed "" is
//	                the default list: channels that list no feeds. Subscribers
//	                of a global feed = its entries + the default list, so only
//	                subscribers are decoded; FeedUsers reads the values alone.
//	channel_user    user + 0x00 + channel ID → empty (per-user feed runs and
//	                Channels(user))
//	feedstate       feed [+ 0x00 + user] → binary tilecast.FeedState
//	                (feedcodec.go, version byte first); JSON records ('{')
//	                are still read and rewritten in binary on the next save
//	seen            one sub-bucket per feed [+ 0x00 + user]: item ID → 8-byte
//	                BE Unix seconds when the feed last listed it. IDs over
//	                1 KiB are stored as "sha256:" + their hash.
//	outbox          NextAttempt + 8-byte BE sequence → binary record
//	                (codec.go, version byte first); the sequence is the
//	                Notification.ID. A record holds what the notification
//	                is (kind, payload, creation time), not its request:
//	                version 3 has the payload inline or the 32-byte key of
//	                a shared one in bodies. Versions 1 and 2 (older files)
//	                held the whole MPNS request inline or by key; they are
//	                still read, their body being the payload. Record finds
//	                an entry from its ID and due time
//	                (tilecast.Record.Due); schema 1 also kept an index
//	                outbox_id (sequence → outbox key), which schema 2 drops
//	bodies          payload key → layout byte + uvarint count of entries
//	                referencing it + the payload (layout 2) or, written by
//	                older versions, a whole request (layout 1) (bodies.go):
//	                a fan-out stores its payload once. Created by the first
//	                write that needs it
//	outbox_channel  channel ID + 0x00 + outbox key → empty (a channel's entries)
//	tile_waiting    channel ID + 0x00 + feed → outbox key of the waiting tile
//	                (a newer tile replaces it)
//	tile_last       channel ID + 0x00 + feed → sha256 of the last delivered
//	                tile payload (an identical tile is not sent again)
//	dead            8-byte BE sequence → JSON DeadLetter (one written with
//	                a request instead of a payload reads its body as the
//	                payload)
//	ledger          channel ID + 0x00 + outcome time + 8-byte BE sequence →
//	                binary tilecast.Outcome (ledgercodec.go, version byte
//	                first); values written before it are JSON (first byte
//	                '{') and still read. Last 7 days, ≤ 100 per channel,
//	                pruned when Record writes; PruneLedger sweeps the rest
//
// # Caveats
//
// Deleting under a live bbolt cursor can skip keys, so deletions always
// collect their keys first. Open never repairs a damaged file: it returns
// ErrCorrupt with the recovery steps. One damaged meta page alone is not
// damage: bbolt falls back to the other, which is how it survives a torn
// write.
package store
