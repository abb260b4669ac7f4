package store

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/channeluri"
	"github.com/tilecast/tilecast/store/rules"
	bolt "go.etcd.io/bbolt"
)

func errNoChannel(id string) error { return fmt.Errorf("channel %s: %w", id, tilecast.ErrNotFound) }

// getChannel returns the channel and whether it exists.
func (b *buckets) getChannel(id string) (tilecast.Channel, bool, error) {
	v := b.get(b.channels, []byte(id))
	if v == nil {
		return tilecast.Channel{}, false, nil
	}
	ch, err := decodeChannel(v)
	if err != nil {
		return ch, false, fmt.Errorf("channel %s: %w", id, err)
	}
	return ch, true, nil
}

// putChannel writes ch's record (chancodec.go), keeping the fields of the
// record it replaces that a newer tilecast wrote (withUnknown).
func (b *buckets) putChannel(ch *tilecast.Channel) error {
	id := []byte(ch.ID)
	// Encoded in scratch, then copied at its exact size: bbolt keeps the
	// value until the transaction ends, and Record writes many.
	b.scratch = appendChannel(b.scratch[:0], ch)
	return b.channels.Put(id, withUnknown(bytes.Clone(b.scratch), b.channels.Get(id), chanKnown))
}

// deviceKey is the channel_device key of a user's device: a device ID is
// scoped to its user (no user is a scope of its own, "").
func deviceKey(user, device string) []byte { return joinStr(user, device) }

// index writes ch's entries in the uri, device, feed, user and expiry
// indexes. channel_feed values hold the user so FeedUsers needs no channel
// decode. Every write of a channel unindexes the record it replaces and
// indexes the new one, so an index follows every change of the fields it
// is keyed by (a re-subscription's new expirationTime included).
func (b *buckets) index(ch *tilecast.Channel) error {
	id := []byte(ch.ID)
	if err := b.indexExpiry(ch); err != nil {
		return err
	}
	if err := b.chanURI.Put([]byte(ch.URI), id); err != nil {
		return err
	}
	if ch.Device != "" {
		if err := b.chanDevice.Put(deviceKey(ch.User, ch.Device), id); err != nil {
			return err
		}
	}
	if len(ch.Feeds) == 0 {
		// Feed name "" is the default list: channels with no feeds listed.
		if err := b.chanFeed.Put(joinStr("", ch.ID), []byte(ch.User)); err != nil {
			return err
		}
	}
	for _, f := range ch.Feeds {
		if err := b.chanFeed.Put(joinStr(f, ch.ID), []byte(ch.User)); err != nil {
			return err
		}
	}
	if ch.User != "" {
		if err := b.chanUser.Put(joinStr(ch.User, ch.ID), nil); err != nil {
			return err
		}
	}
	return nil
}

func (b *buckets) unindex(ch *tilecast.Channel) error {
	if err := b.unindexExpiry(ch); err != nil {
		return err
	}
	if bytes.Equal(b.get(b.chanURI, []byte(ch.URI)), []byte(ch.ID)) {
		if err := b.del(b.chanURI, []byte(ch.URI)); err != nil {
			return err
		}
	}
	if dk := deviceKey(ch.User, ch.Device); ch.Device != "" && bytes.Equal(b.get(b.chanDevice, dk), []byte(ch.ID)) {
		if err := b.del(b.chanDevice, dk); err != nil {
			return err
		}
	}
	if err := b.del(b.chanFeed, joinStr("", ch.ID)); err != nil {
		return err
	}
	for _, f := range ch.Feeds {
		if err := b.del(b.chanFeed, joinStr(f, ch.ID)); err != nil {
			return err
		}
	}
	if ch.User != "" {
		if err := b.del(b.chanUser, joinStr(ch.User, ch.ID)); err != nil {
			return err
		}
	}
	return nil
}

// removeChannel deletes a channel with its index entries, outbox entries,
// waiting-tile and last-tile entries. Its ledger stays, so operators can see
// why it went. It reports whether the channel existed.
func (b *buckets) removeChannel(id string) (bool, error) {
	ch, ok, err := b.getChannel(id)
	if err != nil || !ok {
		return false, err
	}
	if err := b.unindex(&ch); err != nil {
		return false, err
	}
	if err := b.del(b.channels, []byte(id)); err != nil {
		return false, err
	}
	b.delta.channels--
	// Read and drop the entries (releasing their payloads); the loop
	// below only clears index keys that point nowhere.
	if err := b.dropChannelEntries(id); err != nil {
		return false, err
	}
	p := prefix(id)
	for _, k := range scanPrefix(b.outboxChan, p) {
		key := k[len(p):]
		if len(key) == outboxKeyLen && b.get(b.outbox, key) != nil {
			if err := b.del(b.outbox, key); err != nil {
				return false, err
			}
			b.delta.outbox--
		}
		if err := b.del(b.outboxChan, k); err != nil {
			return false, err
		}
	}
	if err := deleteKeys(b.tileWaiting, scanPrefix(b.tileWaiting, p)); err != nil {
		return false, err
	}
	if err := deleteKeys(b.tileLast, scanPrefix(b.tileLast, p)); err != nil {
		return false, err
	}
	return true, nil
}

// AddChannel registers a channel, deduplicated by URI: ch.URI is put in
// canonical form first (channeluri.Canonical; an invalid URI is
// ErrInvalidChannel with the reason), so every spelling of a URI is one
// channel. A known URI returns the existing record with User, Feeds,
// Device and the transport fields (Transport, Keys, Expires) replaced by
// ch's (created is false). An empty Transport is MPNS. A new channel gets
// a random ID and Created = now; the ID and Created in ch are ignored.
//
// A device ID is scoped to its user: ch.User and ch.Device name one device.
// When that device has a channel of another URI, the registration rotates
// it (a new URI for the same app install): the channel takes the new URI
// in place and keeps its ID, Created and waiting notifications (they name
// its ID), with the rest of the registration applied as given. When the new
// URI already has a channel of its own, the two become one: the older
// (earlier Created, then smaller ID) is kept with the registration applied,
// and takes over the other's waiting notifications that it would get (the
// rules of moves); the other is removed, its ledger stays. A rotated
// channel's last-tile hashes are dropped, so the new URI gets the next tile
// even if unchanged. Each rotation is logged once its transaction commits
// (msg="channel rotated", see logRotations). A registration naming the
// device ID of another user's channel creates (or updates) a channel of
// its own: it never moves or removes theirs.
func (db *DB) AddChannel(ch tilecast.Channel) (tilecast.Channel, bool, error) {
	if err := rules.Prepare(&ch); err != nil {
		return tilecast.Channel{}, false, err
	}
	var out tilecast.Channel
	var created bool
	var rotated []rules.Rotation
	err := db.update(func(b *buckets) error {
		var err error
		out, created, err = b.addChannel(&ch, db.now())
		rotated = b.rotations
		return err
	})
	if err != nil {
		return tilecast.Channel{}, false, fmt.Errorf("add channel: %w", err)
	}
	db.logRotations(rotated)
	return out, created, nil
}

// logRotations logs each rotation of a committed transaction.
func (db *DB) logRotations(rs []rules.Rotation) { rules.LogRotations(db.log, rs) }

// addChannel is AddChannel inside a write transaction, shared with
// ImportChannels. ch has been validated and its feeds normalised; now is
// the Created time of a new channel. Rotations are noted in b.rotations.
func (b *buckets) addChannel(ch *tilecast.Channel, now time.Time) (tilecast.Channel, bool, error) {
	cur, found := tilecast.Channel{}, false
	if id := b.get(b.chanURI, []byte(ch.URI)); id != nil {
		var err error
		if cur, found, err = b.getChannel(string(id)); err != nil {
			return tilecast.Channel{}, false, err
		}
	}
	if ch.Device != "" {
		// The channel of this user's device, when it is not cur.
		id := b.get(b.chanDevice, deviceKey(ch.User, ch.Device))
		if id != nil && (!found || string(id) != cur.ID) {
			dev, ok, err := b.getChannel(string(id))
			if err != nil {
				return tilecast.Channel{}, false, err
			}
			if ok {
				return b.rotate(ch, dev, cur, found)
			}
		}
	}
	if found && rules.Unchanged(&cur, ch) && (cur.Device == "" || string(b.get(b.chanDevice, deviceKey(cur.User, cur.Device))) == cur.ID) {
		// Apps re-register on every start and imports are re-run: an
		// unchanged channel needs no write.
		return cur, false, nil
	}
	created := false
	if found {
		if err := b.unindex(&cur); err != nil {
			return tilecast.Channel{}, false, err
		}
		rules.Register(&cur, ch)
	} else {
		cur = tilecast.Channel{URI: ch.URI, Created: now}
		rules.Register(&cur, ch)
		for {
			cur.ID = rules.NewChannelID()
			if b.get(b.channels, []byte(cur.ID)) == nil {
				break
			}
		}
		created = true
	}
	if err := b.putChannel(&cur); err != nil {
		return tilecast.Channel{}, false, err
	}
	if created {
		b.delta.channels++
	}
	if err := b.index(&cur); err != nil {
		return tilecast.Channel{}, false, err
	}
	return cur, created, nil
}

// rotate moves device channel dev to the registration's URI (see
// AddChannel): in place, or, when cur (found) holds that URI already,
// by making the two one.
func (b *buckets) rotate(ch *tilecast.Channel, dev, cur tilecast.Channel, found bool) (tilecast.Channel, bool, error) {
	keep, gone := dev, tilecast.Channel{}
	if found {
		gone = cur
		if rules.Older(&cur, &dev) {
			keep, gone = cur, dev
		}
	}
	if err := b.unindex(&keep); err != nil {
		return tilecast.Channel{}, false, err
	}
	if keep.URI != ch.URI {
		// Another URI is another app install or subscription: its tile
		// is not known to show what this one showed.
		p := prefix(keep.ID)
		if err := deleteKeys(b.tileLast, scanPrefix(b.tileLast, p)); err != nil {
			return tilecast.Channel{}, false, err
		}
	}
	keep.URI = ch.URI
	rules.Register(&keep, ch)
	if found {
		if err := b.takeOver(gone.ID, &keep); err != nil {
			return tilecast.Channel{}, false, err
		}
	}
	if err := b.putChannel(&keep); err != nil {
		return tilecast.Channel{}, false, err
	}
	if err := b.index(&keep); err != nil {
		return tilecast.Channel{}, false, err
	}
	r := rules.Rotation{Channel: keep.ID, OldChannel: dev.ID, NewChannel: dev.ID, User: ch.User, Device: ch.Device, Host: rules.URIHost(ch.URI)}
	if found {
		r.NewChannel = cur.ID
	}
	b.rotations = append(b.rotations, r)
	return keep, false, nil
}

// takeOver moves the waiting notifications of channel oldID that ch would
// get (moves) to ch, drops the others and removes oldID: two channels
// made one by a rotation (rotate) or by the migration (migrate.go).
func (b *buckets) takeOver(oldID string, ch *tilecast.Channel) error {
	p := prefix(oldID)
	var a arena
	for _, k := range scanPrefix(b.outboxChan, p) {
		if err := b.del(b.outboxChan, k); err != nil {
			return err
		}
		key := k[len(p):]
		v := b.get(b.outbox, key)
		if v == nil {
			continue
		}
		e, err := decodeEntry(v)
		n := &e.n
		if err != nil || !rules.Moves(n, ch) {
			if err := b.dropEntry(key); err != nil {
				return err
			}
			continue
		}
		if oldKey, ok := stateKey(n); ok {
			if err := b.del(b.tileWaiting, oldKey); err != nil {
				return err
			}
			// Tiles and badges are state: of two waiting for the same
			// feed the newer (higher sequence) wins.
			moved := *n
			moved.ChannelID = ch.ID
			tk, _ := stateKey(&moved)
			// tile_waiting may name an entry gone since (removeEntry).
			if w := b.get(b.tileWaiting, tk); w != nil && b.get(b.outbox, w) != nil {
				if len(w) == outboxKeyLen && outboxKeySeq(w) > n.ID {
					if err := b.dropEntry(key); err != nil {
						return err
					}
					continue
				}
				if err := b.dropEntry(bytes.Clone(w)); err != nil {
					return err
				}
			}
			if err := b.tileWaiting.Put(tk, key); err != nil {
				return err
			}
		}
		n.ChannelID = ch.ID // the payload reference moves unchanged
		if err := b.outbox.Put(key, encodeEntryInto(&a, &e)); err != nil {
			return err
		}
		if err := b.outboxChan.Put(join(ch.ID, key), nil); err != nil {
			return err
		}
	}
	_, err := b.removeChannel(oldID)
	return err
}

// Channel returns the channel with the given ID (tilecast.ErrNotFound if unknown).
func (db *DB) Channel(id string) (tilecast.Channel, error) {
	var ch tilecast.Channel
	err := db.view(func(b *buckets) error {
		var ok bool
		var err error
		ch, ok, err = b.getChannel(id)
		if err == nil && !ok {
			err = errNoChannel(id)
		}
		return err
	})
	return ch, err
}

// ChannelByURI returns the channel registered for uri, in whichever
// spelling it is given (tilecast.ErrNotFound if none). A URI that does not
// canonicalise is looked up as given: a record older than canonicalisation
// may hold it.
func (db *DB) ChannelByURI(uri string) (tilecast.Channel, error) {
	var ch tilecast.Channel
	keys := []string{uri}
	if c, err := channeluri.Canonical(uri); err == nil && c != uri {
		keys = []string{c, uri} // the canonical form first: it is what is stored
	}
	err := db.view(func(b *buckets) error {
		var id []byte
		for _, k := range keys {
			if id = b.get(b.chanURI, []byte(k)); id != nil {
				break
			}
		}
		if id == nil {
			return fmt.Errorf("channel uri: %w", tilecast.ErrNotFound)
		}
		var ok bool
		var err error
		ch, ok, err = b.getChannel(string(id))
		if err == nil && !ok {
			err = errNoChannel(string(id))
		}
		return err
	})
	return ch, err
}

// RemoveChannel deletes a channel and everything waiting for it (its ledger
// stays). tilecast.ErrNotFound if unknown.
func (db *DB) RemoveChannel(id string) error {
	return db.update(func(b *buckets) error {
		ok, err := b.removeChannel(id)
		if err != nil {
			return fmt.Errorf("remove channel %s: %w", id, err)
		}
		if !ok {
			return errNoChannel(id)
		}
		return nil
	})
}

// Channels returns the channels of user ("" = every channel), sorted by
// Created, then ID.
func (db *DB) Channels(user string) ([]tilecast.Channel, error) {
	var out []tilecast.Channel
	err := db.view(func(b *buckets) error {
		if user == "" {
			return b.channels.ForEach(func(k, v []byte) error {
				ch, err := decodeChannel(v)
				if err != nil {
					return fmt.Errorf("channel %s: %w", k, err)
				}
				out = append(out, ch)
				return nil
			})
		}
		var err error
		out, err = b.channelsIn(b.chanUser, prefix(user), nil)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list channels: %w", err)
	}
	slices.SortFunc(out, func(a, b tilecast.Channel) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return out, nil
}

// channelsIn decodes the channels whose IDs follow p in the keys of index
// idx, appending to out.
func (b *buckets) channelsIn(idx *bolt.Bucket, p []byte, out []tilecast.Channel) ([]tilecast.Channel, error) {
	c := idx.Cursor()
	for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
		ch, ok, err := b.getChannel(string(k[len(p):]))
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, ch)
		}
	}
	return out, nil
}

// Subscribers returns the channels that get feed f: for a per-user feed the
// channels of user that name it (found through the user index, so a run per
// user stays cheap), else the channels that name it plus those listing no
// feeds (the feed index, so only subscribers are decoded).
func (db *DB) Subscribers(f *tilecast.Feed, user string) ([]tilecast.Channel, error) {
	var out []tilecast.Channel
	err := db.view(func(b *buckets) error {
		var err error
		if f.PerUser() {
			if user == "" {
				return nil
			}
			out, err = b.channelsIn(b.chanUser, prefix(user), nil)
		} else {
			out, err = b.channelsIn(b.chanFeed, prefix(f.Name), nil)
			if err == nil {
				out, err = b.channelsIn(b.chanFeed, prefix(""), out)
			}
		}
		if err != nil {
			return err
		}
		out = slices.DeleteFunc(out, func(ch tilecast.Channel) bool {
			return !ch.Subscribed(f) || (f.PerUser() && ch.User != user)
		})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("subscribers of %s: %w", f.Name, err)
	}
	return out, nil
}

// FeedUsers returns the sorted distinct non-empty users of the channels that
// name feed, read from the feed index alone.
func (db *DB) FeedUsers(feed string) ([]string, error) {
	if feed == "" {
		return nil, nil
	}
	var out []string
	err := db.view(func(b *buckets) error {
		p := prefix(feed)
		seen := map[string]bool{}
		c := b.chanFeed.Cursor()
		for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
			if len(v) > 0 && !seen[string(v)] {
				seen[string(v)] = true
				out = append(out, string(v))
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("users of %s: %w", feed, err)
	}
	slices.Sort(out)
	return out, nil
}
