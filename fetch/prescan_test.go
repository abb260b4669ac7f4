package fetch

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

// realXMLLimits are the limits prescanXML applies.
func realXMLLimits() xmlLimits { return xmlLimits{maxDepth, maxElements, maxAttributes} }

// smallXMLLimits let short inputs (table cases, fuzz inputs) reach every
// limit.
func smallXMLLimits() xmlLimits { return xmlLimits{depth: 4, elements: 20, attrs: 20} }

// noXMLLimits never refuse, so that counts can be compared to the end.
func noXMLLimits() xmlLimits { return xmlLimits{depth: 1 << 30, elements: 1 << 30, attrs: 1 << 30} }

// oldScanXML is the encoding/xml RawToken pre-scan that scanXML replaced,
// kept as the reference. completed reports that the tokenizer read the
// whole input without a syntax error (so the input is within the grammar
// both scanners must agree on).
func oldScanXML(data []byte, lim xmlLimits) (c xmlCounts, completed bool, err error) {
	d := xml.NewDecoder(bytes.NewReader(data))
	d.Strict = false
	d.CharsetReader = func(_ string, r io.Reader) (io.Reader, error) { return r, nil }
	for {
		tok, terr := d.RawToken()
		if terr != nil {
			return c, terr == io.EOF, nil
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			c.depth++
			c.elements++
			c.attrs += len(tok.Attr)
			switch {
			case c.depth > lim.depth:
				return c, false, fmt.Errorf("xml nested deeper than %d: %w", lim.depth, errTooComplex)
			case c.elements > lim.elements:
				return c, false, fmt.Errorf("more than %d xml elements: %w", lim.elements, errTooComplex)
			case c.attrs > lim.attrs:
				return c, false, fmt.Errorf("more than %d xml attributes: %w", lim.attrs, errTooComplex)
			}
		case xml.EndElement:
			c.depth--
		}
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// nest is n nested <a> elements, each holding inner at the bottom.
func nest(n int, inner string) string {
	return strings.Repeat("<a>", n) + inner + strings.Repeat("</a>", n)
}

func TestScanXML(t *testing.T) {
	tests := []struct {
		name string
		in   string
		lim  xmlLimits // zero: smallXMLLimits()
		// want holds the counts when not refused; refused is the
		// errTooComplex message, if any.
		want    xmlCounts
		refused string
		// wellFormed inputs are read to the end by the reference, which
		// must then agree exactly.
		wellFormed bool
	}{
		{name: "empty", in: "", wellFormed: true},
		{name: "text only", in: "just text > here", wellFormed: true},
		{name: "simple", in: `<a><b x="1" y='2'>t</b><c/></a>`, want: xmlCounts{0, 3, 2}, wellFormed: true},
		{name: "comment with tags", in: `<a><!-- <b><c><d><e><f> </a> --></a>`, want: xmlCounts{0, 1, 0}, wellFormed: true},
		{name: "comment ending in dashes", in: `<a><!-- x ----></a>`, want: xmlCounts{0, 1, 0}},
		{name: "empty comments", in: `<!----><a/><!-- -->`, want: xmlCounts{0, 1, 0}, wellFormed: true},
		{name: "comment is not closed by <!-->", in: `<!--> <a><b><c><d><e> -->`, wellFormed: true},
		{name: "cdata with end tags", in: `<a><![CDATA[</a></a><b><c x="1">]]]></a>`, want: xmlCounts{0, 1, 0}, wellFormed: true},
		{name: "cdata with deep tags", in: `<a><![CDATA[` + nest(10, "") + `]]></a>`, want: xmlCounts{0, 1, 0}, wellFormed: true},
		{name: "empty cdata", in: `<a><![CDATA[]]></a>`, want: xmlCounts{0, 1, 0}, wellFormed: true},
		{name: "xml declaration", in: `<?xml version="1.0" encoding="utf-8"?><a/>`, want: xmlCounts{0, 1, 0}, wellFormed: true},
		{name: "pi with tags", in: `<a><?pi <b><c><d><e> > ?></a>`, want: xmlCounts{0, 1, 0}, wellFormed: true},
		{name: "pi without data", in: `<?pi?><a/>`, want: xmlCounts{0, 1, 0}, wellFormed: true},
		{name: "declared charset", in: `<?xml version="1.0" encoding="ISO-8859-1"?><a x="1"/>`, want: xmlCounts{0, 1, 1}, wellFormed: true},
		{name: "doctype", in: `<!DOCTYPE rss><a/>`, want: xmlCounts{0, 1, 0}, wellFormed: true},
		{name: "doctype internal subset", in: `<!DOCTYPE r [
<!ENTITY a "<b><c><d><e><f>">
<!ENTITY b '>>>'>
<!ATTLIST a x CDATA "<g>">
<!-- a comment with " and > and <h> -->
<?pi > ?>
]><a x="&a;"/>`, want: xmlCounts{0, 1, 1}, wellFormed: true},
		{name: "doctype quote in comment", in: `<!DOCTYPE r [<!-- " -->]><a/>`, want: xmlCounts{0, 1, 0}, wellFormed: true},
		{name: "doctype nested pairs", in: `<!DOCTYPE r [<<>>]><a/>`, want: xmlCounts{0, 1, 0}, wellFormed: true},
		{name: "directive first byte unexamined", in: `<!"><a/>`, want: xmlCounts{0, 1, 0}, wellFormed: true},
		{name: "directive first byte is >", in: `<!>><a/>`, want: xmlCounts{0, 1, 0}, wellFormed: true},
		{name: "directive first byte is <", in: `<!<!-- -->><a/>`, want: xmlCounts{0, 1, 0}, wellFormed: true},
		{name: "entity directive outside doctype", in: `<a><!ENTITY x "<b>"></a>`, want: xmlCounts{0, 1, 0}, wellFormed: true},
		{name: "quoted > / = < in attributes", in: `<a x="/><" y='>' z="a=b" w="'"/><b/>`, want: xmlCounts{0, 2, 4}},
		{name: "quoted > / = in attributes", in: `<a x="/>" y='>' z="a=b" w="'"/><b/>`, want: xmlCounts{0, 2, 4}, wellFormed: true},
		{name: "quoted < in attribute", in: `<a x="<b><c>"/>`, want: xmlCounts{0, 1, 1}},
		{name: "unquoted values", in: `<a x=1 y=a:b-c_d z= w/><b v=>`, want: xmlCounts{1, 2, 4}, wellFormed: true},
		{name: "names without values", in: `<a x y z/><b c>`, want: xmlCounts{1, 2, 4}, wellFormed: true},
		{name: "no space between attributes", in: `<a x="1"y="2"z='3'/>`, want: xmlCounts{0, 1, 3}, wellFormed: true},
		{name: "spaces around =", in: "<a x = \"1\"\ty\n=\r\n'2'\n/>", want: xmlCounts{0, 1, 2}, wellFormed: true},
		{name: "space before > of end tag", in: "<a></a >\n<b></b\t>", want: xmlCounts{0, 2, 0}, wellFormed: true},
		{name: "space after < counts", in: `< a ></a >`, want: xmlCounts{0, 1, 1}},
		{name: "namespaced", in: `<x:a xmlns:x="urn:x" x:y="1"><x:b/></x:a>`, want: xmlCounts{0, 2, 2}, wellFormed: true},
		{name: "non-ascii names", in: `<é ü="1" ñ/></é>`, want: xmlCounts{-1, 1, 2}, wellFormed: true},
		{name: "entities in text", in: `<a>&lt;b&gt; &#60;c&#x3e; &amp; &bogus; &#;</a>`, want: xmlCounts{0, 1, 0}, wellFormed: true},
		{name: "bom", in: "\xef\xbb\xbf<?xml version=\"1.0\"?>\n<a><b/></a>", want: xmlCounts{0, 2, 0}, wellFormed: true},
		{name: "stray end tags", in: `</a></b><c/>`, want: xmlCounts{-2, 1, 0}, wellFormed: true},

		{name: "depth at limit", in: nest(4, ""), want: xmlCounts{0, 4, 0}, wellFormed: true},
		{name: "depth one over", in: nest(5, ""), refused: "xml nested deeper than 4: document too complex"},
		{name: "self-closing at depth limit", in: nest(3, "<b/>"), want: xmlCounts{0, 4, 0}, wellFormed: true},
		{name: "self-closing one over depth", in: nest(4, "<b/>"), refused: "xml nested deeper than 4: document too complex"},
		{name: "self-closing leaves depth", in: "<a>" + strings.Repeat("<b/>", 10) + "</a>", want: xmlCounts{0, 11, 0}, wellFormed: true},
		{name: "elements at limit", in: "<a>" + strings.Repeat("<b/>", 19) + "</a>", want: xmlCounts{0, 20, 0}, wellFormed: true},
		{name: "elements one over", in: "<a>" + strings.Repeat("<b/>", 20) + "</a>", refused: "more than 20 xml elements: document too complex"},
		{name: "attributes at limit", in: `<a` + strings.Repeat(` x="1"`, 20) + `/>`, want: xmlCounts{0, 1, 20}, wellFormed: true},
		{name: "attributes one over", in: `<a` + strings.Repeat(` x="1"`, 20) + ` y/>`, refused: "more than 20 xml attributes: document too complex"},
		{name: "attributes over across elements", in: strings.Repeat(`<a x y/>`, 11), refused: "more than 20 xml attributes: document too complex"},
		{name: "real limits: depth 64", in: nest(64, ""), lim: realXMLLimits(), want: xmlCounts{0, 64, 0}, wellFormed: true},
		{name: "real limits: depth 65", in: nest(65, ""), lim: realXMLLimits(), refused: "xml nested deeper than 64: document too complex"},

		// Unterminated at the end: stop, leave it to gofeed.
		{name: "unterminated comment", in: `<a><!-- <b><c><d><e><f>`, want: xmlCounts{1, 1, 0}},
		{name: "unterminated cdata", in: `<a><![CDATA[<b><c><d><e><f>`, want: xmlCounts{1, 1, 0}},
		{name: "unterminated pi", in: `<a><?pi <b><c><d><e><f>`, want: xmlCounts{1, 1, 0}},
		{name: "unterminated doctype", in: `<!DOCTYPE r [ <b><c><d><e><f>`},
		{name: "unterminated tag", in: `<a><b x="1"`, want: xmlCounts{1, 1, 0}},
		{name: "unterminated quoted value", in: `<a><b x="></b><c><d><e><f>`, want: xmlCounts{1, 1, 0}},
		{name: "unterminated end tag", in: `<a></a`, want: xmlCounts{1, 1, 0}},
		{name: "lone < at end", in: `<a><`, want: xmlCounts{1, 1, 0}},
		{name: "over limit before unterminated", in: nest(5, "<!--"), refused: "xml nested deeper than 4: document too complex"},

		// Stricter than the reference: it stops at the first error.
		{name: "counts past invalid utf-8", in: "<a>\xff</a>" + nest(5, ""), refused: "xml nested deeper than 4: document too complex"},
		{name: "counts past -- in comment", in: "<!-- a -- b -->" + nest(5, ""), refused: "xml nested deeper than 4: document too complex"},
		{name: "counts past version 1.1", in: `<?xml version="1.1"?>` + nest(5, ""), refused: "xml nested deeper than 4: document too complex"},
		{name: "counts malformed tags", in: `<1a 2b .c d:e:f><<x>` + nest(3, ""), refused: "xml nested deeper than 4: document too complex"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lim := tt.lim
			if lim == (xmlLimits{}) {
				lim = smallXMLLimits()
			}
			data := []byte(tt.in)
			got, err := scanXML(data, lim)
			switch {
			case tt.refused != "":
				if !errors.Is(err, errTooComplex) || err.Error() != tt.refused {
					t.Fatalf("err = %v, want %q", err, tt.refused)
				}
			case err != nil:
				t.Fatalf("err = %v, want nil", err)
			case got != tt.want:
				t.Errorf("counts = %+v, want %+v", got, tt.want)
			}
			old, completed, oldErr := oldScanXML(data, lim)
			if oldErr != nil && errString(err) != errString(oldErr) {
				t.Errorf("reference refused with %v, new scan gives %v", oldErr, err)
			}
			if !tt.wellFormed {
				return
			}
			if !completed && oldErr == nil {
				t.Fatal("case marked well-formed, but the reference tokenizer fails on it")
			}
			if errString(err) != errString(oldErr) {
				t.Errorf("err = %v, reference %v", err, oldErr)
			}
			if err == nil && got != old {
				t.Errorf("counts = %+v, reference %+v", got, old)
			}
		})
	}
}

// TestScanXMLFeeds checks the real feed files and the hostile corpus
// against the reference with the real limits.
func TestScanXMLFeeds(t *testing.T) {
	names := []string{"atom.xml", "badchars.xml", "imgdesc.xml", "invalid-utf8.xml", "media.xml",
		"noguid.xml", "rss.xml", "truncated.xml", "page.html"}
	for _, h := range []string{"billion-laughs.xml", "bom-whitespace.xml", "dates-1970-2100.xml",
		"duplicate-guids.xml", "latin1-undeclared.xml", "missing-guids-links.xml", "nul-ref.xml",
		"unknown-charset.xml", "utf16-bom.xml", "xxe-file.xml", "xxe-param.xml"} {
		names = append(names, "hostile/"+h)
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			data := readTestdata(t, name)
			if err := prescanXML(data); err != nil {
				t.Fatalf("prescanXML: %v", err)
			}
			got, err := scanXML(data, noXMLLimits())
			old, completed, _ := oldScanXML(data, noXMLLimits())
			if err != nil {
				t.Fatal(err)
			}
			if completed && got != old {
				t.Errorf("counts = %+v, reference %+v", got, old)
			}
			if completed && got.elements == 0 {
				t.Errorf("counted no elements in %s", name)
			}
		})
	}
	for _, tt := range []struct {
		name string
		data []byte
		want error
	}{
		{"10k items", items(10_000), nil},
		{"20k items", items(20_000), errTooComplex},
		{"nested 1e4", deepXML("rss", 10_000), errTooComplex},
		{"atom nested 1e4", deepXML("atom", 10_000), errTooComplex},
		{"flat 300k", flat(300_000), errTooComplex},
		{"flat at limit", flat(maxElements - 100), nil},
		{"200k attributes", manyAttrs(200_000), errTooComplex},
		{"attributes at limit", manyAttrs(maxAttributes - 1000), nil},
		{"quadratic", quadratic(), nil},
		{"generated feed", genFeed(1 << 20), nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := prescanXML(tt.data)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("prescanXML: %v, want %v", err, tt.want)
			}
			_, _, oldErr := oldScanXML(tt.data, realXMLLimits())
			if errString(err) != errString(oldErr) {
				t.Errorf("err = %v, reference %v", err, oldErr)
			}
		})
	}
}

// FuzzPrescanXML checks the security invariant (whatever the reference
// refuses, scanXML refuses the same way) with small limits, and exact
// agreement on every input the reference tokenizes to the end.
func FuzzPrescanXML(f *testing.F) {
	for _, s := range []string{
		`<a><b x="1" y='2'>t</b><c/></a>`,
		`<!DOCTYPE r [<!ENTITY a "<b>"><!-- > --><<>>]><a x=1 y/>`,
		`<a><![CDATA[</a>]]><!-- <b> --><?pi <c> ?></a>`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, lim := range []xmlLimits{smallXMLLimits(), {depth: 1, elements: 3, attrs: 2}} {
			got, err := scanXML(data, lim)
			_, _, oldErr := oldScanXML(data, lim)
			if oldErr != nil && errString(err) != errString(oldErr) {
				t.Fatalf("limits %+v: reference refused with %v, new scan gives %v (counts %+v)", lim, oldErr, err, got)
			}
			if err != nil && !errors.Is(err, errTooComplex) {
				t.Fatalf("err = %v, not errTooComplex", err)
			}
		}
		got, _ := scanXML(data, noXMLLimits())
		old, completed, _ := oldScanXML(data, noXMLLimits())
		if completed {
			if got != old {
				t.Fatalf("counts = %+v, reference read it all and got %+v", got, old)
			}
			return
		}
		// The reference stopped at an error: everything before it was
		// counted the same, so the new scan has counted at least as much.
		if got.elements < old.elements || got.attrs < old.attrs {
			t.Fatalf("counts = %+v, lower than the reference's %+v before it stopped", got, old)
		}
	})
}

// genFeed is an RSS feed of about size bytes with the usual mix of
// attributes, namespaced extensions, CDATA and entities.
func genFeed(size int) []byte {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/" xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel><title>Generated &amp; long</title><link>https://gen.example.org/</link>
`)
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, `<item>
  <guid isPermaLink="false">gen-%d</guid>
  <title>Item %d: a headline of some length &amp; detail</title>
  <link>https://gen.example.org/posts/%d?utm_source=rss&amp;x=1</link>
  <dc:creator>Writer %d</dc:creator>
  <pubDate>Mon, 16 Nov 2026 08:00:00 GMT</pubDate>
  <category domain="https://gen.example.org/tags">news</category>
  <media:content url="https://gen.example.org/img/%d.jpg" type="image/jpeg" width="1200" height="800"/>
  <description><![CDATA[<p>Paragraph one of item %d, with <a href="https://gen.example.org/%d">a link</a> and some text to pad it out to a realistic length.</p><p>Second paragraph.</p>]]></description>
</item>
`, i, i, i, i%17, i, i, i)
	}
	b.WriteString("</channel></rss>\n")
	return b.Bytes()
}

func BenchmarkPrescanXML(b *testing.B) {
	inputs := []struct {
		name string
		data []byte
	}{
		{"rss.xml", readTestdata(b, "rss.xml")},
		{"generated-1MiB", genFeed(1 << 20)},
	}
	scanners := []struct {
		name string
		scan func([]byte) error
	}{
		{"old", func(data []byte) error { _, _, err := oldScanXML(data, realXMLLimits()); return err }},
		{"new", prescanXML},
	}
	for _, sc := range scanners {
		for _, in := range inputs {
			b.Run(sc.name+"/"+in.name, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(in.data)))
				for b.Loop() {
					if err := sc.scan(in.data); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
