package emulator

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"
)

// WNS limits and vocabularies (protocols.md §3), checked with the
// emulator's own parser: it shares nothing with notify/wns, so it catches
// the sender's mistakes instead of repeating them.
const wnsMaxPayload = 5000

// wnsTemplates are the Windows 8 tile and toast templates with their image
// and text slots (Microsoft's template catalogs), plus the adaptive ones
// (-1: free-form content). The size is where a tile binding shows.
var wnsTemplates = map[string]struct {
	images, texts int
	size          string
}{
	"ToastGeneric":        {-1, -1, ""},
	"ToastText01":         {0, 1, ""},
	"ToastText02":         {0, 2, ""},
	"ToastText03":         {0, 2, ""},
	"ToastText04":         {0, 3, ""},
	"ToastImageAndText01": {1, 1, ""},
	"ToastImageAndText02": {1, 2, ""},
	"ToastImageAndText03": {1, 2, ""},
	"ToastImageAndText04": {1, 3, ""},

	"TileSmall":  {-1, -1, "small"},
	"TileMedium": {-1, -1, "medium"},
	"TileWide":   {-1, -1, "wide"},
	"TileLarge":  {-1, -1, "large"},

	"TileSquareBlock":               {0, 2, "medium"},
	"TileSquareText01":              {0, 4, "medium"},
	"TileSquareText02":              {0, 2, "medium"},
	"TileSquareText03":              {0, 4, "medium"},
	"TileSquareText04":              {0, 1, "medium"},
	"TileSquareImage":               {1, 0, "medium"},
	"TileSquarePeekImageAndText01":  {1, 4, "medium"},
	"TileSquarePeekImageAndText02":  {1, 2, "medium"},
	"TileSquarePeekImageAndText03":  {1, 4, "medium"},
	"TileSquarePeekImageAndText04":  {1, 1, "medium"},
	"TileWideText01":                {0, 5, "wide"},
	"TileWideText02":                {0, 9, "wide"},
	"TileWideText03":                {0, 1, "wide"},
	"TileWideText04":                {0, 1, "wide"},
	"TileWideText05":                {0, 5, "wide"},
	"TileWideText06":                {0, 10, "wide"},
	"TileWideText07":                {0, 9, "wide"},
	"TileWideText08":                {0, 10, "wide"},
	"TileWideText09":                {0, 2, "wide"},
	"TileWideText10":                {0, 9, "wide"},
	"TileWideText11":                {0, 10, "wide"},
	"TileWideImage":                 {1, 0, "wide"},
	"TileWideImageCollection":       {5, 0, "wide"},
	"TileWideImageAndText01":        {1, 1, "wide"},
	"TileWideImageAndText02":        {1, 2, "wide"},
	"TileWideBlockAndText01":        {0, 6, "wide"},
	"TileWideBlockAndText02":        {0, 3, "wide"},
	"TileWideSmallImageAndText01":   {1, 1, "wide"},
	"TileWideSmallImageAndText02":   {1, 5, "wide"},
	"TileWideSmallImageAndText03":   {1, 1, "wide"},
	"TileWideSmallImageAndText04":   {1, 2, "wide"},
	"TileWideSmallImageAndText05":   {1, 2, "wide"},
	"TileWidePeekImageCollection01": {5, 2, "wide"},
	"TileWidePeekImageCollection02": {5, 5, "wide"},
	"TileWidePeekImageCollection03": {5, 1, "wide"},
	"TileWidePeekImageCollection04": {5, 1, "wide"},
	"TileWidePeekImageCollection05": {6, 2, "wide"},
	"TileWidePeekImageCollection06": {6, 1, "wide"},
	"TileWidePeekImageAndText01":    {1, 1, "wide"},
	"TileWidePeekImageAndText02":    {1, 5, "wide"},
	"TileWidePeekImage01":           {1, 2, "wide"},
	"TileWidePeekImage02":           {1, 5, "wide"},
	"TileWidePeekImage03":           {1, 1, "wide"},
	"TileWidePeekImage04":           {1, 1, "wide"},
	"TileWidePeekImage05":           {2, 2, "wide"},
	"TileWidePeekImage06":           {2, 1, "wide"},
}

// wnsBadgeGlyphs are the badge values besides numbers.
var wnsBadgeGlyphs = map[string]bool{
	"none": true, "activity": true, "alarm": true, "alert": true, "attention": true, "available": true,
	"away": true, "busy": true, "error": true, "newMessage": true, "paused": true, "playing": true, "unavailable": true,
}

// wnsSounds are the system sounds of the toast audio catalog.
func wnsSound(name string) bool {
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

// wnsBinding is one binding as the device stores it.
type wnsBinding struct {
	template string
	texts    []string
	images   []wnsImage
	// displayName and branding of this binding, else the visual's
	displayName, branding string
}

type wnsImage struct {
	src, placement string
}

// wnsPayload is a validated WNS notification.
type wnsPayload struct {
	typ string // toast, tile, badge, raw

	// toast
	launch, duration, scenario, audio string
	silent, loop                      bool

	// toast (one binding) and tile (one per size)
	visualName, visualBranding string
	bindings                   []wnsBinding

	badge string
	raw   []byte
}

// xmlWalker reads one element tree with strict checks.
type xmlWalker struct {
	d *xml.Decoder
}

// parseWNS checks a payload of X-WNS-Type typ (toast, tile, badge) the
// way WNS and a Windows device would.
func parseWNS(typ string, body []byte) (*wnsPayload, error) {
	p := &wnsPayload{typ: typ}
	if typ == "raw" {
		p.raw = body
		return p, nil
	}
	if !utf8.Valid(body) {
		return nil, reject("payload is not valid UTF-8")
	}
	w := &xmlWalker{d: xml.NewDecoder(bytes.NewReader(body))}
	w.d.Strict = true
	seenRoot := false
	for {
		tok, err := w.d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, reject("malformed XML: %v", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if seenRoot {
				return nil, reject("content after the root element")
			}
			seenRoot = true
			if t.Name.Space != "" {
				return nil, reject("root element %s has a namespace; WNS payloads have none", t.Name.Local)
			}
			if t.Name.Local != typ {
				return nil, reject("root element <%s> sent with X-WNS-Type wns/%s", t.Name.Local, typ)
			}
			switch typ {
			case "toast":
				err = w.toast(t, p)
			case "tile":
				err = w.tile(t, p)
			case "badge":
				err = w.badge(t, p)
			}
			if err != nil {
				return nil, err
			}
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return nil, reject("text outside the root element")
			}
		case xml.Directive:
			return nil, reject("XML directives (DOCTYPE) are not allowed")
		case xml.ProcInst:
			if t.Target != "xml" {
				return nil, reject("processing instruction %q not allowed", t.Target)
			}
		}
	}
	if !seenRoot {
		return nil, reject("not XML: no root element")
	}
	return p, nil
}

// attrs checks el's attributes against allowed (name → check, nil check =
// any value) and returns them by name.
func attrs(el xml.StartElement, allowed map[string]func(string) bool) (map[string]string, error) {
	out := make(map[string]string, len(el.Attr))
	for _, a := range el.Attr {
		if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
			return nil, reject("namespace declaration on <%s>: WNS payloads have no namespace", el.Name.Local)
		}
		name := a.Name.Local
		if a.Name.Space != "" {
			return nil, reject("attribute %s:%s on <%s>", a.Name.Space, name, el.Name.Local)
		}
		check, ok := allowed[name]
		if !ok {
			return nil, reject("unknown attribute %s on <%s>", name, el.Name.Local)
		}
		if check != nil && !check(a.Value) {
			return nil, reject("bad value %q for %s on <%s>", a.Value, name, el.Name.Local)
		}
		if _, dup := out[name]; dup {
			return nil, reject("attribute %s twice on <%s>", name, el.Name.Local)
		}
		out[name] = a.Value
	}
	return out, nil
}

func oneOf(vals ...string) func(string) bool {
	return func(s string) bool {
		for _, v := range vals {
			if s == v {
				return true
			}
		}
		return false
	}
}

func isBool(s string) bool { return s == "true" || s == "false" }

func isUint(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= 0 && strconv.Itoa(n) == s
}

// imageSrc accepts what a Windows app can load: http(s), ms-appx:,
// ms-appdata:, or a path relative to the app package.
func imageSrc(s string) bool {
	if s == "" {
		return false
	}
	u, err := url.Parse(s)
	if err != nil {
		return false
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https":
		return u.Host != ""
	case "ms-appx", "ms-appdata", "":
		return true
	}
	return false
}

func langTag(s string) bool {
	if s == "" || len(s) > 35 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

// children walks el's children: each element goes to f, text that is not
// white space is refused.
func (w *xmlWalker) children(el string, f func(xml.StartElement) error) error {
	for {
		tok, err := w.d.Token()
		if err != nil {
			return reject("malformed XML: %v", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if t.Name.Space != "" {
				return reject("element %s:%s inside <%s>", t.Name.Space, t.Name.Local, el)
			}
			if err := f(t); err != nil {
				return err
			}
		case xml.EndElement:
			return nil
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return reject("text directly inside <%s>", el)
			}
		case xml.Directive, xml.ProcInst:
			return reject("directive or processing instruction inside <%s>", el)
		}
	}
}

// leaf reads the text of an element that may not contain elements.
func (w *xmlWalker) leaf(el string) (string, error) {
	var sb strings.Builder
	for {
		tok, err := w.d.Token()
		if err != nil {
			return "", reject("malformed XML: %v", err)
		}
		switch t := tok.(type) {
		case xml.CharData:
			sb.Write(t)
		case xml.EndElement:
			return sb.String(), nil
		case xml.StartElement:
			return "", reject("element <%s> inside <%s>", t.Name.Local, el)
		case xml.Directive, xml.ProcInst:
			return "", reject("directive or processing instruction inside <%s>", el)
		}
	}
}

// skip consumes the rest of an element the device accepts but does not show.
func (w *xmlWalker) skip() error {
	if err := w.d.Skip(); err != nil {
		return reject("malformed XML: %v", err)
	}
	return nil
}

var (
	visualAttrs = map[string]func(string) bool{
		"lang": langTag, "baseUri": nil, "branding": oneOf("none", "logo", "name", "nameAndLogo"),
		"addImageQuery": isBool, "contentId": nil, "displayName": nil, "version": oneOf("1", "2", "3", "4"), "arguments": nil,
	}
	bindingAttrs = map[string]func(string) bool{
		"template": nil, "fallback": nil, "lang": langTag, "baseUri": nil, "branding": oneOf("none", "logo", "name", "nameAndLogo"),
		"addImageQuery": isBool, "contentId": nil, "displayName": nil, "arguments": nil,
		"hint-textStacking": oneOf("top", "center", "bottom"), "hint-overlay": isUint,
		"hint-presentation": oneOf("people", "photos", "contact"), "hint-lockDetailedStatus1": nil,
		"hint-lockDetailedStatus2": nil, "hint-lockDetailedStatus3": nil,
	}
	textAttrs = map[string]func(string) bool{
		"id": isUint, "lang": langTag, "hint-style": nil, "hint-wrap": isBool, "hint-maxLines": isUint,
		"hint-minLines": isUint, "hint-align": oneOf("auto", "left", "center", "right"), "placement": oneOf("attribution"),
		"hint-callScenarioCenterAlign": isBool,
	}
	imageAttrs = map[string]func(string) bool{
		"id": isUint, "src": imageSrc, "alt": nil, "addImageQuery": isBool,
		"placement": oneOf("inline", "background", "peek", "appLogoOverride", "hero"),
		"hint-crop": oneOf("none", "circle"), "hint-removeMargin": isBool, "hint-align": oneOf("stretch", "left", "center", "right"),
		"hint-overlay": isUint,
	}
)

// visual reads a <visual> and its bindings; kind is "Toast" or "Tile".
func (w *xmlWalker) visual(el xml.StartElement, kind string, p *wnsPayload) error {
	va, err := attrs(el, visualAttrs)
	if err != nil {
		return err
	}
	p.visualName, p.visualBranding = va["displayName"], va["branding"]
	sizes := map[string]bool{}
	err = w.children("visual", func(c xml.StartElement) error {
		if c.Name.Local != "binding" {
			return reject("unknown element <%s> in <visual>", c.Name.Local)
		}
		b, err := w.binding(c, kind)
		if err != nil {
			return err
		}
		if kind == "Toast" && len(p.bindings) > 0 {
			return reject("a toast has one binding")
		}
		if size := wnsTemplates[b.template].size; size != "" {
			if sizes[size] {
				return reject("two bindings for the %s size", size)
			}
			sizes[size] = true
		}
		p.bindings = append(p.bindings, b)
		return nil
	})
	if err != nil {
		return err
	}
	if len(p.bindings) == 0 {
		return reject("<visual> has no binding")
	}
	return nil
}

// binding reads one <binding>: a known template of the kind, its slots
// within the template's counts.
func (w *xmlWalker) binding(el xml.StartElement, kind string) (wnsBinding, error) {
	ba, err := attrs(el, bindingAttrs)
	if err != nil {
		return wnsBinding{}, err
	}
	b := wnsBinding{template: ba["template"], displayName: ba["displayName"], branding: ba["branding"]}
	spec, ok := wnsTemplates[b.template]
	if !ok || !strings.HasPrefix(b.template, kind) {
		return b, reject("binding template %q is not a %s template", b.template, strings.ToLower(kind))
	}
	adaptive := spec.texts < 0
	textIDs, imageIDs := map[int]bool{}, map[int]bool{}
	var content func(c xml.StartElement, depth int) error
	content = func(c xml.StartElement, depth int) error {
		switch c.Name.Local {
		case "text":
			ta, err := attrs(c, textAttrs)
			if err != nil {
				return err
			}
			s, err := w.leaf("text")
			if err != nil {
				return err
			}
			if !adaptive {
				id, _ := strconv.Atoi(ta["id"])
				if id < 1 || id > spec.texts || textIDs[id] {
					return reject("%s has text slots 1-%d; got id %q", b.template, spec.texts, ta["id"])
				}
				textIDs[id] = true
			}
			b.texts = append(b.texts, s)
			return nil
		case "image":
			ia, err := attrs(c, imageAttrs)
			if err != nil {
				return err
			}
			if _, ok := ia["src"]; !ok {
				return reject("<image> without src")
			}
			if !adaptive {
				id, _ := strconv.Atoi(ia["id"])
				if id < 1 || id > spec.images || imageIDs[id] {
					return reject("%s has image slots 1-%d; got id %q", b.template, spec.images, ia["id"])
				}
				imageIDs[id] = true
			}
			if err := w.skip(); err != nil {
				return err
			}
			b.images = append(b.images, wnsImage{src: ia["src"], placement: ia["placement"]})
			return nil
		case "group":
			if !adaptive || depth > 0 {
				return reject("<group> only in an adaptive binding")
			}
			if _, err := attrs(c, nil); err != nil {
				return err
			}
			return w.children("group", func(sg xml.StartElement) error {
				if sg.Name.Local != "subgroup" {
					return reject("<%s> in <group>: only <subgroup>", sg.Name.Local)
				}
				if _, err := attrs(sg, map[string]func(string) bool{"hint-weight": isUint, "hint-textStacking": oneOf("top", "center", "bottom")}); err != nil {
					return err
				}
				return w.children("subgroup", func(x xml.StartElement) error {
					if x.Name.Local != "text" && x.Name.Local != "image" {
						return reject("<%s> in <subgroup>", x.Name.Local)
					}
					return content(x, depth+1)
				})
			})
		case "progress":
			if kind != "Toast" || !adaptive {
				return reject("<progress> only in a ToastGeneric binding")
			}
			return w.skip()
		}
		return reject("unknown element <%s> in <binding template=%q>", c.Name.Local, b.template)
	}
	if err := w.children("binding", func(c xml.StartElement) error { return content(c, 0) }); err != nil {
		return b, err
	}
	return b, nil
}

func (w *xmlWalker) toast(el xml.StartElement, p *wnsPayload) error {
	ta, err := attrs(el, map[string]func(string) bool{
		"launch": nil, "duration": oneOf("short", "long"), "scenario": oneOf("reminder", "alarm", "incomingCall", "urgent"),
		"activationType": oneOf("foreground", "background", "protocol"), "displayTimestamp": nil, "useButtonStyle": isBool,
	})
	if err != nil {
		return err
	}
	p.launch, p.duration, p.scenario = ta["launch"], ta["duration"], ta["scenario"]
	seen := map[string]bool{}
	err = w.children("toast", func(c xml.StartElement) error {
		if seen[c.Name.Local] {
			return reject("<%s> twice in <toast>", c.Name.Local)
		}
		seen[c.Name.Local] = true
		switch c.Name.Local {
		case "visual":
			return w.visual(c, "Toast", p)
		case "audio":
			return w.audio(c, p)
		case "actions", "header":
			return w.skip()
		}
		return reject("unknown element <%s> in <toast>", c.Name.Local)
	})
	if err != nil {
		return err
	}
	if !seen["visual"] {
		return reject("<toast> has no <visual>")
	}
	if b := p.bindings[0]; b.template == "ToastGeneric" && len(b.texts) == 0 {
		return reject("a ToastGeneric toast needs at least one <text>: Windows shows nothing without it")
	}
	return nil
}

func (w *xmlWalker) audio(el xml.StartElement, p *wnsPayload) error {
	aa, err := attrs(el, map[string]func(string) bool{"src": nil, "loop": isBool, "silent": isBool})
	if err != nil {
		return err
	}
	if src, ok := aa["src"]; ok {
		name, isSystem := strings.CutPrefix(src, "ms-winsoundevent:Notification.")
		switch {
		case isSystem && !wnsSound(name):
			return reject("audio src %q is not a system sound", src)
		case !isSystem && !strings.HasPrefix(src, "ms-appx:///") && !strings.HasPrefix(src, "ms-appdata:///"):
			return reject("audio src %q: want ms-winsoundevent:Notification.*, ms-appx:/// or ms-appdata:///", src)
		}
		p.audio = src
	}
	p.silent, p.loop = aa["silent"] == "true", aa["loop"] == "true"
	if p.loop && p.duration != "long" && p.scenario == "" {
		return reject(`a looping sound needs duration="long" or a scenario`)
	}
	return w.skip()
}

func (w *xmlWalker) tile(el xml.StartElement, p *wnsPayload) error {
	if _, err := attrs(el, nil); err != nil {
		return err
	}
	seen := false
	err := w.children("tile", func(c xml.StartElement) error {
		if c.Name.Local != "visual" {
			return reject("unknown element <%s> in <tile>", c.Name.Local)
		}
		if seen {
			return reject("<visual> twice in <tile>")
		}
		seen = true
		return w.visual(c, "Tile", p)
	})
	if err != nil {
		return err
	}
	if !seen {
		return reject("<tile> has no <visual>")
	}
	return nil
}

func (w *xmlWalker) badge(el xml.StartElement, p *wnsPayload) error {
	ba, err := attrs(el, map[string]func(string) bool{"value": nil, "version": oneOf("1", "2")})
	if err != nil {
		return err
	}
	v, ok := ba["value"]
	switch {
	case !ok:
		return reject("<badge> without value")
	case isUint(v):
	case wnsBadgeGlyphs[v]:
	default:
		return reject("badge value %q: want a number or a glyph (none, alert, …)", v)
	}
	p.badge = v
	return w.children("badge", func(c xml.StartElement) error {
		return reject("<%s> inside <badge>", c.Name.Local)
	})
}

// badgeShown is what the tile shows for a badge value: "" for none or 0,
// "99+" above 99.
func badgeShown(v string) string {
	if n, err := strconv.Atoi(v); err == nil {
		switch {
		case n <= 0:
			return ""
		case n > 99:
			return "99+"
		}
		return strconv.Itoa(n)
	}
	if v == "none" {
		return ""
	}
	return v
}

// wnsType maps X-WNS-Type to the payload type.
func wnsType(h string) (string, error) {
	switch h {
	case "wns/toast":
		return "toast", nil
	case "wns/tile":
		return "tile", nil
	case "wns/badge":
		return "badge", nil
	case "wns/raw":
		return "raw", nil
	case "":
		return "", reject("missing X-WNS-Type")
	}
	return "", reject("X-WNS-Type %q: want wns/toast, wns/tile, wns/badge or wns/raw", h)
}
