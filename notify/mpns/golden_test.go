package mpns_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"maps"
	"net/http"
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
		Href    string            `json:"href"`
		Host    string            `json:"host"`
		Path    string            `json:"path"`
		Headers map[string]string `json:"headers"`
		Body    string            `json:"body"`
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

// TestGoldenRequests compares each captured request with what tilecast
// sends: the body byte for byte, and the headers as a set of names (as
// spelt) and values. The order of the headers on the wire is net/http's,
// which no push service reads. Beyond the module's headers tilecast sends
// Host (node sent it too; the capture lists only the module's own) and
// its User-Agent.
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
			payload, err := notify.Fit(&mpns.Encoder{}, p)
			if err != nil {
				t.Fatal(err)
			}
			body := readGolden(t, tt.name+".body")
			if !bytes.Equal(payload, body) {
				t.Errorf("body\n got %s\nwant %s", payload, body)
			}
			if string(body) != c.Request.Body {
				t.Errorf("golden .body and .json disagree")
			}
			req, err := mpns.NewRequest(c.Request.Href, p.Kind(), payload, mpns.RequestOptions{UserAgent: "tilecast-test"})
			if err != nil {
				t.Fatal(err)
			}
			line, headers, wireBody := wire(t, req)
			if want := "POST " + c.Request.Path + " HTTP/1.1"; line != want {
				t.Errorf("request line %q, want %q", line, want)
			}
			if !bytes.Equal(wireBody, body) {
				t.Errorf("body on the wire\n got %s\nwant %s", wireBody, body)
			}
			want := maps.Clone(c.Request.Headers)
			want["Host"] = c.Request.Host
			want["User-Agent"] = "tilecast-test"
			if !maps.Equal(headers, want) {
				t.Errorf("headers\n got %v\nwant %v", headers, want)
			}
		})
	}
}

// wire returns req as net/http writes it (DumpRequest): the request line,
// the header set (name as sent → value; a name sent twice fails the test)
// and the body.
func wire(t *testing.T, req *http.Request) (line string, headers map[string]string, body []byte) {
	t.Helper()
	var b bytes.Buffer
	if err := mpns.DumpRequest(&b, req); err != nil {
		t.Fatal(err)
	}
	head, body, ok := bytes.Cut(b.Bytes(), []byte("\r\n\r\n"))
	if !ok {
		t.Fatalf("no end of the header block: %q", b.Bytes())
	}
	lines := strings.Split(string(head), "\r\n")
	headers = map[string]string{}
	for _, l := range lines[1:] {
		name, value, ok := strings.Cut(l, ": ")
		if !ok {
			t.Fatalf("header line %q", l)
		}
		if _, dup := headers[name]; dup {
			t.Errorf("header %s sent twice", name)
		}
		headers[name] = value
	}
	return lines[0], headers, body
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
		payload, err := notify.Fit(&mpns.Encoder{}, p)
		if err != nil {
			t.Fatal(err)
		}
		if string(payload) != want {
			t.Errorf("%s:\n got %s\nwant %s", k, payload, want)
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
	payload, err := notify.Fit(&mpns.Encoder{}, p)
	if err != nil {
		t.Fatal(err)
	}
	checkOwnGolden(t, "f-tile-count-zero.tilecast.body", payload)
	mpnsBody := string(readGolden(t, "f-tile-count-zero.body"))
	if got := strings.Replace(string(payload), "<wp:Count>0</wp:Count>", "", 1); got != mpnsBody {
		t.Errorf("apart from the count, the body differs from mpns:\n got %s\nwant %s", got, mpnsBody)
	}
	req, err := mpns.NewRequest(c.Request.Href, tilecast.KindTile, payload, mpns.RequestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, h, _ := wire(t, req); h["Content-Length"] != "165" {
		t.Errorf("Content-Length = %s, want 165", h["Content-Length"])
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
		name string
		enc  *mpns.Encoder
		tile notify.Tile
	}{
		{"cycle-tile.tilecast.body", &mpns.Encoder{}, cycle},
		{"flip-version2.tilecast.body", &mpns.Encoder{Version2: true}, flip},
		{"classic-version2.tilecast.body", &mpns.Encoder{Version2: true},
			notify.Tile{Template: tilecast.TileClassic, Title: notify.Value("no version on classic")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			payload, err := tt.enc.EncodeTile(tt.tile)
			if err != nil {
				t.Fatal(err)
			}
			checkOwnGolden(t, tt.name, payload)
		})
	}
}

// TestClasses: X-NotificationClass is priority×10 + kind (tile 1, toast 2,
// raw 3); X-WindowsPhone-Target is toast or token, and absent for raw.
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
	const uri = "http://db3.notify.live.net/throttledthirdparty/01.00/AAA"
	for _, tt := range tests {
		for kind, want := range map[tilecast.Kind][2]string{
			tilecast.KindTile: {tt.tile, "token"}, tilecast.KindToast: {tt.toast, "toast"}, tilecast.KindRaw: {tt.raw, ""},
		} {
			req, err := mpns.NewRequest(uri, kind, []byte("x"), mpns.RequestOptions{Class: tt.class})
			if err != nil {
				t.Fatal(err)
			}
			_, h, _ := wire(t, req)
			target, hasTarget := h["X-WindowsPhone-Target"]
			if h["X-NotificationClass"] != want[0] || target != want[1] || hasTarget != (want[1] != "") {
				t.Errorf("class %q, %s: headers %v, want class %s target %q", tt.class, kind, h, want[0], want[1])
			}
		}
	}
	if _, err := mpns.NewRequest(uri, tilecast.KindToast, nil, mpns.RequestOptions{Class: "soon"}); err == nil {
		t.Error("unknown class accepted")
	}
	if _, err := mpns.NewClient(mpns.ClientOptions{Class: "soon"}); err == nil {
		t.Error("client with an unknown class accepted")
	}
	if mpns.ValidClass("soon") || !mpns.ValidClass("900s") || !mpns.ValidClass("") {
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
