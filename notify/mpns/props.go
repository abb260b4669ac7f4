package mpns

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/notify"
)

// Payload kinds accepted by FromProps (the `tilecast send --type` values).
const (
	KindToast  = "toast"
	KindTile   = "tile" // classic tile
	KindFlip   = "flip"
	KindIconic = "iconic"
	KindCycle  = "cycle"
	KindRaw    = "raw"
)

// propSetter stores one property value; clear is true for a JSON null.
type propSetter func(p *builder, v string, clear bool) error

// builder collects properties into a payload.
type builder struct {
	toast notify.Toast
	tile  notify.Tile
	raw   notify.Raw
}

func tileProp(f func(*notify.Tile) *notify.Field) propSetter {
	return func(p *builder, v string, clear bool) error {
		if clear {
			*f(&p.tile) = notify.Clear()
		} else if v != "" { // mpns leaves "" out
			*f(&p.tile) = notify.Value(v)
		}
		return nil
	}
}

func countProp(p *builder, v string, clear bool) error {
	if clear {
		p.tile.Count = notify.Clear()
		return nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 0 || n > 99 {
		return fmt.Errorf("count: %q is not an integer 0–99", v)
	}
	// Deliberately unlike mpns, 0 is sent: it hides the badge.
	p.tile.Count = notify.Value(strconv.Itoa(n))
	return nil
}

// The property tables are built per call (they are tiny) so that no
// package-level map exists that anything could mutate.

func propTile() map[string]propSetter {
	return map[string]propSetter{
		"backgroundImage":     tileProp(func(t *notify.Tile) *notify.Field { return &t.BackgroundImage }),
		"count":               countProp,
		"title":               tileProp(func(t *notify.Tile) *notify.Field { return &t.Title }),
		"backBackgroundImage": tileProp(func(t *notify.Tile) *notify.Field { return &t.BackBackgroundImage }),
		"backTitle":           tileProp(func(t *notify.Tile) *notify.Field { return &t.BackTitle }),
		"backContent":         tileProp(func(t *notify.Tile) *notify.Field { return &t.BackContent }),
	}
}

func propFlipExtra() map[string]propSetter {
	return map[string]propSetter{
		"smallBackgroundImage":    tileProp(func(t *notify.Tile) *notify.Field { return &t.SmallBackgroundImage }),
		"wideBackgroundImage":     tileProp(func(t *notify.Tile) *notify.Field { return &t.WideBackgroundImage }),
		"wideBackContent":         tileProp(func(t *notify.Tile) *notify.Field { return &t.WideBackContent }),
		"wideBackBackgroundImage": tileProp(func(t *notify.Tile) *notify.Field { return &t.WideBackBackgroundImage }),
		// The mpns module also accepted this legacy misspelling.
		"smallbackgroundImage": tileProp(func(t *notify.Tile) *notify.Field { return &t.SmallBackgroundImage }),
	}
}

func propIconic() map[string]propSetter {
	return map[string]propSetter{
		"count":           countProp,
		"title":           tileProp(func(t *notify.Tile) *notify.Field { return &t.Title }),
		"backgroundColor": tileProp(func(t *notify.Tile) *notify.Field { return &t.BackgroundColor }),
		"iconImage":       tileProp(func(t *notify.Tile) *notify.Field { return &t.IconImage }),
		"smallIconImage":  tileProp(func(t *notify.Tile) *notify.Field { return &t.SmallIconImage }),
		"wideContent1":    tileProp(func(t *notify.Tile) *notify.Field { return &t.WideContent1 }),
		"wideContent2":    tileProp(func(t *notify.Tile) *notify.Field { return &t.WideContent2 }),
		"wideContent3":    tileProp(func(t *notify.Tile) *notify.Field { return &t.WideContent3 }),
	}
}

func propCycleBase() map[string]propSetter {
	return map[string]propSetter{
		"count":                countProp,
		"title":                tileProp(func(t *notify.Tile) *notify.Field { return &t.Title }),
		"smallBackgroundImage": tileProp(func(t *notify.Tile) *notify.Field { return &t.SmallBackgroundImage }),
	}
}

func idProp(p *builder, v string, clear bool) error {
	if !clear {
		p.tile.ID = v
	}
	return nil
}

// props returns the property table for kind and the tile template.
func props(kind string) (map[string]propSetter, string, error) {
	m := make(map[string]propSetter)
	add := func(src map[string]propSetter) {
		for k, v := range src {
			m[k] = v
		}
	}
	switch kind {
	case KindToast:
		m["text1"] = func(p *builder, v string, _ bool) error { p.toast.Text1 = v; return nil }
		m["text2"] = func(p *builder, v string, _ bool) error { p.toast.Text2 = v; return nil }
		m["param"] = func(p *builder, v string, _ bool) error { p.toast.Param = v; return nil }
		return m, "", nil
	case KindRaw:
		m["payload"] = func(p *builder, v string, _ bool) error { p.raw.Payload = []byte(v); return nil }
		return m, "", nil
	case KindTile:
		add(propTile())
		m["id"] = idProp
		return m, tilecast.TileClassic, nil
	case KindFlip:
		add(propTile())
		add(propFlipExtra())
		m["id"] = idProp
		return m, tilecast.TileFlip, nil
	case KindIconic:
		add(propIconic())
		m["id"] = idProp
		return m, tilecast.TileIconic, nil
	case KindCycle:
		add(propCycleBase())
		for i := range 9 {
			m["cycleImage"+strconv.Itoa(i+1)] = tileProp(func(t *notify.Tile) *notify.Field { return &t.CycleImages[i] })
		}
		m["id"] = idProp
		return m, tilecast.TileCycle, nil
	}
	return nil, "", fmt.Errorf("unknown payload type %q (want toast, tile, flip, iconic, cycle or raw)", kind)
}

// PropertyNames returns the property names kind accepts, sorted.
func PropertyNames(kind string) ([]string, error) {
	m, _, err := props(kind)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	return names, nil
}

// FromProps builds a payload from properties named as in the mpns module and
// Azure Mobile Services' push.mpns object (text1, backgroundImage, count,
// wideContent1, payload, ...). kind is toast, tile (classic), flip, iconic,
// cycle or raw. An unknown property is an error naming it; an empty value
// leaves the element out, as in mpns; count must be an integer 0–99.
func FromProps(kind string, props map[string]string) (notify.Payload, error) {
	obj := make(map[string]any, len(props))
	for k, v := range props {
		obj[k] = v
	}
	return FromJSON(kind, obj)
}

// FromJSON is FromProps for a decoded JSON object (`tilecast send --json`):
// a null value clears a tile element (Action="Clear"), and count may be a
// number. Values other than strings, null and (for count) whole numbers are
// errors naming the property.
func FromJSON(kind string, obj map[string]any) (notify.Payload, error) {
	table, template, err := props(kind)
	if err != nil {
		return nil, err
	}
	var b builder
	b.tile.Template = template
	// Sorted so that the first error reported does not depend on map order.
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		set, ok := table[k]
		if !ok {
			names, _ := PropertyNames(kind)
			return nil, fmt.Errorf("unknown %s property %q (known: %s)", kind, k, strings.Join(names, " "))
		}
		var (
			s     string
			clear bool
		)
		switch v := obj[k].(type) {
		case nil:
			clear = true
		case string:
			s = v
		case float64:
			if k != "count" || v != math.Trunc(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("%s: a number is not allowed here", k)
			}
			s = strconv.FormatFloat(v, 'f', -1, 64)
		case int:
			if k != "count" {
				return nil, fmt.Errorf("%s: a number is not allowed here", k)
			}
			s = strconv.Itoa(v)
		default:
			return nil, fmt.Errorf("%s: want a string, got %T", k, v)
		}
		if err := set(&b, s, clear); err != nil {
			return nil, err
		}
	}
	switch kind {
	case KindToast:
		return b.toast, nil
	case KindRaw:
		return b.raw, nil
	}
	return b.tile, nil
}
