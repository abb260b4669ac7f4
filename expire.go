package tilecast

import (
	"context"
	"fmt"
	"time"
)

// ChannelSweeper is what Bot.SweepExpired uses of the store: the
// channels whose expiry has come, from an index (so a sweep costs what
// expired, not every channel), and their removal if they still have
// expired when it happens.
type ChannelSweeper interface {
	// ExpiredChannels returns up to limit channels whose Expires is set
	// and not after now, the earliest expiry first.
	ExpiredChannels(now time.Time, limit int) ([]Channel, error)
	// RemoveExpiredChannel removes the channel if its Expires is still
	// set and not after now, in one transaction with that check, and
	// reports whether it did: a browser may re-subscribe between the
	// listing and the removal, and its new subscription must stay.
	RemoveExpiredChannel(id string, now time.Time) (bool, error)
}

// ExpirySweepInterval is how often the daemon removes the channels whose
// Web Push subscription expired (Bot.RunExpirySweeps). A push to one of
// them in between is not sent either (the transport answers it as gone),
// so the interval only bounds how long a silent channel stays listed.
const ExpirySweepInterval = time.Hour

// SweepExpired removes the channels whose Expires (a Web Push
// subscription's expirationTime) has passed, with what waits for them:
// the browser said the subscription ends then, and a channel that no feed
// sends to would otherwise stay listed and counted forever. Each removal
// is logged (channel, user, transport, expires; never the keys). It
// returns how many it removed; a channel removed meanwhile by someone
// else is not an error.
func (b *Bot) SweepExpired(ctx context.Context, st ChannelSweeper) (int, error) {
	now := b.now()
	removed := 0
	for {
		if err := ctx.Err(); err != nil {
			return removed, err
		}
		// What is removed leaves the index, so each call lists the next
		// ones: no cursor is needed.
		chs, err := st.ExpiredChannels(now, MaxPageLimit)
		if err != nil {
			return removed, fmt.Errorf("expired channels: list: %w", err)
		}
		progress := 0
		for i := range chs {
			ch := &chs[i]
			ok, err := st.RemoveExpiredChannel(ch.ID, now)
			if err != nil {
				return removed, fmt.Errorf("expired channels: remove %s: %w", ch.ID, err)
			}
			if !ok {
				continue // removed meanwhile, or re-subscribed
			}
			removed++
			progress++
			b.log().Info("channel removed: subscription expired", "channel", ch.ID, "user", ch.User,
				"transport", string(TransportOf(ch)), "expires", ch.Expires.UTC().Format(time.RFC3339))
		}
		if len(chs) < MaxPageLimit {
			return removed, nil
		}
		if progress == 0 {
			// A full page of which nothing could be removed would be
			// listed again and again: the index names channels that are
			// gone.
			return removed, fmt.Errorf("expired channels: %d listed, none could be removed", len(chs))
		}
	}
}

// RunExpirySweeps runs SweepExpired at once and then every interval
// (ExpirySweepInterval when ≤ 0) until ctx ends, logging what each sweep
// removed and any failure (the next sweep tries again). Expiry is judged
// by the Bot's clock (Now), the interval by a real ticker.
func (b *Bot) RunExpirySweeps(ctx context.Context, st ChannelSweeper, interval time.Duration) {
	if interval <= 0 {
		interval = ExpirySweepInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if n, err := b.SweepExpired(ctx, st); err != nil && ctx.Err() == nil {
			b.log().Error("removing expired channels failed", "error", err.Error())
		} else if n > 0 {
			b.log().Info("expired channels removed", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
