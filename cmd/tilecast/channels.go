package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/channeluri"
	"github.com/tilecast/tilecast/config"
	"github.com/tilecast/tilecast/web"
)

func cmdChannels(ctx context.Context, e env) error {
	sub := map[string]func(context.Context, env) error{
		"list":   cmdChannelsList,
		"add":    cmdChannelsAdd,
		"remove": cmdChannelsRemove,
		"import": cmdChannelsImport,
	}
	if len(e.args) == 0 || e.args[0] == "-h" || e.args[0] == "--help" {
		fmt.Fprintln(e.stdout, "Usage: tilecast channels list|add|remove|import [flags]   (--help on each)")
		fmt.Fprintln(e.stdout, "list, add and remove work while the daemon runs (through its API); import needs it stopped,")
		fmt.Fprintln(e.stdout, "except on PostgreSQL (state = a postgres:// URL), where every command reads and writes the database.")
		if len(e.args) == 0 {
			return usagef("channels: a subcommand is required")
		}
		return nil
	}
	run, ok := sub[e.args[0]]
	if !ok {
		return usagef("channels: unknown subcommand %q (list, add, remove, import)", e.args[0])
	}
	e.args = e.args[1:]
	return run(ctx, e)
}

// daemonNote ends the usage of the commands that reach a running daemon.
const daemonNote = "\n\nWhile the daemon runs (it holds the state file) this goes through its API:\n" +
	"http.listen (https when http.tls_cert is set) with the first admin key of\n" +
	"http.api_keys_file. On PostgreSQL (state = a postgres:// URL) it uses the\n" +
	"database directly, running daemons or not.\n"

func cmdChannelsAdd(ctx context.Context, e env) error {
	fs := newFlags(e, "channels add", "channels add --config FILE (--uri URI | --subscription JSON|@FILE) [--transport mpns|wns|webpush]\n"+
		"                    [--user U] [--feed NAME]... [--device ID]\n\n"+
		"Registers a channel as POST /v1/channels does. Without --transport it is inferred\n"+
		"from the URI: *.notify.windows.com is WNS (a Windows app's channel, https only),\n"+
		"anything else MPNS. --transport wns is needed for a WNS channel on another host\n"+
		"of push.allowed_hosts (the emulator), which also needs push.allow_private.\n\n"+
		"A Web Push channel is a browser's subscription, --subscription, exactly as the\n"+
		"page's JSON.stringify(subscription) gives it (or @FILE holding it):\n"+
		"  {\"endpoint\":\"https://…\",\"expirationTime\":null,\"keys\":{\"p256dh\":\"…\",\"auth\":\"…\"}}\n"+
		"Its keys are checked, its endpoint must be https on a host of [push.webpush]\n"+
		"allowed_hosts, and the same endpoint again updates the channel (new keys too).\n"+
		"The keys are stored, never printed: the row shows the endpoint, and --json\n"+
		"also its origin and the SHA-256 of the keys (keys_sha256), to check that a\n"+
		"re-subscription's new keys arrived."+daemonNote)
	cfgPath := fs.String("config", "", "config file (TOML)")
	uri := fs.String("uri", "", "the device's push channel URI")
	subscription := fs.String("subscription", "", "a Web Push subscription as the browser's JSON, or @FILE holding it")
	transport := fs.String("transport", "", "mpns, wns or webpush (default: inferred from --uri; webpush with --subscription)")
	user := fs.String("user", "", "user the channel belongs to (for per-user feeds)")
	device := fs.String("device", "", "stable install id, scoped to --user: a new URI for it rotates that install's channel (same id)")
	var feeds stringList
	fs.Var(&feeds, "feed", "subscribe to this feed (repeatable; none = every feed without {user})")
	asJSON := fs.Bool("json", false, "print the channel as a JSON object (as POST /v1/channels answers)")
	if err := parseFlags(fs, e, e.args); err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	if (*uri == "") == (*subscription == "") {
		return usagef("channels add: give --uri, or --subscription for a Web Push channel")
	}
	if *uri != "" && tilecast.Transport(*transport) == tilecast.TransportWebPush {
		return usagef("channels add: --transport webpush takes --subscription (the browser's subscription JSON), not --uri")
	}
	ch := tilecast.Channel{URI: *uri, User: *user, Feeds: feeds, Device: *device, Transport: tilecast.Transport(*transport)}
	if *subscription != "" {
		raw, err := readArg(e, *subscription)
		if err != nil {
			return usagef("channels add: --subscription: %v", err)
		}
		if err := web.ApplySubscription(&ch, raw, cfg.Push.AllowPrivate, time.Now()); err != nil {
			return usageError{err}
		}
	}
	if err := checkRegistration(cfg, &ch); err != nil {
		return usageError{err}
	}
	o, err := connect(cfg, e, false)
	if err != nil {
		return err
	}
	defer o.Close()
	saved, err := o.AddChannel(ctx, ch)
	if err != nil {
		return err
	}
	// What channels list prints for it: its table row, or its JSON (as the
	// API shows it: a Web Push channel's keys never).
	v := web.View(saved)
	if *asJSON {
		return printJSON(e, v)
	}
	tw := channelTable(e)
	channelRow(tw, &v)
	return tw.Flush()
}

// readArg returns an argument's value, or with "@FILE" the contents of
// FILE ("@-": standard input), at most 64 KiB.
func readArg(e env, v string) ([]byte, error) {
	name, ok := strings.CutPrefix(v, "@")
	if !ok {
		return []byte(v), nil
	}
	var r io.Reader = e.stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, 64<<10+1))
	if err != nil {
		return nil, err
	}
	if len(b) > 64<<10 {
		return nil, fmt.Errorf("%s: larger than 64 KiB", name)
	}
	return b, nil
}

// Limits of a registration, as the API applies them (web/channels.go).

// checkRegistration applies the API's registration rules to ch and
// canonicalises its URI, so a channel added or imported here is stored
// exactly as the API would store it.
func checkRegistration(cfg *config.Config, ch *tilecast.Channel) error {
	return web.CheckRegistration(ch, registrationRules(cfg), cfg.Feeds)
}

// registrationRules are the [push] keys a registration is checked against.
func registrationRules(cfg *config.Config) channeluri.Rules {
	return channeluri.Rules{AllowedHosts: cfg.Push.AllowedHosts, AllowPrivate: cfg.Push.AllowPrivate,
		TransportHosts: transportHosts(cfg)}
}

// transportHosts are the host lists of the transports that have their own.
func transportHosts(cfg *config.Config) map[tilecast.Transport][]string {
	return map[tilecast.Transport][]string{tilecast.TransportWebPush: cfg.Push.WebPush.AllowedHosts}
}

func cmdChannelsList(ctx context.Context, e env) error {
	fs := newFlags(e, "channels list", "channels list --config FILE [--user U] [--json]\n\n"+
		"Channels in ID order, read and printed a page (1000) at a time."+daemonNote)
	cfgPath := fs.String("config", "", "config file (TOML)")
	user := fs.String("user", "", "only this user's channels")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, e, e.args); err != nil {
		return err
	}
	_, o, err := loadAndConnect(*cfgPath, e, true)
	if err != nil {
		return err
	}
	defer o.Close()
	page := func(cursor string) ([]web.ChannelView, string, error) {
		return o.ChannelsPage(ctx, tilecast.ChannelFilter{User: *user}, cursor, tilecast.MaxPageLimit)
	}
	if *asJSON {
		arr := &jsonArray{w: e.stdout}
		err := eachPage(page, func(chs []web.ChannelView) error {
			for i := range chs {
				if err := arr.add(&chs[i]); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		return arr.close()
	}
	tw := channelTable(e)
	err = eachPage(page, func(chs []web.ChannelView) error {
		for i := range chs {
			channelRow(tw, &chs[i])
		}
		return tw.Flush() // a page at a time: columns line up within a page
	})
	if err != nil {
		return err
	}
	return tw.Flush()
}

// channelTable starts the channel table of channels list and add.
func channelTable(e env) *tabwriter.Writer {
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tUSER\tFEEDS\tTRANSPORT\tLAST OUTCOME\tURI")
	return tw
}

// channelRow is one channel's line of the channel table.
func channelRow(tw *tabwriter.Writer, c *web.ChannelView) {
	feeds := "(all global)"
	if len(c.Feeds) > 0 {
		feeds = fmt.Sprint(c.Feeds)
	}
	fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", c.ID, orDash(c.User), feeds, tilecast.TransportOf(&c.Channel), orDash(c.LastOutcome), c.URI)
}

func cmdChannelsRemove(ctx context.Context, e env) error {
	fs := newFlags(e, "channels remove", "channels remove --config FILE (ID | --uri URI)"+daemonNote)
	cfgPath := fs.String("config", "", "config file (TOML)")
	uri := fs.String("uri", "", "remove the channel with this URI")
	if err := parseFlags(fs, e, e.args); err != nil {
		return err
	}
	id := fs.Arg(0)
	if (id == "") == (*uri == "") {
		return usagef("channels remove: give either a channel ID or --uri")
	}
	_, o, err := loadAndConnect(*cfgPath, e, false)
	if err != nil {
		return err
	}
	defer o.Close()
	if *uri != "" {
		// Stored URIs are canonical; the operator may have typed another
		// spelling. A record from before the store canonicalised may
		// still hold the spelling typed.
		key := *uri
		if c, err := channeluri.Canonical(key); err == nil {
			key = c
		}
		ch, err := o.ChannelByURI(ctx, key)
		if errors.Is(err, tilecast.ErrNotFound) && key != *uri {
			ch, err = o.ChannelByURI(ctx, *uri)
		}
		if err != nil {
			return fmt.Errorf("channel %s: %w", *uri, err)
		}
		id = ch.ID
	}
	if err := o.RemoveChannel(ctx, id); err != nil {
		if errors.Is(err, tilecast.ErrNotFound) {
			return fmt.Errorf("channel %s: %w", id, tilecast.ErrNotFound)
		}
		return fmt.Errorf("channel %s: %w", id, err)
	}
	fmt.Fprintln(e.stdout, "removed", id)
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func printJSON(e env, v any) error {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
