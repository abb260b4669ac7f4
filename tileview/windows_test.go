package tileview_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/tilecast/tilecast/tileview"
)

func TestRenderStartGolden(t *testing.T) {
	var buf bytes.Buffer
	err := tileview.RenderStart(&buf, tileview.StartTile{
		DisplayName: `<b>News</b> & "more"`,
		Badge:       "12",
		Sizes: map[string]tileview.StartBinding{
			"small":  {Template: "TileSmall", Image: "https://example.com/s.png?a=1&b=2"},
			"medium": {Template: "TileMedium", Texts: []string{"<script>alert(1)</script>"}, Image: "javascript:alert(1)"},
			"wide":   {Template: "TileWideText09", Texts: []string{"Title", "Item"}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, bad := range []string{"<script>", "<b>News", "javascript:"} {
		if strings.Contains(out, bad) {
			t.Errorf("output contains %q: %s", bad, out)
		}
	}
	if n := strings.Count(out, `class="ws-badge">12<`); n != 4 {
		t.Errorf("badge on %d sizes, want 4", n)
	}
	if n := strings.Count(out, `class="ws-name"`); n != 3 {
		t.Errorf("display name on %d sizes, want 3 (not small)", n)
	}
	if !strings.Contains(out, `ws-large ws-empty`) || strings.Contains(out, `ws-wide ws-empty`) {
		t.Errorf("empty sizes not marked as such: %s", out)
	}
	golden(t, "start.golden.html", buf.Bytes())
}

func TestRenderStartBadgeGlyph(t *testing.T) {
	for badge, want := range map[string]string{"alert": "!", "newMessage": "✉", "": ""} {
		var buf bytes.Buffer
		if err := tileview.RenderStart(&buf, tileview.StartTile{Badge: badge}); err != nil {
			t.Fatal(err)
		}
		has := strings.Contains(buf.String(), `class="ws-badge">`+want+`<`)
		if (want != "") != has {
			t.Errorf("badge %q: %s", badge, buf.String())
		}
	}
}

func TestRenderActionCenter(t *testing.T) {
	var buf bytes.Buffer
	at := time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC)
	err := tileview.RenderActionCenter(&buf, []tileview.ActionCenterToast{
		{Texts: []string{"<i>Title</i>", "Body & more"}, Launch: "/item?id=1&x=2", AppLogo: "ms-appx:///logo.png",
			Hero: "https://example.com/h.png", Scenario: "reminder", Time: at},
		{Texts: []string{"Second"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if strings.Contains(out, "<i>Title") || !strings.Contains(out, "&lt;i&gt;Title") {
		t.Errorf("title not escaped: %s", out)
	}
	for _, want := range []string{`data-scenario="reminder"`, "<code>/item?id=1&amp;x=2</code>", `class="ws-hero"`, ">09:30:00<", "<b>Second</b>"} {
		if !strings.Contains(out, want) {
			t.Errorf("lacks %q: %s", want, out)
		}
	}
	buf.Reset()
	if err := tileview.RenderActionCenter(&buf, nil); err != nil || !strings.Contains(buf.String(), "No notifications") {
		t.Errorf("empty list: %v %s", err, buf.String())
	}
	if !strings.Contains(tileview.CSS(), ".ws-badge") {
		t.Error("CSS lacks the Windows rules")
	}
}
