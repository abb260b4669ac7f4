package fetch

import (
	"bytes"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/mmcdole/gofeed"
	ext "github.com/mmcdole/gofeed/extensions"
)

var testBase = mustURL("https://feeds.example.org/dir/feed.xml")

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

func TestParseTestdata(t *testing.T) {
	type item struct{ id, title, link, summary, image string }
	tests := []struct {
		file    string
		wantErr bool
		errText string // part of the error, when wantErr
		rawErr  bool   // gofeed alone rejects the unsanitized body
		title   string
		items   []item // checked in order; nil: only the count
		count   int
	}{
		{file: "rss.xml", title: "Example City News", count: 20},
		{file: "atom.xml", title: "Dev <Log>", count: 2, items: []item{
			{"tag:blog.example.com,2026:post-42", "Shipping the new release", "https://blog.example.com/posts/shipping-the-new-release",
				"Release notes, upgrade steps and thanks.", "https://blog.example.com/img/release.png"},
			{"tag:blog.example.com,2026:post-41", "Only updated, never published", "https://blog.example.com/posts/updated-only",
				"Content without a summary — still fine.", ""},
		}},
		{file: "feed.json", title: "Podcast Notes", count: 2, items: []item{
			{"ep-12", "Episode 12: Tiles & toasts", "https://pod.example.net/episodes/12", "Live tiles, explained.", "https://pod.example.net/art/12.png"},
			{"ep-11", "Episode 11", "https://pod.example.net/episodes/11", "Plain text notes.", ""},
		}},
		{file: "noguid.xml", title: "Small Shop Updates", count: 3, items: []item{
			{"https://shop.example.org/news/holiday-hours", "Opening hours over the holidays", "https://shop.example.org/news/holiday-hours", "We close early on the 24th.", ""},
			{ItemID("", "", "Stock-take on Sunday", time.Date(2026, 11, 16, 8, 0, 0, 0, time.UTC), "The shop is closed for the annual stock-take."),
				"Stock-take on Sunday", "", "The shop is closed for the annual stock-take.", ""},
			{ItemID("", "", "", time.Time{}, "An item with neither title, link, guid nor date."),
				"", "", "An item with neither title, link, guid nor date.", ""},
		}},
		{file: "media.xml", title: "Photo Desk", count: 3, items: []item{
			{"https://photos.example.org/p/sunrise", "Sunrise over the harbour", "https://photos.example.org/p/sunrise", "", "https://photos.example.org/thumbs/sunrise.jpg"},
			{"https://photos.example.org/p/fog", "Fog on the bridge", "https://photos.example.org/p/fog", "", "https://photos.example.org/full/fog.jpg"},
			{"https://photos.example.org/p/market", "Market video", "https://photos.example.org/p/market", "", "https://photos.example.org/thumbs/market.jpg"},
		}},
		{file: "imgdesc.xml", title: "Recipes", count: 3, items: []item{
			{"https://food.example.com/recipes/pumpkin-soup/", "Pumpkin soup", "https://food.example.com/recipes/pumpkin-soup/",
				"A warming soup for cold evenings.", "https://food.example.com/recipes/pumpkin-soup/images/soup.jpg"},
			{"recipe-77", "Apple pie", "", "Grandma's classic.", "https://cdn.food.example.com/pie.png"},
			{"recipe-78", "Flatbread", "", "No image, just text.", ""}, // a data: image is no tile image
		}},
		{file: "badchars.xml", rawErr: true, title: "Legacy CMS Export", count: 2, items: []item{
			{"legacy-1", "Broken byte inside", "https://legacy.example.org/a/1", "Text with a NUL ref and a form feed and ABC fine.", ""},
			{"legacy-2", "Second item", "https://legacy.example.org/a/2", "", ""},
		}},
		{file: "invalid-utf8.xml", rawErr: true, title: "Caf\uFFFD Menu", count: 1, items: []item{
			{"menu-creme-brulee", "Cr\uFFFDme br\uFFFDl\uFFFDe is back", "https://cafe.example.org/menu/creme-brulee", "", ""},
		}},
		{file: "feed-no-version.json", title: "Hand-written JSON Feed without a version", count: 1, items: []item{
			{"a-1", "First note", "https://notes.example.net/a/1", "Hello.", ""},
		}},
		// JSON that gofeed reads as an empty feed: an error, not an
		// empty feed fetched fine.
		{file: "not-a-feed.json", wantErr: true, errText: "not a feed"},
		{file: "api-version.json", wantErr: true, errText: "not a feed"},
		{file: "page.html", wantErr: true, rawErr: true},
		{file: "truncated.xml", wantErr: true, rawErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data := readTestdata(t, tt.file)
			if _, err := gofeedParse(data); (err != nil) != tt.rawErr {
				t.Errorf("gofeed on the raw body: err = %v, want error %v", err, tt.rawErr)
			}
			p, err := parse(data, testBase)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parse: err = %v, want error %v", err, tt.wantErr)
			}
			if tt.wantErr {
				if !strings.Contains(err.Error(), tt.errText) {
					t.Errorf("parse: error %q does not say %q", err, tt.errText)
				}
				return
			}
			if p.title != tt.title {
				t.Errorf("title = %q, want %q", p.title, tt.title)
			}
			if len(p.items) != tt.count {
				t.Fatalf("%d items, want %d", len(p.items), tt.count)
			}
			for i, w := range tt.items {
				g := p.items[i]
				got := item{g.ID, g.Title, g.Link, g.Summary, g.Image}
				if got != w {
					t.Errorf("item %d:\n got %+v\nwant %+v", i, got, w)
				}
			}
		})
	}
}

func TestItemID(t *testing.T) {
	pub := time.Date(2026, 11, 20, 10, 0, 0, 0, time.FixedZone("CET", 3600))
	hash := ItemID("", "", "Title", pub, "Body")
	tests := []struct {
		name              string
		guid, link, title string
		published         time.Time
		content, want     string
	}{
		{"guid wins", "urn:1", "https://x/1", "T", pub, "C", "urn:1"},
		{"guid trimmed", "  urn:1\n", "", "", time.Time{}, "", "urn:1"},
		{"link when no guid", "", "https://x/1", "T", pub, "C", "https://x/1"},
		{"blank guid falls to link", "   ", "https://x/1", "", time.Time{}, "", "https://x/1"},
		{"hash", "", "", "Title", pub, "Body", hash},
		{"hash ignores zone", "", "", "Title", pub.UTC(), "Body", hash},
		// sha256 of "\x00\x00": pins the format so IDs stay stable across releases.
		{"hash known value", "", "", "", time.Time{}, "", "sha256:96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ItemID(tt.guid, tt.link, tt.title, tt.published, tt.content); got != tt.want {
				t.Errorf("ItemID = %q, want %q", got, tt.want)
			}
		})
	}
	// Every part of the hash input matters.
	others := []string{
		ItemID("", "", "Title2", pub, "Body"),
		ItemID("", "", "Title", pub.Add(time.Second), "Body"),
		ItemID("", "", "Title", pub, "Body2"),
		ItemID("", "", "Title", time.Time{}, "Body"),
		ItemID("", "", "Title\x00", pub, "Body"),
	}
	for i, o := range others {
		if o == hash {
			t.Errorf("variant %d hashes like the original", i)
		}
	}
}

func FuzzItemID(f *testing.F) {
	f.Add("urn:1", "https://x/1", "urn:2", "https://x/2", "title", "content", int64(1763632800))
	f.Add("", "https://x/1", "", "https://x/2", "", "", int64(0))
	f.Add("", "", "", "", "a", "b", int64(-1))
	f.Add("same", "a", "same", "b", "t", "c", int64(5))
	f.Fuzz(func(t *testing.T, g1, l1, g2, l2, title, content string, unix int64) {
		pub := time.Unix(unix%(1<<40), 0)
		id1 := ItemID(g1, l1, title, pub, content)
		if again := ItemID(g1, l1, title, pub, content); again != id1 {
			t.Fatalf("not deterministic: %q then %q", id1, again)
		}
		if id1 == "" {
			t.Fatal("empty ID")
		}
		id2 := ItemID(g2, l2, title, pub, content)
		key := func(g, l string) string {
			if g = strings.TrimSpace(g); g != "" {
				return g
			}
			return strings.TrimSpace(l)
		}
		k1, k2 := key(g1, l1), key(g2, l2)
		switch {
		case k1 == "" && k2 == "":
			if id1 != id2 {
				t.Fatalf("same content hashed differently: %q %q", id1, id2)
			}
		case k1 != k2 && !strings.HasPrefix(k1, "sha256:") && !strings.HasPrefix(k2, "sha256:"):
			if id1 == id2 {
				t.Fatalf("distinct guid/link pairs (%q,%q) and (%q,%q) collide on %q", g1, l1, g2, l2, id1)
			}
		case k1 == k2:
			if id1 != id2 {
				t.Fatalf("same key %q gave %q and %q", k1, id1, id2)
			}
		}
	})
}

func TestStripHTML(t *testing.T) {
	tests := []struct {
		in    string
		limit int
		want  string
	}{
		{"plain text", 100, "plain text"},
		{"  lots \n\t of   space  ", 100, "lots of space"},
		{"<p>Hello <b>world</b></p>", 100, "Hello world"},
		{"<p>one</p><p>two</p>", 100, "one two"},
		{"line<br>break<br/>again", 100, "line break again"},
		{"a<b>b</b>c", 100, "abc"},
		{"Tom &amp; Jerry &lt;3 &eacute;t&eacute; &#8212; &#x2603;", 100, "Tom & Jerry <3 été — ☃"},
		{"AT&T and a & b", 100, "AT&T and a & b"},
		{"<script>alert('x')</script>visible<style>p{}</style> text", 100, "visible text"},
		{"<!-- comment -->after", 100, "after"},
		{"<a href='x'>link</a> &nbsp; end", 100, "link end"},
		{"ctrl\x01\x7fchars", 100, "ctrlchars"},
		{"<p>unclosed <i>tags", 100, "unclosed tags"},
		{"<<<>>>", 100, "<<<>>>"},
		{"abcdef", 3, "abc…"},
		{"<p>ab</p><p>cd</p>", 4, "ab c…"},
		{"ab", 2, "ab"},
		{"", 10, ""},
		{"\xff\xfe bad", 100, "\uFFFD\uFFFD bad"},
	}
	for _, tt := range tests {
		if got := stripHTML(tt.in, tt.limit); got != tt.want {
			t.Errorf("stripHTML(%q, %d) = %q, want %q", tt.in, tt.limit, got, tt.want)
		}
	}
}

func TestItemImage(t *testing.T) {
	media := func(kind string, attrs map[string]string, children map[string][]ext.Extension) ext.Extensions {
		return ext.Extensions{"media": {kind: {{Name: kind, Attrs: attrs, Children: children}}}}
	}
	itemBase := mustURL("https://site.example/posts/one/")
	tests := []struct {
		name string
		item gofeed.Item
		want string
	}{
		{"nothing", gofeed.Item{}, ""},
		{"enclosure image type", gofeed.Item{Enclosures: []*gofeed.Enclosure{{URL: "https://cdn.example/a.bin", Type: "image/png"}}}, "https://cdn.example/a.bin"},
		{"enclosure by extension", gofeed.Item{Enclosures: []*gofeed.Enclosure{{URL: "https://cdn.example/a.JPG"}}}, "https://cdn.example/a.JPG"},
		{"audio enclosure skipped", gofeed.Item{
			Enclosures: []*gofeed.Enclosure{nil, {URL: "https://cdn.example/ep.mp3", Type: "audio/mpeg"}},
			Image:      &gofeed.Image{URL: "https://cdn.example/cover.png"},
		}, "https://cdn.example/cover.png"},
		{"enclosure beats media", gofeed.Item{
			Enclosures: []*gofeed.Enclosure{{URL: "/e.gif", Type: "image/gif"}},
			Extensions: media("thumbnail", map[string]string{"url": "https://cdn.example/t.jpg"}, nil),
		}, "https://site.example/e.gif"},
		{"media thumbnail", gofeed.Item{Extensions: media("thumbnail", map[string]string{"url": "t.jpg"}, nil)}, "https://site.example/posts/one/t.jpg"},
		{"media content image", gofeed.Item{Extensions: media("content", map[string]string{"url": "https://cdn.example/c", "medium": "image"}, nil)}, "https://cdn.example/c"},
		{"media content video skipped", gofeed.Item{
			Extensions: media("content", map[string]string{"url": "https://cdn.example/v.mp4", "type": "video/mp4"}, nil),
			Content:    `<img src="https://cdn.example/in-content.png">`,
		}, "https://cdn.example/in-content.png"},
		{"media group", gofeed.Item{Extensions: media("group", nil, map[string][]ext.Extension{
			"content": {{Attrs: map[string]string{"url": "https://cdn.example/g.webp"}}},
		})}, "https://cdn.example/g.webp"},
		{"media beats item image", gofeed.Item{
			Extensions: media("thumbnail", map[string]string{"url": "https://cdn.example/t.jpg"}, nil),
			Image:      &gofeed.Image{URL: "https://cdn.example/i.jpg"},
		}, "https://cdn.example/t.jpg"},
		{"item image beats img", gofeed.Item{Image: &gofeed.Image{URL: "https://cdn.example/i.jpg"}, Description: `<img src="/d.png">`}, "https://cdn.example/i.jpg"},
		{"content img before description img", gofeed.Item{Content: `<p><img alt="x"><img src="c.png"></p>`, Description: `<img src="/d.png">`}, "https://site.example/posts/one/c.png"},
		{"description img", gofeed.Item{Description: `text <IMG SRC="/d.png" />`}, "https://site.example/d.png"},
		{"protocol-relative", gofeed.Item{Description: `<img src="//cdn.example/p.png">`}, "https://cdn.example/p.png"},
		{"javascript url refused", gofeed.Item{Description: `<img src="javascript:alert(1)">`}, ""},
		{"data url refused", gofeed.Item{Image: &gofeed.Image{URL: "data:image/png;base64,AAAA"}}, ""},
		{"empty media attrs", gofeed.Item{Extensions: media("thumbnail", nil, nil)}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := itemImage(&tt.item, itemBase); got != tt.want {
				t.Errorf("itemImage = %q, want %q", got, tt.want)
			}
		})
	}
	if got := itemImage(&gofeed.Item{Description: `<img src="rel.png">`}, nil); got != "" {
		t.Errorf("relative image without a base = %q, want empty", got)
	}
}

func TestConvertItemNilFields(t *testing.T) {
	// A zero item: every pointer nil, no slices. Must not panic.
	it := convertItem(&gofeed.Item{}, nil)
	if it.ID == "" || !it.Published.IsZero() || it.Image != "" {
		t.Errorf("zero item = %+v", it)
	}
	upd := time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("X", -7200))
	it = convertItem(&gofeed.Item{UpdatedParsed: &upd, Links: []string{"/only-in-links"}}, testBase)
	if !it.Published.Equal(upd) || it.Published.Location() != time.UTC {
		t.Errorf("Published = %v, want %v in UTC", it.Published, upd)
	}
	if it.Link != "https://feeds.example.org/only-in-links" || it.ID != it.Link {
		t.Errorf("Link, ID = %q, %q", it.Link, it.ID)
	}
}

func TestSanitize(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"clean", "<a>x</a>", "<a>x</a>"},
		{"nul ref", "a&#0;b", "a b"},
		{"hex nul ref", "a&#x0;b&#x00000;c", "a b c"},
		{"control refs", "x&#1;&#8;&#x1F;&#11;", "x    "},
		{"spliced refs stay harmless", "&#&#0;0;&#x&#0;0;", "&# 0;&#x 0;"},
		{"long zero ref", "x&#" + strings.Repeat("0", 100) + ";", "x "},
		{"long valid ref", "&#" + strings.Repeat("0", 100) + "65;", "&#" + strings.Repeat("0", 100) + "65;"},
		{"leading blanked ref trimmed", "&#0;<rss/>", "<rss/>"},
		{"allowed refs kept", "&#9;&#10;&#13;&#32;&#65;&#x41;&#x10FFFF;&#0000065;", "&#9;&#10;&#13;&#32;&#65;&#x41;&#x10FFFF;&#0000065;"},
		{"surrogate ref", "x&#xD800;x", "x x"},
		{"fffe ref", "x&#xFFFE;&#65535;x", "x  x"},
		{"beyond unicode", "x&#x110000;&#99999999999999999999999;x", "x  x"},
		{"not refs", "&#; &#x; &#12 &#X41; &#a; &amp;#0;", "&#; &#x; &#12 &#X41; &#a; &amp;#0;"},
		{"raw controls", "a\x00b\x01c\x08d\x0be\x0cf\x1fg\th\ni\rj", "abcdefg\th\ni\rj"},
		{"control spliced ref", "x&#\x000;", "x "},
		{"raw fffe ffff", "a\uFFFEb\uFFFFc\uFFFDd", "a b c\uFFFDd"},
		{"control spliced fffe", "x\xef\x00\xbf\xbe", "x "},
		{"leading control then space", "\x01 \n<a/>", "<a/>"},
		{"leading bom and space", "\xef\xbb\xbf \n<?xml version=\"1.0\"?><a/>", "<?xml version=\"1.0\"?><a/>"},
		{"invalid utf-8 repaired", "<a>\xe9t\xe9</a>", "<a>\uFFFDt\uFFFD</a>"},
		{"declared utf-8 repaired", "<?xml version=\"1.0\" encoding='UTF-8'?><a>\xff</a>", "<?xml version=\"1.0\" encoding='UTF-8'?><a>\uFFFD</a>"},
		{"latin-1 untouched", "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><a>\xe9</a>", "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><a>\xe9</a>"},
		{"utf-16 untouched", "\xff\xfe<\x00a\x00>\x00", "\xff\xfe<\x00a\x00>\x00"},
		{"ref at end", "x&#0", "x&#0"},
		{"ampersand at end", "x&", "x&"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(sanitize([]byte(tt.in))); got != tt.want {
				t.Errorf("sanitize(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
	clean := []byte("<rss>nothing to do</rss>")
	if got := sanitize(clean); &got[0] != &clean[0] {
		t.Error("a clean body was copied")
	}
}

func TestDeclaredEncoding(t *testing.T) {
	tests := map[string]string{
		`<?xml version="1.0" encoding="windows-1252"?>`: "windows-1252",
		`<?xml version='1.0' encoding = 'utf-8' ?>`:     "utf-8",
		`<?xml version="1.0"?>`:                         "",
		`<rss encoding="x">`:                            "",
		`<?xml encoding="unterminated`:                  "",
		`<?xml encoding=utf-8?>`:                        "",
	}
	for in, want := range tests {
		if got := declaredEncoding([]byte(in)); got != want {
			t.Errorf("declaredEncoding(%q) = %q, want %q", in, got, want)
		}
	}
}

func testdataSeeds(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.*"))
	hostile, herr := filepath.Glob(filepath.Join("testdata", "hostile", "*"))
	files = append(files, hostile...)
	if err != nil || herr != nil || len(files) == 0 || len(hostile) == 0 {
		f.Fatalf("no seeds: %v %v", err, herr)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(""))
	f.Add(deepXML("rss", maxDepth+1))
	f.Add(deepXML("atom", maxDepth-8))
	f.Add(deepJSON(maxDepth + 1))
	f.Add(items(3))
	f.Add([]byte(`<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><rss version="2.0"><channel><title>&b;</title><item><title>&b;</title></item></channel></rss>`))
	f.Add([]byte(`<rss version="2.0"><channel><item><guid></guid><enclosure/><media:thumbnail xmlns:media="http://search.yahoo.com/mrss/"/></item></channel></rss>`))
	f.Add([]byte(`{"version":"https://jsonfeed.org/version/1.1","items":[null,{},{"id":1}]}`))
	f.Add([]byte(`<feed xmlns="http://www.w3.org/2005/Atom"><entry><link href=":bad"/><content type="xhtml"><div><img src="%zz"/></div></content></entry></feed>`))
}

func FuzzParse(f *testing.F) {
	testdataSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		// Sanitizing is idempotent: one pass leaves nothing for a second.
		once := sanitize(bytes.Clone(data))
		if twice := sanitize(bytes.Clone(once)); !bytes.Equal(once, twice) {
			t.Fatalf("sanitize not idempotent:\n%q\n%q", once, twice)
		}
		p, err := parse(data, testBase)
		if err != nil {
			return
		}
		if !utf8.ValidString(p.title) || p.ttl < 0 || p.ttl > maxDelay {
			t.Fatalf("bad feed fields: title %q ttl %v", p.title, p.ttl)
		}
		for _, it := range p.items {
			if it.ID == "" {
				t.Fatal("item without ID")
			}
			if !utf8.ValidString(it.Title) || !utf8.ValidString(it.Summary) {
				t.Fatalf("invalid UTF-8 in %+v", it)
			}
			if utf8.RuneCountInString(it.Title) > maxTitleRunes+1 || utf8.RuneCountInString(it.Summary) > maxSummaryRunes+1 {
				t.Fatalf("text over limit: %d / %d runes", utf8.RuneCountInString(it.Title), utf8.RuneCountInString(it.Summary))
			}
			if it.Image != "" {
				u, err := url.Parse(it.Image)
				if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
					t.Fatalf("image %q is not an absolute http(s) URL", it.Image)
				}
			}
		}
	})
}

func BenchmarkParse(b *testing.B) {
	data := readTestdata(b, "rss.xml")
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		p, err := parse(data, testBase)
		if err != nil || len(p.items) != 20 {
			b.Fatalf("parse: %v, %d items", err, len(p.items))
		}
	}
}

func TestFirstImg(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"plain text", ""},
		{"<p>markup, <b>no</b> image</p>", ""},
		{`<p>x</p><img src="a.png">`, "a.png"},
		{`<IMG SRC='b.png'>`, "b.png"},
		{"<p><img\nalt=x src=c.png /></p>", "c.png"},
		{`<img src="  "><img src=d.png>`, "d.png"},
		{"< img src=e.png>", ""}, // text, not a tag
		{"<imgur src=f.png>", ""},
		{"<im", ""},
		{"a <", ""},
	}
	for _, tt := range tests {
		if got := firstImg(tt.in); got != tt.want {
			t.Errorf("firstImg(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
