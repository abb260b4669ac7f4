package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/config"
	"github.com/tilecast/tilecast/notify"
	"github.com/tilecast/tilecast/notify/mpns"
)

func cmdSend(ctx context.Context, e env) error {
	fs := newFlags(e, "send", "send --uri URI --type toast|tile|flip|iconic|cycle|raw [--set key=value]... [--json FILE|-] [--dry-run] [--config FILE]")
	uri := fs.String("uri", "", "channel URI to POST to")
	kind := fs.String("type", "toast", "toast | tile | flip | iconic | cycle | raw")
	jsonFile := fs.String("json", "", "read the properties from a JSON object in FILE (- for stdin)")
	dryRun := fs.Bool("dry-run", false, "print the exact request and send nothing")
	cfgPath := fs.String("config", "", "optional config: push.class, timeout, client certificate, allow_private")
	var sets stringList
	fs.Var(&sets, "set", "property=value, mpns property names (text1, text2, param, title, count, backContent, ...); repeatable")
	if err := parseFlags(fs, e, e.args); err != nil {
		return err
	}
	if *uri == "" {
		return usagef("send: --uri is required")
	}
	cfg := &config.Config{}
	if *cfgPath != "" {
		var err error
		if cfg, err = loadConfig(*cfgPath); err != nil {
			return err
		}
	} else {
		cfg = config.Default()
		cfg.Push.AllowPrivate = true // an explicit one-off send to a URI the operator typed
	}

	var payload notify.Payload
	var err error
	if *jsonFile != "" {
		var r io.Reader = e.stdin
		if *jsonFile != "-" {
			f, err := os.Open(*jsonFile)
			if err != nil {
				return usageError{err}
			}
			defer f.Close()
			r = f
		}
		var props map[string]any
		if err := json.NewDecoder(r).Decode(&props); err != nil {
			return usagef("send: --json %s: %v", *jsonFile, err)
		}
		for _, s := range sets {
			k, v, _ := strings.Cut(s, "=")
			props[k] = v
		}
		payload, err = mpns.FromJSON(*kind, props)
	} else {
		props := map[string]string{}
		for _, s := range sets {
			k, v, ok := strings.Cut(s, "=")
			if !ok {
				return usagef("send: --set %q: want key=value", s)
			}
			props[k] = v
		}
		payload, err = mpns.FromProps(*kind, props)
	}
	if err != nil {
		return usageError{err}
	}
	body, err := notify.Fit(newEncoder(cfg), payload)
	if err != nil {
		return err
	}
	n := &tilecast.Notification{Kind: payload.Kind(), Payload: body}
	if *dryRun {
		// The request the client below would send, built the same way.
		req, err := mpns.NewRequest(*uri, n.Kind, n.Payload, requestOptions(cfg))
		if err != nil {
			return usageError{err}
		}
		return mpns.DumpRequest(e.stdout, req)
	}
	client, err := newPusher(cfg)
	if err != nil {
		return err
	}
	defer client.Close()
	res := client.Push(ctx, &tilecast.Channel{URI: *uri}, n, 0)
	fmt.Fprintf(e.stdout, "status %d  notification %s  subscription %s  device %s  verdict %s  in %s\n",
		res.Status, orDash(res.Notification), orDash(res.Subscription), orDash(res.Device), res.Verdict,
		res.Duration.Round(time.Millisecond))
	if res.Err != nil {
		return fmt.Errorf("send: %w", res.Err)
	}
	return nil
}
