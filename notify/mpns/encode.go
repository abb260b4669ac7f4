// Package mpns speaks the Microsoft Push Notification Service wire protocol
// (Windows Phone 7.x/8.x): it encodes toasts, tiles and raw notifications
// byte-for-byte as the npm module mpns 2.1.3 did (the module Azure Mobile
// Services shipped), sends them, and classifies MPNS responses. Where that
// module was wrong, tilecast deliberately differs; each difference is noted
// where it is made.
package mpns

import (
	"bytes"
	"fmt"
	"strconv"
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

// Notification classes (X-NotificationClass batching intervals).
const (
	ClassImmediate = "immediate"
	Class450s      = "450s"
	Class900s      = "900s"
)

// Encoder builds MPNS requests. The zero value matches the mpns module:
// immediate class and no Version attribute.
type Encoder struct {
	// Class is the delivery batching interval: "immediate" (or ""), "450s"
	// or "900s". The mpns module always sent immediate.
	Class string
	// Version2 adds Version="2.0" to wp:Notification for FlipTile,
	// IconicTile and CycleTile, as Microsoft's own templates do; the mpns
	// module (and therefore the goldens) leave it out.
	Version2 bool

	bufs sync.Pool
}

var _ notify.Encoder = (*Encoder)(nil)

// EncoderOptions configures NewEncoder.
type EncoderOptions struct {
	Class    string // see Encoder.Class
	Version2 bool   // see Encoder.Version2
}

// NewEncoder returns an Encoder with opts. An invalid class is reported by
// every Encode call (check it up front with ValidClass).
func NewEncoder(opts EncoderOptions) *Encoder {
	return &Encoder{Class: opts.Class, Version2: opts.Version2}
}

// ValidClass reports whether class is an accepted Class value.
func ValidClass(class string) bool {
	_, err := classIndex(class)
	return err == nil
}

func classIndex(class string) (int, error) {
	switch class {
	case "", ClassImmediate:
		return 0, nil
	case Class450s:
		return 1, nil
	case Class900s:
		return 2, nil
	}
	return 0, fmt.Errorf("mpns: unknown notification class %q (want immediate, 450s or 900s)", class)
}

// X-NotificationClass values: priority×10 + kind (tile 1, toast 2, raw 3),
// spelt out so that no request needs a conversion.
var classValues = [3][3]string{
	{"1", "2", "3"},
	{"11", "12", "13"},
	{"21", "22", "23"},
}

const (
	kindTile = iota
	kindToast
	kindRaw
)

const (
	xmlDecl      = `<?xml version="1.0" encoding="utf-8"?>`
	rootOpen     = `<wp:Notification xmlns:wp="WPNotification">`
	rootOpenV2   = `<wp:Notification xmlns:wp="WPNotification" Version="2.0">`
	rootClose    = `</wp:Notification>`
	targetToast  = "toast"
	targetTile   = "token" // not "tile": the value MPNS expects for every tile kind
	contentType  = "text/xml"
	acceptHeader = "application/*"
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

// request copies the body out of the pooled buffer and adds the headers in
// the mpns module's order. target "" omits X-WindowsPhone-Target (raw).
func (e *Encoder) request(body []byte, kind int, target string) (tilecast.Request, error) {
	ci, err := classIndex(e.Class)
	if err != nil {
		return tilecast.Request{}, err
	}
	n := 5
	if target == "" {
		n = 4
	}
	hs := make([]tilecast.Header, n)
	hs[0] = tilecast.Header{Name: "Content-Type", Value: contentType}
	hs[1] = tilecast.Header{Name: "Content-Length", Value: strconv.Itoa(len(body))}
	hs[2] = tilecast.Header{Name: "Accept", Value: acceptHeader}
	hs[3] = tilecast.Header{Name: "X-NotificationClass", Value: classValues[ci][kind]}
	if target != "" {
		hs[4] = tilecast.Header{Name: "X-WindowsPhone-Target", Value: target}
	}
	return tilecast.Request{Headers: hs, Body: bytes.Clone(body)}, nil
}

// EncodeToast implements notify.Encoder. Empty fields are left out.
func (e *Encoder) EncodeToast(t notify.Toast) (tilecast.Request, error) {
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
	return e.request(b.Bytes(), kindToast, targetToast)
}

// EncodeRaw implements notify.Encoder: the payload is sent verbatim.
func (e *Encoder) EncodeRaw(r notify.Raw) (tilecast.Request, error) {
	return e.request(r.Payload, kindRaw, "")
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
func (e *Encoder) EncodeTile(t notify.Tile) (tilecast.Request, error) {
	l, err := layoutFor(t.Template)
	if err != nil {
		return tilecast.Request{}, err
	}
	if err := checkTileFields(l, &t); err != nil {
		return tilecast.Request{}, err
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
	return e.request(b.Bytes(), kindTile, targetTile)
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
