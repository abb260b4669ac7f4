package main

import (
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tilecast/tilecast/store"
)

// TestPreviewShowsTheNextRun: preview compares the feed with the saved
// state as the next run would — the first run only records the baseline,
// then only unseen items count, max_toasts and flood_limit apply — and
// changes nothing; --as-new takes every item as new.
func TestPreviewShowsTheNextRun(t *testing.T) {
	feed := &growingFeed{}
	feed.add("Story 0")
	fsrv := httptest.NewServer(feed)
	defer fsrv.Close()
	cfg := e2eConfig(t, fsrv.URL)
	state := filepath.Join(filepath.Dir(cfg), "state.db")
	preview := func(args ...string) (int, string, string) {
		t.Helper()
		return runCLI(t, t.Context(), append([]string{"preview", "--config", cfg, "--feed", "news"}, args...)...)
	}
	expect := func(step string, out string, want ...string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: output lacks %q:\n%s", step, w, out)
			}
		}
		if !strings.HasSuffix(out, "\n") {
			t.Errorf("%s: output does not end with a newline", step)
		}
	}

	code, out, errs := preview()
	if code != exitOK {
		t.Fatalf("first run: exit %d %s", code, errs)
	}
	expect("before the first run", out, "# feed news: 1 item; the next run is its first: it records them as the baseline and sends nothing")
	if strings.Contains(out, "X-WindowsPhone-Target") {
		t.Errorf("a baseline run sends nothing, preview shows requests:\n%s", out)
	}
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Fatalf("preview created the state file (err %v)", err)
	}

	if code, _, errs := runCLI(t, t.Context(), "once", "--config", cfg); code != exitOK {
		t.Fatalf("once: exit %d %s", code, errs)
	}
	_, out, _ = preview()
	expect("after the baseline", out, "# feed news: 1 item, 0 new since the last run (compared with the saved state "+state+")",
		"# nothing would be sent now")

	for i := 1; i <= 5; i++ {
		feed.add(fmt.Sprintf("Story %d", i))
	}
	for round := 0; round < 2; round++ { // the second shows that the first changed nothing
		code, out, errs = preview()
		if code != exitOK {
			t.Fatalf("5 new: exit %d %s", code, errs)
		}
		expect(fmt.Sprintf("5 new, round %d", round), out, "# feed news: 6 items, 5 new since the last run",
			"# each mpns channel would get: 3 toasts + a summary toast (2 more) + the tile, count 5; max_toasts 3",
			"# toast (item g5)", "Story 5", "# toast (item g3)", "# toast (summary)", "# tile", "<wp:Count>5</wp:Count>")
		if strings.Contains(out, "(item g2)") || strings.Count(out, "X-WindowsPhone-Target: toast") != 4 {
			t.Errorf("round %d: want 3 item toasts (g5, g4, g3) and a summary:\n%s", round, out)
		}
		if i5, i3 := strings.Index(out, "(item g5)"), strings.Index(out, "(item g3)"); i5 > i3 {
			t.Errorf("round %d: toasts not newest first:\n%s", round, out)
		}
	}

	for i := 6; i <= 25; i++ {
		feed.add(fmt.Sprintf("Story %d", i))
	}
	_, out, _ = preview()
	expect("flood", out, "# feed news: 26 items, 25 new since the last run",
		"# each mpns channel would get: 0 toasts + a summary toast (25 more) + the tile, count 25; flood_limit 20 exceeded")

	_, out, _ = preview("--as-new")
	expect("--as-new", out, "# feed news: 26 items, every one taken as new (--as-new: no saved state read)", "count 26")

	// A state file held by a running daemon cannot be read: a clear error,
	// and --as-new still works.
	db, err := store.Open(state, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	code, out, errs = preview()
	if code != exitRuntime || !strings.Contains(errs, "is in use by the running tilecast") || !strings.Contains(errs, "--as-new") || out != "" {
		t.Errorf("state held: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if code, _, errs := preview("--as-new"); code != exitOK {
		t.Errorf("state held, --as-new: exit %d %s", code, errs)
	}
}
