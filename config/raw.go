package config

import "github.com/tilecast/tilecast"

// The raw* types mirror the TOML document. Every leaf is `any` on purpose: a
// value of the wrong TOML type then decodes without stopping the decoder, and
// the checker reports it with its position together with every other problem,
// instead of go-toml stopping at the first mismatch. Sections are structs so
// that DisallowUnknownFields still names every unknown key.

type rawConfig struct {
	State    any         `toml:"state"`
	Store    rawStore    `toml:"store"`
	Log      rawLog      `toml:"log"`
	HTTP     rawHTTP     `toml:"http"`
	Fetch    rawFetch    `toml:"fetch"`
	Push     rawPush     `toml:"push"`
	Defaults rawDefaults `toml:"defaults"`
	Feed     []rawFeed   `toml:"feed"`
}

// rawStore is [store]: how the daemon reaches a PostgreSQL state.
type rawStore struct {
	PasswordFile any `toml:"password_file"`
}

type rawLog struct {
	Level  any `toml:"level"`
	Format any `toml:"format"`
}

type rawHTTP struct {
	Listen                 any `toml:"listen"`
	APIKeysFile            any `toml:"api_keys_file"`
	MetricsAuth            any `toml:"metrics_auth"`
	UserTokenKeyFile       any `toml:"user_token_key_file"`
	UserTokenPublicKeyFile any `toml:"user_token_public_key_file"`
	TLSCert                any `toml:"tls_cert"`
	TLSKey                 any `toml:"tls_key"`
	TLSCAFile              any `toml:"tls_ca_file"`
	TLSServerName          any `toml:"tls_server_name"`
}

type rawFetch struct {
	Timeout      any `toml:"timeout"`
	MaxBody      any `toml:"max_body"`
	Concurrency  any `toml:"concurrency"`
	AllowPrivate any `toml:"allow_private"`
}

type rawPush struct {
	Timeout      any `toml:"timeout"`
	Concurrency  any `toml:"concurrency"`
	AllowedHosts any `toml:"allowed_hosts"`
	AllowPrivate any `toml:"allow_private"`
	Class        any `toml:"class"`
	MaxAttempts  any `toml:"max_attempts"`
	ClientCert   any `toml:"client_cert"`
	ClientKey    any `toml:"client_key"`

	WNS     *rawPushWNS `toml:"wns"`
	WebPush rawWebPush  `toml:"webpush"`
}

// rawPushWNS is [push.wns]: the credentials of the WNS transport.
type rawPushWNS struct {
	ClientID         any `toml:"client_id"`
	ClientSecretFile any `toml:"client_secret_file"`
	Tenant           any `toml:"tenant"`
	TokenURL         any `toml:"token_url"`
}

// rawWebPush is [push.webpush].
type rawWebPush struct {
	Subject             any `toml:"subject"`
	VAPIDPrivateKeyFile any `toml:"vapid_private_key_file"`
	AllowedHosts        any `toml:"allowed_hosts"`
	UrgencyToast        any `toml:"urgency_toast"`
	UrgencyTile         any `toml:"urgency_tile"`
	Pad                 any `toml:"pad"`
	Icon                any `toml:"icon"`
}

// rawFeedWebPush is a feed's [feed.webpush].
type rawFeedWebPush struct {
	Urgency any `toml:"urgency"`
	Icon    any `toml:"icon"`
}

// rawDefaults is both the [defaults] table and the part of a [[feed]] that
// inherits from it, so the two can never drift apart.
type rawDefaults struct {
	Schedule        any `toml:"schedule"`
	FirstRun        any `toml:"first_run"`
	MaxToasts       any `toml:"max_toasts"`
	FloodLimit      any `toml:"flood_limit"`
	ImageCheck      any `toml:"image_check"`
	FallbackImage   any `toml:"fallback_image"`
	BrokenAfter     any `toml:"broken_after"`
	TileOnSubscribe any `toml:"tile_on_subscribe"`
	ToastTTL        any `toml:"toast_ttl"`
	TileTTL         any `toml:"tile_ttl"`
	RawTTL          any `toml:"raw_ttl"`
	BadgeTTL        any `toml:"badge_ttl"`
}

// ttlKey is one notification kind's time-to-live key.
type ttlKey struct {
	kind tilecast.Kind
	name string
	raw  any
}

// ttls lists the time-to-live keys, one per notification kind: a new kind
// is one line here, one field above and one in tilecast.DefaultTTL.
func (r *rawDefaults) ttls() []ttlKey {
	return []ttlKey{
		{tilecast.KindToast, "toast_ttl", r.ToastTTL},
		{tilecast.KindTile, "tile_ttl", r.TileTTL},
		{tilecast.KindRaw, "raw_ttl", r.RawTTL},
		{tilecast.KindBadge, "badge_ttl", r.BadgeTTL},
	}
}

type rawFeed struct {
	Name any `toml:"name"`
	URL  any `toml:"url"`
	rawDefaults
	Toast   *rawToast       `toml:"toast"`
	Tile    *rawTile        `toml:"tile"`
	WNS     *rawFeedWNS     `toml:"wns"`
	WebPush *rawFeedWebPush `toml:"webpush"`
}

// rawFeedWNS is [feed.wns]: what Windows shows beyond MPNS.
type rawFeedWNS struct {
	Audio        any `toml:"audio"`
	HeroImage    any `toml:"hero_image"`
	AppLogoImage any `toml:"app_logo_image"`
	Scenario     any `toml:"scenario"`
	Legacy       any `toml:"legacy"`
}

type rawToast struct {
	Text1 any `toml:"text1"`
	Text2 any `toml:"text2"`
	Param any `toml:"param"`
}

type rawTile struct {
	Template                any `toml:"template"`
	ID                      any `toml:"id"`
	Title                   any `toml:"title"`
	Count                   any `toml:"count"`
	BackgroundImage         any `toml:"background_image"`
	BackTitle               any `toml:"back_title"`
	BackContent             any `toml:"back_content"`
	BackBackgroundImage     any `toml:"back_background_image"`
	SmallBackgroundImage    any `toml:"small_background_image"`
	WideBackgroundImage     any `toml:"wide_background_image"`
	WideBackContent         any `toml:"wide_back_content"`
	WideBackBackgroundImage any `toml:"wide_back_background_image"`
	IconImage               any `toml:"icon_image"`
	SmallIconImage          any `toml:"small_icon_image"`
	WideContent1            any `toml:"wide_content1"`
	WideContent2            any `toml:"wide_content2"`
	WideContent3            any `toml:"wide_content3"`
	BackgroundColor         any `toml:"background_color"`
	CycleImages             any `toml:"cycle_images"`
}
