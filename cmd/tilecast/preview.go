package main

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/config"
	"github.com/tilecast/tilecast/notify/mpns"
	"github.com/tilecast/tilecast/notify/webpush"
	"github.com/tilecast/tilecast/notify/wns"
	"github.com/tilecast/tilecast/store"
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
	fs := newFlags(e, "preview", "preview --config FILE --feed NAME [--user U] [--transport mpns|wns|webpush] [--as-new]\n\n"+
		"Fetches the feed now and prints the requests the next run would send to a channel\n"+
		"of the transport: the items not yet in the saved state's seen set, newest first,\n"+
		"max_toasts and flood_limit applied (toasts, the \"N more\" summary toast, the tile\n"+
		"with the count the run would set; WNS adds the count as a badge), rendered with the\n"+
		"feed's options; nothing when the run would only record the baseline. --as-new\n"+
		"takes every item as new instead and reads no state. The first line says which.\n"+
		"WNS requests carry Authorization: Bearer "+dryRunToken+" (no token is fetched).\n"+
		"Web Push requests (a toast and a tile with the count inside, as the shipped\n"+
		"service worker's JSON) are encrypted for a throw-away subscription (the body is\n"+
		"described and its plaintext printed), with the feed's TTL, Urgency and Topic,\n"+
		"the Authorization as "+dryRunVAPID+".\n"+
		"Changes no state; a bbolt state file held by the running daemon cannot be read:\n"+
		"stop it, or use --as-new.\n")
	cfgPath := fs.String("config", "", "config file (TOML)")
	feedName := fs.String("feed", "", "the feed to preview")
	user := fs.String("user", "", "the user, for a per-user feed")
	transportFlag := fs.String("transport", "mpns", "mpns, wns or webpush: whose requests to print")
	asNew := fs.Bool("as-new", false, "take every item as new (read no saved state)")
	if err := parseFlags(fs, e, e.args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("preview: unexpected argument %q", fs.Arg(0))
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
	target, err := f.URLFor(*user)
	if err != nil {
		return usagef("preview: %v", err)
	}
	var state tilecast.PreviewState
	if !*asNew {
		st, closeState, err := openPreviewState(cfg, log)
		if err != nil {
			return err
		}
		defer closeState()
		state = st
	}
	res, err := newFetcher(cfg, log).Fetch(ctx, target, tilecast.Validators{})
	if err != nil {
		return fmt.Errorf("fetch %s: %w", f.Name, err)
	}
	// The daemon's renderers, images unchecked (a preview fetches nothing more).
	_, renderers := newRenderers(cfg, nil)
	run, err := tilecast.Preview(ctx, f, *user, res, state, transport, renderers[transport], log)
	if err != nil {
		return err
	}
	name := f.Name
	if *user != "" {
		name += " (user " + *user + ")"
	}
	switch {
	case run.AsNew:
		fmt.Fprintf(e.stdout, "# feed %s: %s, every one taken as new (--as-new: no saved state read)\n", name, plural(run.Items, "item", "items"))
	case run.Baseline:
		fmt.Fprintf(e.stdout, "# feed %s: %s; the next run is its first: it records them as the baseline and sends nothing "+
			"(first_run = \"baseline\"; --as-new shows them as new)\n", name, plural(run.Items, "item", "items"))
		return nil
	default:
		fmt.Fprintf(e.stdout, "# feed %s: %s, %d new since the last run (compared with the saved state %s)\n",
			name, plural(run.Items, "item", "items"), len(run.New), stateName(cfg.State))
	}
	if len(run.New) == 0 {
		fmt.Fprintln(e.stdout, "# nothing would be sent now")
		return nil
	}
	toasts, summary := 0, false
	for _, p := range run.Payloads {
		if p.Kind == tilecast.KindToast {
			if p.Summary {
				summary = true
			} else {
				toasts++
			}
		}
	}
	fmt.Fprintf(e.stdout, "# each %s channel would get: %s", transport, plural(toasts, "toast", "toasts"))
	if summary {
		fmt.Fprintf(e.stdout, " + a summary toast (%d more)", len(run.New)-toasts)
	}
	if f.Tile != nil {
		fmt.Fprintf(e.stdout, " + the tile, count %d", run.Count)
	}
	switch {
	case run.Flood:
		fmt.Fprintf(e.stdout, "; flood_limit %d exceeded: no item toasts\n", f.FloodLimit)
	case toasts < len(run.New) && f.Toast != nil:
		fmt.Fprintf(e.stdout, "; max_toasts %d\n", f.MaxToasts)
	default:
		fmt.Fprintln(e.stdout)
	}
	for _, p := range run.Payloads {
		switch {
		case p.Summary:
			fmt.Fprintf(e.stdout, "\n# toast (summary)\n")
		case p.Kind == tilecast.KindToast:
			fmt.Fprintf(e.stdout, "\n# toast (item %s)\n", p.ItemID)
		default:
			fmt.Fprintf(e.stdout, "\n# %s\n", p.Kind)
		}
		if err := dumpPreview(e, cfg, transport, f, p.Kind, p.Payload); err != nil {
			return err
		}
		fmt.Fprintln(e.stdout)
	}
	return nil
}

// openPreviewState opens the saved state for reading only: a bbolt file
// read-only (none yet reads as an empty state: the next run is the
// first), or the PostgreSQL database. A file held by the running daemon
// is an error saying what to do.
func openPreviewState(cfg *config.Config, log *slog.Logger) (tilecast.PreviewState, func(), error) {
	if config.IsDatabaseURL(cfg.State) {
		db, err := openDatabase(cfg, log, nil)
		if err != nil {
			return nil, nil, err
		}
		return db, func() { db.Close() }, nil
	}
	if _, err := os.Stat(cfg.State); errors.Is(err, os.ErrNotExist) {
		return noState{}, func() {}, nil
	}
	db, err := store.Open(cfg.State, store.Options{Timeout: lockWait, ReadOnly: true, Logger: log})
	if errors.Is(err, tilecast.ErrStateLocked) {
		return nil, nil, fmt.Errorf("state file %s is in use by the running tilecast: preview compares the feed with the saved "+
			"state and cannot read it now; stop the daemon, or use --as-new to see every item as new", cfg.State)
	}
	if err != nil {
		return nil, nil, err
	}
	return db, func() { db.Close() }, nil
}

// noState is the state before anything ran: no feed state, nothing seen.
type noState struct{}

func (noState) FeedState(tilecast.FeedKey) (tilecast.FeedState, bool, error) {
	return tilecast.FeedState{}, false, nil
}
func (noState) Unseen(_ tilecast.FeedKey, ids []string) ([]string, error) { return ids, nil }

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
