// Package mpns speaks the Microsoft Push Notification Service wire protocol
// (Windows Phone 7.x/8.x): it encodes toasts, tiles and raw notifications
// byte-for-byte as the npm module mpns 2.1.3 did (the module Azure Mobile
// Services shipped), builds their requests with that module's header names
// and values (NewRequest), sends them through notify/pushhttp, and
// classifies MPNS responses. Where that module was wrong, tilecast
// deliberately differs; each difference is noted where it is made.
package mpns

import (
	"bytes"
	"fmt"
	"sync"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/notify"
)

// Payload limits. Microsoft documents 3 KB of payload for toasts and tiles
// (plus 1 KB of headers) and 1 KB for raw notifications.
const (
	MaxTyped = 3072
	MaxRaw   = 1024
)

// Encoder builds MPNS payloads (the XML bodies; NewRequest adds the
// headers when the payload is sent). The zero value matches the mpns
// module: no Version attribute.
type Encoder struct {
	// Version2 adds Version="2.0" to wp:Notification for FlipTile,
	// IconicTile and CycleTile, as Microsoft's own templates do; the mpns
	// module (and therefore the goldens) leave it out.
	Version2 bool

	bufs sync.Pool
}

var _ notify.Encoder = (*Encoder)(nil)

// EncoderOptions configures NewEncoder.
type EncoderOptions struct {
	Version2 bool // see Encoder.Version2
}

// NewEncoder returns an Encoder with opts.
func NewEncoder(opts EncoderOptions) *Encoder {
	return &Encoder{Version2: opts.Version2}
}

const (
	xmlDecl    = `<?xml version="1.0" encoding="utf-8"?>`
	rootOpen   = `<wp:Notification xmlns:wp="WPNotification">`
	rootOpenV2 = `<wp:Notification xmlns:wp="WPNotification" Version="2.0">`
	rootClose  = `</wp:Notification>`
)

// MaxTyped implements notify.Encoder.
func (e *Encoder) MaxTyped() int { return MaxTyped }

// MaxRaw implements notify.Encoder.
func (e *Encoder) MaxRaw() int { return MaxRaw }

func (e *Encoder) buffer() *bytes.Buffer {
	if b, ok := e.bufs.Get().(*bytes.Buffer); ok {
		b.Reset()
		return b
	}
	b := new(bytes.Buffer)
	b.Grow(1024)
	return b
}

func (e *Encoder) release(b *bytes.Buffer) {
	if b.Cap() <= 64<<10 {
		e.bufs.Put(b)
	}
}

// EncodeToast implements notify.Encoder. Empty fields are left out.
func (e *Encoder) EncodeToast(t notify.Toast) ([]byte, error) {
	b := e.buffer()
	defer e.release(b)
	b.WriteString(xmlDecl)
	b.WriteString(rootOpen)
	b.WriteString("<wp:Toast>")
	element(b, "Text1", t.Text1)
	element(b, "Text2", t.Text2)
	element(b, "Param", t.Param)
	b.WriteString("</wp:Toast>")
	b.WriteString(rootClose)
	return bytes.Clone(b.Bytes()), nil // out of the pooled buffer
}

// EncodeRaw implements notify.Encoder: the payload is sent verbatim.
func (e *Encoder) EncodeRaw(r notify.Raw) ([]byte, error) {
	return bytes.Clone(r.Payload), nil
}

// tileElem is one tile element, named as on the wire and as in notify.Tile.
type tileElem uint8

const (
	eBackgroundImage tileElem = iota
	eCount
	eTitle
	eBackBackgroundImage
	eBackTitle
	eBackContent
	eSmallBackgroundImage
	eWideBackgroundImage
	eWideBackContent
	eWideBackBackgroundImage
	eBackgroundColor
	eIconImage
	eSmallIconImage
	eWideContent1
	eWideContent2
	eWideContent3
)

var elemNames = [...]string{"BackgroundImage", "Count", "Title", "BackBackgroundImage", "BackTitle", "BackContent", "SmallBackgroundImage", "WideBackgroundImage", "WideBackContent", "WideBackBackgroundImage", "BackgroundColor", "IconImage", "SmallIconImage", "WideContent1", "WideContent2", "WideContent3"}

func (e tileElem) String() string { return elemNames[e] }

// field returns the model field of element e. A switch rather than a table
// of funcs, so that escape analysis keeps the Tile on the stack.
func (e tileElem) field(t *notify.Tile) *notify.Field {
	switch e {
	case eBackgroundImage:
		return &t.BackgroundImage
	case eCount:
		return &t.Count
	case eTitle:
		return &t.Title
	case eBackBackgroundImage:
		return &t.BackBackgroundImage
	case eBackTitle:
		return &t.BackTitle
	case eBackContent:
		return &t.BackContent
	case eSmallBackgroundImage:
		return &t.SmallBackgroundImage
	case eWideBackgroundImage:
		return &t.WideBackgroundImage
	case eWideBackContent:
		return &t.WideBackContent
	case eWideBackBackgroundImage:
		return &t.WideBackBackgroundImage
	case eBackgroundColor:
		return &t.BackgroundColor
	case eIconImage:
		return &t.IconImage
	case eSmallIconImage:
		return &t.SmallIconImage
	case eWideContent1:
		return &t.WideContent1
	case eWideContent2:
		return &t.WideContent2
	case eWideContent3:
		return &t.WideContent3
	}
	panic("mpns: unknown tile element")
}

// cycleElems are CycleImage1..9 (element names precomputed).
var cycleNames = [9]string{"CycleImage1", "CycleImage2", "CycleImage3", "CycleImage4",
	"CycleImage5", "CycleImage6", "CycleImage7", "CycleImage8", "CycleImage9"}

// tileLayout is the element order of each template kind. Classic, flip and
// iconic follow the mpns module (its single property order, filtered by
// kind); the module has no CycleTile, so that one follows Microsoft's
// template: SmallBackgroundImage, CycleImage1..9, Count, Title.
type tileLayout struct {
	attr  string // Template attribute value; "" for classic tiles
	elems []tileElem
	cycle bool // CycleImage1..9 after the first element
}

var (
	layoutClassic = tileLayout{"", []tileElem{eBackgroundImage, eCount, eTitle, eBackBackgroundImage, eBackTitle, eBackContent}, false}
	layoutFlip    = tileLayout{"FlipTile", []tileElem{eBackgroundImage, eCount, eTitle, eBackBackgroundImage, eBackTitle, eBackContent,
		eSmallBackgroundImage, eWideBackgroundImage, eWideBackContent, eWideBackBackgroundImage}, false}
	layoutIconic = tileLayout{"IconicTile", []tileElem{eCount, eTitle, eBackgroundColor, eIconImage, eSmallIconImage,
		eWideContent1, eWideContent2, eWideContent3}, false}
	layoutCycle = tileLayout{"CycleTile", []tileElem{eSmallBackgroundImage, eCount, eTitle}, true}
)

func layoutFor(template string) (*tileLayout, error) {
	switch template {
	case "", tilecast.TileClassic:
		return &layoutClassic, nil
	case tilecast.TileFlip:
		return &layoutFlip, nil
	case tilecast.TileIconic:
		return &layoutIconic, nil
	case tilecast.TileCycle:
		return &layoutCycle, nil
	}
	return nil, fmt.Errorf("mpns: unknown tile template %q", template)
}

// EncodeTile implements notify.Encoder. A field the template kind does not
// carry is an error rather than silently dropped, so a mismatch between
// config and kind shows up instead of a tile that never changes.
func (e *Encoder) EncodeTile(t notify.Tile) ([]byte, error) {
	l, err := layoutFor(t.Template)
	if err != nil {
		return nil, err
	}
	if err := checkTileFields(l, &t); err != nil {
		return nil, err
	}
	b := e.buffer()
	defer e.release(b)
	b.WriteString(xmlDecl)
	if e.Version2 && l.attr != "" {
		b.WriteString(rootOpenV2)
	} else {
		b.WriteString(rootOpen)
	}
	b.WriteString("<wp:Tile")
	if l.attr != "" {
		b.WriteString(` Template="`)
		b.WriteString(l.attr)
		b.WriteByte('"')
	}
	if t.ID != "" {
		b.WriteString(` Id="`)
		escape(b, t.ID)
		b.WriteByte('"')
	}
	b.WriteByte('>')
	for i, el := range l.elems {
		tileElement(b, elemNames[el], *el.field(&t))
		if i == 0 && l.cycle {
			for j := range t.CycleImages {
				tileElement(b, cycleNames[j], t.CycleImages[j])
			}
		}
	}
	b.WriteString("</wp:Tile>")
	b.WriteString(rootClose)
	return bytes.Clone(b.Bytes()), nil // out of the pooled buffer
}

func checkTileFields(l *tileLayout, t *notify.Tile) error {
	for el := range tileElem(len(elemNames)) {
		if el.field(t).State == notify.Absent {
			continue
		}
		found := false
		for _, have := range l.elems {
			if have == el {
				found = true
				break
			}
		}
		if !found {
			return fmt.Errorf("mpns: a %s tile has no %s element", kindName(t.Template), el)
		}
	}
	if !l.cycle {
		for j := range t.CycleImages {
			if t.CycleImages[j].State != notify.Absent {
				return fmt.Errorf("mpns: a %s tile has no %s element", kindName(t.Template), cycleNames[j])
			}
		}
	}
	return nil
}

func kindName(template string) string {
	if template == "" {
		return tilecast.TileClassic
	}
	return template
}

// element writes <wp:name>value</wp:name>, or nothing for an empty value,
// as the mpns module dropped falsy values.
func element(b *bytes.Buffer, name, value string) {
	if value == "" {
		return
	}
	b.WriteString("<wp:")
	b.WriteString(name)
	b.WriteByte('>')
	escape(b, value)
	b.WriteString("</wp:")
	b.WriteString(name)
	b.WriteByte('>')
}

// tileElement writes a tile field: nothing when absent, an Action="Clear"
// element (open and close tags, as mpns wrote it) when cleared, else the
// value — an empty present value is written as an empty element.
func tileElement(b *bytes.Buffer, name string, f notify.Field) {
	switch f.State {
	case notify.Absent:
		return
	case notify.Cleared:
		b.WriteString("<wp:")
		b.WriteString(name)
		b.WriteString(` Action="Clear"></wp:`)
		b.WriteString(name)
		b.WriteByte('>')
		return
	}
	b.WriteString("<wp:")
	b.WriteString(name)
	b.WriteByte('>')
	escape(b, f.Value)
	b.WriteString("</wp:")
	b.WriteString(name)
	b.WriteByte('>')
}

// escape writes s with the mpns module's four substitutions: & < > " (in
// that precedence; apostrophes and non-ASCII pass through as UTF-8).
// encoding/xml's EscapeText would not be byte-compatible: it writes &#34;
// and escapes tab, newline and carriage return.
func escape(b *bytes.Buffer, s string) {
	last := 0
	for i := 0; i < len(s); i++ {
		var rep string
		switch s[i] {
		case '&':
			rep = "&amp;"
		case '<':
			rep = "&lt;"
		case '>':
			rep = "&gt;"
		case '"':
			rep = "&quot;"
		default:
			continue
		}
		b.WriteString(s[last:i])
		b.WriteString(rep)
		last = i + 1
	}
	b.WriteString(s[last:])
}
