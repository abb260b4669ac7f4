package mpns_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/notify"
	"github.com/tilecast/tilecast/notify/mpns"
)

func TestFromProps(t *testing.T) {
	tests := []struct {
		name  string
		kind  string
		props map[string]string
		want  string // body, or the error substring when wantErr
		err   bool
	}{
		{"toast", "toast", map[string]string{"text1": "A", "text2": "B", "param": "/P.xaml"},
			`<wp:Toast><wp:Text1>A</wp:Text1><wp:Text2>B</wp:Text2><wp:Param>/P.xaml</wp:Param></wp:Toast>`, false},
		{"flip with legacy spelling", "flip", map[string]string{"smallbackgroundImage": "/s.png", "count": "0", "wideBackContent": "w"},
			`<wp:Tile Template="FlipTile"><wp:Count>0</wp:Count><wp:SmallBackgroundImage>/s.png</wp:SmallBackgroundImage><wp:WideBackContent>w</wp:WideBackContent></wp:Tile>`, false},
		{"iconic", "iconic", map[string]string{"wideContent3": "3", "iconImage": "/i.png", "id": "/Sec.xaml"},
			`<wp:Tile Template="IconicTile" Id="/Sec.xaml"><wp:IconImage>/i.png</wp:IconImage><wp:WideContent3>3</wp:WideContent3></wp:Tile>`, false},
		{"cycle", "cycle", map[string]string{"cycleImage2": "/2.png", "cycleImage9": "/9.png", "title": "t"},
			`<wp:Tile Template="CycleTile"><wp:CycleImage2>/2.png</wp:CycleImage2><wp:CycleImage9>/9.png</wp:CycleImage9><wp:Title>t</wp:Title></wp:Tile>`, false},
		{"empty value left out", "tile", map[string]string{"title": "t", "backTitle": ""},
			`<wp:Tile><wp:Title>t</wp:Title></wp:Tile>`, false},
		{"unknown property", "tile", map[string]string{"title": "t", "wideBackContent": "x"}, `unknown tile property "wideBackContent"`, true},
		{"toast property on tile", "flip", map[string]string{"text1": "x"}, `unknown flip property "text1"`, true},
		{"cycleImage10", "cycle", map[string]string{"cycleImage10": "x"}, `"cycleImage10"`, true},
		{"bad count", "tile", map[string]string{"count": "lots"}, "count", true},
		{"count too big", "tile", map[string]string{"count": "100"}, "count", true},
		{"unknown kind", "badge", nil, `unknown payload type "badge"`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := mpns.FromProps(tt.kind, tt.props)
			if tt.err {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			req, err := notify.Fit(&mpns.Encoder{}, p)
			if err != nil {
				t.Fatal(err)
			}
			want := `<?xml version="1.0" encoding="utf-8"?><wp:Notification xmlns:wp="WPNotification">` + tt.want + `</wp:Notification>`
			if string(req) != want {
				t.Errorf("got  %s\nwant %s", req, want)
			}
		})
	}
}

func TestFromJSON(t *testing.T) {
	p, err := mpns.FromJSON("flip", map[string]any{"count": 0.0, "backContent": nil, "title": "T"})
	if err != nil {
		t.Fatal(err)
	}
	tile, ok := p.(notify.Tile)
	if !ok {
		t.Fatalf("got %T", p)
	}
	if tile.Template != tilecast.TileFlip || tile.Count != notify.Value("0") || tile.BackContent != notify.Clear() || tile.Title != notify.Value("T") {
		t.Errorf("tile = %+v", tile)
	}
	for _, bad := range []map[string]any{
		{"title": 5.0},
		{"count": 2.5},
		{"count": true},
		{"title": []any{"x"}},
	} {
		if _, err := mpns.FromJSON("flip", bad); err == nil {
			t.Errorf("accepted %v", bad)
		}
	}
	raw, err := mpns.FromJSON("raw", map[string]any{"payload": "<x/>"})
	if err != nil || !bytes.Equal(raw.(notify.Raw).Payload, []byte("<x/>")) {
		t.Errorf("raw = %v, %v", raw, err)
	}
}
