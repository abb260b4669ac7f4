package fetch

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/mmcdole/gofeed"
	ext "github.com/mmcdole/gofeed/extensions"
	jsonfeed "github.com/mmcdole/gofeed/json"
	"github.com/mmcdole/gofeed/rss"
	"golang.org/x/net/html"

	"github.com/tilecast/tilecast"
)

// Text limits. Payloads are ≤ 3 KB, so longer text is never shown; the cap
// keeps stored template data small and stops tokenizing huge content early.
const (
	maxTitleRunes   = 500
	maxSummaryRunes = 2000
)

// parsedFeed is what parse extracts from one body.
type parsedFeed struct {
	title string
	link  string
	items []tilecast.Item
	ttl   time.Duration // RSS <ttl>; 0 when absent
}

// parse sanitizes data, refuses it when the pre-scan finds it too deep or
// too wide, and parses it as RSS, Atom or JSON Feed. base is the
// URL the body came from; relative links and images are resolved against the
// item link, then the feed link, then base. base may be nil.
func parse(data []byte, base *url.URL) (parsedFeed, error) {
	data = sanitize(data)
	if err := prescan(data); err != nil {
		return parsedFeed{}, err
	}
	feed, err := gofeedParse(data)
	if err != nil {
		return parsedFeed{}, err
	}
	if jf, ok := feed.OriginalFeed().(*jsonfeed.Feed); ok && !isJSONFeed(jf) {
		return parsedFeed{}, errNotJSONFeed
	}
	feedBase := base
	if u := absURL(base, feed.Link); u != nil {
		feedBase = u
	}
	pf := parsedFeed{
		title: stripHTML(feed.Title, maxTitleRunes),
		link:  urlString(feedBase),
	}
	if rf, ok := feed.OriginalFeed().(*rss.Feed); ok && rf != nil {
		if m, err := strconv.Atoi(strings.TrimSpace(rf.TTL)); err == nil && m > 0 {
			pf.ttl = time.Duration(min(m, int(maxDelay/time.Minute))) * time.Minute
		}
	}
	pf.items = make([]tilecast.Item, 0, len(feed.Items))
	for _, it := range feed.Items {
		if it == nil {
			continue
		}
		pf.items = append(pf.items, convertItem(it, feedBase))
	}
	return pf, nil
}

// errNotJSONFeed is a JSON document that is not a JSON Feed: gofeed reads
// any JSON object as one, so an API answer or an error object would
// otherwise be an empty feed, reported as a successful fetch.
var errNotJSONFeed = errors.New(`not a feed: a JSON document without JSON Feed's "version" (https://jsonfeed.org/version/1.1) or any "items"`)

// isJSONFeed reports whether a JSON document gofeed parsed is a JSON Feed:
// its version names the JSON Feed spec, or it has items. JSON Feed
// requires both; one is enough to tell a feed from other JSON.
func isJSONFeed(f *jsonfeed.Feed) bool {
	v := strings.ToLower(strings.TrimSpace(f.Version))
	if strings.HasPrefix(v, "https://jsonfeed.org/version/") || strings.HasPrefix(v, "http://jsonfeed.org/version/") {
		return true
	}
	for _, it := range f.Items {
		if it != nil {
			return true
		}
	}
	return false
}

// gofeedParse runs gofeed with a fresh Parser (old versions raced when one
// was shared) and turns a panic inside it into an error: nothing a feed
// sends may take the daemon down.
func gofeedParse(data []byte) (feed *gofeed.Feed, err error) {
	defer func() {
		if r := recover(); r != nil {
			feed, err = nil, fmt.Errorf("gofeed panic: %v", r)
		}
	}()
	fp := gofeed.NewParser()
	// Our own image scan resolves relative URLs; gofeed's would run a second
	// full HTML parse per item.
	fp.RSSTranslator = &gofeed.DefaultRSSTranslator{DisableContentImageScan: true}
	fp.KeepOriginalFeed = true // for the RSS <ttl>, which the universal Feed drops
	feed, err = fp.Parse(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	if feed == nil {
		return nil, errors.New("no feed")
	}
	return feed, nil
}

func convertItem(it *gofeed.Item, feedBase *url.URL) tilecast.Item {
	rawLink := it.Link
	if strings.TrimSpace(rawLink) == "" && len(it.Links) > 0 {
		rawLink = it.Links[0]
	}
	itemBase := feedBase
	link := strings.TrimSpace(rawLink)
	if u := absURL(feedBase, rawLink); u != nil {
		itemBase, link = u, u.String()
	}
	var published time.Time
	switch {
	case it.PublishedParsed != nil:
		published = it.PublishedParsed.UTC()
	case it.UpdatedParsed != nil:
		published = it.UpdatedParsed.UTC()
	}
	content := it.Content
	if content == "" {
		content = it.Description
	}
	summary := it.Description
	if strings.TrimSpace(summary) == "" {
		summary = it.Content
	}
	return tilecast.Item{
		ID:        ItemID(it.GUID, link, it.Title, published, content),
		Title:     stripHTML(it.Title, maxTitleRunes),
		Link:      link,
		Summary:   stripHTML(summary, maxSummaryRunes),
		Published: published,
		Image:     itemImage(it, itemBase),
	}
}

// ItemID is the identity of an item across fetches: its GUID; else its
// link; else "sha256:" and the hex SHA-256 of title, published time
// (RFC 3339, UTC; empty when zero) and content, NUL-separated.
func ItemID(guid, link, title string, published time.Time, content string) string {
	if g := strings.TrimSpace(guid); g != "" {
		return g
	}
	if l := strings.TrimSpace(link); l != "" {
		return l
	}
	var p string
	if !published.IsZero() {
		p = published.UTC().Format(time.RFC3339)
	}
	h := sha256.New()
	h.Write([]byte(title))
	h.Write([]byte{0})
	h.Write([]byte(p))
	h.Write([]byte{0})
	h.Write([]byte(content))
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// itemImage picks the item's image: an image enclosure, then
// media:thumbnail / media:content, then the item image, then the first
// <img> in content or description. Only absolute http(s) URLs qualify.
func itemImage(it *gofeed.Item, base *url.URL) string {
	for _, e := range it.Enclosures {
		if e == nil {
			continue
		}
		t := strings.ToLower(strings.TrimSpace(e.Type))
		if strings.HasPrefix(t, "image/") || (t == "" || t == "application/octet-stream") && imageExt(e.URL) {
			if u := absURL(base, e.URL); u != nil {
				return u.String()
			}
		}
	}
	if u := mediaImage(it.Extensions["media"], base); u != "" {
		return u
	}
	if it.Image != nil {
		if u := absURL(base, it.Image.URL); u != nil {
			return u.String()
		}
	}
	for _, s := range []string{it.Content, it.Description} {
		if u := absURL(base, firstImg(s)); u != nil {
			return u.String()
		}
	}
	return ""
}

// mediaImage looks through Media RSS elements, also inside media:group:
// thumbnails first, then image media:content (or a content's thumbnail).
func mediaImage(media map[string][]ext.Extension, base *url.URL) string {
	if media == nil {
		return ""
	}
	for _, th := range media["thumbnail"] {
		if u := absURL(base, th.Attrs["url"]); u != nil {
			return u.String()
		}
	}
	for _, c := range media["content"] {
		medium := strings.ToLower(c.Attrs["medium"])
		t := strings.ToLower(c.Attrs["type"])
		if medium == "image" || strings.HasPrefix(t, "image/") || medium == "" && t == "" && imageExt(c.Attrs["url"]) {
			if u := absURL(base, c.Attrs["url"]); u != nil {
				return u.String()
			}
		}
		if u := mediaImage(c.Children, base); u != "" {
			return u
		}
	}
	for _, g := range media["group"] {
		if u := mediaImage(g.Children, base); u != "" {
			return u
		}
	}
	return ""
}

func imageExt(raw string) bool {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return false
	}
	switch strings.ToLower(path.Ext(u.Path)) {
	case ".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".avif":
		return true
	}
	return false
}

// firstImg returns the src of the first <img> in an HTML fragment.
func firstImg(s string) string {
	// Most content has markup but no image: tokenizing it all would cost
	// as much as stripping it for the summary.
	if !hasImgTag(s) {
		return ""
	}
	z := html.NewTokenizer(strings.NewReader(s))
	for {
		switch z.Next() {
		case html.ErrorToken:
			return ""
		case html.StartTagToken, html.SelfClosingTagToken:
			name, hasAttr := z.TagName()
			if string(name) != "img" {
				continue
			}
			for hasAttr {
				var k, v []byte
				k, v, hasAttr = z.TagAttr()
				if string(k) == "src" && len(bytes.TrimSpace(v)) > 0 {
					return string(v)
				}
			}
		}
	}
}

// hasImgTag reports whether s contains "<img", in any case: an img start
// tag cannot be written without it (the tokenizer reads "< img" as text).
func hasImgTag(s string) bool {
	for {
		i := strings.IndexByte(s, '<')
		if i < 0 || len(s)-i < 4 {
			return false
		}
		if strings.EqualFold(s[i+1:i+4], "img") {
			return true
		}
		s = s[i+1:]
	}
}

// absURL resolves raw against base and returns it when the result is an
// absolute http(s) URL with a host; nil otherwise.
func absURL(base *url.URL, raw string) *url.URL {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil
	}
	if base != nil {
		u = base.ResolveReference(u)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil
	}
	return u
}

func urlString(u *url.URL) string {
	if u == nil {
		return ""
	}
	return u.String()
}

// stripHTML returns the text of an HTML fragment: tags removed (script and
// style with their content), entities decoded, whitespace collapsed, control
// characters dropped, and at most limit runes ("…" marks a cut).
//
// Most feed markup is plain inline and block tags, which a byte scan handles
// without the cost of a tokenizer; anything the scan is not sure about goes
// to the tokenizer, so the output is the same either way.
func stripHTML(s string, limit int) string {
	if out, ok := stripSimpleHTML(s, limit); ok {
		return out
	}
	return stripHTMLTokenizer(s, limit)
}

// stripSimpleHTML is stripHTML for input made of text, entities and tags
// with an ASCII alphanumeric name and well-formed attributes. It reports
// false, having wasted at most one scan, on anything else: comments,
// doctypes and processing instructions, "</" not followed by a letter, a
// trailing "<", unterminated or unusual tags, NUL bytes, and the elements
// that switch the tokenizer into raw text (script, style, textarea, ...).
// Text runs end exactly where the tokenizer ends its text tokens, so
// decoding each with html.UnescapeString matches Tokenizer.Text (whose
// newline conversion only turns whitespace into whitespace).
func stripSimpleHTML(s string, limit int) (string, bool) {
	if strings.IndexByte(s, 0) >= 0 {
		return "", false
	}
	w := textSink{limit: limit}
	// Markup and entities mostly shrink the text; a small limit caps it.
	if limit >= 0 && limit < len(s)/utf8.UTFMax {
		w.sb.Grow(limit*utf8.UTFMax + len("…"))
	} else {
		w.sb.Grow(len(s))
	}
	for p := 0; p < len(s); {
		q, ok := nextTagStart(s, p)
		if !ok {
			return "", false
		}
		if q == len(s) {
			w.emitHTML(s[p:])
			break
		}
		end, name, ok := scanSimpleTag(s, q)
		if !ok {
			return "", false
		}
		breaks, raw := simpleTagKind(name)
		if raw {
			return "", false
		}
		if !w.emitHTML(s[p:q]) {
			break
		}
		if breaks {
			w.pending = w.sb.Len() > 0
		}
		p = end
	}
	return w.sb.String(), true
}

// nextTagStart returns the index of the first '<' at or after p that the
// tokenizer would read as the start of a tag, comment or doctype (a '<'
// followed by a letter, '/', '!' or '?'), or len(s) if there is none. Any
// other '<' is text to the tokenizer. It reports false for a '<' at the
// very end, which the fast scan leaves to the tokenizer.
func nextTagStart(s string, p int) (int, bool) {
	for {
		i := strings.IndexByte(s[p:], '<')
		if i < 0 {
			return len(s), true
		}
		p += i + 1
		if p == len(s) {
			return 0, false
		}
		if c := s[p]; isASCIILetter(c) || c == '/' || c == '!' || c == '?' {
			return p - 1, true
		}
	}
}

// scanSimpleTag reads the tag at s[q] == '<' and returns the index after
// its '>' and its name as written. It accepts only
//
//	'<' '/'? name (ws* key (ws* '=' ws* value)?)* ws* '/'? '>'
//
// with name [A-Za-z][A-Za-z0-9]*, key [A-Za-z0-9_:.-]+, value quoted or
// made of bytes other than whitespace, quotes and <=>`. In that subset the
// tokenizer ends the tag at the same '>': the first one outside a quoted
// value. Anything else reports false.
func scanSimpleTag(s string, q int) (end int, name string, ok bool) {
	i := q + 1
	if s[i] == '/' {
		i++
	}
	start := i
	if i >= len(s) || !isASCIILetter(s[i]) {
		return 0, "", false
	}
	for i < len(s) && (isASCIILetter(s[i]) || isASCIIDigit(s[i])) {
		i++
	}
	name = s[start:i]
	if i < len(s) && !isHTMLSpace(s[i]) && s[i] != '/' && s[i] != '>' {
		return 0, "", false // e.g. "<a.b>": the tokenizer's name would differ
	}
	for {
		i = skipHTMLSpace(s, i)
		if i >= len(s) {
			return 0, "", false
		}
		switch c := s[i]; {
		case c == '>':
			return i + 1, name, true
		case c == '/':
			if i+1 < len(s) && s[i+1] == '>' {
				return i + 2, name, true
			}
			return 0, "", false
		case isAttrKeyByte(c):
			for i < len(s) && isAttrKeyByte(s[i]) {
				i++
			}
			j := skipHTMLSpace(s, i)
			if j >= len(s) || s[j] != '=' {
				i = j
				continue
			}
			i = skipHTMLSpace(s, j+1)
			if i >= len(s) {
				return 0, "", false
			}
			if c := s[i]; c == '"' || c == '\'' {
				k := strings.IndexByte(s[i+1:], c)
				if k < 0 {
					return 0, "", false
				}
				i += k + 2
				continue
			}
			v := i
			for i < len(s) && isUnquotedValueByte(s[i]) {
				i++
			}
			if i == v {
				return 0, "", false
			}
		default:
			return 0, "", false
		}
	}
}

// simpleTagKind reports whether a tag name (any case) breaks words, and
// whether it is one the tokenizer reads raw text after, which the fast scan
// leaves to the tokenizer. Longer names than fit the buffer are neither.
func simpleTagKind(name string) (breaks, raw bool) {
	var buf [10]byte
	if len(name) > len(buf) {
		return false, false
	}
	for i := range len(name) {
		c := name[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	switch lower := string(buf[:len(name)]); lower {
	case "script", "style", "textarea", "title", "plaintext", "xmp", "iframe", "noscript", "noembed", "noframes":
		return false, true
	default:
		return breaksWords(lower), false
	}
}

func isASCIILetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

func isASCIIDigit(c byte) bool { return '0' <= c && c <= '9' }

// isHTMLSpace reports the bytes the tokenizer skips as whitespace in tags.
func isHTMLSpace(c byte) bool {
	return c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '\f'
}

func skipHTMLSpace(s string, i int) int {
	for i < len(s) && isHTMLSpace(s[i]) {
		i++
	}
	return i
}

func isAttrKeyByte(c byte) bool {
	return isASCIILetter(c) || isASCIIDigit(c) || c == '-' || c == '_' || c == ':' || c == '.'
}

func isUnquotedValueByte(c byte) bool {
	switch c {
	case '"', '\'', '<', '=', '>', '`':
		return false
	}
	return !isHTMLSpace(c)
}

// textSink accumulates stripSimpleHTML's output by the same rules as the
// emit closure in stripHTMLTokenizer, with a shortcut for ASCII.
type textSink struct {
	sb      strings.Builder
	n       int  // runes written
	limit   int  // runes allowed before the cut
	pending bool // a space is owed before the next visible rune
}

// emitHTML emits a run of text after decoding its character references.
func (w *textSink) emitHTML(text string) bool {
	if strings.IndexByte(text, '&') >= 0 {
		text = html.UnescapeString(text)
	}
	return w.emit(text)
}

// emit appends text and reports false once the limit cut it.
func (w *textSink) emit(text string) bool {
	for i := 0; i < len(text); {
		if c := text[i]; c < utf8.RuneSelf {
			i++
			switch {
			case c == ' ' || '\t' <= c && c <= '\r': // unicode.IsSpace in ASCII
				w.pending = w.sb.Len() > 0
				continue
			case c < ' ' || c == 0x7f: // unicode.IsControl in ASCII
				continue
			}
			if !w.room() {
				return false
			}
			w.sb.WriteByte(c)
			w.n++
			continue
		}
		r, size := utf8.DecodeRuneInString(text[i:])
		i += size
		switch {
		case unicode.IsSpace(r):
			w.pending = w.sb.Len() > 0
			continue
		case unicode.IsControl(r), r == '\uFFFE', r == '\uFFFF':
			continue
		}
		if !w.room() {
			return false
		}
		w.sb.WriteRune(r)
		w.n++
	}
	return true
}

// room writes the cut mark and reports false when the limit is reached;
// otherwise it writes any owed space, ready for the next rune.
func (w *textSink) room() bool {
	if w.n >= w.limit {
		w.sb.WriteString("…")
		return false
	}
	if w.pending {
		w.sb.WriteByte(' ')
		w.n++
		w.pending = false
	}
	return true
}

// stripHTMLTokenizer is stripHTML for any input, by way of the HTML
// tokenizer; stripSimpleHTML must agree with it.
func stripHTMLTokenizer(s string, limit int) string {
	w := textSink{limit: limit}
	skipDepth := 0 // inside <script> or <style>
	if !strings.ContainsAny(s, "<&") {
		w.emit(s)
		return w.sb.String()
	}
	z := html.NewTokenizer(strings.NewReader(s))
	for {
		switch tt := z.Next(); tt {
		case html.ErrorToken:
			return w.sb.String()
		case html.TextToken:
			if skipDepth == 0 && !w.emit(string(z.Text())) {
				return w.sb.String()
			}
		case html.StartTagToken, html.EndTagToken, html.SelfClosingTagToken:
			name, _ := z.TagName()
			tag := string(name)
			if tag == "script" || tag == "style" {
				switch tt {
				case html.StartTagToken:
					skipDepth++
				case html.EndTagToken:
					skipDepth = max(skipDepth-1, 0)
				}
				continue
			}
			if breaksWords(tag) {
				w.pending = w.sb.Len() > 0
			}
		}
	}
}

// breaksWords reports whether a tag separates the words around it.
func breaksWords(tag string) bool {
	switch tag {
	case "br", "p", "div", "li", "ul", "ol", "tr", "td", "th", "table", "h1", "h2", "h3", "h4", "h5", "h6",
		"blockquote", "pre", "hr", "section", "article", "header", "footer", "figure", "figcaption", "dd", "dt", "img":
		return true
	}
	return false
}

// sanitize makes a body parseable that one bad character would otherwise
// get rejected whole. It removes C0 control bytes that XML 1.0 forbids,
// a leading UTF-8 BOM and whitespace (an XML declaration must come first),
// replaces invalid UTF-8 with U+FFFD unless another encoding is declared,
// and blanks raw U+FFFE/U+FFFF and character references to forbidden code
// points (&#0;). Blanking (with a space) rather than deleting keeps the
// result free of references that deletion could splice together
// ("&#&#0;0;"), so one pass suffices. UTF-16 bodies are left alone: their
// bytes are not ASCII-compatible.
func sanitize(b []byte) []byte {
	if len(b) >= 2 && (b[0] == 0xFE && b[1] == 0xFF || b[0] == 0xFF && b[1] == 0xFE ||
		b[0] == 0 && b[1] == '<' || b[0] == '<' && b[1] == 0) {
		return b
	}
	b = trimLeading(dropControls(b))
	if enc := declaredEncoding(b); (enc == "" || strings.EqualFold(enc, "utf-8") || strings.EqualFold(enc, "utf8")) && !utf8.Valid(b) {
		b = bytes.ToValidUTF8(b, []byte("\uFFFD"))
	}
	return trimLeading(blankForbidden(b))
}

// dropControls removes C0 control bytes other than tab, LF and CR. They are
// the same byte in UTF-8 and in the single-byte encodings and never occur
// inside a multi-byte UTF-8 sequence. b is returned as is when clean.
func dropControls(b []byte) []byte {
	var out []byte
	for i, c := range b {
		bad := c < 0x20 && c != '\t' && c != '\n' && c != '\r'
		switch {
		case bad && out == nil:
			out = append(make([]byte, 0, len(b)), b[:i]...)
		case !bad && out != nil:
			out = append(out, c)
		}
	}
	if out == nil {
		return b
	}
	return out
}

// blankForbidden replaces raw U+FFFE/U+FFFF and references to code points
// outside the XML Char production with a space. b is returned as is when
// clean.
func blankForbidden(b []byte) []byte {
	var out []byte // allocated on the first change
	last := 0      // b[last:i] is still to be copied into out
	blank := func(i, j int) {
		if out == nil {
			out = make([]byte, 0, len(b))
		}
		out = append(append(out, b[last:i]...), ' ')
		last = j
	}
	for i := 0; i < len(b); {
		switch {
		case b[i] == 0xEF && i+2 < len(b) && b[i+1] == 0xBF && (b[i+2] == 0xBE || b[i+2] == 0xBF):
			blank(i, i+3)
			i += 3
		case b[i] == '&' && i+1 < len(b) && b[i+1] == '#':
			r, end, ok := charRef(b[i:])
			if ok && !xmlChar(r) {
				blank(i, i+end)
			}
			i += end // past the reference, or to the byte that ended a malformed one
		default:
			i++
		}
	}
	if out == nil {
		return b
	}
	return append(out, b[last:]...)
}

// trimLeading removes leading UTF-8 BOMs and whitespace.
func trimLeading(b []byte) []byte {
	for {
		t := bytes.TrimLeft(bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")), " \t\r\n")
		if len(t) == len(b) {
			return t
		}
		b = t
	}
}

// charRef parses a numeric character reference at the start of b ("&#65;",
// "&#x41;") and returns its code point (clamped above the Unicode range),
// its length and whether it was well-formed.
func charRef(b []byte) (r rune, n int, ok bool) {
	i, baseN := 2, 10
	if i < len(b) && b[i] == 'x' {
		i, baseN = 3, 16
	}
	start := i
	var v int64
	for ; i < len(b); i++ {
		d := digitVal(b[i])
		if d < 0 || d >= baseN {
			break
		}
		v = min(v*int64(baseN)+int64(d), unicode.MaxRune+1)
	}
	if i == start || i >= len(b) || b[i] != ';' {
		return 0, i, false
	}
	return rune(v), i + 1, true
}

func digitVal(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// xmlChar is the XML 1.0 Char production.
func xmlChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D ||
		r >= 0x20 && r <= 0xD7FF ||
		r >= 0xE000 && r <= 0xFFFD ||
		r >= 0x10000 && r <= 0x10FFFF
}

// declaredEncoding returns the encoding named in a leading XML declaration.
func declaredEncoding(b []byte) string {
	if !bytes.HasPrefix(b, []byte("<?xml")) {
		return ""
	}
	end := bytes.Index(b[:min(len(b), 256)], []byte("?>"))
	if end < 0 {
		return ""
	}
	decl := b[:end]
	i := bytes.Index(decl, []byte("encoding"))
	if i < 0 {
		return ""
	}
	rest := bytes.TrimLeft(decl[i+len("encoding"):], " \t\r\n")
	rest, ok := bytes.CutPrefix(rest, []byte("="))
	if !ok {
		return ""
	}
	rest = bytes.TrimLeft(rest, " \t\r\n")
	if len(rest) == 0 || (rest[0] != '"' && rest[0] != '\'') {
		return ""
	}
	q := rest[0]
	val, _, ok := bytes.Cut(rest[1:], []byte{q})
	if !ok {
		return ""
	}
	return string(val)
}
