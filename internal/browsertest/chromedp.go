package browsertest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Eval evaluates the JavaScript expression in the page and returns its
// value, failing the test on an error.
func Eval[T any](t testing.TB, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// Navigate loads url in the page.
func Navigate(t testing.TB, ctx context.Context, url string) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("navigate to %s: %v", url, err)
	}
}

// CapturePNG returns a PNG screenshot of the viewport.
func CapturePNG(t testing.TB, ctx context.Context) []byte {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	return png
}

// Context starts headless Chromium through the DevTools protocol
// (chromedp) with a width×height window, its network confined to
// loopback and a fresh profile, for tests that must act in the page —
// scroll, wait for a live update, measure the layout — which --dump-dom
// (Run) cannot. The browser stops when the test ends.
func Context(t testing.TB, width, height int) context.Context {
	t.Helper()
	// Generous: the machine may be busy; nothing asserts a duration.
	root, stop := context.WithTimeout(context.Background(), 3*time.Minute)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(Chromium(t)),
		chromedp.NoSandbox,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(width, height),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(root, opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		stop()
	})
	// The viewport is what the page lays out in: the window's size.
	if _, err := chromedp.Run(ctx, chromedp.EmulateViewport(int64(width), int64(height))); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// Poll evaluates the JavaScript expression cond in the page until it is
// true, failing the test with what after timeout.
func Poll(t testing.TB, ctx context.Context, what, cond string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](cond))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s (%s)", what, cond)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// SaveScreenshot writes png to docs/NAME under the repository root when
// the environment asks for screenshots (TILECAST_SCREENSHOTS=1, see
// README); root is the path from the test's package to the repository.
// It reports whether it wrote one.
func SaveScreenshot(t testing.TB, root, name string, png []byte) bool {
	t.Helper()
	if v := os.Getenv("TILECAST_SCREENSHOTS"); v != "1" && v != "true" && v != "yes" {
		return false
	}
	path := filepath.Join(root, "docs", name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatalf("save screenshot: %v", err)
	}
	t.Logf("screenshot saved to %s", path)
	return true
}
