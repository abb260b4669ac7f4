package tileview

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"time"
)

// StartTile is a Windows live tile as the Start menu shows it: the binding
// the last tile notification gave each size, the display name and the badge.
type StartTile struct {
	DisplayName string
	// Badge is what the badge shows: "" none, "7", "99+", or a glyph name
	// (alert, newMessage, …), drawn as a symbol.
	Badge string
	// Sizes maps "small", "medium", "wide" and "large" to what they show;
	// a size the notification had no binding for is drawn empty.
	Sizes map[string]StartBinding
}

// StartBinding is one size of a live tile.
type StartBinding struct {
	Template string
	Texts    []string
	Image    string // background (or peek) image; "" none
}

// ActionCenterToast is one toast as the Action Center lists it.
type ActionCenterToast struct {
	Texts    []string // the first is the title
	Launch   string
	AppLogo  string
	Hero     string
	Scenario string
	Time     time.Time
}

//go:embed windows.css
var windowsCSS string

// startSizes is the order the Start menu is drawn in.
var startSizes = [...]string{"small", "medium", "wide", "large"}

// badgeGlyphs draws the badge glyphs the way Windows does, roughly.
var badgeGlyphs = map[string]string{
	"activity": "⋯", "alarm": "⏰", "alert": "!", "attention": "!", "available": "●", "away": "◐",
	"busy": "⛔", "error": "✖", "newMessage": "✉", "paused": "⏸", "playing": "▶", "unavailable": "○",
}

type startFace struct {
	Size     string
	Template string
	Texts    []string
	Image    string
	Name     string // the display name, on every size but small
	Badge    string
	Empty    bool
}

var winTmpl = template.Must(template.New("windows").Parse(`
{{- define "face" -}}
<figure class="ws-cell"><div class="ws-tile ws-{{.Size}}{{if .Empty}} ws-empty{{end}}" data-size="{{.Size}}" data-template="{{.Template}}">
{{- with .Image}}<img class="ws-img" src="{{.}}" alt="" onerror="this.hidden=true">{{end -}}
{{- with .Texts}}<div class="ws-texts">{{range .}}<span>{{.}}</span>{{end}}</div>{{end -}}
{{- with .Name}}<span class="ws-name">{{.}}</span>{{end -}}
{{- with .Badge}}<span class="ws-badge">{{.}}</span>{{end -}}
</div><figcaption>{{.Size}}{{with .Template}} · {{.}}{{end}}</figcaption></figure>
{{- end -}}
{{- define "start" -}}
<div class="ws-start">
{{- range .}}<div class="ws-row">{{range .}}{{template "face" .}}{{end}}</div>{{end -}}
</div>
{{- end -}}
{{- define "toasts" -}}
<div class="ws-action-center">
{{- range . -}}
<div class="ws-toast"{{with .Scenario}} data-scenario="{{.}}"{{end}}>
{{- with .AppLogo}}<img class="ws-logo" src="{{.}}" alt="" onerror="this.hidden=true">{{end -}}
<div class="ws-toast-body">
{{- range $i, $t := .Texts}}{{if eq $i 0}}<b>{{$t}}</b>{{else}}<p>{{$t}}</p>{{end}}{{end -}}
{{- with .Hero}}<img class="ws-hero" src="{{.}}" alt="" onerror="this.hidden=true">{{end -}}
<div class="ws-meta">
{{- if not .Time.IsZero}}<time datetime="{{.Time.UTC.Format "2006-01-02T15:04:05Z07:00"}}">{{.Time.UTC.Format "15:04:05"}}</time>{{end -}}
{{- with .Scenario}} <span class="ws-scenario">{{.}}</span>{{end -}}
{{- with .Launch}} <code>{{.}}</code>{{end -}}
</div></div></div>
{{- else}}<p class="ws-none">No notifications</p>
{{- end -}}
</div>
{{- end -}}`))

// RenderStart writes a Windows Start menu holding t in all four sizes as
// an HTML fragment: small, medium and wide in a row, large below. The
// badge is drawn on every size, the display name on all but small.
func RenderStart(w io.Writer, t StartTile) error {
	badge := t.Badge
	if g, ok := badgeGlyphs[badge]; ok {
		badge = g
	}
	faces := make([]startFace, 0, len(startSizes))
	for _, size := range startSizes {
		b, ok := t.Sizes[size]
		f := startFace{Size: size, Template: b.Template, Texts: b.Texts, Image: b.Image, Badge: badge, Empty: !ok}
		if size != "small" {
			f.Name = t.DisplayName
		}
		faces = append(faces, f)
	}
	if err := winTmpl.ExecuteTemplate(w, "start", [][]startFace{faces[:3], faces[3:]}); err != nil {
		return fmt.Errorf("render start: %w", err)
	}
	return nil
}

// RenderActionCenter writes toasts (latest first) as the Action Center
// list of a Windows device.
func RenderActionCenter(w io.Writer, toasts []ActionCenterToast) error {
	if err := winTmpl.ExecuteTemplate(w, "toasts", toasts); err != nil {
		return fmt.Errorf("render action center: %w", err)
	}
	return nil
}
