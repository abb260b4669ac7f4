//go:build crash

package multitest

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tilecast/tilecast/emulator"
	"github.com/tilecast/tilecast/internal/pgtest"
	"github.com/tilecast/tilecast/store/postgres"
)

var (
	fanOutPhones = flag.Int("fanout-phones", 2000, "phones of TestKillRunFanOuts")
	fanOutWaves  = flag.Int("fanout-waves", 4, "fan-outs of TestKillRunFanOuts (two kills each)")
)

// TestKillRunFanOuts is the multi-instance crash test at scale: three
// `tilecast run` processes on one database, -fanout-phones phones (2,000)
// on the emulator, and -fanout-waves fan-outs of three new items each
// (three toasts and a flip tile per phone, 8,000 pushes a wave). During
// each fan-out one instance, chosen at random, is killed (SIGKILL) twice,
// at random points of the wave's pushes, and started again under its
// name. Every 25th phone is near its daily cap (capSome: 0 to 5 sends
// left of its 500 when the test starts). Checked against the phones' own
// records: every other phone got every toast at least once, and its
// tile, after the last push of all, is the newest item's (a retried or
// taken-over older tile never lands after a newer); the duplicates (the
// same push to the same phone again) are at most 2 × push.concurrency
// per kill; and no capped phone was sent more than its cap left, its
// other toasts waiting for midnight, none dropped (checkCaps).
//
//	go test -tags crash ./internal/multitest -run KillRunFanOuts -fanout-waves=10
func TestKillRunFanOuts(t *testing.T) {
	const (
		conc     = 8
		perWave  = 3 // new items per fan-out = max_toasts
		killsPer = 2
	)
	phoneN, waves := *fanOutPhones, *fanOutWaves
	start := time.Now()
	bin := filepath.Join(t.TempDir(), "tilecast")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/tilecast/tilecast/cmd/tilecast").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	url := pgtest.New(t)
	emu := emulator.New(emulator.Options{Rand: rand.New(rand.NewPCG(5, 6))})
	log := newPushLog()
	esrv := httptest.NewServer(log.wrap(emu.Handler()))
	defer esrv.Close()
	defer emu.Close()
	emu.SetBaseURL(esrv.URL)
	feed := newFeedServer(t)
	feed.add("item-0") // the baseline: the first run sends nothing

	db, err := postgres.Open(context.Background(), url, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ps := phones(t, emu, db, phoneN)
	capped, free, day := capSome(t, db, ps, 25)

	dir := t.TempDir()
	cfg := filepath.Join(dir, "tilecast.toml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`state = %q
[http]
listen = ""
[fetch]
allow_private = true
[push]
allow_private = true
allowed_hosts = ["127.0.0.1"]
concurrency = %d
[[feed]]
name = "wave"
url = "%s/wave.xml"
schedule = "@every 1s"
max_toasts = %d
[feed.toast]
text1 = "Wave"
text2 = "{{.Item.Title}}"
[feed.tile]
title = "Wave"
count = "{{.NewCount}}"
back_content = "{{.Item.Title}}"
`, url, conc, feed.URL, perWave)), 0o600); err != nil {
		t.Fatal(err)
	}

	procs := map[string]*exec.Cmd{}
	run := func(name string) {
		cmd := exec.Command(bin, "run", "--config", cfg, "--instance", name)
		logf, err := os.OpenFile(filepath.Join(dir, name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		logf.Close() // the child has its own descriptor
		procs[name] = cmd
	}
	names := []string{"i1", "i2", "i3"}
	for _, n := range names {
		run(n)
	}
	defer func() {
		for _, c := range procs {
			c.Process.Kill()
			c.Wait()
		}
	}()
	dumpLogs := func() {
		for _, n := range names {
			b, _ := os.ReadFile(filepath.Join(dir, n+".log"))
			t.Logf("%s log (tail):\n%s", n, tail(string(b), 3000))
		}
	}
	defer func() {
		if t.Failed() {
			dumpLogs()
		}
	}()
	// The baseline run has happened once an instance fetched the feed.
	waitFor(t, "the baseline fetch", func() bool { return feed.fetches() > 0 })
	time.Sleep(1500 * time.Millisecond) // its commit

	rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))
	kills := 0
	newest := ""
	for w := 1; w <= waves; w++ {
		p0, _ := log.counts()
		for i := 1; i <= perWave; i++ {
			newest = fmt.Sprintf("item-%d", (w-1)*perWave+i)
			feed.add(newest)
		}
		want := phoneN * (perWave + 1)
		// Two kills at random points of the wave's pushes: one early
		// (often while the paged fan-out is still being enqueued), one
		// late.
		for k, span := range [killsPer][2]float64{{0.02, 0.35}, {0.45, 0.8}} {
			at := p0 + int(float64(want)*(span[0]+rnd.Float64()*(span[1]-span[0])))
			waitUntil(t, 2*time.Minute, fmt.Sprintf("wave %d: %d pushes before kill %d", w, at-p0, k+1), func() bool {
				ok, _ := log.counts()
				return ok >= at
			})
			victim := names[rnd.IntN(len(names))]
			procs[victim].Process.Signal(syscall.SIGKILL)
			procs[victim].Wait()
			kills++
			ok, dups := log.counts()
			t.Logf("wave %d: killed %s after %d of the wave's pushes (%d duplicates so far)", w, victim, ok-p0, dups)
			time.Sleep(time.Duration(rnd.IntN(300)) * time.Millisecond)
			run(victim)
		}
		// The wave is done when every phone not capped has every toast
		// so far and the newest tile.
		waitUntil(t, 2*time.Minute, fmt.Sprintf("wave %d delivered to every phone", w), func() bool {
			for _, p := range free {
				if log.distinctToasts(p) < w*perWave {
					return false
				}
				if st, _ := emu.Channel(p.Token); st.Tile.Back["BackContent"] != newest {
					return false
				}
			}
			return true
		})
	}
	// Let what is still leased or retried go out, then stop every
	// instance: nothing may arrive after this. What stays is the capped
	// phones' rest of the day, waiting for midnight.
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	waitUntil(t, time.Minute, "an outbox left with only the capped phones' entries for midnight", func() bool {
		return onlyCappedWait(conn, capped, day)
	})
	for _, n := range names {
		procs[n].Process.Signal(syscall.SIGTERM)
		procs[n].Wait()
	}

	ok, dups := log.counts()
	missing := 0
	items := itemNames(1, waves*perWave)
	for _, p := range free {
		for _, it := range items {
			if !log.has(p, it) {
				missing++
				if missing <= 5 {
					t.Errorf("%s never got the toast of %s", p.Name, it)
				}
			}
		}
		st, _ := emu.Channel(p.Token)
		if b := st.Tile.Back["BackContent"]; b != newest {
			t.Errorf("%s shows the tile of %q last, want the newest item's (%s)", p.Name, b, newest)
		}
	}
	if missing > 0 {
		t.Errorf("%d toasts never arrived", missing)
	}
	reached := checkCaps(t, conn, db, log, capped, day, func(cappedPhone) []string { return items })
	t.Logf("%d phones (%d near their daily cap, %d reached it), %d waves, %d kills: %d pushes answered 200, %d duplicates (limit %d), %s",
		phoneN, len(capped), reached, waves, kills, ok, dups, kills*2*conc, time.Since(start).Round(time.Second))
	if limit := kills * 2 * conc; dups > limit {
		t.Errorf("%d duplicates after %d kills: more than %d (2 × push.concurrency per kill)", dups, kills, limit)
	}
	if min := phoneN * waves * 2; ok < min {
		t.Errorf("%d pushes in all, fewer than a toast of each wave and a tile (%d): the check saw nothing", ok, min)
	}
	var leased int
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM outbox WHERE lease_owner IS NOT NULL").Scan(&leased); err != nil {
		t.Fatal(err)
	}
	if leased != 0 {
		t.Errorf("%d entries still leased after every instance stopped", leased)
	}
}

// waitUntil polls cond until it holds or d has passed.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
