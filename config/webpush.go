package config

import (
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

// feedWebPush checks a feed's [feed.webpush] table and returns its urgency
// ("" when it sets none).
func (c *checker) feedWebPush(key string, r *rawFeedWebPush) string {
	if r == nil {
		return ""
	}
	return c.enum(key+".webpush.urgency", r.Urgency, "", urgencies...)
}
