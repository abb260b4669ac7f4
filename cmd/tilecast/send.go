package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/channeluri"
	"github.com/tilecast/tilecast/config"
	"github.com/tilecast/tilecast/notify"
	"github.com/tilecast/tilecast/notify/mpns"
	"github.com/tilecast/tilecast/notify/webpush"
	"github.com/tilecast/tilecast/notify/wns"
)

// dryRunToken stands for the access token in a WNS dry run: a dry run
// contacts nothing, so it asks the token endpoint for nothing either.
const dryRunToken = "<access-token>"

const sendUsage = `send (--uri URI | --subscription JSON|@FILE) [--transport mpns|wns|webpush] --type TYPE
     [--set key=value]... [--json FILE|-] [--dry-run] [--config FILE]

Sends one notification to a channel URI (or a browser's Web Push
subscription), or with --dry-run prints the exact request (request line,
headers, blank line, body; on a terminal a newline follows the body) and
sends nothing.

--transport is inferred when left out: a --subscription is Web Push,
*.notify.windows.com is WNS, anything else MPNS.

--config FILE is optional. send reads from it: [push] class, timeout,
client_cert and client_key (MPNS), allow_private (every transport) and
allowed_hosts (WNS: further hosts, with allow_private); [push.wns]
client_id, client_secret_file, tenant and token_url (the credentials);
[push.webpush] subject and vapid_private_key_file (the VAPID key),
urgency_toast, urgency_tile, pad, icon, and allowed_hosts (with --config
a --subscription's endpoint is checked as a registration would be);
[defaults] toast_ttl, tile_ttl, badge_ttl and raw_ttl (WNS: X-WNS-TTL).
Without --config: the defaults, with allow_private on (you typed the
URI, so a private or loopback address such as the emulator's is fine).

  MPNS  --type toast|tile|flip|iconic|cycle|raw, with the property names of
        the mpns module: text1 text2 param (toast); backgroundImage count
        title backBackgroundImage backTitle backContent id (tile); plus
        smallBackgroundImage wideBackgroundImage wideBackContent
        wideBackBackgroundImage (flip); iconImage smallIconImage
        wideContent1..3 backgroundColor (iconic); cycleImage1..9 (cycle);
        payload (raw).
  WNS   --type toast|tile|badge|raw, the same names mapped as for feeds
        (README's mapping table): text1 text2 param (toast: a ToastGeneric
        toast, param is its launch); the tile names of flip (tile: an
        adaptive tile; its count is a badge of its own, so tile takes no
        count); count 0-99 (badge; 0 clears it); payload (raw).
        X-WNS-TTL is the kind's time to live as the daemon gives a
        notification of no configured feed ([defaults] toast_ttl etc.:
        a day for toasts and raw, 72 h for tiles and badges). There is no
        X-WNS-Tag: send sends outside any feed, and the tag is derived
        from the feed, so what it sends replaces no queued tile or badge.
        A real send needs --config with [push.wns] credentials; the dry
        run prints Authorization: Bearer ` + dryRunToken + ` and never
        asks the token endpoint (nor prints the client secret).
  Web Push  --subscription is the browser's subscription JSON
        ({"endpoint","expirationTime","keys":{"p256dh","auth"}}, or @FILE
        holding it); --type toast|tile|badge|raw with the same names:
        text1 text2 param (toast: title, body, url; the icon is
        --config's [push.webpush] icon, and there is no tag); the tile
        names of flip plus count (tile: count, title, body from
        backContent, image from backgroundImage, url from id); count 0-99
        (badge: a tile with only the count; 0 clears it); payload (raw:
        for the app's own worker).
        TTL is the kind's time to live, as for WNS (a day for toasts and
        raw, 72 h for tiles and badges by default), Urgency the
        [push.webpush] default of the kind. The body is encrypted for the subscription's keys
        (aes128gcm); the dry run describes it (salt, record size) and
        prints the plaintext it carries. Authorization is signed with the
        VAPID key of --config's [push.webpush] when there is one (a real
        token, valid for that push service for up to 12 h: do not publish
        it), else it reads ` + dryRunVAPID + `. A real send needs
        --config with [push.webpush].
`

// dryRunVAPID stands for the VAPID Authorization in a Web Push dry run
// without a configured key.
const dryRunVAPID = "vapid t=<jwt>, k=<vapid-public-key>"

func cmdSend(ctx context.Context, e env) (err error) {
	fs := newFlags(e, "send", sendUsage)
	uri := fs.String("uri", "", "channel URI to POST to")
	subscription := fs.String("subscription", "", "a Web Push subscription as the browser's JSON, or @FILE holding it")
	transport := fs.String("transport", "", "mpns, wns or webpush (default: inferred from --uri, webpush with --subscription)")
	kind := fs.String("type", "toast", "MPNS: toast | tile | flip | iconic | cycle | raw; WNS and Web Push: toast | tile | badge | raw")
	jsonFile := fs.String("json", "", "read the properties from a JSON object in FILE (- for stdin)")
	dryRun := fs.Bool("dry-run", false, "print the exact request and send nothing")
	cfgPath := fs.String("config", "", "optional config: [push] class, timeout, client certificate, allow_private, allowed_hosts; [push.wns] credentials; [push.webpush] subject, VAPID key, urgencies, pad, icon, allowed_hosts; [defaults] TTLs (default: built-in defaults with allow_private on)")
	var sets stringList
	fs.Var(&sets, "set", "property=value, mpns property names (text1, text2, param, title, count, backContent, ...); repeatable")
	if err := parseFlags(fs, e, e.args); err != nil {
		return err
	}
	t, err := tilecast.ParseTransport(*transport)
	if err != nil {
		return usagef("send: --transport: %v", err)
	}
	switch {
	case *uri != "" && *subscription != "":
		return usagef("send: give --uri or --subscription, not both")
	case *subscription != "" && t != "" && t != tilecast.TransportWebPush:
		return usagef("send: --subscription is a Web Push subscription: --transport %s takes --uri", t)
	case *subscription != "":
		t = tilecast.TransportWebPush
	case t == tilecast.TransportWebPush:
		return usagef("send: --transport webpush needs --subscription (the browser's subscription JSON)")
	case *uri == "":
		return usagef("send: --uri is required (--subscription for Web Push)")
	}
	if *uri != "" {
		if u, err := url.Parse(*uri); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return usagef("send: --uri %q: not a channel URI (want an absolute http or https URL)", *uri)
		}
		if t == "" {
			t = tilecast.InferTransport(*uri, false)
		}
	}
	cfg := &config.Config{}
	if *cfgPath != "" {
		if cfg, err = loadConfig(*cfgPath); err != nil {
			return err
		}
	} else {
		cfg = config.Default()
		cfg.Push.AllowPrivate = true // an explicit one-off send to a URI the operator typed
	}

	if *dryRun && isTerminal(e.stdout) {
		// The dry run is the request byte for byte, which has no newline
		// after its body; on a terminal one follows, so the prompt does
		// not start on the body's line. A pipe or file gets the bytes.
		defer func() {
			if err == nil {
				fmt.Fprintln(e.stdout)
			}
		}()
	}
	props, err := sendProps(e, *jsonFile, sets)
	if err != nil {
		return err
	}
	var n *tilecast.Notification
	switch t {
	case tilecast.TransportWNS:
		n, err = wnsNotification(*kind, props)
	case tilecast.TransportWebPush:
		n, err = webPushNotification(*kind, props, cfg.Push.WebPush.Icon)
	default:
		n, err = mpnsNotification(cfg, *kind, props)
	}
	if err != nil {
		return err
	}
	switch t {
	case tilecast.TransportWNS:
		return sendWNS(ctx, e, cfg, *uri, n, *dryRun)
	case tilecast.TransportWebPush:
		raw, err := readArg(e, *subscription)
		if err != nil {
			return usagef("send: --subscription: %v", err)
		}
		return sendWebPush(ctx, e, cfg, *cfgPath != "", raw, n, *dryRun)
	}
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
	return printResult(e, client.Push(ctx, &tilecast.Channel{URI: *uri}, n, 0))
}

// sendProps reads the properties of --json (an object, values kept as
// decoded) and --set (strings, applied over it).
func sendProps(e env, jsonFile string, sets []string) (map[string]any, error) {
	props := map[string]any{}
	if jsonFile != "" {
		var r io.Reader = e.stdin
		if jsonFile != "-" {
			f, err := os.Open(jsonFile)
			if err != nil {
				return nil, usageError{err}
			}
			defer f.Close()
			r = f
		}
		if err := json.NewDecoder(r).Decode(&props); err != nil {
			return nil, usagef("send: --json %s: %v", jsonFile, err)
		}
	}
	for _, s := range sets {
		k, v, ok := strings.Cut(s, "=")
		if !ok {
			return nil, usagef("send: --set %q: want key=value", s)
		}
		props[k] = v
	}
	return props, nil
}

// mpnsNotification builds an MPNS notification from the mpns module's
// properties.
func mpnsNotification(cfg *config.Config, kind string, props map[string]any) (*tilecast.Notification, error) {
	payload, err := mpns.FromJSON(kind, props)
	if err != nil {
		return nil, usageError{err}
	}
	body, err := notify.Fit(newEncoder(cfg), payload)
	if err != nil {
		if errors.Is(err, notify.ErrEmpty) {
			hint := ""
			if kind == mpns.KindToast {
				hint = " (give its text: --set text1=… and/or --set text2=…)"
			}
			return nil, usagef("send: %v%s", err, hint)
		}
		return nil, err
	}
	return &tilecast.Notification{Kind: payload.Kind(), Payload: body}, nil
}

// wnsNotification builds a WNS notification: toast, tile and raw from the
// mpns module's property names through the feeds' mapping, a badge from
// count.
func wnsNotification(kind string, props map[string]any) (*tilecast.Notification, error) {
	enc := &wns.Encoder{}
	var payload notify.Payload
	switch kind {
	case mpns.KindToast, mpns.KindRaw:
		p, err := mpns.FromJSON(kind, props)
		if err != nil {
			return nil, usageError{err}
		}
		payload = p
	case mpns.KindTile:
		if _, ok := props["count"]; ok {
			return nil, usagef("send: a WNS tile carries no count: the count is a badge of its own (--type badge --set count=N)")
		}
		p, err := mpns.FromJSON(mpns.KindFlip, props)
		if err != nil {
			return nil, usageError{errors.New(strings.Replace(err.Error(), "flip", "tile", 1))}
		}
		payload = p
	case "badge":
		b, err := badgeProps(props)
		if err != nil {
			return nil, err
		}
		payload = b
	default:
		return nil, usagef("send: unknown WNS type %q (want toast, tile, badge or raw)", kind)
	}
	body, err := notify.Fit(enc, payload)
	if err != nil {
		if errors.Is(err, notify.ErrEmpty) {
			return nil, usageError{err}
		}
		return nil, err
	}
	return &tilecast.Notification{Kind: payload.Kind(), Payload: body}, nil
}

// webPushNotification builds a Web Push notification (the shipped
// worker's JSON): toast and raw from the mpns module's property names, a
// tile from flip's names plus its count (the worker's tile carries it), a
// badge from count. A toast carries icon ([push.webpush] icon), as the
// daemon's do, so a test send shows what users will see; it has no tag,
// being about no feed item, so it replaces no notification.
func webPushNotification(kind string, props map[string]any, icon string) (*tilecast.Notification, error) {
	var payload notify.Payload
	switch kind {
	case mpns.KindToast, mpns.KindRaw:
		p, err := mpns.FromJSON(kind, props)
		if err != nil {
			return nil, usageError{err}
		}
		payload = p
	case mpns.KindTile:
		p, err := mpns.FromJSON(mpns.KindFlip, props)
		if err != nil {
			return nil, usageError{errors.New(strings.Replace(err.Error(), "flip", "tile", 1))}
		}
		payload = p
	case "badge":
		b, err := badgeProps(props)
		if err != nil {
			return nil, err
		}
		payload = b
	default:
		return nil, usagef("send: unknown Web Push type %q (want toast, tile, badge or raw)", kind)
	}
	body, err := notify.Fit(&webpush.Encoder{Icon: icon}, payload)
	if err != nil {
		if errors.Is(err, notify.ErrEmpty) {
			return nil, usageError{err}
		}
		return nil, err
	}
	return &tilecast.Notification{Kind: payload.Kind(), Payload: body}, nil
}

// sendWebPush prints the Web Push request of n to the subscription in raw
// (dry run) or sends it with [push.webpush] of cfg; configured says cfg
// came from --config. The dry run signs with the configured VAPID key, or
// shows dryRunVAPID without one.
func sendWebPush(ctx context.Context, e env, cfg *config.Config, configured bool, raw []byte, n *tilecast.Notification, dryRun bool) error {
	sub, err := webpush.ParseSubscription(raw, webpush.ParseOptions{AllowLoopbackHTTP: cfg.Push.AllowPrivate})
	if err != nil {
		return usagef("send: --subscription: %v", err)
	}
	if configured {
		// The hosts a registration would accept ([push.webpush] allowed_hosts).
		if _, _, err := channeluri.CheckChannel(sub.Endpoint, tilecast.TransportWebPush, true, registrationRules(cfg)); err != nil {
			return usagef("send: --subscription endpoint: %v", err)
		}
	}
	if !cfg.Push.WebPush.Enabled() {
		if !dryRun {
			return usagef("send: sending Web Push needs --config FILE with [push.webpush] (subject, vapid_private_key_file); --dry-run needs none")
		}
		return dumpWebPush(e, sub, n, nil, webPushOptions(cfg, n), sendTTL(cfg, n.Kind))
	}
	client, err := newWebPushClient(cfg, slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn})), nil)
	if err != nil {
		return err
	}
	defer client.Close()
	ttl := sendTTL(cfg, n.Kind)
	if dryRun {
		// What PushSubscription sends: the client's options, ttl.
		return dumpWebPush(e, sub, n, client, client.RequestOptions(n), ttl)
	}
	return printResult(e, client.PushSubscription(ctx, sub, n, ttl))
}

// webPushOptions are the request options the daemon's Web Push client
// gives n (webpush.Client.RequestOptions) without a VAPID key: the
// urgency of n's feed ([feed.webpush]) or kind ([push.webpush]), a tile's
// Topic from its feed, the padding; signed by a throw-away key that
// dumpWebPush replaces with dryRunVAPID.
func webPushOptions(cfg *config.Config, n *tilecast.Notification) webpush.RequestOptions {
	w := cfg.Push.WebPush
	o := webpush.RequestOptions{Pad: w.Pad, UserAgent: userAgent(), Urgency: w.UrgencyToast}
	if n.Kind == tilecast.KindTile || n.Kind == tilecast.KindBadge {
		o.Urgency = w.UrgencyTile
		o.Topic = webpush.TopicFor(n.Feed)
	}
	for _, f := range cfg.Feeds {
		if f.Name == n.Feed && n.Feed != "" && f.WebPushUrgency != "" {
			o.Urgency = f.WebPushUrgency
		}
	}
	return o
}

// dumpWebPush prints the request of n to sub built with opts and ttl (0:
// webpush.DefaultTTL, as PushSubscription sends it). client nil: no
// key is configured, and the Authorization shown is dryRunVAPID.
func dumpWebPush(e env, sub webpush.Subscription, n *tilecast.Notification, client *webpush.Client, opts webpush.RequestOptions, ttl time.Duration) error {
	if client == nil {
		key, err := webpush.NewVAPIDKey()
		if err != nil {
			return err
		}
		if opts.VAPID, err = webpush.NewSigner(key, "https://tilecast.dev", webpush.SignerOptions{}); err != nil {
			return err
		}
	}
	if ttl <= 0 {
		ttl = webpush.DefaultTTL
	}
	req, err := webpush.NewRequest(sub, n.Kind, n.Payload, ttl, opts)
	if err != nil {
		return usageError{err}
	}
	if client == nil {
		req.Header.Set("Authorization", dryRunVAPID)
	}
	return webpush.DumpRequest(e.stdout, req, n.Payload)
}

// badgeProps reads a badge's one property, count: 0-99 (0 clears it).
func badgeProps(props map[string]any) (notify.Badge, error) {
	var b notify.Badge
	for k := range props {
		if k != "count" {
			return b, usagef("send: unknown badge property %q (known: count)", k)
		}
	}
	v, ok := props["count"]
	if !ok {
		return b, usagef("send: a badge needs --set count=N (0-99; 0 clears it)")
	}
	var n int
	switch v := v.(type) {
	case string:
		var err error
		if n, err = strconv.Atoi(strings.TrimSpace(v)); err != nil {
			return b, usagef("send: count: %q is not an integer 0-99", v)
		}
	case float64:
		n = int(v)
		if float64(n) != v {
			return b, usagef("send: count: %v is not an integer 0-99", v)
		}
	default:
		return b, usagef("send: count: want a number, got %T", v)
	}
	if n < 0 || n > 99 {
		return b, usagef("send: count: %d is not an integer 0-99", n)
	}
	b.Count = n
	return b, nil
}

// sendWNS prints the WNS request of n (dry run) or sends it with the
// [push.wns] credentials of cfg.
func sendWNS(ctx context.Context, e env, cfg *config.Config, uri string, n *tilecast.Notification, dryRun bool) error {
	if err := wns.CheckChannelURI(uri, wnsAllowedHosts(cfg)); err != nil {
		return usagef("send: %v", err)
	}
	ttl := sendTTL(cfg, n.Kind)
	if dryRun {
		// The request Client.Push builds with ttl (no feed: no X-WNS-Tag),
		// with a stand-in for the token.
		req, err := wns.NewRequest(uri, n.Kind, n.Payload, wns.RequestOptions{Token: dryRunToken, TTL: ttl, UserAgent: userAgent()})
		if err != nil {
			return usageError{err}
		}
		return wns.DumpRequest(e.stdout, req)
	}
	if cfg.Push.WNS == nil {
		return usagef("send: sending to WNS needs --config FILE with [push.wns] credentials (--dry-run needs none)")
	}
	client, hc, err := newWNSClient(cfg, slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn})), nil)
	if err != nil {
		return err
	}
	defer closeWNS(client, hc)
	res := client.Push(ctx, &tilecast.Channel{URI: uri, Transport: tilecast.TransportWNS}, n, ttl)
	return printResult(e, res)
}

// sendTTL is the time to live of a notification of kind k that send
// makes: what the daemon gives one whose feed is not configured, the
// kind's [defaults] (toast_ttl, tile_ttl, badge_ttl, raw_ttl; without
// --config tilecast.DefaultTTL's), since send's is about no feed.
func sendTTL(cfg *config.Config, k tilecast.Kind) time.Duration {
	return cfg.Defaults.TTL.Of(k)
}

func closeWNS(c *wns.Client, hc *http.Client) {
	c.Close()
	hc.CloseIdleConnections()
}

// printResult prints one push's result; a result other than delivered is
// the command's error.
func printResult(e env, res tilecast.Result) error {
	if res.Status == 0 && res.Err != nil {
		// No answer (a network error, a refused address): the error is
		// all there is to say.
		return fmt.Errorf("send: %w", res.Err)
	}
	fmt.Fprintf(e.stdout, "status %d  notification %s  subscription %s  device %s  verdict %s  in %s\n",
		res.Status, orDash(res.Notification), orDash(res.Subscription), orDash(res.Device), res.Verdict,
		res.Duration.Round(time.Millisecond))
	if res.MsgID != "" || res.DebugTrace != "" || res.CorrelationVector != "" || res.TokenRefreshed {
		fmt.Fprintf(e.stdout, "msg_id %s  debug_trace %s  ms_cv %s  token_refreshed %v\n",
			orDash(res.MsgID), orDash(res.DebugTrace), orDash(res.CorrelationVector), res.TokenRefreshed)
	}
	if res.Err != nil {
		return fmt.Errorf("send: %w", res.Err)
	}
	return nil
}
