package wns_test

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"testing"

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

// sameOrCut reports whether got is want, or want cut on a character
// boundary with the ellipsis.
func sameOrCut(got, want string) bool {
	if got == want {
		return true
	}
	prefix, ok := strings.CutSuffix(got, notify.Ellipsis)
	return ok && strings.HasPrefix(want, prefix)
}

// FuzzPayloads builds toasts and tiles from arbitrary text, modern and
// legacy: the payload is well-formed XML within 5,000 bytes, and every
// text comes back as sent (after the removal of what XML cannot carry),
// or cut with "…"; launch comes back exactly.
func FuzzPayloads(f *testing.F) {
	f.Add("Hello & <welcome>", `Ünïcode "quotes"`, `{"id":42,"x":"a&b"}`, "Feed", "Item", "Summary", "https://x.org/a.png", false)
	f.Add("a\r\nb", "\tc\x00d\uFFFE", "/p?a=1\n", "]]>", "<![CDATA[x]]>", "&#13;", "", true)
	f.Add(strings.Repeat("€", 1000), strings.Repeat("x&", 600), "", strings.Repeat("T", 1500), strings.Repeat("é", 800), strings.Repeat("s", 2000), "", false)
	f.Add("", "only text2", "", "", "", "", "ms-appx:///a.png", true)
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
			for i := range sent {
				if !sameOrCut(p.texts[i], sent[i]) {
					t.Fatalf("toast text %d: got %q, sent %q", i, p.texts[i], sent[i])
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
		p := parse(t, body)
		if dn, ok := p.attrs["displayName"]; ok && !sameOrCut(dn, want(title)) {
			t.Fatalf("displayName %q, sent %q", dn, want(title))
		}
		for _, got := range p.texts {
			if got == "" && legacy {
				continue // an empty slot of a legacy template
			}
			if !sameOrCut(got, want(title)) && !sameOrCut(got, want(item)) && !sameOrCut(got, want(detail)) {
				t.Fatalf("tile text %q is none of %q, %q, %q", got, want(title), want(item), want(detail))
			}
		}
		if want(item) != "" && len(p.texts) == 0 {
			t.Fatalf("tile with an item shows no text: %s", body)
		}
	})
}
