package mpns_test

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/notify"
	"github.com/tilecast/tilecast/notify/mpns"
)

// parseFields decodes a payload strictly and returns the text of every
// wp: element (and the Tile Id attribute as "@Id").
func parseFields(t *testing.T, body []byte) map[string]string {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(body))
	d.Strict = true
	out := map[string]string{}
	var cur string
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("payload is not well-formed XML: %v\n%q", err, body)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			cur = tok.Name.Local
			if _, ok := out[cur]; !ok {
				out[cur] = ""
			}
			for _, a := range tok.Attr {
				if a.Name.Local == "Id" {
					out["@Id"] = a.Value
				}
			}
		case xml.CharData:
			out[cur] += string(tok)
		case xml.EndElement:
			cur = ""
		}
	}
}

// norm applies XML end-of-line handling, which the parser performs.
func norm(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n")
}

// checkText asserts that got is in (sanitised) either unchanged, or a
// prefix of it followed by the ellipsis.
func checkText(t *testing.T, field, in, got string) {
	t.Helper()
	want := norm(notify.Sanitize(in))
	if got == want {
		return
	}
	cut, ok := strings.CutSuffix(got, notify.Ellipsis)
	if !ok || !strings.HasPrefix(want, cut) {
		t.Fatalf("%s = %q, want %q or a prefix of it with %q", field, got, want, notify.Ellipsis)
	}
}

func fuzzData(title, summary, id string) *tilecast.TemplateData {
	return &tilecast.TemplateData{
		Feed:     tilecast.FeedInfo{Name: "f", Title: "Feed"},
		Item:     tilecast.Item{ID: id, Title: title, Summary: summary},
		NewCount: len(title),
	}
}

// cutAll is a text field cut as far as Fit can cut it: an ellipsis, or
// nothing when the text sanitises to nothing.
func cutAll(s string) string {
	if notify.Sanitize(s) == "" {
		return ""
	}
	return notify.Ellipsis
}

func cutField(s string) notify.Field {
	if c := cutAll(s); c != "" {
		return notify.Value(c)
	}
	return notify.Field{}
}

// untouchedTooLarge reports whether p, holding the fields Fit never alters
// (param, id, URLs, count) and every text field cut to an ellipsis, is
// still over the limit once escaped: then ErrPayloadTooLarge is the right
// answer. (Escaping can grow a field fivefold: & becomes &amp;.)
func untouchedTooLarge(t *testing.T, p notify.Payload) bool {
	t.Helper()
	var (
		body []byte
		err  error
	)
	enc := &mpns.Encoder{}
	switch p := p.(type) {
	case notify.Toast:
		p.Param = notify.Sanitize(p.Param)
		body, err = enc.EncodeToast(p)
	case notify.Tile:
		p.ID = notify.Sanitize(p.ID)
		body, err = enc.EncodeTile(p)
	}
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	return len(body) > mpns.MaxTyped
}

func FuzzToast(f *testing.F) {
	f.Add("Hello & <welcome>", "Ünïcode \"quotes\"", "/Item.xaml?id=42&x=1")
	f.Add("ctl\x00\x1f\uFFFE\xff", "]]> <![CDATA[", "")
	f.Add(strings.Repeat("long & <text> ", 500), strings.Repeat("é", 3000), "/p")
	f.Add("", "", strings.Repeat("x", 4000))
	f.Add("a\r\nb\rc", "\t", "'apos'")
	r := notify.NewRenderer(&mpns.Encoder{})
	feed := &tilecast.Feed{Name: "f", Toast: &tilecast.ToastSpec{Text1: "{{.Item.Title}}", Text2: "{{.Item.Summary}}", Param: "{{.Item.ID}}"}}
	f.Fuzz(func(t *testing.T, text1, text2, param string) {
		body, err := r.Toast(feed, fuzzData(text1, text2, param))
		if err != nil {
			if errors.Is(err, tilecast.ErrPayloadTooLarge) && untouchedTooLarge(t, notify.Toast{
				Text1: cutAll(text1), Text2: cutAll(text2), Param: param}) {
				return
			}
			if errors.Is(err, notify.ErrEmpty) && notify.Sanitize(text1) == "" && notify.Sanitize(text2) == "" {
				return
			}
			t.Fatalf("unexpected error: %v", err)
		}
		if len(body) > mpns.MaxTyped {
			t.Fatalf("body of %d bytes", len(body))
		}
		got := parseFields(t, body)
		checkText(t, "Text1", text1, got["Text1"])
		checkText(t, "Text2", text2, got["Text2"])
		if want := norm(notify.Sanitize(param)); got["Param"] != want {
			t.Fatalf("Param = %q, want %q unaltered", got["Param"], want)
		}
	})
}

func FuzzFlipTile(f *testing.F) {
	f.Add("Feed <Title>", "Back content & more", "/SecondaryPage.xaml?feed=7&x=1")
	f.Add("\x00\x01\x02", strings.Repeat("<&>\"", 1000), "")
	f.Add(strings.Repeat("t", 5000), strings.Repeat("🙂", 2000), "/id")
	r := notify.NewRenderer(&mpns.Encoder{})
	feed := &tilecast.Feed{Name: "f", Tile: &tilecast.TileSpec{
		Template:        tilecast.TileFlip,
		ID:              "{{.Item.ID}}",
		Title:           "{{.Item.Title}}",
		Count:           "{{.NewCount}}",
		BackTitle:       "{{.Feed.Title}}",
		BackContent:     "{{.Item.Summary}}",
		WideBackContent: "{{.Item.Summary}} / {{.Item.Title}}",
		BackgroundImage: "https://cdn.example.org/tile.png?a=1&b=2",
	}}
	f.Fuzz(func(t *testing.T, title, content, id string) {
		body, err := r.Tile(feed, fuzzData(title, content, id))
		if err != nil {
			if errors.Is(err, tilecast.ErrPayloadTooLarge) && untouchedTooLarge(t, notify.Tile{Template: tilecast.TileFlip, ID: id,
				BackgroundImage: notify.Value("https://cdn.example.org/tile.png?a=1&b=2"), Count: notify.Value("99"),
				Title: cutField(title), BackTitle: notify.Value(notify.Ellipsis), BackContent: cutField(content),
				WideBackContent: notify.Value(notify.Ellipsis)}) {
				return
			}
			t.Fatalf("unexpected error: %v", err)
		}
		if len(body) > mpns.MaxTyped {
			t.Fatalf("body of %d bytes", len(body))
		}
		got := parseFields(t, body)
		if s := notify.Sanitize(title); s != "" {
			checkText(t, "Title", title, got["Title"])
		}
		if s := notify.Sanitize(content); s != "" {
			checkText(t, "BackContent", content, got["BackContent"])
		}
		if got["BackgroundImage"] != "https://cdn.example.org/tile.png?a=1&b=2" {
			t.Fatalf("BackgroundImage altered: %q", got["BackgroundImage"])
		}
		if want := notify.Sanitize(id); want != "" && norm(got["@Id"]) != norm(want) {
			t.Fatalf("Id = %q, want %q", got["@Id"], want)
		}
		if c := got["Count"]; c == "" || len(c) > 2 {
			t.Fatalf("Count = %q", c)
		}
	})
}
