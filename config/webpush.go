package config

import (
	"errors"
	"net/url"
	"strings"
	"unicode"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/notify/webpush"
)

// WebPush is the [push.webpush] table: the Web Push transport (RFC 8030,
// 8291, 8292). It is on when VAPIDPrivateKeyFile is set.
type WebPush struct {
	// Subject is the VAPID sub claim: "mailto:…" or an "https:" URL,
	// checked as Apple's push service checks it (webpush.CheckSubject).
	Subject string
	// VAPIDPrivateKeyFile holds the VAPID private key as npm web-push
	// prints it (base64url), web-push's JSON or PEM (PKCS#8 or SEC 1),
	// read and checked at load (webpush.LoadVAPIDKey). Its contents are
	// never logged or kept here.
	VAPIDPrivateKeyFile string
	// AllowedHosts are the push-service hosts a subscription's endpoint
	// may have: "host" or "*.suffix", as push.allowed_hosts.
	AllowedHosts []string
	// UrgencyToast and UrgencyTile are the Urgency header of toasts (and
	// raw data) and of tiles (and badges): "very-low", "low", "normal"
	// or "high". A feed's [feed.webpush] urgency wins over both.
	UrgencyToast string
	UrgencyTile  string
	// Pad pads each plaintext with zeros up to a multiple of Pad bytes,
	// so the size of a push tells less about its text; 0 sends none.
	Pad int
	// Icon is the app's icon URL, shown with every toast: an absolute
	// https URL or a path on the app's site ("/icons/app.png"), checked by
	// checkIcon; "" sends none. A feed's [feed.webpush] icon wins; the
	// loader puts the result in each feed (tilecast.Feed.WebPushIcon).
	Icon string
}

// Enabled reports whether Web Push is configured.
func (w WebPush) Enabled() bool { return w.VAPIDPrivateKeyFile != "" }

// DefaultWebPushHosts are the push services browsers use today: Chrome's
// FCM, Mozilla's autopush, Apple's and Microsoft's (Edge endpoints are on
// notify.windows.com).
func DefaultWebPushHosts() []string {
	return []string{"fcm.googleapis.com", "*.push.services.mozilla.com", "*.push.apple.com", "*.notify.windows.com"}
}

// DefaultWebPush is [push.webpush] with nothing set: off.
func DefaultWebPush() WebPush {
	return WebPush{
		AllowedHosts: DefaultWebPushHosts(),
		UrgencyToast: webpush.UrgencyNormal,
		UrgencyTile:  webpush.UrgencyLow,
	}
}

// urgencies are the values of the urgency keys.
var urgencies = []string{webpush.UrgencyVeryLow, webpush.UrgencyLow, webpush.UrgencyNormal, webpush.UrgencyHigh}

// webPush checks [push.webpush] into w (which holds the defaults).
func (c *checker) webPush(r *rawWebPush, w *WebPush) {
	const t = "push.webpush."
	w.Subject = c.str(t+"subject", r.Subject, "")
	w.VAPIDPrivateKeyFile = c.secretPath(t+"vapid_private_key_file", c.str(t+"vapid_private_key_file", r.VAPIDPrivateKeyFile, ""))
	w.AllowedHosts = c.strs(t+"allowed_hosts", r.AllowedHosts, w.AllowedHosts, c.hostPattern)
	w.UrgencyToast = c.enum(t+"urgency_toast", r.UrgencyToast, w.UrgencyToast, urgencies...)
	w.UrgencyTile = c.enum(t+"urgency_tile", r.UrgencyTile, w.UrgencyTile, urgencies...)
	w.Pad = c.integer(t+"pad", r.Pad, 0, 0, webpush.MaxPlaintext)
	w.Icon = c.icon(t+"icon", r.Icon, "")

	switch {
	case w.Subject == "" && w.VAPIDPrivateKeyFile == "":
		return
	case w.Subject == "":
		c.errorf(t+"subject", "missing: vapid_private_key_file is set, so the VAPID subject must be too (mailto:you@example.org or https://your.site)")
	case w.VAPIDPrivateKeyFile == "":
		c.errorf(t+"vapid_private_key_file", "missing: subject is set, so Web Push needs its VAPID key (`tilecast vapid generate --out FILE` makes one)")
	}
	if w.Subject != "" {
		if err := webpush.CheckSubject(w.Subject); err != nil {
			c.errorf(t+"subject", "bad subject %v", err)
		}
	}
	if w.VAPIDPrivateKeyFile != "" && c.pemFile(t+"vapid_private_key_file", w.VAPIDPrivateKeyFile) {
		// The error names the file and what is wrong, never the key.
		if _, err := webpush.LoadVAPIDKey(w.VAPIDPrivateKeyFile); err != nil {
			c.errorf(t+"vapid_private_key_file", "%v", err)
		}
	}
}

// feedWebPush checks a feed's [feed.webpush] table into f: its urgency
// ("" when it sets none) and its toasts' icon, w's (the checked
// [push.webpush]) when it sets none. Copying the icon into each feed is
// what lets a reload apply a new [push.webpush] icon: the feeds are
// swapped on SIGHUP, the renderers are not rebuilt.
func (c *checker) feedWebPush(key string, r *rawFeedWebPush, w *WebPush, f *tilecast.Feed) {
	f.WebPushIcon = w.Icon
	if r == nil {
		return
	}
	f.WebPushUrgency = c.enum(key+".webpush.urgency", r.Urgency, "", urgencies...)
	f.WebPushIcon = c.icon(key+".webpush.icon", r.Icon, w.Icon)
}

// maxIcon bounds an icon URL. The icon goes whole into every toast (only
// title and body are cut to fit), whose JSON holds webpush.MaxPlaintext
// bytes: a longer one would leave too little room for the text.
const maxIcon = 1024

// icon checks an icon URL of Web Push toasts: an absolute https URL, or a
// path on the app's own site starting with "/" (the shipped worker
// resolves it against its scope, so it loads from the app's origin). ""
// is no icon: a feed can write icon = "" to send none though
// [push.webpush] has one.
func (c *checker) icon(key string, v any, def string) string {
	s := c.str(key, v, def)
	if _, ok := v.(string); !ok || s == "" {
		return s
	}
	const want = `want an absolute https URL ("https://cdn.example.org/icon-192.png") or a path on the app's site ("/icons/app-192.png")`
	// No message repeats a password written into the URL.
	shown := s
	if u, err := url.Parse(s); err == nil && u.User != nil {
		shown = u.Redacted()
	}
	switch {
	case strings.Contains(s, "{{"):
		c.errorf(key, "bad icon %q: must be a fixed URL, not a template (the same icon goes with every toast)", shown)
	case len(s) > maxIcon:
		c.errorf(key, "icon URL of %d bytes is too long: at most %d, since it goes whole into every toast, whose payload holds %d bytes",
			len(s), maxIcon, webpush.MaxPlaintext)
	case strings.ContainsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }):
		c.errorf(key, "bad icon %q: white space or a control character in a URL: percent-encode it (%%20)", shown)
	case strings.HasPrefix(s, "//"):
		c.errorf(key, `bad icon %q: "//" starts another host, not a path on the app's site: %s`, shown, want)
	case strings.HasPrefix(s, "/"):
		if _, err := url.Parse(s); err != nil {
			c.errorf(key, "bad icon path %q: %v", s, errors.Unwrap(err))
		}
	default:
		u, err := url.Parse(s)
		switch {
		case err != nil:
			c.errorf(key, "bad icon URL %q: %v; %s", s, errors.Unwrap(err), want)
		case !strings.EqualFold(u.Scheme, "https") || u.Host == "":
			c.errorf(key, "bad icon %q: %s", shown, want)
		case u.User != nil:
			// Every device that shows a toast would get the password.
			c.errorf(key, "bad icon URL %q: must not hold a user or password", shown)
		}
	}
	return s
}
