package main

import (
	"context"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/config"
	"github.com/tilecast/tilecast/fetch"
	"github.com/tilecast/tilecast/notify/mpns"
)

// daemonBot is a Bot with the parts a config reload rebuilds: the Bot
// fetches and pushes through them (liveFetcher, livePusher), so a new
// client is used from the next fetch or send on, while the deliverer,
// the outbox and the breaker's state carry on.
type daemonBot struct {
	*tilecast.Bot
	fetcher *tilecast.Reloadable[*fetch.Client]
	pusher  *tilecast.Reloadable[*mpns.Client]
}

// applyReload puts cfg's [fetch] and [push] settings into effect: the
// push client built from cfg (by the caller, who must know it loads before
// anything changes) and a new fetcher replace the running ones, which
// are closed when their last call is done; fetch.concurrency and
// push.max_attempts go to the Bot; the feeds replace the Bot's.
func (d *daemonBot) applyReload(cfg *config.Config, pusher *mpns.Client) {
	d.fetcher.Replace(newFetcher(cfg, d.Logger))
	d.pusher.Replace(pusher)
	d.SetFetchConcurrency(cfg.Fetch.Concurrency)
	d.SetMaxAttempts(cfg.Push.MaxAttempts)
	d.SetFeeds(cfg.Feeds)
	d.SetDefaultTTL(cfg.Defaults.TTL)
}

// liveFetcher fetches feeds and checks tile images through the current
// fetcher.
type liveFetcher struct {
	r *tilecast.Reloadable[*fetch.Client]
}

func (f liveFetcher) Fetch(ctx context.Context, url string, v tilecast.Validators) (*tilecast.FeedResult, error) {
	l := f.r.Acquire()
	defer l.Release()
	return l.Value().Fetch(ctx, url, v)
}

func (f liveFetcher) CheckImage(ctx context.Context, url string) (bool, string) {
	l := f.r.Acquire()
	defer l.Release()
	return l.Value().CheckImage(ctx, url)
}

// livePusher sends through the current push client.
type livePusher struct {
	r *tilecast.Reloadable[*mpns.Client]
}

func (p livePusher) Push(ctx context.Context, ch *tilecast.Channel, n *tilecast.Notification, ttl time.Duration) tilecast.Result {
	l := p.r.Acquire()
	defer l.Release()
	return l.Value().Push(ctx, ch, n, ttl)
}
