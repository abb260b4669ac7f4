package wns

import (
	"bytes"
	"fmt"
	"strconv"

	"github.com/tilecast/tilecast/notify"
)

// legacyTemplates are the Windows 8 templates the legacy encoder uses, with
// how many images and texts each has (Microsoft's tile and toast template
// catalogs, which wns 0.5.4 also followed).
var legacyTemplates = map[string][2]int{
	"ToastText01":                  {0, 1},
	"ToastText02":                  {0, 2},
	"ToastImageAndText01":          {1, 1},
	"ToastImageAndText02":          {1, 2},
	"TileSquareText04":             {0, 1},
	"TileSquarePeekImageAndText04": {1, 1},
	"TileWideText09":               {0, 2},
	"TileWideImageAndText01":       {1, 1},
}

// LegacyImage is an <image> of a Windows 8 binding.
type LegacyImage struct {
	Src, Alt string
}

// LegacyBinding is one Windows 8 <binding>: its template and the values of
// its image and text slots, in order. Slots left out are written empty, as
// wns 0.5.4 wrote them.
type LegacyBinding struct {
	Template string
	Images   []LegacyImage
	Texts    []string
}

// LegacyOptions are the optional attributes and elements of a Windows 8
// toast or tile, as wns 0.5.4 took them.
type LegacyOptions struct {
	Launch   string // toast only
	Duration string // toast only: "", DurationShort or DurationLong
	Audio    string // toast only: see EncoderOptions.Audio
	Lang     string // <visual lang>
}

// LegacyToast builds a Windows 8 toast of one binding, byte for byte as
// wns 0.5.4's create<Template> did (apart from the escaping fixes listed in
// the package documentation).
func LegacyToast(o LegacyOptions, bd LegacyBinding) ([]byte, error) {
	if err := CheckAudio(o.Audio); err != nil {
		return nil, err
	}
	switch o.Duration {
	case "", DurationShort, DurationLong:
	default:
		return nil, fmt.Errorf("wns: duration %q: want %q or %q", o.Duration, DurationShort, DurationLong)
	}
	var b bytes.Buffer
	b.WriteString("<toast")
	attr(&b, "duration", o.Duration)
	attr(&b, "launch", o.Launch)
	b.WriteString("><visual")
	attr(&b, "lang", o.Lang)
	b.WriteByte('>')
	if err := legacyBinding(&b, "Toast", bd); err != nil {
		return nil, err
	}
	b.WriteString("</visual>")
	audio(&b, o.Audio)
	b.WriteString("</toast>")
	return b.Bytes(), nil
}

// LegacyTile builds a Windows 8 tile of one or more bindings (a square and
// a wide one, typically), as wns 0.5.4's createTile did. Launch, Duration
// and Audio do not apply to tiles and must be empty.
func LegacyTile(o LegacyOptions, bindings ...LegacyBinding) ([]byte, error) {
	if len(bindings) == 0 {
		return nil, fmt.Errorf("wns: tile: no binding: %w", notify.ErrEmpty)
	}
	if o.Launch != "" || o.Duration != "" || o.Audio != "" {
		return nil, fmt.Errorf("wns: tile: launch, duration and audio are toast options")
	}
	var b bytes.Buffer
	b.WriteString("<tile><visual")
	attr(&b, "lang", o.Lang)
	b.WriteByte('>')
	for _, bd := range bindings {
		if err := legacyBinding(&b, "Tile", bd); err != nil {
			return nil, err
		}
	}
	b.WriteString("</visual></tile>")
	return b.Bytes(), nil
}

// legacyBinding writes one binding: its images (id, src, alt), then its
// texts (id), every slot of the template present.
func legacyBinding(b *bytes.Buffer, kind string, bd LegacyBinding) error {
	spec, ok := legacyTemplates[bd.Template]
	if !ok || len(bd.Template) < len(kind) || bd.Template[:len(kind)] != kind {
		return fmt.Errorf("wns: %q is not a Windows 8 %s template tilecast sends", bd.Template, kind)
	}
	if len(bd.Images) > spec[0] || len(bd.Texts) > spec[1] {
		return fmt.Errorf("wns: %s has %d image(s) and %d text(s), got %d and %d",
			bd.Template, spec[0], spec[1], len(bd.Images), len(bd.Texts))
	}
	b.WriteString(`<binding template="`)
	b.WriteString(bd.Template)
	b.WriteString(`">`)
	for i := range spec[0] {
		var img LegacyImage
		if i < len(bd.Images) {
			img = bd.Images[i]
		}
		b.WriteString(`<image id="`)
		b.WriteString(strconv.Itoa(i + 1))
		b.WriteString(`" src="`)
		escapeAttr(b, img.Src)
		b.WriteString(`" alt="`)
		escapeAttr(b, img.Alt)
		b.WriteString(`"/>`)
	}
	for i := range spec[1] {
		var s string
		if i < len(bd.Texts) {
			s = bd.Texts[i]
		}
		b.WriteString(`<text id="`)
		b.WriteString(strconv.Itoa(i + 1))
		b.WriteString(`">`)
		escapeText(b, s)
		b.WriteString("</text>")
	}
	b.WriteString("</binding>")
	return nil
}

// legacyToast maps a toast onto ToastText01/02, or ToastImageAndText01/02
// with the app-logo image.
func (e *Encoder) legacyToast(t notify.Toast) ([]byte, error) {
	var texts []string
	for _, s := range [...]string{t.Text1, t.Text2} {
		if s != "" {
			texts = append(texts, s)
		}
	}
	bd := LegacyBinding{Texts: texts}
	if e.opts.AppLogoImage != "" {
		bd.Template = "ToastImageAndText0" + strconv.Itoa(len(texts))
		bd.Images = []LegacyImage{{Src: e.opts.AppLogoImage}}
	} else {
		bd.Template = "ToastText0" + strconv.Itoa(len(texts))
	}
	return LegacyToast(LegacyOptions{Launch: t.Param, Duration: e.opts.Duration, Audio: e.opts.Audio, Lang: e.opts.Lang}, bd)
}

// legacyLayout maps a tile onto a square and a wide Windows 8 binding:
// text only (TileSquareText04: the title; TileWideText09: the title over
// the newest item), or with the image (TileSquarePeekImageAndText04: the
// image and the title; TileWideImageAndText01: the wide image and the
// newest item). A missing title is replaced by the newest item.
func legacyLayout(c *tileContent) [2]binding {
	title, item := c.title, c.item
	wide := []slot{{"", title}, {"", item}}
	if title == nil {
		title, wide = item, []slot{{"", item}}
	}
	if c.image == "" {
		return [2]binding{
			{"TileSquareText04", "", []slot{{"", title}}},
			{"TileWideText09", "", wide},
		}
	}
	if item == nil {
		item = title
	}
	return [2]binding{
		{"TileSquarePeekImageAndText04", c.image, []slot{{"", title}}},
		{"TileWideImageAndText01", c.wide, []slot{{"", item}}},
	}
}

// legacyTile writes legacyLayout's bindings.
func (e *Encoder) legacyTile(c *tileContent) ([]byte, error) {
	var bds []LegacyBinding
	for _, b := range legacyLayout(c) {
		lb := LegacyBinding{Template: b.template}
		if b.image != "" {
			lb.Images = []LegacyImage{{Src: b.image}}
		}
		for _, sl := range b.texts {
			lb.Texts = append(lb.Texts, str(sl.s))
		}
		bds = append(bds, lb)
	}
	return LegacyTile(LegacyOptions{Lang: e.opts.Lang}, bds...)
}
