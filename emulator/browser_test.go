package emulator_test

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tilecast/tilecast/emulator"
)

// findChromium fails (never skips) when the browser is missing: the phone
// view is only proven by rendering it.
func findChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "/usr/bin/chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium not found; install it with: apt-get update && apt-get install -y chromium")
	return ""
}

// runChromium runs headless Chromium with its network confined to loopback.
func runChromium(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	base := []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--hide-scrollbars",
		"--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
		"--user-data-dir=" + t.TempDir(),
		"--virtual-time-budget=5000",
	}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\nstderr:\n%s", args, err, stderr.String())
	}
	return stdout.Bytes()
}

// imageServer serves a gradient PNG so one tile face shows a real image.
func imageServer(t *testing.T) *httptest.Server {
	img := image.NewRGBA(image.Rect(0, 0, 64, 64))
	for y := range 64 {
		for x := range 64 {
			img.Set(x, y, color.RGBA{uint8(x * 4), uint8(y * 4), 120, 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "image/png")
		_, _ = w.Write(buf.Bytes())
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestPhoneViewInBrowser(t *testing.T) {
	bin := findChromium(t)
	e, srv := start(t, emulator.Options{})
	imgs := imageServer(t)

	anna := mustCreate(t, e, emulator.Healthy)
	ben := mustCreate(t, e, emulator.QueueFull, emulator.Params{QueueFullN: 1})
	flip := tileBody(` Template="FlipTile"`,
		"<wp:BackgroundImage>"+imgs.URL+"/front.png</wp:BackgroundImage>"+
			"<wp:Count>7</wp:Count><wp:Title>Tilecast &lt;News&gt;</wp:Title>"+
			"<wp:BackBackgroundImage>/Images/missing.png</wp:BackBackgroundImage>"+
			"<wp:BackTitle>Back side</wp:BackTitle><wp:BackContent>Three new items</wp:BackContent>"+
			"<wp:SmallBackgroundImage>/Images/small-missing.png</wp:SmallBackgroundImage>"+
			"<wp:WideBackContent>Wide back: three new items from the feed</wp:WideBackContent>")
	for _, r := range []req{
		toastReq(toastBody("Older toast", "first")),
		tileReq(flip),
		toastReq(toastBody("Breaking news", "emulator renders toasts")),
	} {
		if resp := send(t, anna.URI, r); resp.StatusCode != 200 {
			t.Fatalf("push: %d %s", resp.StatusCode, resp.Header.Get("X-Emulator-Reason"))
		}
	}

	// ?poll: with SSE open, --virtual-time-budget would wait for the stream
	// forever; the server side of /events is covered by TestEventsAndState.
	// ben is queuefull with N=1: the first push is dropped, the rest land.
	for _, r := range []req{tileReq(golden(t, "g-iconictile")), tileReq(golden(t, "g-iconictile")), toastReq(toastBody("Second phone", "iconic tile below"))} {
		if resp := send(t, ben.URI, r); resp.StatusCode != 200 {
			t.Fatalf("push: %d %s", resp.StatusCode, resp.Header.Get("X-Emulator-Reason"))
		}
	}

	dom := string(runChromium(t, bin, "--dump-dom", srv.URL+"/?poll"))
	for _, want := range []string{
		"Breaking news", "emulator renders toasts", // toast text
		"Tilecast &lt;News&gt;", // tile title, escaped as text
		"Back side", `class="tv-count">7<`, "tv-wide tv-back",
		"test queuefull", "Second phone", `data-template="IconicTile"`, "Line 2 &amp; more",
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("rendered DOM lacks %q", want)
		}
	}
	if strings.Contains(dom, "Loading phones") {
		t.Error("page still shows the loading placeholder: phone.js did not render")
	}
	if i, j := strings.Index(dom, "Breaking news"), strings.Index(dom, "Older toast"); i < 0 || j < 0 || i > j {
		t.Errorf("latest toast not on top (positions %d, %d)", i, j)
	}

	dir := t.TempDir()
	shot := filepath.Join(dir, "phone.png")
	runChromium(t, bin, "--screenshot="+shot, "--window-size=1280,900", srv.URL+"/?poll")
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("decode screenshot: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 1280 || b.Dy() != 900 {
		t.Errorf("screenshot is %v, want 1280x900", b)
	}
	colours := map[color.RGBA]bool{}
	accent := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)
			colours[c] = true
			if near(c, color.RGBA{0x1b, 0xa1, 0xe2, 0xff}) {
				accent++
			}
		}
	}
	if len(colours) <= 20 {
		t.Errorf("screenshot has %d colours: looks blank", len(colours))
	}
	// The failed small image and the toasts leave accent blocks: at least
	// one 40x40 tile's worth of accent pixels.
	if accent < 1600 {
		t.Errorf("only %d accent-coloured pixels; tiles not drawn", accent)
	}
	if out := os.Getenv("TILECAST_SCREENSHOT_OUT"); out != "" {
		if out == "1" || out == "true" || out == "yes" {
			out = filepath.Join("..", "docs", "phone-view.png")
		}
		data, err := os.ReadFile(shot)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(out, data, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot saved to %s", out)
	}
}

func near(a, b color.RGBA) bool {
	d := func(x, y uint8) int {
		if x > y {
			return int(x - y)
		}
		return int(y - x)
	}
	return d(a.R, b.R) <= 3 && d(a.G, b.G) <= 3 && d(a.B, b.B) <= 3
}
