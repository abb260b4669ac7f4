package mpns_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/notify"
	"github.com/tilecast/tilecast/notify/mpns"
)

var update = flag.Bool("update", false, "rewrite tilecast's own golden files in testdata/golden")

// capture is the part of a golden request file (captured from mpns 2.1.3
// by shared/testdata/mpns-golden/capture.js) that the tests use.
type capture struct {
	Name    string          `json:"name"`
	RawIn   json.RawMessage `json:"input"` // an object, or an array for positional calls
	Input   map[string]any  `json:"-"`
	Request struct {
		Headers     map[string]string `json:"headers"`
		HeaderOrder []string          `json:"header_order"`
		Body        string            `json:"body"`
	} `json:"request"`
}

func loadCapture(t *testing.T, name string) capture {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "golden", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var c capture
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if len(c.RawIn) > 0 && c.RawIn[0] == '{' {
		if err := json.Unmarshal(c.RawIn, &c.Input); err != nil {
			t.Fatalf("%s: input: %v", name, err)
		}
	}
	// capture.js records a JavaScript null as the string "(null)".
	for k, v := range c.Input {
		if v == "(null)" {
			c.Input[k] = nil
		}
	}
	return c
}

func readGolden(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "golden", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestGoldenRequests(t *testing.T) {
	tests := []struct {
		name, kind string
		input      map[string]any // overrides the captured input (positional calls)
	}{
		{"a-toast", mpns.KindToast, nil},
		{"b-fliptile", mpns.KindFlip, nil},
		{"c-raw", mpns.KindRaw, nil},
		{"d-classic-tile", mpns.KindTile, nil},
		{"e-tile-clear-null", mpns.KindTile, nil},
		{"g-iconictile", mpns.KindIconic, nil},
		{"h-toast-positional", mpns.KindToast, map[string]any{"text1": "Bold", "text2": "Normal", "param": "/Page.xaml"}},
		{"i-toast-authenticated-https", mpns.KindToast, map[string]any{"text1": "Auth", "text2": "via TLS client cert"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := loadCapture(t, tt.name)
			in := c.Input
			if tt.input != nil {
				in = tt.input
			}
			p, err := mpns.FromJSON(tt.kind, in)
			if err != nil {
				t.Fatal(err)
			}
			req, err := notify.Fit(&mpns.Encoder{}, p)
			if err != nil {
				t.Fatal(err)
			}
			body := readGolden(t, tt.name+".body")
			if !bytes.Equal(req.Body, body) {
				t.Errorf("body\n got %s\nwant %s", req.Body, body)
			}
			if string(body) != c.Request.Body {
				t.Errorf("golden .body and .json disagree")
			}
			var want []tilecast.Header
			for _, n := range c.Request.HeaderOrder {
				want = append(want, tilecast.Header{Name: n, Value: c.Request.Headers[n]})
			}
			if !equalHeaders(req.Headers, want) {
				t.Errorf("headers\n got %v\nwant %v", req.Headers, want)
			}
		})
	}
}

func equalHeaders(a, b []tilecast.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestPayloadBuilder checks the captured createX().getXmlPayload() outputs,
// which capture.js verified equal to what went on the wire.
func TestPayloadBuilder(t *testing.T) {
	var pb map[string]string
	if err := json.Unmarshal(readGolden(t, "payload-builder.json"), &pb); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"toast": "a-toast", "flipTile": "b-fliptile", "raw": "c-raw", "tile": "d-classic-tile", "iconicTile": "g-iconictile"}
	kinds := map[string]string{"toast": mpns.KindToast, "flipTile": mpns.KindFlip, "raw": mpns.KindRaw, "tile": mpns.KindTile, "iconicTile": mpns.KindIconic}
	if len(pb) != len(files) {
		t.Errorf("payload-builder.json has %d entries, want %d", len(pb), len(files))
	}
	for k, want := range pb {
		c := loadCapture(t, files[k])
		p, err := mpns.FromJSON(kinds[k], c.Input)
		if err != nil {
			t.Fatal(err)
		}
		req, err := notify.Fit(&mpns.Encoder{}, p)
		if err != nil {
			t.Fatal(err)
		}
		if string(req.Body) != want {
			t.Errorf("%s:\n got %s\nwant %s", k, req.Body, want)
		}
	}
}

// checkOwnGolden compares got with a golden file that tilecast itself owns
// (where it deliberately differs from mpns, or mpns has no such payload).
func checkOwnGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if want := readGolden(t, name); !bytes.Equal(got, want) {
		t.Errorf("%s\n got %s\nwant %s", name, got, want)
	}
}

// TestCountZero is the deliberate difference: mpns drops count 0 (golden
// f-tile-count-zero); tilecast sends it, because 0 is what clears the badge.
func TestCountZero(t *testing.T) {
	c := loadCapture(t, "f-tile-count-zero")
	p, err := mpns.FromJSON(mpns.KindTile, c.Input)
	if err != nil {
		t.Fatal(err)
	}
	req, err := notify.Fit(&mpns.Encoder{}, p)
	if err != nil {
		t.Fatal(err)
	}
	checkOwnGolden(t, "f-tile-count-zero.tilecast.body", req.Body)
	mpnsBody := string(readGolden(t, "f-tile-count-zero.body"))
	if got := strings.Replace(string(req.Body), "<wp:Count>0</wp:Count>", "", 1); got != mpnsBody {
		t.Errorf("apart from the count, the body differs from mpns:\n got %s\nwant %s", got, mpnsBody)
	}
	if got, want := req.Header("Content-Length"), "165"; got != want {
		t.Errorf("Content-Length = %s, want %s", got, want)
	}
}

func TestOwnGoldens(t *testing.T) {
	cycle := notify.Tile{
		Template:             tilecast.TileCycle,
		ID:                   "/Cycle.xaml?a=1&b=2",
		SmallBackgroundImage: notify.Value("http://example.com/small.png"),
		Count:                notify.Value("4"),
		Title:                notify.Value("Cycle \"tile\""),
	}
	cycle.CycleImages[0] = notify.Value("http://example.com/1.png")
	cycle.CycleImages[1] = notify.Value("http://example.com/2.png?x=1&y=2")
	cycle.CycleImages[2] = notify.Clear()

	flip := notify.Tile{Template: tilecast.TileFlip, Title: notify.Value("V2"), Count: notify.Value("1")}
	tests := []struct {
		name  string
		enc   *mpns.Encoder
		tile  notify.Tile
		class string
	}{
		{"cycle-tile.tilecast.body", &mpns.Encoder{}, cycle, "1"},
		{"flip-version2.tilecast.body", &mpns.Encoder{Version2: true, Class: mpns.Class900s}, flip, "21"},
		{"classic-version2.tilecast.body", &mpns.Encoder{Version2: true, Class: mpns.Class450s},
			notify.Tile{Template: tilecast.TileClassic, Title: notify.Value("no version on classic")}, "11"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := tt.enc.EncodeTile(tt.tile)
			if err != nil {
				t.Fatal(err)
			}
			checkOwnGolden(t, tt.name, req.Body)
			if got := req.Header("X-NotificationClass"); got != tt.class {
				t.Errorf("X-NotificationClass = %q, want %q", got, tt.class)
			}
		})
	}
}

func TestClasses(t *testing.T) {
	tests := []struct {
		class            string
		tile, toast, raw string
	}{
		{"", "1", "2", "3"},
		{mpns.ClassImmediate, "1", "2", "3"},
		{mpns.Class450s, "11", "12", "13"},
		{mpns.Class900s, "21", "22", "23"},
	}
	for _, tt := range tests {
		e := &mpns.Encoder{Class: tt.class}
		tile, err1 := e.EncodeTile(notify.Tile{Title: notify.Value("x")})
		toast, err2 := e.EncodeToast(notify.Toast{Text1: "x"})
		raw, err3 := e.EncodeRaw(notify.Raw{Payload: []byte("x")})
		if err1 != nil || err2 != nil || err3 != nil {
			t.Fatal(err1, err2, err3)
		}
		got := [3]string{tile.Header("X-NotificationClass"), toast.Header("X-NotificationClass"), raw.Header("X-NotificationClass")}
		if got != [3]string{tt.tile, tt.toast, tt.raw} {
			t.Errorf("class %q: got %v", tt.class, got)
		}
		if raw.Header("X-WindowsPhone-Target") != "" || len(raw.Headers) != 4 {
			t.Errorf("raw has a target header: %v", raw.Headers)
		}
	}
	if _, err := (&mpns.Encoder{Class: "soon"}).EncodeToast(notify.Toast{Text1: "x"}); err == nil {
		t.Error("unknown class accepted")
	}
	if mpns.ValidClass("soon") || !mpns.ValidClass("900s") {
		t.Error("ValidClass wrong")
	}
}

func TestEncodeTileRejectsForeignFields(t *testing.T) {
	e := &mpns.Encoder{}
	bad := []notify.Tile{
		{Template: tilecast.TileIconic, BackContent: notify.Value("x")},
		{Template: tilecast.TileClassic, WideBackContent: notify.Value("x")},
		{Template: tilecast.TileFlip, IconImage: notify.Clear()},
		{Template: "square", Title: notify.Value("x")},
	}
	bad = append(bad, notify.Tile{Template: tilecast.TileFlip})
	bad[len(bad)-1].CycleImages[0] = notify.Value("x")
	for i, tile := range bad {
		if _, err := e.EncodeTile(tile); err == nil {
			t.Errorf("case %d: accepted %+v", i, tile)
		}
	}
}
