package tilecast

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ChannelSweeper is what Bot.SweepExpired uses of the store: a paged
// listing of every channel and their removal.
type ChannelSweeper interface {
	ChannelsPage(f ChannelFilter, cursor string, limit int) ([]Channel, string, error)
	RemoveChannel(id string) error
}

// ExpirySweepInterval is how often the daemon removes the channels whose
// Web Push subscription expired (Bot.SweepExpired). A push to one of them
// in between is not sent either (the transport answers it as gone), so
// the interval only bounds how long a silent channel stays listed.
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
	cursor := ""
	for {
		if err := ctx.Err(); err != nil {
			return removed, err
		}
		chs, next, err := st.ChannelsPage(ChannelFilter{}, cursor, MaxPageLimit)
		if err != nil {
			return removed, fmt.Errorf("expired channels: list: %w", err)
		}
		for i := range chs {
			ch := &chs[i]
			if ch.Expires.IsZero() || now.Before(ch.Expires) {
				continue
			}
			if err := st.RemoveChannel(ch.ID); err != nil {
				if errors.Is(err, ErrNotFound) {
					continue
				}
				return removed, fmt.Errorf("expired channels: remove %s: %w", ch.ID, err)
			}
			removed++
			b.log().Info("channel removed: subscription expired", "channel", ch.ID, "user", ch.User,
				"transport", string(TransportOf(ch)), "expires", ch.Expires.UTC().Format(time.RFC3339))
		}
		if next == "" {
			return removed, nil
		}
		cursor = next
	}
}
