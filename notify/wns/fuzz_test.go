package wns_test

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/notify"
	"github.com/tilecast/tilecast/notify/wns"
)

// parsed is what a device would read out of a payload.
type parsed struct {
	texts    []string            // every <text>, in order
	attrs    map[string]string   // launch, displayName (the last seen of each)
	bindings map[string][]string // the <text>s of each <binding>, by its template
}

func parse(t *testing.T, body []byte) parsed {
	t.Helper()
	p := parsed{attrs: map[string]string{}, bindings: map[string][]string{}}
	d := xml.NewDecoder(bytes.NewReader(body))
	d.Strict = true
	var in *strings.Builder
	binding := ""
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			return p
		}
		if err != nil {
			t.Fatalf("not well-formed: %v\n%q", err, body)
		}
		switch el := tok.(type) {
		case xml.StartElement:
			for _, a := range el.Attr {
				if a.Name.Local == "launch" || a.Name.Local == "displayName" {
					p.attrs[a.Name.Local] = a.Value
				}
			}
			switch el.Name.Local {
			case "text":
				in = &strings.Builder{}
			case "binding":
				binding = ""
				for _, a := range el.Attr {
					if a.Name.Local == "template" {
						binding = a.Value
					}
				}
				if _, dup := p.bindings[binding]; dup {
					t.Fatalf("two bindings with template %q:\n%s", binding, body)
				}
				p.bindings[binding] = []string{}
			}
		case xml.CharData:
			if in != nil {
				in.Write(el)
			}
		case xml.EndElement:
			if el.Name.Local == "text" && in != nil {
				p.texts = append(p.texts, in.String())
				p.bindings[binding] = append(p.bindings[binding], in.String())
				in = nil
			}
		}
	}
}

// cutOf reports how got, a text the device read, relates to want, the
// sanitized text sent, under Fit's cutting rule (notify's cutEscaped):
// either got is want unchanged (cut false), or got is a proper prefix of
// want that ends on a character boundary and has no trailing white space,
// followed by the ellipsis (cut true; kept is that prefix). ok is false
// for anything else: a text cut mid-character, one with a bare ellipsis
// appended, one that is not want's beginning.
func cutOf(got, want string) (kept string, cut, ok bool) {
	if got == want {
		return "", false, true
	}
	kept, found := strings.CutSuffix(got, notify.Ellipsis)
	ok = found && len(kept) < len(want) && strings.HasPrefix(want, kept) &&
		utf8.RuneStart(want[len(kept)]) && strings.TrimRightFunc(kept, unicode.IsSpace) == kept
	return kept, true, ok
}

// oneMore returns want's beginning kept, plus what cutEscaped dropped
// after it up to and including the next character that is not white
// space: the shortest text a longer cut could have kept. ok is false
// when only white space follows kept.
func oneMore(kept, want string) (string, bool) {
	rest := want[len(kept):]
	i := strings.IndexFunc(rest, func(r rune) bool { return !unicode.IsSpace(r) })
	if i < 0 {
		return "", false
	}
	_, n := utf8.DecodeRuneInString(rest[i:])
	return want[:len(kept)+i+n], true
}

// brief shows s for a failure message: its length and its last characters.
func brief(s string) string {
	if utf8.RuneCountInString(s) <= 40 {
		return fmt.Sprintf("%q", s)
	}
	r := []rune(s)
	return fmt.Sprintf("%d bytes …%q", len(s), string(r[len(r)-30:]))
}

// FuzzPayloads builds toasts and tiles from arbitrary text, modern and
// legacy: the payload is well-formed XML within 5,000 bytes; a payload
// that fits whole is sent unchanged (after the removal of what XML cannot
// carry); otherwise every text comes back as sent or cut on a character
// boundary with "…" (cutOf), and a toast text cut alone keeps as much as
// fits; launch comes back exactly. Both ways: every text in a tile is one
// that was sent, and every text sent is in the tile where the mapping
// (tileTexts) puts it, so a text the encoder drops is caught too.
func FuzzPayloads(f *testing.F) {
	f.Add("Hello & <welcome>", `Ünïcode "quotes"`, `{"id":42,"x":"a&b"}`, "Feed", "Item", "Summary", "https://x.org/a.png", false)
	f.Add("a\r\nb", "\tc\x00d\uFFFE", "/p?a=1\n", "]]>", "<![CDATA[x]]>", "&#13;", "", true)
	f.Add(strings.Repeat("€", 1000), strings.Repeat("x&", 600), "", strings.Repeat("T", 1500), strings.Repeat("é", 800), strings.Repeat("s", 2000), "", false)
	f.Add("", "only text2", "", "", "", "", "ms-appx:///a.png", true)
	// One text cut alone: between words, between multi-byte characters,
	// and inside a run of white space (dropped before the ellipsis).
	f.Add("Short", strings.Repeat("word ", 1200), "/p", "T", strings.Repeat("item ", 1200), "", "", false)
	f.Add(strings.Repeat("é", 2600), "Short", "", "", "", strings.Repeat("d", 6000), "", true)
	f.Add("Long"+strings.Repeat(" ", 6000)+"end", "", "", "", "", "", "", true)
	// A legacy tile whose title sanitizes to nothing: the item moves up.
	f.Add("0", "0", "0", "\x13", "0", "0", "\x10", true)
	f.Fuzz(func(t *testing.T, text1, text2, param, title, item, detail, img string, legacy bool) {
		enc, err := wns.NewEncoder(wns.EncoderOptions{Legacy: legacy})
		if err != nil {
			t.Fatal(err)
		}
		want := func(s string) string { return notify.Sanitize(s) }

		// Toast.
		body, err := notify.Fit(enc, notify.Toast{Text1: text1, Text2: text2, Param: param})
		switch {
		case errors.Is(err, notify.ErrEmpty):
			if want(text1) != "" || want(text2) != "" {
				t.Fatalf("toast with text refused as empty")
			}
		case errors.Is(err, tilecast.ErrPayloadTooLarge):
			if len(param) < 1000 {
				t.Fatalf("toast with a %d-byte param too large: %v", len(param), err)
			}
		case err != nil:
			t.Fatal(err)
		default:
			if len(body) > wns.MaxPayload {
				t.Fatalf("toast of %d bytes", len(body))
			}
			p := parse(t, body)
			var sent []string
			for _, s := range []string{want(text1), want(text2)} {
				if s != "" {
					sent = append(sent, s)
				}
			}
			if len(p.texts) != len(sent) {
				t.Fatalf("toast texts %q, sent %q", p.texts, sent)
			}
			// Fit cuts only a toast that does not fit whole.
			uncut := notify.Toast{Text1: want(text1), Text2: want(text2), Param: want(param)}
			if whole, err := enc.EncodeToast(uncut); err == nil && len(whole) <= enc.MaxTyped() && !bytes.Equal(body, whole) {
				t.Fatalf("toast of %d bytes fits but was changed:\n%s\nwant\n%s", len(whole), body, whole)
			}
			var cuts []int
			for i := range sent {
				_, cut, ok := cutOf(p.texts[i], sent[i])
				if !ok {
					t.Fatalf("toast text %d: got %s, sent %s: neither unchanged nor its beginning (cut on a character boundary, no trailing white space) with %q",
						i, brief(p.texts[i]), brief(sent[i]), notify.Ellipsis)
				}
				if cut {
					cuts = append(cuts, i)
				}
			}
			// A text cut alone keeps as much as fits: one character more
			// (and the white space the cut dropped before it) would not.
			// Only where the body grows by the text's escaped length, as
			// Fit reckons: a carriage return is sent as &#13;, which Fit
			// counts as one byte and makes up for in a further round.
			if len(cuts) == 1 && !strings.ContainsRune(text1+text2, '\r') {
				i := cuts[0]
				kept, _, _ := cutOf(p.texts[i], sent[i])
				if longer, ok := oneMore(kept, sent[i]); ok {
					texts := slices.Clone(p.texts)
					texts[i] = longer + notify.Ellipsis
					alt := notify.Toast{Text1: texts[0], Param: want(param)}
					if len(texts) == 2 {
						alt.Text2 = texts[1]
					}
					if b, err := enc.EncodeToast(alt); err == nil && len(b) <= enc.MaxTyped() {
						t.Fatalf("toast text %d cut to %s, but %s fits too (%d bytes)", i, brief(p.texts[i]), brief(texts[i]), len(b))
					}
				}
			}
			if p.attrs["launch"] != want(param) {
				t.Fatalf("launch %q, sent %q", p.attrs["launch"], want(param))
			}
		}

		// Tile.
		tile := notify.Tile{Template: tilecast.TileFlip, Count: notify.Value("5")}
		for _, fv := range []struct {
			f *notify.Field
			v string
		}{{&tile.Title, title}, {&tile.BackContent, item}, {&tile.WideBackContent, detail}, {&tile.BackBackgroundImage, img}} {
			if fv.v != "" {
				*fv.f = notify.Value(fv.v)
			}
		}
		body, err = notify.Fit(enc, tile)
		// The same tile with its fields sanitized, as Fit encodes it first.
		whole := tile
		for _, f := range []*notify.Field{&whole.Title, &whole.BackContent, &whole.WideBackContent, &whole.BackBackgroundImage} {
			f.Value = want(f.Value)
		}
		switch {
		case errors.Is(err, notify.ErrEmpty):
			if want(title) != "" || want(item) != "" || want(img) != "" {
				t.Fatalf("tile with content refused as empty")
			}
			return
		case errors.Is(err, tilecast.ErrPayloadTooLarge):
			if len(img) < 600 {
				t.Fatalf("tile with a %d-byte image too large: %v", len(img), err)
			}
			return
		case err != nil:
			t.Fatal(err)
		}
		if len(body) > wns.MaxPayload {
			t.Fatalf("tile of %d bytes", len(body))
		}
		// Fit cuts only a tile that does not fit whole.
		if uncut, err := enc.EncodeTile(whole); err == nil && len(uncut) <= enc.MaxTyped() && !bytes.Equal(body, uncut) {
			t.Fatalf("tile of %d bytes fits but was changed:\n%s\nwant\n%s", len(uncut), body, uncut)
		}
		p := parse(t, body)
		sameOrCut := func(got, want string) bool { _, _, ok := cutOf(got, want); return ok }
		if dn, ok := p.attrs["displayName"]; ok && !sameOrCut(dn, want(title)) {
			t.Fatalf("displayName %s, sent %s", brief(dn), brief(want(title)))
		}
		for _, got := range p.texts {
			if got == "" && legacy {
				continue // an empty slot of a legacy template
			}
			if !sameOrCut(got, want(title)) && !sameOrCut(got, want(item)) && !sameOrCut(got, want(detail)) {
				t.Fatalf("tile text %s is none of %s, %s, %s", brief(got), brief(want(title)), brief(want(item)), brief(want(detail)))
			}
		}
		// And the other way: each text the mapping puts in the payload is
		// there, in its binding and slot, whole or cut.
		if !legacy && want(title) != "" && !sameOrCut(p.attrs["displayName"], want(title)) {
			t.Fatalf("displayName %s, sent title %s", brief(p.attrs["displayName"]), brief(want(title)))
		}
		for template, slots := range tileTexts(want(title), want(item), want(detail), want(img) != "", legacy) {
			got, ok := p.bindings[template]
			if !ok {
				t.Fatalf("no %s binding:\n%s", template, body)
			}
			if legacy {
				// A legacy template has all its slots; the unused ones are
				// empty texts.
				got, slots = trimEmpty(got), trimEmpty(slots)
			}
			if len(got) != len(slots) {
				t.Fatalf("%s texts %s, want %d: %s, whole or cut", template, briefs(got), len(slots), briefs(slots))
			}
			for i, s := range slots {
				if !sameOrCut(got[i], s) {
					t.Fatalf("%s text %d is %s, want %s whole or cut", template, i+1, brief(got[i]), brief(s))
				}
			}
		}
	})
}

// briefs is brief of each of s.
func briefs(s []string) string {
	b := make([]string, len(s))
	for i, v := range s {
		b[i] = brief(v)
	}
	return "[" + strings.Join(b, ", ") + "]"
}

// trimEmpty returns s without its trailing empty strings.
func trimEmpty(s []string) []string {
	for len(s) > 0 && s[len(s)-1] == "" {
		s = s[:len(s)-1]
	}
	return s
}

// tileTexts is the mapping of FuzzPayloads' tile fields (sanitized) onto
// the <text>s of each binding, as README's table "What each transport
// gets" has it: the newest item (back_content; the title when there is
// none) is the text of every size, TileSmall only when it has no image,
// and wide_back_content a second text on TileWide and TileLarge; the
// title is the displayName. The legacy templates, as wns@0.5.4 filled
// them, show the title and the newest item and no wide_back_content:
// TileSquareText04 the title, TileWideText09 the title over the item
// (the item first without a title), or with an image
// TileSquarePeekImageAndText04 the title and TileWideImageAndText01 the
// item; a missing title is replaced by the item, a missing item by the
// title. Empty texts are missing ones.
func tileTexts(title, item, detail string, image, legacy bool) map[string][]string {
	texts := func(s ...string) []string {
		var out []string
		for _, v := range s {
			if v != "" {
				out = append(out, v)
			}
		}
		return out
	}
	if legacy {
		square, wide := title, []string{title, item}
		if title == "" {
			square, wide = item, []string{item}
		}
		if !image {
			return map[string][]string{"TileSquareText04": {square}, "TileWideText09": wide}
		}
		if item == "" {
			item = title
		}
		return map[string][]string{"TileSquarePeekImageAndText04": {square}, "TileWideImageAndText01": {item}}
	}
	main := item
	if main == "" {
		main = title
	}
	m := map[string][]string{
		"TileSmall":  texts(main),
		"TileMedium": texts(main),
		"TileWide":   texts(main, detail),
		"TileLarge":  texts(main, detail),
	}
	if image {
		m["TileSmall"] = nil
	}
	return m
}
