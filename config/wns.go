package config

import (
	"net/url"
	"strings"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/notify/wns"
)

// WNS is the [push.wns] table: the credentials tilecast gets its WNS
// access tokens with. Tenant chooses the flow: set, the Entra ID flow
// (ClientID is the Azure app registration's id); empty, the classic flow
// (ClientID is the app's package SID, "ms-app://s-1-15-2-…").
type WNS struct {
	ClientID string
	// ClientSecretFile holds the client secret. The config checks that it
	// can be read and is not empty; the secret itself is read by the
	// daemon when it starts (wns.ReadSecret) and is never logged or kept
	// in the state file.
	ClientSecretFile string
	Tenant           string
	// TokenURL overrides the flow's token endpoint (the emulator, tests);
	// "" uses Microsoft's.
	TokenURL string
}

// Credentials returns the wns.Credentials of w with secret.
func (w *WNS) Credentials(secret []byte) wns.Credentials {
	return wns.Credentials{ClientID: w.ClientID, Secret: secret, Tenant: w.Tenant, TokenURL: w.TokenURL}
}

// maxTenant bounds a tenant id or domain.
const maxTenant = 128

// pushWNS checks [push.wns]; allowPrivate is push.allow_private, without
// which the token URL must be https.
func (c *checker) pushWNS(r *rawPushWNS, allowPrivate bool) *WNS {
	if r == nil {
		return nil
	}
	w := &WNS{
		ClientID:         c.str("push.wns.client_id", r.ClientID, ""),
		ClientSecretFile: c.secretPath("push.wns.client_secret_file", c.str("push.wns.client_secret_file", r.ClientSecretFile, "")),
		Tenant:           c.str("push.wns.tenant", r.Tenant, ""),
		TokenURL:         c.str("push.wns.token_url", r.TokenURL, ""),
	}
	// A value of the wrong type was reported above; say nothing more of it.
	_, idOK := r.ClientID.(string)
	switch {
	case r.ClientID != nil && !idOK:
	case w.ClientID == "":
		c.errorf("push.wns", "missing client_id: the package SID (classic flow) or the Azure app id (with tenant)")
	case strings.ContainsAny(w.ClientID, " \t\r\n"):
		c.errorf("push.wns.client_id", "must not contain white space")
	case w.Tenant == "" && !strings.HasPrefix(strings.ToLower(w.ClientID), "ms-app://"):
		c.errorf("push.wns.client_id", `without tenant (the classic flow) this is the app's package SID, "ms-app://s-1-15-2-…"; `+
			`for an Azure app registration's id, set tenant as well (the Entra ID flow)`)
	}
	if w.Tenant != "" {
		ok := len(w.Tenant) <= maxTenant && !strings.HasPrefix(w.Tenant, ".") && !strings.HasSuffix(w.Tenant, ".")
		for _, r := range w.Tenant {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
				ok = false
			}
		}
		switch {
		case !ok:
			c.errorf("push.wns.tenant", "bad tenant %q: want the directory (tenant) id or its domain, such as \"contoso.onmicrosoft.com\"", w.Tenant)
		case strings.EqualFold(w.Tenant, "common") || strings.EqualFold(w.Tenant, "organizations") || strings.EqualFold(w.Tenant, "consumers"):
			c.errorf("push.wns.tenant", "%q cannot issue app tokens: name your app registration's own tenant", w.Tenant)
		}
	}
	_, fileOK := r.ClientSecretFile.(string)
	switch {
	case r.ClientSecretFile != nil && !fileOK:
	case w.ClientSecretFile == "":
		c.errorf("push.wns", "missing client_secret_file: a file holding the client secret")
	default:
		if _, err := wns.ReadSecret(w.ClientSecretFile); err != nil {
			// ReadSecret's errors name the file, never its content.
			msg := strings.TrimPrefix(err.Error(), "wns client secret "+w.ClientSecretFile+": ")
			c.errorf("push.wns.client_secret_file", "cannot use %q: %s", w.ClientSecretFile, msg)
		}
	}
	if w.TokenURL != "" {
		u, err := url.Parse(w.TokenURL)
		switch {
		case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || u.User != nil:
			c.errorf("push.wns.token_url", "bad url %q: want an absolute https URL", w.TokenURL)
		case u.Scheme == "http" && !allowPrivate:
			c.errorf("push.wns.token_url", "%q is plain http, which would carry the client secret in clear: use https (http is for the emulator, with push.allow_private = true)", w.TokenURL)
		}
	}
	return w
}

// feedWNS checks a feed's [feed.wns]; templates collects its image
// templates for the syntax check.
func (c *checker) feedWNS(key string, r *rawFeedWNS, templates *[]field) *tilecast.WNSSpec {
	if r == nil {
		return nil
	}
	key += ".wns"
	s := &tilecast.WNSSpec{
		Audio:        c.str(key+".audio", r.Audio, ""),
		HeroImage:    c.str(key+".hero_image", r.HeroImage, ""),
		AppLogoImage: c.str(key+".app_logo_image", r.AppLogoImage, ""),
		Scenario:     c.str(key+".scenario", r.Scenario, ""),
		Legacy:       c.boolean(key+".legacy", r.Legacy, false),
	}
	if err := wns.CheckAudio(s.Audio); err != nil {
		c.errorf(key+".audio", "%s", strings.TrimPrefix(err.Error(), "wns: "))
	}
	if err := wns.CheckScenario(s.Scenario); err != nil {
		c.errorf(key+".scenario", "%s", strings.TrimPrefix(err.Error(), "wns: "))
	} else if s.Legacy && s.Scenario != "" {
		c.errorf(key+".scenario", "the Windows 8 toasts that legacy = true sends have no scenario (at %s)", c.where(key+".legacy"))
	}
	for _, img := range []struct{ name, v string }{{"hero_image", s.HeroImage}, {"app_logo_image", s.AppLogoImage}} {
		k := key + "." + img.name
		if strings.Contains(img.v, "{{") {
			*templates = append(*templates, field{k, img.v})
		} else if err := wns.CheckImage(img.v); err != nil {
			c.errorf(k, "bad %v", err)
		}
	}
	if s.Legacy && s.HeroImage != "" {
		c.errorf(key+".hero_image", "the Windows 8 toasts that legacy = true sends have no hero image (at %s)", c.where(key+".legacy"))
	}
	return s
}
