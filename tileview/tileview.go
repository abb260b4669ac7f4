// Package tileview renders Windows Phone tiles and toasts, and Windows
// Start tiles and Action Center toasts (windows.go), as small HTML
// fragments. The emulator's phone view and the daemon's dashboard share it so
// both show a notification the way a phone would. All text passes through
// html/template because it comes from feeds and must be treated as hostile.
package tileview

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"strings"
	"time"
)

// Tile templates, as in the MPNS Template attribute. The empty string is the
// classic (WP7) tile.
const (
	TemplateClassic = ""
	TemplateFlip    = "FlipTile"
	TemplateIconic  = "IconicTile"
	TemplateCycle   = "CycleTile"
)

// Tile is the state of one tile as the phone shows it. Empty strings mean
// "not set".
type Tile struct {
	Template                string
	Title                   string
	Count                   int // -1 = none; 0 hides the badge like the phone does
	BackgroundImage         string
	BackTitle               string
	BackContent             string
	BackBackgroundImage     string
	SmallBackgroundImage    string
	WideBackgroundImage     string
	WideBackContent         string
	WideBackBackgroundImage string
	IconImage               string
	SmallIconImage          string
	WideContent             [3]string
	BackgroundColor         string // #AARRGGBB (IconicTile); honoured only when opaque
	CycleImages             []string
}

// Toast is one toast as the phone shows it.
type Toast struct {
	Text1, Text2, Param string
	Time                time.Time
}

// ShowsBadge reports whether the phone draws the count badge: only counts
// 1–99 are shown, 0 hides it.
func (t Tile) ShowsBadge() bool { return t.Count > 0 }

// OnErrorHash is the Content-Security-Policy hash of the one inline script
// the fragments carry, the onerror="this.hidden=true" that hides an image
// which failed to load. A page that shows them allows it with
// script-src 'unsafe-hashes' 'OnErrorHash' (TestOnErrorHash recomputes it).
const OnErrorHash = "sha256-Kkh0ufQbkIVTWPYjIGk2bAJsmDwjmUuIAt2LyPfNr3g="

//go:embed tileview.css
var css string

// CSS returns the style sheet the fragments need (the phone's and, from
// windows.css, the Windows ones). Serve it once per page.
func CSS() string { return css + windowsCSS }

// face is one side of one tile size, the unit the template draws.
type face struct {
	Class   string // size and side classes
	Label   string // e.g. "medium · back", shown under the face
	Image   string
	Icon    string
	Color   string // CSS colour overriding the accent, already validated
	Count   int    // 0 = no badge
	Title   string
	Content string
	Lines   []string
}

type tileData struct {
	Template string
	Rows     [][]face
}

// The templates are parsed once and only ever executed, never modified.
var tmpl = template.Must(template.New("tileview").Parse(`
{{- define "face" -}}
<figure class="tv-cell"><div class="tv-face {{.Class}}"{{with .Color}} style="background-color: {{.}}"{{end}}>
{{- with .Image}}<img class="tv-img" src="{{.}}" alt="" onerror="this.hidden=true">{{end -}}
{{- with .Icon}}<img class="tv-icon" src="{{.}}" alt="" onerror="this.hidden=true">{{end -}}
{{- with .Count}}<span class="tv-count">{{.}}</span>{{end -}}
{{- with .Content}}<p class="tv-content">{{.}}</p>{{end -}}
{{- with .Lines}}<p class="tv-lines">{{range .}}<span>{{.}}</span>{{end}}</p>{{end -}}
{{- with .Title}}<span class="tv-title">{{.}}</span>{{end -}}
</div><figcaption>{{.Label}}</figcaption></figure>
{{- end -}}
{{- define "tile" -}}
<div class="tv-tile" data-template="{{.Template}}">
{{- range .Rows}}<div class="tv-row">{{range .}}{{template "face" .}}{{end}}</div>{{end -}}
</div>
{{- end -}}
{{- define "toast" -}}
<div class="tv-toast"><span class="tv-toast-icon"></span><div class="tv-toast-text"><b>{{.Text1}}</b> {{.Text2}}</div>
{{- if or .Param (not .Time.IsZero)}}<div class="tv-toast-meta">
{{- if not .Time.IsZero}}<time datetime="{{.Time.UTC.Format "2006-01-02T15:04:05Z07:00"}}">{{.Time.UTC.Format "15:04:05"}}</time>{{end -}}
{{- with .Param}} <code>{{.}}</code>{{end -}}
</div>{{end -}}
</div>
{{- end -}}`))

// RenderTile writes the tile as an HTML fragment: every size the template
// has (small, medium, wide), front beside back where the tile flips (the
// medium and wide sizes of flip and classic tiles; small tiles never flip).
func RenderTile(w io.Writer, t Tile) error {
	if err := tmpl.ExecuteTemplate(w, "tile", tileData{Template: templateName(t.Template), Rows: faces(t)}); err != nil {
		return fmt.Errorf("render tile: %w", err)
	}
	return nil
}

// RenderToast writes the toast as an HTML fragment.
func RenderToast(w io.Writer, t Toast) error {
	if err := tmpl.ExecuteTemplate(w, "toast", t); err != nil {
		return fmt.Errorf("render toast: %w", err)
	}
	return nil
}

func templateName(s string) string {
	if s == TemplateClassic {
		return "Tile"
	}
	return s
}

func badge(n int) int {
	switch {
	case n <= 0:
		return 0
	case n > 99:
		return 99
	}
	return n
}

func first(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// faces lays the tile out the way the phone does per template: flip and
// classic tiles have a back side, iconic and cycle tiles do not flip.
func faces(t Tile) [][]face {
	n := badge(t.Count)
	switch t.Template {
	case TemplateIconic:
		c := iconicColor(t.BackgroundColor)
		lines := make([]string, 0, 3)
		for _, l := range t.WideContent {
			if l != "" {
				lines = append(lines, l)
			}
		}
		// Without an icon the count stands where the icon would, large,
		// rather than beside an empty space.
		iconic := func(size, icon string) string {
			if icon == "" {
				return size + " tv-iconic tv-noicon"
			}
			return size + " tv-iconic"
		}
		small, medium := first(t.SmallIconImage, t.IconImage), t.IconImage
		return [][]face{
			{{Class: iconic("tv-small", small), Label: "small", Icon: small, Color: c, Count: n}},
			{{Class: iconic("tv-medium", medium), Label: "medium", Icon: medium, Color: c, Count: n, Title: t.Title}},
			{{Class: iconic("tv-wide", small), Label: "wide", Icon: small, Color: c, Count: n, Title: t.Title, Lines: lines}},
		}
	case TemplateCycle:
		img := ""
		if len(t.CycleImages) > 0 {
			img = first(t.CycleImages...)
		}
		return [][]face{
			{{Class: "tv-small", Label: "small", Image: first(t.SmallBackgroundImage, img), Count: n}},
			{{Class: "tv-medium", Label: "medium", Image: img, Count: n, Title: t.Title}},
			{{Class: "tv-wide", Label: "wide", Image: img, Count: n, Title: t.Title}},
		}
	}
	// Classic and FlipTile: a WP8 phone shows a classic tile as a flip tile
	// without the extra images. The small size does not flip: front only.
	return [][]face{
		{
			{Class: "tv-small tv-front", Label: "small (does not flip)", Image: first(t.SmallBackgroundImage, t.BackgroundImage), Count: n},
		},
		{
			{Class: "tv-medium tv-front", Label: "medium · front", Image: t.BackgroundImage, Count: n, Title: t.Title},
			{Class: "tv-medium tv-back", Label: "medium · back", Image: t.BackBackgroundImage, Content: t.BackContent, Title: t.BackTitle},
		},
		{
			{Class: "tv-wide tv-front", Label: "wide · front", Image: first(t.WideBackgroundImage, t.BackgroundImage), Count: n, Title: t.Title},
			{Class: "tv-wide tv-back", Label: "wide · back", Image: first(t.WideBackBackgroundImage, t.BackBackgroundImage), Content: first(t.WideBackContent, t.BackContent), Title: t.BackTitle},
		},
	}
}

// iconicColor turns an opaque #FFRRGGBB into #RRGGBB. Anything else yields
// "" so the accent colour shows, as on the phone.
func iconicColor(s string) string {
	if len(s) != 9 || s[0] != '#' || !strings.EqualFold(s[1:3], "FF") {
		return ""
	}
	for _, c := range s[3:] {
		if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
			return ""
		}
	}
	return "#" + strings.ToLower(s[3:])
}
