package main

import (
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/emulator"
	"github.com/tilecast/tilecast/store"
)

// TestSIGTERMDuringFanOutAccountsForEverything stops the daemon (as SIGTERM
// does, by cancelling its context) in the middle of a fan-out to slow
// phones, then checks that every notification is either delivered with
// its outcome recorded or still waiting in the outbox, and that no push
// reached a phone without its outcome being recorded.
func TestSIGTERMDuringFanOutAccountsForEverything(t *testing.T) {
	const phones = 60
	feed := &growingFeed{}
	feed.add("Old")
	fsrv := httptest.NewServer(feed)
	defer fsrv.Close()
	emu := emulator.New(emulator.Options{})
	esrv := httptest.NewServer(emu.Handler())
	defer esrv.Close()
	defer emu.Close()
	emu.SetBaseURL(esrv.URL)

	cfg := e2eConfig(t, fsrv.URL)
	dir := filepath.Dir(cfg)
	// Slow sends: 8 at a time, 150 ms each, so the fan-out takes seconds.
	text, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, []byte(strings.Replace(string(text), "[push]\n", "[push]\nconcurrency = 8\n", 1)), 0o600)
	db, err := store.Open(filepath.Join(dir, "state.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var tokens []string
	for i := range phones {
		ec, err := emu.CreateChannel(emulator.Slow, fmt.Sprint("phone ", i), emulator.Params{SlowMS: 150})
		if err != nil {
			t.Fatal(err)
		}
		tokens = append(tokens, ec.Token)
		if _, _, err := db.AddChannel(tilecast.Channel{URI: ec.URI, Feeds: []string{"news"}}); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	if code, _, errs := runCLI(t, t.Context(), "once", "--config", cfg); code != exitOK { // baseline
		t.Fatalf("once: %s", errs)
	}
	feed.add("Breaking")

	d := startDaemon(t, cfg)
	waitFor(t, "the fan-out to start", func() bool { return strings.Count(d.logs.String(), "msg=push") >= 10 })
	if code := d.stop(); code != exitOK { // SIGTERM
		t.Fatalf("exit %d", code)
	}

	db, err = store.Open(filepath.Join(dir, "state.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	stats, err := db.Counts()
	if err != nil {
		t.Fatal(err)
	}
	outs, err := db.Outcomes("", "", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	received := 0
	for _, tok := range tokens {
		st, _ := emu.Channel(tok)
		received += st.Counts.Total
	}
	delivered := 0
	for _, o := range outs {
		if o.Action == tilecast.ActionDelivered {
			delivered++
		}
	}
	total := 2 * phones // a toast and a tile each
	if stats.OutboxDepth == 0 || delivered == 0 {
		t.Fatalf("stop did not land mid fan-out (delivered %d, waiting %d); the test proves nothing", delivered, stats.OutboxDepth)
	}
	if delivered+stats.OutboxDepth != total {
		t.Errorf("delivered %d + waiting %d != %d notifications", delivered, stats.OutboxDepth, total)
	}
	if received != len(outs) {
		t.Errorf("phones received %d pushes but %d outcomes were recorded", received, len(outs))
	}
	if strings.Count(d.logs.String(), "msg=push") != len(outs) {
		t.Errorf("%d push lines logged, %d outcomes recorded", strings.Count(d.logs.String(), "msg=push"), len(outs))
	}
}
