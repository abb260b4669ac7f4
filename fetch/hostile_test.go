package fetch

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/internal/netguardtest"
)

// Generators for the hostile inputs too big to commit (reliability.md §2.6
// F1, F2, F7). size-driven ones fill up to about size bytes.

// deepXML nests open/close pairs n deep inside an item (RSS) or entry (Atom).
func deepXML(kind string, n int) []byte {
	var b bytes.Buffer
	open, end := "<x:a>", "</x:a>"
	switch kind {
	case "rss":
		b.WriteString(`<?xml version="1.0"?><rss version="2.0" xmlns:x="urn:x"><channel><title>deep</title><item><guid>d</guid><title>t</title>`)
	case "rss-description":
		b.WriteString(`<?xml version="1.0"?><rss version="2.0"><channel><title>deep</title><item><guid>d</guid><description>`)
		open, end = "<div>", "</div>"
	case "atom":
		b.WriteString(`<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>deep</title><entry><id>d</id><title>t</title>`)
		open, end = "<unknown>", "</unknown>"
	}
	b.WriteString(strings.Repeat(open, n))
	b.WriteString(strings.Repeat(end, n))
	switch kind {
	case "rss":
		b.WriteString(`</item></channel></rss>`)
	case "rss-description":
		b.WriteString(`</description></item></channel></rss>`)
	case "atom":
		b.WriteString(`</entry></feed>`)
	}
	return b.Bytes()
}

func deepJSON(n int) []byte {
	return []byte(`{"version":"https://jsonfeed.org/version/1.1","title":"deep","items":[{"id":"1","_x":` +
		strings.Repeat("[", n) + strings.Repeat("]", n) + `}]}`)
}

// items is an RSS feed of n realistic items (guid, title, link, date,
// description: six elements each).
func items(n int) []byte {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0"?><rss version="2.0"><channel><title>many</title><link>https://many.example.org/</link>`)
	for i := range n {
		fmt.Fprintf(&b, `<item><guid>g%d</guid><title>Item %d</title><link>https://many.example.org/%d</link>`+
			`<pubDate>Mon, 16 Nov 2026 08:00:00 GMT</pubDate><description>Text %d</description></item>`, i, i, i, i)
	}
	b.WriteString(`</channel></rss>`)
	return b.Bytes()
}

// quadratic is the quadratic blowup: one 50 kB entity referenced 50k times.
func quadratic() []byte {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "` + strings.Repeat("a", 50_000) + `">]>`)
	b.WriteString(`<rss version="2.0"><channel><title>quadratic</title><item><guid>q</guid><description>`)
	b.WriteString(strings.Repeat("&a;", 50_000))
	b.WriteString(`</description></item></channel></rss>`)
	return b.Bytes()
}

// flat is an extension element with n empty children.
func flat(n int) []byte {
	return []byte(`<?xml version="1.0"?><rss version="2.0" xmlns:x="urn:x"><channel><title>flat</title><item><guid>f</guid><x:g>` +
		strings.Repeat("<x:c/>", n) + `</x:g></item></channel></rss>`)
}

// manyAttrs is one element per 1000 attributes, n attributes in all.
func manyAttrs(n int) []byte {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0"?><rss version="2.0" xmlns:x="urn:x"><channel><title>attrs</title><item><guid>a</guid>`)
	for i := 0; i < n; i += 1000 {
		b.WriteString("<x:c")
		for j := range min(1000, n-i) {
			fmt.Fprintf(&b, ` a%d="v"`, j)
		}
		b.WriteString("/>")
	}
	b.WriteString(`</item></channel></rss>`)
	return b.Bytes()
}

func hostileFile(t *testing.T, name string) []byte {
	t.Helper()
	return readTestdata(t, filepath.Join("hostile", name))
}

// TestHostileInputs feeds every F1/F2/F6/F7 case through a real fetch:
// each gives a valid parse or a per-feed *tilecast.FetchError, never a
// panic, and never a hang (the test timeout is the bound).
func TestHostileInputs(t *testing.T) {
	// F1: a parameter entity pointing at this listener must not be fetched.
	dtd, dtdAccepted := netguardtest.CountingServer(t, "127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`<!ENTITY send "LEAKED">`))
	}))
	listener := dtd.Listener.Addr().String()

	type check func(t *testing.T, res *tilecast.FeedResult)
	tests := []struct {
		name    string
		body    func(t *testing.T) []byte
		ok      bool  // a valid parse; else a FetchError
		is      error // with !ok: errors.Is target, if any
		check   check
		maxBody int64
	}{
		// F1
		{name: "billion laughs", body: file("billion-laughs.xml"), ok: true, check: func(t *testing.T, r *tilecast.FeedResult) {
			wantEq(t, "title", r.Title, "&lol9;")
			wantEq(t, "item title", r.Items[0].Title, "&lol9;")
		}},
		{name: "xxe file", body: file("xxe-file.xml"), ok: true, check: func(t *testing.T, r *tilecast.FeedResult) {
			wantEq(t, "item title", r.Items[0].Title, "Secret: &xxe;")
			if strings.Contains(r.Items[0].Summary, "root:") {
				t.Errorf("file contents leaked: %q", r.Items[0].Summary)
			}
		}},
		{name: "xxe parameter entity", body: func(t *testing.T) []byte {
			return bytes.ReplaceAll(hostileFile(t, "xxe-param.xml"), []byte("LISTENER"), []byte(listener))
		}, ok: true, check: func(t *testing.T, r *tilecast.FeedResult) {
			wantEq(t, "item title", r.Items[0].Title, "&send;")
		}},
		// gofeed's type detection gives up on the 50 kB internal subset:
		// a per-feed error, and nothing was expanded.
		{name: "quadratic blowup", body: func(*testing.T) []byte { return quadratic() }},
		// F2
		{name: "rss extension nested 1e4", body: gen(func() []byte { return deepXML("rss", 10_000) }), is: errTooComplex},
		{name: "rss extension nested 1e5", body: gen(func() []byte { return deepXML("rss", 100_000) }), is: errTooComplex},
		{name: "rss description nested 1e4", body: gen(func() []byte { return deepXML("rss-description", 10_000) }), is: errTooComplex},
		{name: "atom unknown nested 1e4", body: gen(func() []byte { return deepXML("atom", 10_000) }), is: errTooComplex},
		{name: "atom unknown nested 1e5", body: gen(func() []byte { return deepXML("atom", 100_000) }), is: errTooComplex},
		{name: "json nested 1e4", body: gen(func() []byte { return deepJSON(10_000) }), is: errTooComplex},
		{name: "nested 1e6 over cap", body: gen(func() []byte { return deepXML("rss", 1_000_000) }), is: tilecast.ErrBodyTooLarge},
		{name: "nested 64 is fine", body: gen(func() []byte { return deepXML("rss", 60) }), ok: true},
		{name: "200k items", body: gen(func() []byte { return items(200_000) }), is: tilecast.ErrBodyTooLarge},
		{name: "20k items under the cap", body: gen(func() []byte { return items(20_000) }), is: errTooComplex},
		{name: "300k flat children", body: gen(func() []byte { return flat(300_000) }), is: errTooComplex},
		{name: "200k attributes", body: gen(func() []byte { return manyAttrs(200_000) }), is: errTooComplex},
		{name: "64 MiB text node", body: gen(func() []byte {
			return []byte(`<rss version="2.0"><channel><title>` + strings.Repeat("t", 64<<20) + `</title></channel></rss>`)
		}), is: tilecast.ErrBodyTooLarge},
		{name: "16 MiB attribute", body: gen(func() []byte {
			return []byte(`<rss version="2.0"><channel><title x="` + strings.Repeat("v", 16<<20) + `">t</title></channel></rss>`)
		}), is: tilecast.ErrBodyTooLarge},
		// F6
		{name: "unknown charset", body: file("unknown-charset.xml")},
		{name: "utf-16 with bom", body: file("utf16-bom.xml")},
		{name: "latin-1 undeclared", body: file("latin1-undeclared.xml"), ok: true, check: func(t *testing.T, r *tilecast.FeedResult) {
			wantEq(t, "title", r.Title, "Caf\uFFFD Latin")
		}},
		{name: "invalid utf-8", body: file("invalid-utf8.xml"), ok: true, check: func(t *testing.T, r *tilecast.FeedResult) {
			wantEq(t, "title", r.Title, "Caf\uFFFD \uFFFD Menu")
		}},
		{name: "nul reference", body: file("nul-ref.xml"), ok: true, check: func(t *testing.T, r *tilecast.FeedResult) {
			wantEq(t, "title", r.Title, "Nul Ref")
			wantEq(t, "item title", r.Items[0].Title, "A B C")
		}},
		{name: "bom and whitespace before xml declaration", body: file("bom-whitespace.xml"), ok: true, check: func(t *testing.T, r *tilecast.FeedResult) {
			wantEq(t, "title", r.Title, "BOM first")
		}},
		{name: "html error page", body: file("html-error-page.html")},
		// F7
		{name: "missing guids and links", body: file("missing-guids-links.xml"), ok: true, check: func(t *testing.T, r *tilecast.FeedResult) {
			if len(r.Items) != 5 {
				t.Fatalf("%d items, want 5", len(r.Items))
			}
			seen := map[string]bool{}
			for _, it := range r.Items {
				if !strings.HasPrefix(it.ID, "sha256:") || seen[it.ID] {
					t.Errorf("ID %q: want a distinct content hash", it.ID)
				}
				seen[it.ID] = true
			}
		}},
		{name: "duplicate guids", body: file("duplicate-guids.xml"), ok: true, check: func(t *testing.T, r *tilecast.FeedResult) {
			var ids []string
			for _, it := range r.Items {
				ids = append(ids, it.ID)
			}
			// Kept as sent: deduplication against the seen set is the Bot's.
			wantEq(t, "ids", strings.Join(ids, ","), "same,same,other,same")
		}},
		{name: "dates in 1970 and 2100", body: file("dates-1970-2100.xml"), ok: true, check: func(t *testing.T, r *tilecast.FeedResult) {
			want := []time.Time{time.Unix(0, 0).UTC(), time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC), {}, {}}
			for i, w := range want {
				if !r.Items[i].Published.Equal(w) {
					t.Errorf("item %d Published = %v, want %v", i, r.Items[i].Published, w)
				}
			}
		}},
		{name: "10k items", body: gen(func() []byte { return items(10_000) }), ok: true, check: func(t *testing.T, r *tilecast.FeedResult) {
			if len(r.Items) != 10_000 {
				t.Errorf("%d items, want 10000", len(r.Items))
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := tt.body(t)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) }))
			defer srv.Close()
			c := newClient(Options{Timeout: time.Minute})
			res, err := c.Fetch(t.Context(), srv.URL, tilecast.Validators{})
			if tt.ok {
				if err != nil {
					t.Fatalf("Fetch: %v, want a valid parse", err)
				}
				if len(res.Items) == 0 {
					t.Fatal("no items")
				}
				if tt.check != nil {
					tt.check(t, res)
				}
				return
			}
			if res != nil {
				t.Errorf("result = %+v, want nil", res)
			}
			var fe *tilecast.FetchError
			if !errors.As(err, &fe) {
				t.Fatalf("err = %v (%T), want a *tilecast.FetchError", err, err)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("err = %v, want %v", err, tt.is)
			}
		})
	}
	if n := dtdAccepted.Load(); n != 0 {
		t.Errorf("the parameter entity's listener accepted %d connections, want 0", n)
	}
}

func file(name string) func(*testing.T) []byte {
	return func(t *testing.T) []byte { return hostileFile(t, name) }
}

func gen(f func() []byte) func(*testing.T) []byte { return func(*testing.T) []byte { return f() } }

func wantEq(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %q, want %q", what, got, want)
	}
}

// TestHostileFilesSmall keeps the committed corpus small: big cases are
// generated by the tests.
func TestHostileFilesSmall(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "hostile", "*"))
	if err != nil || len(files) < 13 {
		t.Fatalf("hostile corpus: %d files, %v", len(files), err)
	}
	for _, f := range files {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() > 200<<10 {
			t.Errorf("%s is %d bytes; generate it in the test instead", f, st.Size())
		}
	}
}
