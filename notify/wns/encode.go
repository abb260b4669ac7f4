package wns

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/tilecast/tilecast/notify"
)

// MaxPayload is WNS's limit for every notification type: a larger body is
// answered 413 (protocols.md §3.3).
const MaxPayload = 5000

// Toast scenarios (the toast element's scenario attribute).
const (
	ScenarioReminder     = "reminder"
	ScenarioAlarm        = "alarm"
	ScenarioIncomingCall = "incomingCall"
	ScenarioUrgent       = "urgent"
)

// Toast durations.
const (
	DurationShort = "short"
	DurationLong  = "long"
)

// AudioSilent as EncoderOptions.Audio mutes the toast.
const AudioSilent = "silent"

// audioPrefix is what the system sound names are a suffix of.
const audioPrefix = "ms-winsoundevent:Notification."

// EncoderOptions configure an Encoder: the [feed.wns] keys of a feed.
// The zero value sends ToastGeneric toasts and adaptive tiles with the
// device's default sound.
type EncoderOptions struct {
	// Legacy sends the Windows 8 templates as wns 0.5.4 did: ToastText01
	// or ToastText02 (ToastImageAndText01/02 with AppLogoImage), and a
	// tile with a TileSquareText04 and a TileWideText09 binding
	// (TileSquarePeekImageAndText04 and TileWideImageAndText01 when the
	// tile has an image). Badges get version="1". HeroImage and Scenario
	// do not exist there and are refused.
	Legacy bool
	// Audio is the toast's sound: "" (the default sound, no <audio>),
	// AudioSilent, a system sound name (Default, IM, Mail, Reminder,
	// SMS, Looping.Alarm, Looping.Alarm2..10, Looping.Call,
	// Looping.Call2..10; looping ones loop), or an ms-winsoundevent:,
	// ms-appx: or ms-appdata: URI. See CheckAudio.
	Audio string
	// HeroImage is shown large at the top of a toast; AppLogoImage
	// replaces the app's logo on it. An absolute http(s) URL or an
	// ms-appx:/ms-appdata: URI; "" leaves it out.
	HeroImage    string
	AppLogoImage string
	// Scenario is the toast's scenario: "" (default), ScenarioReminder,
	// ScenarioAlarm, ScenarioIncomingCall or ScenarioUrgent.
	Scenario string
	// Duration is the toast's duration: "" (default), DurationShort or
	// DurationLong.
	Duration string
	// Lang is the <visual lang> attribute, a BCP-47 tag; "" leaves it out.
	Lang string
}

// Encoder builds WNS payloads (the bodies; NewRequest adds the headers). It
// implements notify.Encoder, notify.BadgeEncoder and notify.TileTextEncoder,
// and is safe for concurrent use.
type Encoder struct {
	opts EncoderOptions
}

var (
	_ notify.Encoder         = (*Encoder)(nil)
	_ notify.BadgeEncoder    = (*Encoder)(nil)
	_ notify.TileTextEncoder = (*Encoder)(nil)
)

// NewEncoder returns an Encoder with opts after checking them (CheckOptions).
func NewEncoder(opts EncoderOptions) (*Encoder, error) {
	if err := CheckOptions(opts); err != nil {
		return nil, err
	}
	return &Encoder{opts: opts}, nil
}

// Options returns the options the Encoder was built with.
func (e *Encoder) Options() EncoderOptions { return e.opts }

// CheckOptions reports the first thing wrong with opts, naming the option
// as the [feed.wns] key that sets it.
func CheckOptions(o EncoderOptions) error {
	if err := CheckAudio(o.Audio); err != nil {
		return err
	}
	if err := CheckScenario(o.Scenario); err != nil {
		return err
	}
	switch o.Duration {
	case "", DurationShort, DurationLong:
	default:
		return fmt.Errorf("wns: duration %q: want %q or %q", o.Duration, DurationShort, DurationLong)
	}
	if err := CheckImage(o.HeroImage); err != nil {
		return fmt.Errorf("wns: hero_image: %w", err)
	}
	if err := CheckImage(o.AppLogoImage); err != nil {
		return fmt.Errorf("wns: app_logo_image: %w", err)
	}
	if o.Legacy && o.HeroImage != "" {
		return errors.New("wns: hero_image: the Windows 8 (legacy) toast templates have no hero image")
	}
	if o.Legacy && o.Scenario != "" {
		return errors.New("wns: scenario: the Windows 8 (legacy) toasts have no scenario")
	}
	for _, r := range o.Lang {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			return fmt.Errorf("wns: lang %q: want a language tag such as \"en-US\"", o.Lang)
		}
	}
	return nil
}

// CheckScenario reports whether s is a toast scenario WNS knows ("" is the default).
func CheckScenario(s string) error {
	switch s {
	case "", ScenarioReminder, ScenarioAlarm, ScenarioIncomingCall, ScenarioUrgent:
		return nil
	}
	return fmt.Errorf("wns: scenario %q: want %q, %q, %q or %q", s,
		ScenarioReminder, ScenarioAlarm, ScenarioIncomingCall, ScenarioUrgent)
}

// CheckAudio reports whether s names a toast sound (see EncoderOptions.Audio).
func CheckAudio(s string) error {
	if s == "" || s == AudioSilent {
		return nil
	}
	name := s
	if rest, ok := strings.CutPrefix(s, audioPrefix); ok {
		name = rest
	} else if strings.HasPrefix(s, "ms-appx:///") || strings.HasPrefix(s, "ms-appdata:///") {
		if strings.ContainsAny(s, " \t\r\n\"<>") {
			return fmt.Errorf("wns: audio %q: not a usable URI", s)
		}
		return nil
	}
	if systemSound(name) {
		return nil
	}
	return fmt.Errorf(`wns: audio %q: want "silent", a system sound (Default, IM, Mail, Reminder, SMS, `+
		`Looping.Alarm, Looping.Alarm2..10, Looping.Call, Looping.Call2..10) or an ms-appx:/// or ms-appdata:/// URI`, s)
}

// systemSound reports whether name is in Microsoft's toast audio catalog
// (protocols.md [W12]).
func systemSound(name string) bool {
	switch name {
	case "Default", "IM", "Mail", "Reminder", "SMS", "Looping.Alarm", "Looping.Call":
		return true
	}
	for _, p := range []string{"Looping.Alarm", "Looping.Call"} {
		if rest, ok := strings.CutPrefix(name, p); ok {
			n, err := strconv.Atoi(rest)
			return err == nil && n >= 2 && n <= 10 && strconv.Itoa(n) == rest
		}
	}
	return false
}

// CheckImage reports whether s can be a toast or tile image source: an
// absolute http(s) URL, or an ms-appx:/ms-appdata: URI of the app's own
// files. "" is allowed (no image).
func CheckImage(s string) error {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err == nil {
		switch strings.ToLower(u.Scheme) {
		case "http", "https":
			if u.Host != "" {
				return nil
			}
		case "ms-appx", "ms-appdata":
			return nil
		}
	}
	return fmt.Errorf("image %q: want an absolute http(s) URL or an ms-appx:/ms-appdata: URI", s)
}

// MaxTyped implements notify.Encoder: WNS has one limit for all types.
func (e *Encoder) MaxTyped() int { return MaxPayload }

// MaxRaw implements notify.Encoder.
func (e *Encoder) MaxRaw() int { return MaxPayload }

// EncodeRaw implements notify.Encoder: the payload is sent verbatim.
func (e *Encoder) EncodeRaw(r notify.Raw) ([]byte, error) {
	return bytes.Clone(r.Payload), nil
}

// EncodeBadge implements notify.BadgeEncoder: <badge value="N"/> for 1–99,
// value="none" for 0 (Microsoft's documented way to clear it; the wns
// module sent "0"). Legacy adds version="1" as the module did.
func (e *Encoder) EncodeBadge(b notify.Badge) ([]byte, error) {
	if b.Count < 0 || b.Count > 99 {
		return nil, fmt.Errorf("wns: badge count %d out of 0-99", b.Count)
	}
	v := "none"
	if b.Count > 0 {
		v = strconv.Itoa(b.Count)
	}
	if e.opts.Legacy {
		return []byte(`<badge value="` + v + `" version="1"/>`), nil
	}
	return []byte(`<badge value="` + v + `"/>`), nil
}

// EncodeToast implements notify.Encoder.
func (e *Encoder) EncodeToast(t notify.Toast) ([]byte, error) {
	if t.Text1 == "" && t.Text2 == "" {
		return nil, fmt.Errorf("wns: toast: no text: %w", notify.ErrEmpty)
	}
	if e.opts.Legacy {
		return e.legacyToast(t)
	}
	var b bytes.Buffer
	b.Grow(256 + len(t.Text1) + len(t.Text2) + len(t.Param))
	b.WriteString("<toast")
	attr(&b, "duration", e.opts.Duration)
	attr(&b, "launch", t.Param)
	attr(&b, "scenario", e.opts.Scenario)
	b.WriteString("><visual")
	attr(&b, "lang", e.opts.Lang)
	b.WriteString(`><binding template="ToastGeneric">`)
	for _, s := range [...]string{t.Text1, t.Text2} {
		if s != "" {
			b.WriteString("<text>")
			escapeText(&b, s)
			b.WriteString("</text>")
		}
	}
	image(&b, "appLogoOverride", e.opts.AppLogoImage)
	image(&b, "hero", e.opts.HeroImage)
	b.WriteString("</binding></visual>")
	audio(&b, e.opts.Audio)
	b.WriteString("</toast>")
	return b.Bytes(), nil
}

// image writes an adaptive <image placement="p" src="…"/>, or nothing.
func image(b *bytes.Buffer, placement, src string) {
	if src == "" {
		return
	}
	b.WriteString("<image")
	attr(b, "placement", placement)
	attr(b, "src", src)
	b.WriteString("/>")
}

// audio writes the <audio> element for the Audio option, or nothing.
func audio(b *bytes.Buffer, a string) {
	switch {
	case a == "":
		return
	case a == AudioSilent:
		b.WriteString(`<audio silent="true"/>`)
		return
	}
	src := a
	if !strings.Contains(a, ":") {
		src = audioPrefix + a
	}
	b.WriteString("<audio")
	attr(b, "src", src)
	if strings.HasPrefix(src, audioPrefix+"Looping.") {
		b.WriteString(` loop="true"`)
	}
	b.WriteString("/>")
}

// tileContent is what an adaptive or legacy tile shows, taken from the
// MPNS-shaped tile model (notify.Tile): the feed's tile keys keep their
// meaning for every transport (README's mapping table).
type tileContent struct {
	title  *string // display name: title, else back_title
	item   *string // the newest item: back_content, else wide_content1
	detail *string // more of it on wide and large tiles: wide_back_content, else wide_content2
	image  string  // medium and large background
	small  string  // small background
	wide   string  // wide background
}

func present(fs ...*notify.Field) *string {
	for _, f := range fs {
		if f.State == notify.Present && f.Value != "" {
			return &f.Value
		}
	}
	return nil
}

func firstValue(fs ...*notify.Field) string {
	if p := present(fs...); p != nil {
		return *p
	}
	return ""
}

// content maps t onto what a Windows tile shows. The newest item's image
// (back_background_image, as the example config sets it) is preferred to
// the feed's fixed front image. The count is not part of it: it goes out as
// a badge notification (notify.BadgeOf).
func content(t *notify.Tile) tileContent {
	var cycle *notify.Field
	for i := range t.CycleImages {
		if t.CycleImages[i].State == notify.Present && t.CycleImages[i].Value != "" {
			cycle = &t.CycleImages[i]
			break
		}
	}
	if cycle == nil {
		cycle = &notify.Field{}
	}
	c := tileContent{
		title:  present(&t.Title, &t.BackTitle),
		item:   present(&t.BackContent, &t.WideContent1),
		detail: present(&t.WideBackContent, &t.WideContent2),
		image:  firstValue(&t.BackBackgroundImage, &t.BackgroundImage, cycle, &t.IconImage),
	}
	c.small = firstValue(&t.SmallBackgroundImage, &t.SmallIconImage)
	c.wide = firstValue(&t.WideBackBackgroundImage, &t.WideBackgroundImage)
	if c.image == "" {
		// Only a size-specific image: every size shows it rather than none.
		c.image = firstValue(&t.WideBackBackgroundImage, &t.WideBackgroundImage, &t.SmallBackgroundImage, &t.SmallIconImage)
	}
	if c.small == "" {
		c.small = c.image
	}
	if c.wide == "" {
		c.wide = c.image
	}
	return c
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// slot is one text of a binding: its adaptive hint-style and the model
// field it shows.
type slot struct {
	style string
	s     *string
}

// binding is one binding of a tile as the encoder lays it out.
type binding struct {
	template string
	image    string
	texts    []slot
}

// adaptiveLayout lays out the four adaptive bindings. Every binding shows
// something: its image, else the newest item's text, else the title.
func adaptiveLayout(c *tileContent) [4]binding {
	main := c.item
	if main == nil {
		main = c.title
	}
	small := binding{template: "TileSmall", image: c.small}
	if c.small == "" {
		small.texts = []slot{{"caption", main}}
	}
	return [4]binding{
		small,
		{"TileMedium", c.image, []slot{{"caption", main}}},
		{"TileWide", c.wide, []slot{{"body", main}, {"captionSubtle", c.detail}}},
		{"TileLarge", c.image, []slot{{"subtitle", main}, {"bodySubtle", c.detail}}},
	}
}

// TileTexts implements notify.TileTextEncoder: the text fields EncodeTile
// writes, each as often as it is written (the newest item appears in
// several bindings), so that notify.Fit cuts those and knows what a cut
// saves.
func (e *Encoder) TileTexts(t *notify.Tile) []*string {
	c := content(t)
	var out []*string
	add := func(p *string) {
		if p != nil {
			out = append(out, p)
		}
	}
	if e.opts.Legacy {
		for _, b := range legacyLayout(&c) {
			for _, sl := range b.texts {
				add(sl.s)
			}
		}
		return out
	}
	add(c.title) // displayName
	for _, b := range adaptiveLayout(&c) {
		for _, sl := range b.texts {
			add(sl.s)
		}
	}
	return out
}

// EncodeTile implements notify.Encoder. A tile with nothing to show but a
// count is notify.ErrEmpty: its count goes out as a badge. The id of a
// secondary tile is not used: on Windows each secondary tile has a channel
// of its own.
func (e *Encoder) EncodeTile(t notify.Tile) ([]byte, error) {
	c := content(&t)
	if c.title == nil && c.item == nil && c.image == "" {
		return nil, fmt.Errorf("wns: tile: no title, text or image (a count alone is a badge): %w", notify.ErrEmpty)
	}
	if e.opts.Legacy {
		return e.legacyTile(&c)
	}
	var b bytes.Buffer
	b.Grow(512 + 4*(len(str(c.item))+len(str(c.detail))) + len(str(c.title)))
	b.WriteString("<tile><visual")
	attr(&b, "lang", e.opts.Lang)
	if c.title != nil {
		b.WriteString(` branding="name"`)
		attr(&b, "displayName", *c.title)
	}
	b.WriteByte('>')
	for _, bd := range adaptiveLayout(&c) {
		b.WriteString(`<binding template="`)
		b.WriteString(bd.template)
		b.WriteString(`">`)
		image(&b, "background", bd.image)
		for _, sl := range bd.texts {
			text(&b, sl.style, sl.s)
		}
		b.WriteString("</binding>")
	}
	b.WriteString("</visual></tile>")
	return b.Bytes(), nil
}

// text writes an adaptive <text hint-style="style" hint-wrap="true">, or
// nothing for a missing text.
func text(b *bytes.Buffer, style string, s *string) {
	if s == nil {
		return
	}
	b.WriteString(`<text hint-style="`)
	b.WriteString(style)
	b.WriteString(`" hint-wrap="true">`)
	escapeText(b, *s)
	b.WriteString("</text>")
}
