package main

import (
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/emulator"
	"github.com/tilecast/tilecast/internal/logtest"
	"github.com/tilecast/tilecast/store"
)

// reloadSettings are the keys TestReloadApplies changes between SIGHUPs.
type reloadSettings struct {
	state        string
	listen       string
	fetchPrivate bool
	pushPrivate  bool
	pushTimeout  string
	probes       []string // extra feeds, each fetched once a second
}

func (s reloadSettings) config(feedURL string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `state = %q
[http]
listen = %q
[fetch]
allow_private = %v
[push]
allow_private = %v
timeout = %q
allowed_hosts = ["127.0.0.1"]
[[feed]]
name = "news"
url = "%s/news.xml"
schedule = "@every 1s"
[feed.toast]
text1 = "News"
text2 = "{{.Item.Title}}"
`, s.state, s.listen, s.fetchPrivate, s.pushPrivate, s.pushTimeout, feedURL)
	for _, p := range s.probes {
		fmt.Fprintf(&b, "[[feed]]\nname = %q\nurl = \"%s/%s.xml\"\nschedule = \"@every 1s\"\n[feed.toast]\ntext2 = \"x\"\n", p, feedURL, p)
	}
	return b.String()
}

// logLines returns the log lines containing every one of parts.
func logLines(logs *logtest.Buffer, parts ...string) []string {
	var out []string
	for _, l := range strings.Split(logs.String(), "\n") {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(l, p)
		}
		if ok {
			out = append(out, l)
		}
	}
	return out
}

// TestReloadApplies runs the daemon against a feed server and the
// project's emulator on loopback and changes its config under it with
// SIGHUP: push.allow_private off makes the next push to the loopback
// emulator fail and on again lets it through; a shorter push.timeout
// makes the next push to a slow phone time out and a longer one lets it
// arrive; fetch.allow_private off makes the next loopback fetch fail and
// on again succeed; a new state path (and listen address) is logged as
// needs restart and the daemon carries on with the old state file.
func TestReloadApplies(t *testing.T) {
	feed := &growingFeed{}
	feed.add("Baseline")
	fsrv := httptest.NewServer(feed)
	defer fsrv.Close()
	emu := emulator.New(emulator.Options{})
	esrv := httptest.NewServer(emu.Handler())
	defer esrv.Close()
	defer emu.Close()
	emu.SetBaseURL(esrv.URL)
	phone, err := emu.CreateChannel(emulator.Healthy, "phone")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	set := reloadSettings{state: filepath.Join(dir, "state.db"), fetchPrivate: true, pushPrivate: true, pushTimeout: "10s"}
	db, err := store.Open(set.state, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.AddChannel(tilecast.Channel{URI: phone.URI, Feeds: []string{"news"}}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "tilecast.toml")
	write := func(s reloadSettings) {
		t.Helper()
		if err := os.WriteFile(cfg, []byte(s.config(fsrv.URL)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(set)

	d := startDaemon(t, cfg)
	waitFor(t, "the baseline fetch", func() bool { return len(logLines(d.logs, "msg=fetch", "feed=news", "status=200")) > 0 })

	reloads := 0
	hup := func(s reloadSettings) {
		t.Helper()
		write(s)
		reloads++
		syscall.Kill(os.Getpid(), syscall.SIGHUP)
		waitFor(t, fmt.Sprintf("reload %d", reloads), func() bool {
			return len(logLines(d.logs, `msg="config reloaded"`)) >= reloads
		})
		if l := logLines(d.logs, "config reload"); len(l) != reloads {
			t.Fatalf("a reload was not applied: %q", l)
		}
	}
	toasts := func() int {
		st, _ := emu.Channel(phone.Token)
		return len(st.Toasts)
	}
	// item returns the log lines of the push of the n-th item (guid gN).
	item := 0
	next := func(title string) string {
		item++
		feed.add(title)
		return fmt.Sprintf("item=g%d ", item)
	}

	// 1. Pushes reach the loopback emulator.
	next("First")
	waitFor(t, "the first toast", func() bool { return toasts() == 1 })

	// 2. push.allow_private off: the next push is refused by the guard.
	set.pushPrivate = false
	hup(set)
	id := next("Refused")
	waitFor(t, "the refused push", func() bool { return len(logLines(d.logs, "msg=push", id)) > 0 })
	if l := logLines(d.logs, "msg=push", id)[0]; !strings.Contains(l, "outcome=failed") || !strings.Contains(l, "prohibited address") {
		t.Errorf("push after allow_private off: %s", l)
	}

	// 3. On again, with a push.timeout shorter than the phone's answer:
	// the next push times out.
	if err := emu.SetBehaviour(phone.Token, emulator.Slow, emulator.Params{SlowMS: 1500}); err != nil {
		t.Fatal(err)
	}
	set.pushPrivate, set.pushTimeout = true, "300ms"
	hup(set)
	id = next("Too slow")
	waitFor(t, "the timed-out push", func() bool { return len(logLines(d.logs, "msg=push", id)) > 0 })
	if l := logLines(d.logs, "msg=push", id)[0]; !strings.Contains(l, "outcome=retry") || strings.Contains(l, "prohibited") {
		t.Errorf("push with a 300ms timeout to a phone answering in 1.5s: %s", l)
	}

	// 4. A longer push.timeout: the slow phone gets the next toast.
	set.pushTimeout = "10s"
	hup(set)
	id = next("Slow but on time")
	waitFor(t, "the slow toast", func() bool { return toasts() == 2 })
	waitFor(t, "the slow push's log", func() bool { return len(logLines(d.logs, "msg=push", id)) > 0 })
	if l := logLines(d.logs, "msg=push", id); len(l) != 1 || !strings.Contains(l[0], "outcome=delivered") {
		t.Errorf("push with a 10s timeout: %q", l)
	}
	if st, _ := emu.Channel(phone.Token); st.Toasts[0].Text2 != "Slow but on time" {
		t.Errorf("the phone's newest toast is %q", st.Toasts[0].Text2)
	}

	// 5. state and http.listen cannot change under a running daemon: both
	// are logged, and it carries on with the old state file (and no
	// listener).
	moved := set
	moved.state, moved.listen = filepath.Join(dir, "elsewhere.db"), freeAddr(t)
	hup(moved)
	for _, key := range []string{"key=state", "key=http.listen"} {
		if l := logLines(d.logs, `msg="needs restart"`, key); len(l) != 1 {
			t.Errorf("needs restart lines for %s: %q", key, l)
		}
	}
	if l := logLines(d.logs, `msg="needs restart"`); len(l) != 2 {
		t.Errorf("needs restart lines: %q; want only state and http.listen", l)
	}
	if err := emu.SetBehaviour(phone.Token, emulator.Healthy); err != nil {
		t.Fatal(err)
	}
	next("After the move")
	waitFor(t, "a toast after the state change", func() bool { return toasts() == 3 })
	if _, err := os.Stat(moved.state); !os.IsNotExist(err) {
		t.Errorf("the new state path was opened (%v): it needs a restart", err)
	}
	if _, err := store.Open(set.state, store.Options{Timeout: 100 * time.Millisecond}); err == nil {
		t.Error("the old state file is not held by the daemon any more")
	}

	// 6. fetch.allow_private off: the next loopback fetch fails. (A feed
	// added with the reload, so its first fetch is the next one; a feed
	// that failed backs off for a minute, which a reload does not cut:
	// news is not fetched again within this test.)
	set.fetchPrivate, set.probes = false, []string{"probe1"}
	hup(set)
	waitFor(t, "probe1's fetch", func() bool { return len(logLines(d.logs, "msg=fetch", "feed=probe1")) > 0 })
	if l := logLines(d.logs, "msg=fetch", "feed=probe1")[0]; !strings.Contains(l, "prohibited address") {
		t.Errorf("fetch after allow_private off: %s", l)
	}

	// 7. On again: the next loopback fetch succeeds.
	set.fetchPrivate, set.probes = true, []string{"probe1", "probe2"}
	hup(set)
	waitFor(t, "probe2's fetch", func() bool { return len(logLines(d.logs, "msg=fetch", "feed=probe2")) > 0 })
	if l := logLines(d.logs, "msg=fetch", "feed=probe2")[0]; !strings.Contains(l, "status=200") || strings.Contains(l, "error=") {
		t.Errorf("fetch after allow_private on again: %s", l)
	}

	if code := d.stop(); code != exitOK {
		t.Errorf("exit %d\n%s", code, d.logs.String())
	}
	// The old state file has every toast's outcome: the daemon kept it.
	db, err = store.Open(set.state, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	out, err := db.Outcomes("", "news", time.Time{})
	if err != nil || len(out) < 4 {
		t.Errorf("the old state file's ledger: %d entries, %v; want the pushes of every step", len(out), err)
	}
}
