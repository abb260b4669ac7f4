package fetch

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// stripHTMLCases exercise the byte-scan fast path and its fallbacks. want is
// checked when set; every case is also compared with the tokenizer path.
var stripHTMLCases = []struct {
	name  string
	in    string
	limit int
	want  string
	fast  bool // the byte scan must handle it, not fall back
}{
	{"typical summary", "<p>Summary of item 7, a paragraph of text as feeds carry it, with <b>markup</b> to strip.</p>", 2000,
		"Summary of item 7, a paragraph of text as feeds carry it, with markup to strip.", true},
	{"paragraphs", "<p>one</p><p>two</p>", 100, "one two", true},
	{"inline tags do not break words", "a<b>b</b>c<a href=\"x\">d</a>e<span class='s'>f</span>g<i>h</i>", 100, "abcdefgh", true},
	{"block tags break words", "a<div>b</div>c<li>d<td>e<h2>f</h2>g", 100, "a b c d e f g", true},
	{"br forms", "line<br>break<br/>again<br />more<BR>end", 100, "line break again more end", true},
	{"img breaks words", `x<img src="a.png" alt="pic">y<img src=b.png/>z`, 100, "x y z", true},
	{"uppercase tags", "<P>Hello <B>World</B></P><DIV>next</DIV>", 100, "Hello World next", true},
	{"mixed case break tag", "a<Br>b<hR/>c", 100, "a b c", true},
	{"gt in quoted attribute", `<a title="a > b" href='c>d'>link</a> text`, 100, "link text", true},
	{"attribute forms", `<input disabled><x a=1 b = "2" c='3' d-e:f.g=h/>ok</x>`, 100, "ok", true},
	{"attributes without spaces", `<a b="1"c='2'd>ok</a>`, 100, "ok", true},
	{"end tag with attribute", `a</p class="x">b`, 100, "a b", true},
	{"unknown and long tags", "a<custom-x>b</custom-x><verylongtagname>c</verylongtagname>", 100, "abc", false},
	{"long tag names", "a<verylongtagname>b</verylongtagname>c", 100, "abc", true},
	{"entities", "Tom &amp; Jerry &lt;3 &gt; &quot;q&quot; &#39;s&#x27; &eacute;t&eacute; &#8212; &#x2603;", 100,
		"Tom & Jerry <3 > \"q\" 's' été — ☃", true},
	{"nbsp is a space", "a&nbsp;b &nbsp; c", 100, "a b c", true},
	{"unknown entity", "a &foo; b &foo c", 100, "a &foo; b &foo c", true},
	{"bare ampersand", "AT&T and a & b &", 100, "AT&T and a & b &", true},
	{"legacy entity without semicolon", "&ampx &copy2024 &notit; &lt", 100, "&x ©2024 ¬it; <", true},
	{"numeric edge entities", "&#0;a&#x110000;b&#128;c&#xD800;d&#;e&#x;f", 100, "", true},
	{"entity split by tag", "&am<b>p;&l</b>t; &#3<i>8;", 100, "&amp;&lt; 8;", true},
	{"entity across tags", "<p>&amp</p><p>;</p>", 100, "& ;", true},
	{"lt as text", "a < b and 1<2 <<<>>> <=", 100, "a < b and 1<2 <<<>>> <=", true},
	{"whitespace runs", "  lots \n\t of \r\n  space \f\v ", 100, "lots of space", true},
	{"whitespace around tags", " <p> a </p> <p> b </p> ", 100, "a b", true},
	{"leading break tag", "<br><br>a", 100, "a", true},
	{"control chars", "ctrl\x01\x7fchars\u0085x\u0090y\ufffez\uffff", 100, "ctrlchars xyz", true},
	{"invalid utf8", "<b>\xff\xfe bad</b>", 100, "\uFFFD\uFFFD bad", true},
	{"script and style", "<script>alert('<b>x</b>')</script>visible<style>p{}</style> text", 100, "visible text", false},
	{"uppercase script", "<SCRIPT>x</SCRIPT>y", 100, "y", false},
	{"textarea", "<textarea><b>x</b></textarea>y", 100, "<b>x</b>y", false},
	{"title", "<title>a &amp; <b></title>y", 100, "a & <b>y", false},
	{"comment", "<!-- comment -->after", 100, "after", false},
	{"doctype and pi", "<!DOCTYPE html><?xml x?>t", 100, "t", false},
	{"end tag without name", "a</>b</ x>c", 100, "abc", false},
	{"trailing lt", "a<", 100, "a<", false},
	{"unterminated tag", "<p>unclosed <i", 100, "unclosed", false},
	{"unclosed quote", `a<b c="d>e`, 100, "a", false},
	{"odd tag name", "a<b.c>d", 100, "ad", false},
	{"nul byte", "a\x00b<p>c", 100, "ab c", false},
	{"limit exact", "abcdef", 6, "abcdef", true},
	{"limit cut", "abcdef", 3, "abc…", true},
	{"limit at break", "<p>ab</p><p>cd</p>", 4, "ab c…", true},
	{"limit at pending space", "<p>ab</p><p>cd</p>", 2, "ab…", true},
	{"limit in entity text", "&lt;&lt;&lt;", 2, "<<…", true},
	{"limit before bad markup", "abcdef<!-- x -->", 3, "abc…", false},
	{"limit zero", "<p>a</p>", 0, "…", true},
	{"limit negative", "a", -1, "…", true},
	{"limit zero empty", "<p> </p>", 0, "", true},
	{"empty", "", 10, "", true},
}

func TestStripHTMLFastPath(t *testing.T) {
	for _, tt := range stripHTMLCases {
		t.Run(tt.name, func(t *testing.T) {
			got := stripHTML(tt.in, tt.limit)
			if ref := stripHTMLTokenizer(tt.in, tt.limit); got != ref {
				t.Errorf("stripHTML(%q, %d) = %q, tokenizer gives %q", tt.in, tt.limit, got, ref)
			}
			if tt.want != "" && got != tt.want {
				t.Errorf("stripHTML(%q, %d) = %q, want %q", tt.in, tt.limit, got, tt.want)
			}
			if _, ok := stripSimpleHTML(tt.in, tt.limit); ok != tt.fast {
				t.Errorf("stripSimpleHTML(%q) handled = %v, want %v", tt.in, ok, tt.fast)
			}
		})
	}
}

// TestStripHTMLRandomMarkup compares the two paths on strings built from
// markup fragments, which reach the tokenizer's corner cases far more often
// than random bytes. The seed is fixed, so failures reproduce.
func TestStripHTMLRandomMarkup(t *testing.T) {
	pieces := []string{
		"<", ">", "/", "=", `"`, "'", " ", "\n", "\t", "\f", "\v", "\r", "a", "B", "p", "br", "img", "div",
		"script", "STYLE", "title", "xmp", "!", "?", "--", "&", "&amp", "&lt;", "&#", "&#x", "3", "9", ";",
		"x", "-", ".", ":", "`", "\x00", "\x01", "é", "\xff", "\u00a0", "\ufffe", "<p>", "</p>", "<b>", "</b>",
	}
	r := rand.New(rand.NewPCG(1, 2))
	var (
		sb   strings.Builder
		fast int
	)
	const rounds = 200000
	for range rounds {
		sb.Reset()
		for range r.IntN(24) {
			sb.WriteString(pieces[r.IntN(len(pieces))])
		}
		s, limit := sb.String(), r.IntN(30)
		if got, want := stripHTML(s, limit), stripHTMLTokenizer(s, limit); got != want {
			t.Fatalf("stripHTML(%q, %d) = %q, tokenizer gives %q", s, limit, got, want)
		}
		if _, ok := stripSimpleHTML(s, limit); ok {
			fast++
		}
	}
	// Guard against a fast path that bails on everything and so proves nothing.
	t.Logf("fast path took %d of %d inputs", fast, rounds)
	if fast < rounds/10 {
		t.Errorf("fast path took only %d of %d inputs", fast, rounds)
	}
}

func FuzzStripHTML(f *testing.F) {
	for _, tt := range stripHTMLCases {
		f.Add(tt.in, tt.limit)
	}
	f.Fuzz(func(t *testing.T, s string, limit int) {
		limit = max(0, min(limit, 3000))
		got, want := stripHTML(s, limit), stripHTMLTokenizer(s, limit)
		if got != want {
			t.Errorf("stripHTML(%q, %d) = %q, tokenizer gives %q", s, limit, got, want)
		}
	})
}

func BenchmarkStripHTML(b *testing.B) {
	inputs := []struct{ name, in string }{
		{"summary", "<p>Summary of item 7, a paragraph of text as feeds carry it, with <b>markup</b> to strip.</p>"},
		{"paragraph", `<div class="entry-content"><p>The council voted on Tuesday to extend the ` +
			`<a href="https://example.com/news/2024/transit-plan?ref=feed" title="Transit plan">transit plan</a> ` +
			`through 2030, after a debate that ran well past midnight. Supporters said the <em>new routes</em> ` +
			`would cut commute times by &ldquo;up to a third&rdquo;; critics pointed to the budget&#8217;s ` +
			`&pound;40&nbsp;million gap.</p><p><img src="https://example.com/img/bus.jpg" alt="A bus" ` +
			`width="640" height="360"/><br/>Read more at <strong>Example News</strong> &amp; our ` +
			`<a href='https://example.com/live'>live blog</a>.</p></div>`},
	}
	for _, impl := range []struct {
		name string
		fn   func(string, int) string
	}{{"tokenizer", stripHTMLTokenizer}, {"fast", stripHTML}} {
		for _, in := range inputs {
			b.Run(impl.name+"/"+in.name, func(b *testing.B) {
				if _, ok := stripSimpleHTML(in.in, maxSummaryRunes); !ok {
					b.Fatalf("fast path does not handle %q", in.in)
				}
				b.ReportAllocs()
				for b.Loop() {
					impl.fn(in.in, maxSummaryRunes)
				}
			})
		}
	}
}
