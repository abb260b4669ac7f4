package notify

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"text/template"
	"text/template/parse"
	"time"

	"github.com/tilecast/tilecast"
)

// Funcs returns the functions available to feed templates:
//
//	truncate N   cut to at most N runes, "…" included, when longer
//	urlquery     query-escape the argument(s)
//	default D    D when the piped value is empty/zero: {{.Item.Image | default "x"}}
func Funcs() template.FuncMap {
	return template.FuncMap{
		"truncate": Truncate,
		"urlquery": func(args ...any) string {
			if len(args) == 1 {
				if s, ok := args[0].(string); ok {
					return url.QueryEscape(s)
				}
			}
			return url.QueryEscape(fmt.Sprint(args...))
		},
		"default": func(def, v any) any {
			if v == nil {
				return def
			}
			if rv := reflect.ValueOf(v); rv.IsZero() {
				return def
			}
			return v
		},
	}
}

// CheckFeed parses every template of f and executes it against sample data,
// so that a syntax error, an unknown function or a misspelt field is
// reported when the config loads rather than at the first send. The error
// names the field: "tile.back_content: template: ...". It also rejects a
// tile field the template kind does not carry and an unknown tile kind.
func CheckFeed(f *tilecast.Feed) error {
	c, err := compileFeed(f)
	if err != nil {
		return err
	}
	d := sampleData()
	for _, ft := range c.all() {
		if _, err := ft.exec(d); err != nil {
			return err
		}
	}
	return nil
}

// sampleData is what CheckFeed executes templates with: every field set,
// three items, so that index and range work as they will for real.
func sampleData() *tilecast.TemplateData {
	items := make([]tilecast.Item, 3)
	for i := range items {
		n := strconv.Itoa(i + 1)
		items[i] = tilecast.Item{
			ID: "id-" + n, Title: "Title " + n, Link: "https://example.org/" + n,
			Summary: "Summary " + n, Published: time.Date(2024, 1, i+1, 12, 0, 0, 0, time.UTC),
			Image: "https://example.org/" + n + ".png",
		}
	}
	return &tilecast.TemplateData{
		Feed:     tilecast.FeedInfo{Name: "sample", Title: "Sample feed", Link: "https://example.org/"},
		Item:     items[0],
		Items:    items,
		NewCount: 3,
		User:     "user",
	}
}

// fieldTmpl is one compiled field template. The common shapes — constant
// text, or text around plain references such as {{.Item.Title}} — are run
// without text/template, which keeps rendering within a few allocations.
type fieldTmpl struct {
	name  string
	parts []part             // fast path, used when tmpl is nil
	tmpl  *template.Template // general path
}

// part is literal text, or a field reference (when get is set) passed
// through filters in order.
type part struct {
	text    string
	get     func(*tilecast.TemplateData) string
	filters []func(string) string
}

func compileField(name, src string) (*fieldTmpl, error) {
	if src == "" {
		return nil, nil
	}
	t, err := template.New(name).Funcs(Funcs()).Option("missingkey=error").Parse(src)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	ft := &fieldTmpl{name: name}
	if parts, ok := fastParts(t.Tree); ok {
		ft.parts = parts
	} else {
		ft.tmpl = t
	}
	return ft, nil
}

// fastParts returns the parts of a template made only of text and plain
// field references on dot, or false.
func fastParts(tree *parse.Tree) ([]part, bool) {
	if tree == nil || tree.Root == nil {
		return nil, true
	}
	var parts []part
	for _, n := range tree.Root.Nodes {
		switch n := n.(type) {
		case *parse.TextNode:
			parts = append(parts, part{text: string(n.Text)})
		case *parse.ActionNode:
			p, ok := fastAction(n.Pipe)
			if !ok {
				return nil, false
			}
			parts = append(parts, p)
		default:
			return nil, false
		}
	}
	return parts, true
}

// fastAction handles {{.Field}} optionally piped through urlquery,
// truncate N or default "text" — the forms feed configs use most.
func fastAction(p *parse.PipeNode) (part, bool) {
	if p == nil || p.IsAssign || len(p.Decl) != 0 || len(p.Cmds) == 0 || len(p.Cmds[0].Args) != 1 {
		return part{}, false
	}
	fn, ok := p.Cmds[0].Args[0].(*parse.FieldNode)
	if !ok {
		return part{}, false
	}
	path := strings.Join(fn.Ident, ".")
	get := accessor(path)
	if get == nil {
		return part{}, false
	}
	pt := part{get: get}
	isString := path != "NewCount"
	for _, cmd := range p.Cmds[1:] {
		id, ok := cmd.Args[0].(*parse.IdentifierNode)
		if !ok {
			return part{}, false
		}
		switch {
		case id.Ident == "urlquery" && len(cmd.Args) == 1:
			pt.filters = append(pt.filters, url.QueryEscape)
		case id.Ident == "truncate" && len(cmd.Args) == 2:
			num, ok := cmd.Args[1].(*parse.NumberNode)
			if !ok || !num.IsInt {
				return part{}, false
			}
			n := int(num.Int64)
			pt.filters = append(pt.filters, func(s string) string { return Truncate(n, s) })
		case id.Ident == "default" && len(cmd.Args) == 2 && isString:
			def, ok := cmd.Args[1].(*parse.StringNode)
			if !ok {
				return part{}, false
			}
			pt.filters = append(pt.filters, func(s string) string {
				if s == "" {
					return def.Text
				}
				return s
			})
		default:
			return part{}, false
		}
		isString = true // every filter returns a string
	}
	return pt, true
}

// accessor returns a getter printing the field exactly as text/template
// would, or nil for anything else (which then takes the general path).
func accessor(path string) func(*tilecast.TemplateData) string {
	switch path {
	case "Feed.Name":
		return func(d *tilecast.TemplateData) string { return d.Feed.Name }
	case "Feed.Title":
		return func(d *tilecast.TemplateData) string { return d.Feed.Title }
	case "Feed.Link":
		return func(d *tilecast.TemplateData) string { return d.Feed.Link }
	case "Item.ID":
		return func(d *tilecast.TemplateData) string { return d.Item.ID }
	case "Item.Title":
		return func(d *tilecast.TemplateData) string { return d.Item.Title }
	case "Item.Link":
		return func(d *tilecast.TemplateData) string { return d.Item.Link }
	case "Item.Summary":
		return func(d *tilecast.TemplateData) string { return d.Item.Summary }
	case "Item.Image":
		return func(d *tilecast.TemplateData) string { return d.Item.Image }
	case "User":
		return func(d *tilecast.TemplateData) string { return d.User }
	case "NewCount":
		return func(d *tilecast.TemplateData) string { return strconv.Itoa(d.NewCount) }
	}
	return nil
}

// bufPool holds buffers for the general template path.
type bufPool struct{ p sync.Pool }

func (bp *bufPool) get() *bytes.Buffer {
	if b, ok := bp.p.Get().(*bytes.Buffer); ok {
		b.Reset()
		return b
	}
	return new(bytes.Buffer)
}

func (bp *bufPool) put(b *bytes.Buffer) {
	if b.Cap() <= 64<<10 { // do not keep a buffer a huge feed item grew
		bp.p.Put(b)
	}
}

// exec runs the template without a buffer pool (CheckFeed, tests).
func (ft *fieldTmpl) exec(d *tilecast.TemplateData) (string, error) {
	return ft.execWith(d, nil)
}

func (ft *fieldTmpl) execWith(d *tilecast.TemplateData, pool *bufPool) (string, error) {
	if ft == nil {
		return "", nil
	}
	if ft.tmpl == nil {
		switch len(ft.parts) {
		case 0:
			return "", nil
		case 1:
			return ft.parts[0].value(d), nil
		}
		var b strings.Builder
		for i := range ft.parts {
			b.WriteString(ft.parts[i].value(d))
		}
		return b.String(), nil
	}
	var buf *bytes.Buffer
	if pool != nil {
		buf = pool.get()
		defer pool.put(buf)
	} else {
		buf = new(bytes.Buffer)
	}
	if err := ft.tmpl.Execute(buf, d); err != nil {
		return "", fmt.Errorf("%s: %w", ft.name, err)
	}
	return buf.String(), nil
}

func (p *part) value(d *tilecast.TemplateData) string {
	if p.get != nil {
		s := p.get(d)
		for _, f := range p.filters {
			s = f(s)
		}
		return s
	}
	return p.text
}

// compiledFeed is a feed's compiled templates together with the specs they
// came from, so that a reloaded config with changed templates is noticed.
type compiledFeed struct {
	toastSpec *tilecast.ToastSpec
	tileSpec  *tilecast.TileSpec

	text1, text2, param *fieldTmpl
	id                  *fieldTmpl
	tile                [len(tileFields)]*fieldTmpl
	cycle               []*fieldTmpl

	// extra are the templates of a transport's own fields (Exec), by
	// source, compiled on first use.
	extraMu sync.RWMutex
	extra   map[string]*fieldTmpl
}

// extraField returns the compiled template of src (see Exec).
func (c *compiledFeed) extraField(name, src string) (*fieldTmpl, error) {
	c.extraMu.RLock()
	ft, ok := c.extra[src]
	c.extraMu.RUnlock()
	if ok {
		return ft, nil
	}
	ft, err := compileField(name, src)
	if err != nil {
		return nil, err
	}
	c.extraMu.Lock()
	if c.extra == nil {
		c.extra = make(map[string]*fieldTmpl)
	}
	c.extra[src] = ft
	c.extraMu.Unlock()
	return ft, nil
}

func (c *compiledFeed) all() []*fieldTmpl {
	out := []*fieldTmpl{c.text1, c.text2, c.param, c.id}
	out = append(out, c.tile[:]...)
	out = append(out, c.cycle...)
	kept := out[:0]
	for _, ft := range out {
		if ft != nil {
			kept = append(kept, ft)
		}
	}
	return kept
}

// matches reports whether c was compiled from f's current specs.
func (c *compiledFeed) matches(f *tilecast.Feed) bool {
	if (c.toastSpec == nil) != (f.Toast == nil) || (c.tileSpec == nil) != (f.Tile == nil) {
		return false
	}
	if f.Toast != nil && *c.toastSpec != *f.Toast {
		return false
	}
	if f.Tile != nil && !sameTileSpec(c.tileSpec, f.Tile) {
		return false
	}
	return true
}

func sameTileSpec(a, b *tilecast.TileSpec) bool {
	if a.Template != b.Template || a.ID != b.ID || len(a.CycleImages) != len(b.CycleImages) {
		return false
	}
	for i := range tileFields {
		if tileFields[i].spec(a) != tileFields[i].spec(b) {
			return false
		}
	}
	for i := range a.CycleImages {
		if a.CycleImages[i] != b.CycleImages[i] {
			return false
		}
	}
	return true
}

// maxCycleImages is the CycleTile limit.
const maxCycleImages = 9

func compileFeed(f *tilecast.Feed) (*compiledFeed, error) {
	c := &compiledFeed{}
	var err error
	if f.Toast != nil {
		ts := *f.Toast
		c.toastSpec = &ts
		if c.text1, err = compileField("toast.text1", ts.Text1); err != nil {
			return nil, err
		}
		if c.text2, err = compileField("toast.text2", ts.Text2); err != nil {
			return nil, err
		}
		if c.param, err = compileField("toast.param", ts.Param); err != nil {
			return nil, err
		}
	}
	if f.Tile != nil {
		ts := *f.Tile
		ts.CycleImages = append([]string(nil), f.Tile.CycleImages...)
		c.tileSpec = &ts
		bit, ok := kindBit(ts.Template)
		if !ok {
			return nil, fmt.Errorf("tile.template: unknown tile template %q (want %s, %s, %s or %s)",
				ts.Template, tilecast.TileFlip, tilecast.TileClassic, tilecast.TileIconic, tilecast.TileCycle)
		}
		if c.id, err = compileField("tile.id", ts.ID); err != nil {
			return nil, err
		}
		for i := range tileFields {
			tf := &tileFields[i]
			src := tf.spec(&ts)
			if src == "" {
				continue
			}
			if tf.kinds&bit == 0 {
				return nil, fmt.Errorf("tile.%s: not part of %s tiles (they have %s)",
					tf.key, kindName(ts.Template), strings.Join(TileFields(ts.Template), ", "))
			}
			if c.tile[i], err = compileField("tile."+tf.key, src); err != nil {
				return nil, err
			}
		}
		if len(ts.CycleImages) > 0 && bit != kCycle {
			return nil, fmt.Errorf("tile.cycle_images: only a %s tile has cycle images", tilecast.TileCycle)
		}
		if len(ts.CycleImages) > maxCycleImages {
			return nil, fmt.Errorf("tile.cycle_images: %d images, at most %d", len(ts.CycleImages), maxCycleImages)
		}
		c.cycle = make([]*fieldTmpl, len(ts.CycleImages))
		for i, src := range ts.CycleImages {
			if c.cycle[i], err = compileField(fmt.Sprintf("tile.cycle_images[%d]", i), src); err != nil {
				return nil, err
			}
		}
	}
	return c, nil
}

func kindName(template string) string {
	if template == "" {
		return tilecast.TileClassic
	}
	return template
}

// errNoSpec is returned when a feed without a toast (or tile) spec is asked
// to render one: a Bot bug rather than a config error.
var (
	errNoSpec = errors.New("feed has no template for this kind")
	errNoData = errors.New("no template data")
)
