package main

import (
	"context"
	"log/slog"
	"sync"

	"github.com/tilecast/tilecast/config"
	"github.com/tilecast/tilecast/fetch"
	"github.com/tilecast/tilecast/web"
)

// previewImages returns the dashboard's image fetcher: a fetch.Client
// built from the current [fetch] section (its SSRF guard, timeout and
// allow_private, and image_check's size and type rules via Image), made
// again when a reload changes the config, so turning allow_private off
// applies to the next preview image too.
func previewImages(current func() *config.Config, log *slog.Logger) web.PreviewImageFunc {
	var (
		mu     sync.Mutex
		cfg    *config.Config
		client *fetch.Client
	)
	return func(ctx context.Context, url string) ([]byte, string, error) {
		mu.Lock()
		if c := current(); c != cfg {
			cfg, client = c, newFetcher(c, log)
		}
		cl := client
		mu.Unlock()
		return cl.Image(ctx, url)
	}
}
