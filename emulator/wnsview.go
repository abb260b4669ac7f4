package emulator

import (
	"bytes"

	"github.com/tilecast/tilecast/tileview"
)

// windowsView is one Windows device in /state.json: the data plus the
// Start menu and Action Center rendered (and escaped) by tileview, which
// the page (assets/windows.js) inserts as is.
type windowsView struct {
	WindowsState
	StartHTML        string `json:"start_html"`
	ActionCenterHTML string `json:"action_center_html"`
}

// windowsViews renders every Windows device for the page.
func (e *Emulator) windowsViews() ([]windowsView, error) {
	states := e.WindowsDevices()
	out := make([]windowsView, 0, len(states))
	var buf bytes.Buffer
	for _, s := range states {
		v := windowsView{WindowsState: s}
		st := tileview.StartTile{DisplayName: s.Tile.DisplayName, Badge: s.Badge, Sizes: map[string]tileview.StartBinding{}}
		for size, b := range s.Tile.Sizes {
			st.Sizes[size] = tileview.StartBinding{Template: b.Template, Texts: b.Texts, Image: b.Image}
		}
		buf.Reset()
		if err := tileview.RenderStart(&buf, st); err != nil {
			return nil, err
		}
		v.StartHTML = buf.String()
		toasts := make([]tileview.ActionCenterToast, 0, len(s.Toasts))
		for _, t := range s.Toasts {
			toasts = append(toasts, tileview.ActionCenterToast{Texts: t.Texts, Launch: t.Launch, AppLogo: t.AppLogo,
				Hero: t.Hero, Scenario: t.Scenario, Time: t.Time})
		}
		buf.Reset()
		if err := tileview.RenderActionCenter(&buf, toasts); err != nil {
			return nil, err
		}
		v.ActionCenterHTML = buf.String()
		out = append(out, v)
	}
	return out, nil
}
