package notify

import (
	"errors"

	"github.com/tilecast/tilecast"
)

// ErrEmpty is returned for a toast with no text or a tile with nothing to
// update: the mpns module refused both, and a phone would show nothing.
var ErrEmpty = errors.New("empty payload")

// Encoder turns the payload model into the payload bytes of one transport
// (notify/mpns: the XML body); the transport adds its headers when it
// sends. Encoders only serialise; the text limits are applied by Fit and
// the Renderer before and after calling them.
type Encoder interface {
	EncodeToast(Toast) ([]byte, error)
	EncodeTile(Tile) ([]byte, error)
	EncodeRaw(Raw) ([]byte, error)
	// MaxTyped is the body limit in bytes for toasts and tiles.
	MaxTyped() int
	// MaxRaw is the body limit in bytes for raw notifications.
	MaxRaw() int
}

// Payload is a Toast, a Tile, a Raw or a Badge.
type Payload interface {
	// Kind reports the notification kind of the payload.
	Kind() tilecast.Kind
}

// Toast is a toast notification. Empty fields are left out.
type Toast struct {
	Text1 string // bold title line
	Text2 string // body line
	Param string // page URI (plus query) opened on tap; never altered

	// Feed and ItemID say what the toast is about: the feed's name and
	// the item's ID (the Renderer sets them). ItemID is "" for the feed's
	// summary toast, both are "" for a toast built by hand. They are not
	// text: no encoder shows them and Fit never cuts them. A transport
	// that names its notifications, so that a newer one replaces an older
	// one on the device (Web Push's tag), derives the name from them; the
	// others ignore them, so their bytes do not depend on them.
	Feed   string
	ItemID string
}

// Kind implements Payload.
func (Toast) Kind() tilecast.Kind { return tilecast.KindToast }

// FieldState says whether a tile field is sent, and how.
type FieldState uint8

// Field states. The zero value leaves the element out, which leaves the
// phone's current value in place.
const (
	Absent  FieldState = iota // element left out
	Present                   // element sent with Value
	Cleared                   // element sent with Action="Clear" (the phone resets it)
)

// Field is one optional tile element.
type Field struct {
	Value string
	State FieldState
}

// Value returns a present field holding s. An empty s is still sent (as an
// empty element); the Renderer leaves empty template output absent instead.
func Value(s string) Field { return Field{Value: s, State: Present} }

// Clear returns a field that tells the phone to reset the element.
func Clear() Field { return Field{State: Cleared} }

// Tile is a tile update. Which fields a template kind may carry is fixed by
// the kind (see TileFields); Count holds a decimal integer 0–99, and unlike
// the mpns module a count of 0 is sent, because that is what hides the badge.
type Tile struct {
	Template string // tilecast.TileFlip, TileClassic, TileIconic, TileCycle ("" = classic)
	ID       string // secondary tile navigation URI; "" = primary tile; never altered

	BackgroundImage         Field
	Count                   Field
	Title                   Field
	BackBackgroundImage     Field
	BackTitle               Field
	BackContent             Field
	SmallBackgroundImage    Field
	WideBackgroundImage     Field
	WideBackContent         Field
	WideBackBackgroundImage Field
	BackgroundColor         Field
	IconImage               Field
	SmallIconImage          Field
	WideContent1            Field
	WideContent2            Field
	WideContent3            Field
	CycleImages             [9]Field
}

// Kind implements Payload.
func (Tile) Kind() tilecast.Kind { return tilecast.KindTile }

// Raw is an opaque raw notification, delivered only to a running app.
type Raw struct {
	Payload []byte
}

// Kind implements Payload.
func (Raw) Kind() tilecast.Kind { return tilecast.KindRaw }

// Tile template kind bits, for the field table.
const (
	kClassic = 1 << iota
	kFlip
	kIconic
	kCycle
	kAll = kClassic | kFlip | kIconic | kCycle
)

func kindBit(template string) (uint8, bool) {
	switch template {
	case tilecast.TileClassic, "":
		return kClassic, true
	case tilecast.TileFlip:
		return kFlip, true
	case tilecast.TileIconic:
		return kIconic, true
	case tilecast.TileCycle:
		return kCycle, true
	}
	return 0, false
}

// tileField describes one templated tile element: its config key, the
// template kinds that carry it, whether it is free text (and so may be
// truncated; URLs and colours never are), and how to reach it in the spec
// and in the model.
type tileField struct {
	key   string
	kinds uint8
	text  bool
	spec  func(*tilecast.TileSpec) string
}

// tileFields lists the elements in the mpns module's order. Count is
// handled specially (integer parsing) but lives here for validation.
var tileFields = [...]tileField{
	{"background_image", kClassic | kFlip, false,
		func(s *tilecast.TileSpec) string { return s.BackgroundImage }},
	{"count", kAll, false,
		func(s *tilecast.TileSpec) string { return s.Count }},
	{"title", kAll, true,
		func(s *tilecast.TileSpec) string { return s.Title }},
	{"back_background_image", kClassic | kFlip, false,
		func(s *tilecast.TileSpec) string { return s.BackBackgroundImage }},
	{"back_title", kClassic | kFlip, true,
		func(s *tilecast.TileSpec) string { return s.BackTitle }},
	{"back_content", kClassic | kFlip, true,
		func(s *tilecast.TileSpec) string { return s.BackContent }},
	{"small_background_image", kFlip | kCycle, false,
		func(s *tilecast.TileSpec) string { return s.SmallBackgroundImage }},
	{"wide_background_image", kFlip, false,
		func(s *tilecast.TileSpec) string { return s.WideBackgroundImage }},
	{"wide_back_content", kFlip, true,
		func(s *tilecast.TileSpec) string { return s.WideBackContent }},
	{"wide_back_background_image", kFlip, false,
		func(s *tilecast.TileSpec) string { return s.WideBackBackgroundImage }},
	{"background_color", kIconic, false,
		func(s *tilecast.TileSpec) string { return s.BackgroundColor }},
	{"icon_image", kIconic, false,
		func(s *tilecast.TileSpec) string { return s.IconImage }},
	{"small_icon_image", kIconic, false,
		func(s *tilecast.TileSpec) string { return s.SmallIconImage }},
	{"wide_content1", kIconic, true,
		func(s *tilecast.TileSpec) string { return s.WideContent1 }},
	{"wide_content2", kIconic, true,
		func(s *tilecast.TileSpec) string { return s.WideContent2 }},
	{"wide_content3", kIconic, true,
		func(s *tilecast.TileSpec) string { return s.WideContent3 }},
}

// field returns the element at position i of tileFields. A switch rather
// than a table of funcs: escape analysis can see through it, so a Tile
// being rendered stays on the stack.
func (t *Tile) field(i int) *Field {
	switch i {
	case 0:
		return &t.BackgroundImage
	case 1:
		return &t.Count
	case 2:
		return &t.Title
	case 3:
		return &t.BackBackgroundImage
	case 4:
		return &t.BackTitle
	case 5:
		return &t.BackContent
	case 6:
		return &t.SmallBackgroundImage
	case 7:
		return &t.WideBackgroundImage
	case 8:
		return &t.WideBackContent
	case 9:
		return &t.WideBackBackgroundImage
	case 10:
		return &t.BackgroundColor
	case 11:
		return &t.IconImage
	case 12:
		return &t.SmallIconImage
	case 13:
		return &t.WideContent1
	case 14:
		return &t.WideContent2
	case 15:
		return &t.WideContent3
	}
	panic("notify: tile field index out of range")
}

// countIndex is the position of count in tileFields.
const countIndex = 1

// TileFields reports the config keys of the templated elements a tile
// template kind carries (besides id), in wire order, for error messages and
// documentation. It returns nil for an unknown kind.
func TileFields(template string) []string {
	bit, ok := kindBit(template)
	if !ok {
		return nil
	}
	var keys []string
	for i := range tileFields {
		if tileFields[i].kinds&bit != 0 {
			keys = append(keys, tileFields[i].key)
		}
	}
	if bit == kCycle {
		keys = append(keys, "cycle_images")
	}
	return keys
}
