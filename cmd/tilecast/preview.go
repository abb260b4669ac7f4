package main

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"fmt"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/config"
	"github.com/tilecast/tilecast/notify/mpns"
	"github.com/tilecast/tilecast/notify/webpush"
	"github.com/tilecast/tilecast/notify/wns"
)

// The placeholder channel URIs shown in previews.
const (
	previewURI    = "http://db3.notify.live.net/throttledthirdparty/01.00/PREVIEW"
	previewWNSURI = "https://wns2-par02p.notify.windows.com/w/?token=PREVIEW"
	// previewWebPushURI is the endpoint of the throw-away subscription a
	// Web Push preview encrypts for (its keys are made per preview).
	previewWebPushURI = "https://fcm.googleapis.com/fcm/send/PREVIEW"
)

func cmdPreview(ctx context.Context, e env) error {
	fs := newFlags(e, "preview", "preview --config FILE --feed NAME [--user U] [--transport mpns|wns|webpush]\n\n"+
		"Fetches the feed now and prints the requests a channel of the transport would get\n"+
		"for its first item as new: MPNS a toast and a tile; WNS a toast, a tile and a badge\n"+
		"(the tile's count), with the feed's [feed.wns] options and the Authorization header\n"+
		"as Bearer "+dryRunToken+" (no token is fetched); Web Push a toast and a tile (the\n"+
		"count inside) as the shipped service worker's JSON, encrypted for a throw-away\n"+
		"subscription (the body is described and its plaintext printed), with the feed's\n"+
		"TTL, Urgency ([push.webpush], [feed.webpush]) and Topic, the Authorization as\n"+
		dryRunVAPID+". Changes no state.\n")
	cfgPath := fs.String("config", "", "config file (TOML)")
	feedName := fs.String("feed", "", "the feed to preview")
	user := fs.String("user", "", "the user, for a per-user feed")
	transportFlag := fs.String("transport", "mpns", "mpns, wns or webpush: whose requests to print")
	if err := parseFlags(fs, e, e.args); err != nil {
		return err
	}
	transport, err := tilecast.ParseTransport(*transportFlag)
	if err != nil || transport == "" {
		return usagef("preview: --transport: want mpns, wns or webpush, got %q", *transportFlag)
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	if *feedName == "" {
		return usagef("preview: --feed is required")
	}
	f, err := feedByName(cfg, *feedName)
	if err != nil {
		return err
	}
	if f.PerUser() && *user == "" {
		return usagef("preview: feed %s is per-user; give --user", f.Name)
	}
	log := newLogger(cfg, e.stderr)
	// No store is opened: a preview changes no state, and works while the daemon runs.
	target, err := f.URLFor(*user)
	if err != nil {
		return usagef("preview: %v", err)
	}
	res, err := newFetcher(cfg, log).Fetch(ctx, target, tilecast.Validators{})
	if err != nil {
		return fmt.Errorf("fetch %s: %w", f.Name, err)
	}
	if len(res.Items) == 0 {
		fmt.Fprintf(e.stdout, "feed %s has no items\n", f.Name)
		return nil
	}
	items := append([]tilecast.Item(nil), res.Items...)
	info := tilecast.FeedInfo{Name: f.Name, Title: res.Title, Link: res.Link}
	if info.Title == "" {
		info.Title = f.Name
	}
	d := tilecast.TemplateData{Feed: info, Item: items[0], Items: items, NewCount: len(items), User: *user}
	// The daemon's renderers, images unchecked (a preview fetches nothing more).
	_, renderers := newRenderers(cfg, nil)
	r := renderers[transport]
	fmt.Fprintf(e.stdout, "# feed %s: %d items, previewing the first as new (%s)\n", f.Name, len(items), transport)
	if f.Toast != nil {
		payload, err := r.Toast(f, &d)
		if err != nil {
			return fmt.Errorf("toast: %w", err)
		}
		fmt.Fprintln(e.stdout, "\n# toast")
		if err := dumpPreview(e, cfg, transport, f, tilecast.KindToast, payload); err != nil {
			return err
		}
	}
	if f.Tile != nil {
		parts, err := r.TileUpdate(f, &d)
		if err != nil {
			return fmt.Errorf("tile: %w", err)
		}
		for _, p := range parts {
			fmt.Fprintf(e.stdout, "\n\n# %s\n", p.Kind)
			if err := dumpPreview(e, cfg, transport, f, p.Kind, p.Payload); err != nil {
				return err
			}
		}
	}
	fmt.Fprintln(e.stdout)
	return nil
}

// dumpPreview prints the request of payload to the preview channel URI of
// transport t, built as the daemon builds it when it sends (for WNS with
// the kind's full time to live and the feed's tag, the token a stand-in).
func dumpPreview(e env, cfg *config.Config, t tilecast.Transport, f *tilecast.Feed, kind tilecast.Kind, payload []byte) error {
	if t == tilecast.TransportWebPush {
		sub, err := throwAwaySubscription(previewWebPushURI)
		if err != nil {
			return err
		}
		n := &tilecast.Notification{Feed: f.Name, Kind: kind, Payload: payload}
		return dumpWebPush(e, sub, n, nil, webPushOptions(cfg, n), f.TTL.Of(kind))
	}
	if t == tilecast.TransportWNS {
		req, err := wns.NewRequest(previewWNSURI, kind, payload, wns.RequestOptions{Token: dryRunToken,
			TTL: f.TTL.Of(kind), Tag: wns.Tag(f.Name), UserAgent: userAgent()})
		if err != nil {
			return err
		}
		return wns.DumpRequest(e.stdout, req)
	}
	req, err := mpns.NewRequest(previewURI, kind, payload, requestOptions(cfg))
	if err != nil {
		return err
	}
	return mpns.DumpRequest(e.stdout, req)
}

// throwAwaySubscription is a subscription at endpoint with fresh keys
// whose private half is dropped: a preview shows the request's size and
// headers, and no one can read what it encrypted.
func throwAwaySubscription(endpoint string) (webpush.Subscription, error) {
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		return webpush.Subscription{}, err
	}
	auth := make([]byte, webpush.AuthLen)
	rand.Read(auth)
	return webpush.Subscription{Endpoint: endpoint, P256DH: k.PublicKey().Bytes(), Auth: auth}, nil
}
