package store

import (
	"fmt"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/store/rules"
)

// ImportBatch is how many channels ImportChannels writes per transaction
// (rules.ImportBatch).
const ImportBatch = rules.ImportBatch

// ImportChannels adds or updates many channels with AddChannel's rules
// (URIs canonicalised and deduplicated, devices scoped to their user and
// rotated, rotations logged), ImportBatch channels per transaction. added
// counts new channels, updated the others: URIs already registered
// (including a URI repeated in chs) and devices' channels rotated.
//
// Every channel is validated before anything is written: one invalid
// channel fails the whole import with ErrInvalidChannel and its index. A
// write error stops the import after the batches already committed; since
// a re-import of the same channels only updates them, running it again is
// safe. Unlike a registration through the API, no tile_on_subscribe tile is
// queued: that is the caller's business.
func (db *DB) ImportChannels(chs []tilecast.Channel) (added, updated int, err error) {
	clean := make([]tilecast.Channel, len(chs))
	for i := range chs {
		ch := chs[i]
		if err := rules.Prepare(&ch); err != nil {
			return 0, 0, fmt.Errorf("import channel %d: %w", i, err)
		}
		clean[i] = ch
	}
	for start := 0; start < len(clean); start += ImportBatch {
		batch := clean[start:min(start+ImportBatch, len(clean))]
		var a, u int
		var rotated []rules.Rotation
		err := db.update(func(b *buckets) error {
			a, u = 0, 0
			defer func() { rotated = b.rotations }()
			now := db.now()
			for i := range batch {
				_, created, err := b.addChannel(&batch[i], now)
				if err != nil {
					return fmt.Errorf("channel %d: %w", start+i, err)
				}
				if created {
					a++
				} else {
					u++
				}
			}
			return nil
		})
		if err != nil {
			return added, updated, fmt.Errorf("import channels: %w", err)
		}
		db.logRotations(rotated)
		added += a
		updated += u
	}
	return added, updated, nil
}
