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
	texts []string          // every <text>, in order
	attrs map[string]string // launch, displayName (the last seen of each)
}

func parse(t *testing.T, body []byte) parsed {
	t.Helper()
	p := parsed{attrs: map[string]string{}}
	d := xml.NewDecoder(bytes.NewReader(body))
	d.Strict = true
	var in *strings.Builder
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
			if el.Name.Local == "text" {
				in = &strings.Builder{}
			}
		case xml.CharData:
			if in != nil {
				in.Write(el)
			}
		case xml.EndElement:
			if el.Name.Local == "text" && in != nil {
				p.texts = append(p.texts, in.String())
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
// fits; launch comes back exactly.
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
		if want(item) != "" && len(p.texts) == 0 {
			t.Fatalf("tile with an item shows no text: %s", body)
		}
	})
}
