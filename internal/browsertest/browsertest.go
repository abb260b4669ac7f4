// Package browsertest runs Debian's Chromium headless for the tests of the
// pages tilecast serves (the emulator's phone view, the dashboard): the
// pages are only proven by rendering them, so a missing browser fails the
// test instead of skipping it.
package browsertest

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
	"strconv"
	"testing"
	"time"
)

// Accent is the tile accent colour both pages draw tiles and toasts in.
var Accent = color.RGBA{0x1b, 0xa1, 0xe2, 0xff}

// Chromium returns the browser's path, failing the test when it is missing.
func Chromium(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "/usr/bin/chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium not found; install it with: apt-get update && apt-get install -y chromium")
	return ""
}

// Run runs headless Chromium with its network confined to loopback and a
// fresh profile, and returns its standard output (e.g. of --dump-dom).
func Run(t testing.TB, args ...string) []byte {
	t.Helper()
	bin := Chromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
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

// Screenshot renders url at width×height and returns the decoded image and
// the PNG file's path.
func Screenshot(t testing.TB, url string, width, height int) (image.Image, string) {
	t.Helper()
	shot := filepath.Join(t.TempDir(), "screenshot.png")
	Run(t, "--screenshot="+shot, "--window-size="+itoa(width)+","+itoa(height), url)
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("decode screenshot: %v", err)
	}
	if b := img.Bounds(); b.Dx() != width || b.Dy() != height {
		t.Errorf("screenshot is %v, want %dx%d", b, width, height)
	}
	return img, shot
}

// CheckDrawn fails the test when img looks blank (≤ 20 colours) or has
// fewer than minAccent pixels near the Accent colour (tiles not drawn).
func CheckDrawn(t testing.TB, img image.Image, minAccent int) {
	t.Helper()
	colours := map[color.RGBA]int{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			colours[color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)]++
		}
	}
	if len(colours) <= 20 {
		t.Errorf("screenshot has %d colours: looks blank", len(colours))
	}
	accent := 0
	for c, n := range colours {
		if near(c, Accent) {
			accent += n
		}
	}
	if accent < minAccent {
		t.Errorf("only %d accent-coloured pixels, want ≥ %d: tiles not drawn", accent, minAccent)
	}
}

// GradientServer serves a 64×64 gradient PNG, so a tile face shows a real image.
func GradientServer(t testing.TB) *httptest.Server {
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

func near(a, b color.RGBA) bool {
	d := func(x, y uint8) int {
		if x > y {
			return int(x - y)
		}
		return int(y - x)
	}
	return d(a.R, b.R) <= 3 && d(a.G, b.G) <= 3 && d(a.B, b.B) <= 3
}

func itoa(n int) string { return strconv.Itoa(n) }
