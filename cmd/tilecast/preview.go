package main

import (
	"context"
	"fmt"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/config"
	"github.com/tilecast/tilecast/notify"
	"github.com/tilecast/tilecast/notify/mpns"
)

// previewURI is the placeholder channel URI shown in previews.
const previewURI = "http://db3.notify.live.net/throttledthirdparty/01.00/PREVIEW"

func cmdPreview(ctx context.Context, e env) error {
	fs := newFlags(e, "preview", "preview --config FILE --feed NAME [--user U]")
	cfgPath := fs.String("config", "", "config file (TOML)")
	feedName := fs.String("feed", "", "the feed to preview")
	user := fs.String("user", "", "the user, for a per-user feed")
	if err := parseFlags(fs, e, e.args); err != nil {
		return err
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
	r := notify.NewRenderer(newEncoder(cfg))
	fmt.Fprintf(e.stdout, "# feed %s: %d items, previewing the first as new\n", f.Name, len(items))
	if f.Toast != nil {
		payload, err := r.Toast(f, &d)
		if err != nil {
			return fmt.Errorf("toast: %w", err)
		}
		fmt.Fprintln(e.stdout, "\n# toast")
		if err := dumpPreview(e, cfg, tilecast.KindToast, payload); err != nil {
			return err
		}
	}
	if f.Tile != nil {
		payload, err := r.Tile(f, &d)
		if err != nil {
			return fmt.Errorf("tile: %w", err)
		}
		fmt.Fprintln(e.stdout, "\n\n# tile")
		if err := dumpPreview(e, cfg, tilecast.KindTile, payload); err != nil {
			return err
		}
	}
	fmt.Fprintln(e.stdout)
	return nil
}

// dumpPreview prints the request of payload to the preview channel URI,
// built as the daemon builds it when it sends.
func dumpPreview(e env, cfg *config.Config, kind tilecast.Kind, payload []byte) error {
	req, err := mpns.NewRequest(previewURI, kind, payload, requestOptions(cfg))
	if err != nil {
		return err
	}
	return mpns.DumpRequest(e.stdout, req)
}
