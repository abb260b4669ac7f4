package emulator

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MPNS limits (protocols.md §1.4).
const (
	maxHeaderBytes = 1024 // all request headers together
	maxTypedBytes  = 3072 // toast and tile payloads
	maxRawBytes    = 1024 // raw payloads
	maxCount       = 99
)

// nsWP is the literal namespace URN MPNS payloads bind the wp prefix to.
const nsWP = "WPNotification"

type pushKind uint8

const (
	kindRaw pushKind = iota
	kindToast
	kindTile
)

func (k pushKind) String() string {
	switch k {
	case kindToast:
		return "toast"
	case kindTile:
		return "tile"
	}
	return "raw"
}

// classBase is the immediate X-NotificationClass of the kind; +10 and +20
// are the batched variants.
func (k pushKind) classBase() int {
	switch k {
	case kindTile:
		return 1
	case kindToast:
		return 2
	}
	return 3
}

func (k pushKind) element() string {
	if k == kindToast {
		return "Toast"
	}
	return "Tile"
}

// field is one tile element. The order only matters for the bit masks below.
type field uint8

const (
	fBackgroundImage field = iota
	fCount
	fTitle
	fBackBackgroundImage
	fBackTitle
	fBackContent
	fSmallBackgroundImage
	fWideBackgroundImage
	fWideBackContent
	fWideBackBackgroundImage
	fSmallIconImage
	fIconImage
	fWideContent1
	fWideContent2
	fWideContent3
	fBackgroundColor
	fCycleImage1
	fCycleImage2
	fCycleImage3
	fCycleImage4
	fCycleImage5
	fCycleImage6
	fCycleImage7
	fCycleImage8
	fCycleImage9
	nFields
)

func (f field) String() string {
	return [nFields]string{
		"BackgroundImage", "Count", "Title", "BackBackgroundImage", "BackTitle", "BackContent",
		"SmallBackgroundImage", "WideBackgroundImage", "WideBackContent", "WideBackBackgroundImage",
		"SmallIconImage", "IconImage", "WideContent1", "WideContent2", "WideContent3", "BackgroundColor",
		"CycleImage1", "CycleImage2", "CycleImage3", "CycleImage4", "CycleImage5", "CycleImage6",
		"CycleImage7", "CycleImage8", "CycleImage9",
	}[f]
}

func fieldByName(s string) (field, bool) {
	for f := field(0); f < nFields; f++ {
		if f.String() == s {
			return f, true
		}
	}
	return 0, false
}

// Which elements each tile template allows (protocols.md §1.3).
const (
	maskClassic = 1<<fBackgroundImage | 1<<fCount | 1<<fTitle | 1<<fBackBackgroundImage | 1<<fBackTitle | 1<<fBackContent
	maskFlip    = maskClassic | 1<<fSmallBackgroundImage | 1<<fWideBackgroundImage | 1<<fWideBackContent | 1<<fWideBackBackgroundImage
	maskIconic  = 1<<fSmallIconImage | 1<<fIconImage | 1<<fWideContent1 | 1<<fWideContent2 | 1<<fWideContent3 | 1<<fCount | 1<<fTitle | 1<<fBackgroundColor
	maskCycle   = 1<<fSmallBackgroundImage | 1<<fCount | 1<<fTitle | 1<<fCycleImage1 | 1<<fCycleImage2 | 1<<fCycleImage3 |
		1<<fCycleImage4 | 1<<fCycleImage5 | 1<<fCycleImage6 | 1<<fCycleImage7 | 1<<fCycleImage8 | 1<<fCycleImage9
)

func templateMask(tpl string) (uint32, bool) {
	switch tpl {
	case "":
		return maskClassic, true
	case "FlipTile":
		return maskFlip, true
	case "IconicTile":
		return maskIconic, true
	case "CycleTile":
		return maskCycle, true
	}
	return 0, false
}

// tileOp is what one element asks the phone to do with one field.
type tileOp struct {
	set   bool // element present
	clear bool // Action="Clear"
	value string
}

// push is a validated notification.
type push struct {
	kind     pushKind
	class    int // X-NotificationClass, 0 when absent
	text1    string
	text2    string
	param    string
	sound    string
	silent   bool
	template string
	id       string
	ops      [nFields]tileOp
	count    int // parsed Count when ops[fCount].set && !clear
	raw      []byte
}

// rejectError is a reason to answer 400 (or status, when set).
type rejectError struct {
	status int
	reason string
}

func (e *rejectError) Error() string { return e.reason }

func reject(format string, a ...any) error {
	return &rejectError{status: http.StatusBadRequest, reason: fmt.Sprintf(format, a...)}
}

// headerSize approximates the bytes the request headers took on the wire.
func headerSize(r *http.Request) int {
	n := len("Host: \r\n") + len(r.Host)
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + len(": \r\n") + len(v)
		}
	}
	return n
}

// checkHeaders validates everything but the body and returns the push kind.
func checkHeaders(r *http.Request) (pushKind, int, error) {
	if n := headerSize(r); n > maxHeaderBytes {
		return 0, 0, reject("request headers are %d bytes, MPNS allows %d", n, maxHeaderBytes)
	}
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return 0, 0, reject("missing Content-Type, want text/xml")
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return 0, 0, reject("bad Content-Type %q: %v", ct, err)
	}
	if mt != "text/xml" {
		return 0, 0, reject("Content-Type is %q, want text/xml", mt)
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return 0, 0, reject("Content-Type charset is %q, want utf-8", cs)
	}

	var kind pushKind
	targets := r.Header.Values("X-WindowsPhone-Target")
	switch {
	case len(targets) == 0:
		kind = kindRaw
	case len(targets) > 1:
		return 0, 0, reject("X-WindowsPhone-Target sent %d times", len(targets))
	case targets[0] == "toast":
		kind = kindToast
	case targets[0] == "token":
		kind = kindTile
	default:
		return 0, 0, reject("X-WindowsPhone-Target is %q, want toast, token (tiles) or absent (raw)", targets[0])
	}

	class := 0
	if cls := r.Header.Values("X-NotificationClass"); len(cls) > 0 {
		// Missing is allowed: MPNS then applies its default priority.
		if len(cls) > 1 {
			return 0, 0, reject("X-NotificationClass sent %d times", len(cls))
		}
		c, err := strconv.Atoi(cls[0])
		base := kind.classBase()
		if err != nil || (c != base && c != base+10 && c != base+20) {
			return 0, 0, reject("X-NotificationClass %q is not valid for %s (want %d, %d or %d)", cls[0], kind, base, base+10, base+20)
		}
		class = c
	}
	return kind, class, nil
}

// readBody reads at most the limit for kind, rejecting anything longer.
func readBody(r *http.Request, kind pushKind, buf *bytes.Buffer) error {
	limit := int64(maxTypedBytes)
	if kind == kindRaw {
		limit = maxRawBytes
	}
	if r.ContentLength > limit {
		return reject("%s payload is %d bytes, MPNS allows %d", kind, r.ContentLength, limit)
	}
	n, err := buf.ReadFrom(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return fmt.Errorf("read body: %w", err)
	}
	if n > limit {
		return reject("%s payload is over %d bytes", kind, limit)
	}
	if n == 0 {
		return reject("empty %s payload", kind)
	}
	return nil
}

// parsePayload checks a typed payload the way MPNS and the phone would and
// returns what it asks for. It streams the tokens instead of unmarshalling
// so that it sees unknown elements and attributes instead of dropping them.
func parsePayload(kind pushKind, body []byte, p *push) error {
	p.kind = kind
	if kind == kindRaw {
		// Raw is opaque, but a typed payload without the target header is
		// a classic sender bug the phone would never show as a toast/tile.
		if bytes.Contains(body, []byte(nsWP)) {
			return reject("raw push (no X-WindowsPhone-Target) carries a %s payload: missing X-WindowsPhone-Target?", nsWP)
		}
		p.raw = body
		return nil
	}
	if !utf8.Valid(body) {
		return reject("payload is not valid UTF-8")
	}
	d := xml.NewDecoder(bytes.NewReader(body))
	d.Strict = true
	// CharsetReader stays nil: a declared encoding other than utf-8 fails.
	seenRoot := false
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return reject("malformed XML: %v", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if seenRoot {
				return reject("content after the root element")
			}
			seenRoot = true
			if err := parseRoot(d, t, kind, p); err != nil {
				return err
			}
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return reject("not XML: text outside the root element")
			}
		case xml.Directive:
			return reject("XML directives (DOCTYPE) are not allowed")
		case xml.ProcInst:
			if t.Target != "xml" {
				return reject("processing instruction %q not allowed", t.Target)
			}
		}
	}
	if !seenRoot {
		return reject("not XML: no root element")
	}
	return nil
}

func isNSDecl(a xml.Attr) bool {
	return a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns")
}

func parseRoot(d *xml.Decoder, root xml.StartElement, kind pushKind, p *push) error {
	if root.Name.Space != nsWP || root.Name.Local != "Notification" {
		return reject("root element is {%s}%s, want wp:Notification in namespace %q", root.Name.Space, root.Name.Local, nsWP)
	}
	for _, a := range root.Attr {
		switch {
		case isNSDecl(a):
		case a.Name.Space == "" && a.Name.Local == "Version":
			if a.Value != "2.0" {
				return reject("Notification Version is %q, want 2.0", a.Value)
			}
		default:
			return reject("unknown attribute %s on Notification", a.Name.Local)
		}
	}
	seenChild := false
	for {
		tok, err := d.Token()
		if err != nil {
			return reject("malformed XML: %v", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if seenChild {
				return reject("Notification has more than one child")
			}
			seenChild = true
			if t.Name.Space != nsWP {
				return reject("element %s is not in namespace %q", t.Name.Local, nsWP)
			}
			switch {
			case t.Name.Local == "Toast" && kind == kindToast:
				err = parseToast(d, t, p)
			case t.Name.Local == "Tile" && kind == kindTile:
				err = parseTile(d, t, p)
			case t.Name.Local == "Toast" || t.Name.Local == "Tile":
				return reject("wp:%s payload sent with X-WindowsPhone-Target for %s", t.Name.Local, kind)
			default:
				return reject("unknown element wp:%s in Notification", t.Name.Local)
			}
			if err != nil {
				return err
			}
		case xml.EndElement:
			if !seenChild {
				return reject("Notification has no wp:%s element", kind.element())
			}
			return nil
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return reject("text directly inside Notification")
			}
		case xml.Directive, xml.ProcInst:
			return reject("directive or processing instruction inside Notification")
		}
	}
}

// leafText reads the text of an element that may not contain elements.
func leafText(d *xml.Decoder, name string) (string, error) {
	var sb strings.Builder
	for {
		tok, err := d.Token()
		if err != nil {
			return "", reject("malformed XML: %v", err)
		}
		switch t := tok.(type) {
		case xml.CharData:
			sb.Write(t)
		case xml.EndElement:
			return sb.String(), nil
		case xml.StartElement:
			return "", reject("element %s inside wp:%s", t.Name.Local, name)
		case xml.Directive, xml.ProcInst:
			return "", reject("directive or processing instruction inside wp:%s", name)
		}
	}
}

func parseToast(d *xml.Decoder, el xml.StartElement, p *push) error {
	for _, a := range el.Attr {
		if !isNSDecl(a) {
			return reject("unknown attribute %s on wp:Toast", a.Name.Local)
		}
	}
	var seen uint8
	for {
		tok, err := d.Token()
		if err != nil {
			return reject("malformed XML: %v", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if t.Name.Space != nsWP {
				return reject("element %s is not in namespace %q", t.Name.Local, nsWP)
			}
			var bit uint8
			var dst *string
			switch t.Name.Local {
			case "Text1":
				bit, dst = 1, &p.text1
			case "Text2":
				bit, dst = 2, &p.text2
			case "Param":
				bit, dst = 4, &p.param
			case "Sound":
				bit, dst = 8, &p.sound
			default:
				return reject("unknown element wp:%s in Toast (allowed: Text1 Text2 Param Sound)", t.Name.Local)
			}
			if seen&bit != 0 {
				return reject("wp:%s appears twice", t.Name.Local)
			}
			seen |= bit
			for _, a := range t.Attr {
				switch {
				case isNSDecl(a):
				case t.Name.Local == "Sound" && a.Name.Local == "Silent" && (a.Value == "true" || a.Value == "false"):
					p.silent = a.Value == "true"
				default:
					return reject("unknown attribute %s on wp:%s", a.Name.Local, t.Name.Local)
				}
			}
			if *dst, err = leafText(d, t.Name.Local); err != nil {
				return err
			}
		case xml.EndElement:
			if p.text1 == "" && p.text2 == "" {
				return reject("toast has neither Text1 nor Text2")
			}
			return nil
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return reject("text directly inside wp:Toast")
			}
		case xml.Directive, xml.ProcInst:
			return reject("directive or processing instruction inside wp:Toast")
		}
	}
}

func parseTile(d *xml.Decoder, el xml.StartElement, p *push) error {
	for _, a := range el.Attr {
		switch {
		case isNSDecl(a):
		case a.Name.Space == "" && a.Name.Local == "Template":
			if _, ok := templateMask(a.Value); !ok || a.Value == "" {
				return reject("Template %q is not FlipTile, IconicTile or CycleTile", a.Value)
			}
			p.template = a.Value
		case a.Name.Space == "" && a.Name.Local == "Id":
			p.id = a.Value
		default:
			return reject("unknown attribute %s on wp:Tile", a.Name.Local)
		}
	}
	mask, _ := templateMask(p.template)
	for {
		tok, err := d.Token()
		if err != nil {
			return reject("malformed XML: %v", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if t.Name.Space != nsWP {
				return reject("element %s is not in namespace %q", t.Name.Local, nsWP)
			}
			f, ok := fieldByName(t.Name.Local)
			if !ok || mask&(1<<f) == 0 {
				tpl := p.template
				if tpl == "" {
					tpl = "classic Tile"
				}
				return reject("unknown element wp:%s for %s", t.Name.Local, tpl)
			}
			op := &p.ops[f]
			if op.set {
				return reject("wp:%s appears twice", f)
			}
			op.set = true
			for _, a := range t.Attr {
				switch {
				case isNSDecl(a):
				case a.Name.Space == "" && a.Name.Local == "Action" && a.Value == "Clear":
					op.clear = true
				case a.Name.Space == "" && a.Name.Local == "Action":
					return reject("Action %q on wp:%s, only Clear is allowed", a.Value, f)
				default:
					return reject("unknown attribute %s on wp:%s", a.Name.Local, f)
				}
			}
			if op.value, err = leafText(d, f.String()); err != nil {
				return err
			}
			if op.clear {
				op.value = ""
				continue
			}
			switch f {
			case fCount:
				n, err := strconv.Atoi(strings.TrimSpace(op.value))
				if err != nil || n < 0 || n > maxCount {
					return reject("Count %q is not an integer 0-%d", op.value, maxCount)
				}
				p.count = n
			case fBackgroundColor:
				if !validColor(strings.TrimSpace(op.value)) {
					return reject("BackgroundColor %q is not #AARRGGBB", op.value)
				}
			}
		case xml.EndElement:
			return nil
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return reject("text directly inside wp:Tile")
			}
		case xml.Directive, xml.ProcInst:
			return reject("directive or processing instruction inside wp:Tile")
		}
	}
}

// validColor accepts #AARRGGBB (and #RRGGBB, which WP8 also parses).
func validColor(s string) bool {
	if (len(s) != 9 && len(s) != 7) || s[0] != '#' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}
