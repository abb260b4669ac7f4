package main

import (
	"context"
	"strings"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/config"
	"github.com/tilecast/tilecast/fetch"
	"github.com/tilecast/tilecast/notify/webpush"
	"github.com/tilecast/tilecast/notify/wns"
)

// daemonBot is a Bot with the parts a config reload rebuilds: the Bot
// fetches and pushes through them (liveFetcher, livePusher), so a new
// client is used from the next fetch or send on, while the deliverer,
// the outbox and the breaker's state carry on.
type daemonBot struct {
	*tilecast.Bot
	fetcher *tilecast.Reloadable[*fetch.Client]
	pushers *tilecast.Reloadable[*pushers]
	// vapid is the Web Push key read at start (nil: no [push.webpush]):
	// every Web Push client a reload builds signs with it, and GET
	// /v1/webpush/key serves its public half.
	vapid *webpush.VAPIDKey
	// tokens is where the WNS clients a reload builds share their access
	// tokens (nil: a bbolt state, each client its own).
	tokens wns.TokenCache
	// breaker is the Bot's Pusher: it outlives the push clients a reload
	// replaces, and its open circuits are part of Degraded.
	breaker *tilecast.Breaker
}

// webPushPublicKey is what GET /v1/webpush/key serves: "" without Web Push.
func (d *daemonBot) webPushPublicKey() string {
	if d.vapid == nil {
		return ""
	}
	return d.vapid.PublicKey()
}

// applyReload puts cfg's [fetch] and [push] settings into effect: the
// push clients built from cfg (by the caller, who must know they load
// before anything changes: certificate files, the WNS client secret) and
// a new fetcher replace the running ones, which are closed when their
// last call is done — the WNS client and its token source too, so new
// [push.wns] credentials are used from the next send, and the Web Push
// client (its signer with the new subject, the key read at start);
// fetch.concurrency
// and push.max_attempts go to the Bot; the feeds replace the Bot's.
func (d *daemonBot) applyReload(cfg *config.Config, ps *pushers) {
	d.fetcher.Replace(newFetcher(cfg, d.Logger))
	d.pushers.Replace(ps)
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

// Degraded reports what impairs sending from outside the daemon: push
// hosts whose circuit is open (a push service answering 5xx or not at
// all) and what impairs the current push clients (a WNS token endpoint
// failing, refused credentials, a transport with no sender). It is
// /healthz's "degraded", never a reason to restart: the watchdog does not
// ask it.
func (d *daemonBot) Degraded() (bool, string) {
	var reasons []string
	if bad, why := d.breaker.Degraded(); bad {
		reasons = append(reasons, why)
	}
	l := d.pushers.Acquire()
	bad, why := l.Value().mux.Degraded()
	l.Release()
	if bad {
		reasons = append(reasons, why)
	}
	return len(reasons) > 0, strings.Join(reasons, "; ")
}

// livePusher sends through the current push clients, each notification
// through its channel's transport's.
type livePusher struct {
	r *tilecast.Reloadable[*pushers]
}

func (p livePusher) Push(ctx context.Context, ch *tilecast.Channel, n *tilecast.Notification, ttl time.Duration) tilecast.Result {
	l := p.r.Acquire()
	defer l.Release()
	return l.Value().mux.Push(ctx, ch, n, ttl)
}
