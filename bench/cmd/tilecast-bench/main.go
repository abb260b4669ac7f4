// Command tilecast-bench runs tilecast's performance scenarios (fan-out,
// feed tick, footprint) against loopback servers and prints a Markdown
// table of the figures. See BENCHMARKS.md and scripts/bench.sh.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/bench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: tilecast-bench fanout|tick|retention|idle|sink|sync [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "fanout":
		err = cmdFanOut(ctx, os.Args[2:])
	case "tick":
		err = cmdTick(ctx, os.Args[2:])
	case "retention":
		err = cmdRetention(ctx, os.Args[2:])
	case "idle":
		err = cmdIdle(ctx, os.Args[2:])
	case "sink":
		err = cmdSink(ctx, os.Args[2:])
	case "sync":
		err = cmdSync(ctx, os.Args[2:])
	default:
		err = fmt.Errorf("unknown scenario %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "tilecast-bench:", err)
		os.Exit(1)
	}
}

// defaultDir sets an empty *dir to a new temp dir on disk (the one the
// file's -dir flag promises) and returns what removes it again.
func defaultDir(dir *string) (cleanup func(), err error) {
	if *dir != "" {
		return func() {}, nil
	}
	if *dir, err = os.MkdirTemp("", "tilecast-bench-"); err != nil {
		return nil, err
	}
	return func() { os.RemoveAll(*dir) }, nil
}

func ints(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("bad number %q", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// cmdSink runs a sink with n channels in this process (the fan-out's
// child), writes the channel URIs to -out and prints "ready" when serving.
func cmdSink(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("sink", flag.ExitOnError)
	kind := fs.String("kind", bench.SinkEmulator, "emulator or minimal")
	transport := fs.String("transport", "mpns", "mpns (phones), wns (Windows devices, with a token endpoint) or webpush (browsers: the URIs are subscriptions)")
	n := fs.Int("n", 1000, "channels")
	out := fs.String("out", "", "file for the channel URIs")
	_ = fs.Parse(args)
	s, err := bench.StartSinkFor(*kind, tilecast.Transport(*transport), *n)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := os.WriteFile(*out, []byte(strings.Join(s.URIs, "\n")), 0o600); err != nil {
		return err
	}
	fmt.Println("ready")
	// Exit when the parent closes stdin or on a signal.
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); os.Exit(0) }()
	<-ctx.Done()
	return nil
}

// startSinkProcess runs the sink in a child process, so its memory and the
// emulator's per-channel state stay out of the fan-out's RSS.
func startSinkProcess(kind string, t tilecast.Transport, n int, dir string) ([]string, int, func(), error) {
	out := filepath.Join(dir, fmt.Sprintf("uris-%d.txt", n))
	cmd := exec.Command(os.Args[0], "sink", "-kind", kind, "-transport", string(t), "-n", strconv.Itoa(n), "-out", out)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, 0, nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, 0, nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, 0, nil, err
	}
	stopFn := func() { _ = stdin.Close(); _ = cmd.Wait() }
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		stopFn()
		return nil, 0, nil, fmt.Errorf("sink did not start: %q %v", line, err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		stopFn()
		return nil, 0, nil, err
	}
	return strings.Split(string(b), "\n"), cmd.Process.Pid, stopFn, nil
}

// freshState copies the template state tmpl to dir/state.db in chunk
// writes (bench.CopyFile), replacing the last run's, and returns its path.
func freshState(dir, tmpl string, chunk int) (string, error) {
	path := filepath.Join(dir, "state.db")
	_ = os.Remove(path)
	return path, bench.CopyFile(path, tmpl, chunk)
}

// startCPUProfile writes a CPU profile to path until the returned func is
// called. With path "", or a file it cannot create, it profiles nothing.
func startCPUProfile(path string) (stop func()) {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "cpuprofile: %v\n", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintf(os.Stderr, "cpuprofile: %v\n", err)
		f.Close()
		return func() {}
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}

// rawBaseline runs the raw loop once before a channel count's first run
// and once after each run, and compares each run with the mean of the raw
// runs on either side of it. This host's speed drifts by a third within
// minutes; a baseline from one side only tilts each ratio with the drift,
// which the per-run ratios showed as a spread of 0.64-0.89 for one build.
// The first raw run also warms the sink (connections, its devices), which
// the first tilecast run paid for alone before.
type rawBaseline struct {
	run func() (bench.FanOutResult, error)
	// before and last: notifications per second of the raw run before
	// the latest run, and of the latest raw run.
	before, last float64
}

func newRawBaseline(run func() (bench.FanOutResult, error)) (*rawBaseline, error) {
	res, err := run()
	if err != nil {
		return nil, err
	}
	return &rawBaseline{run: run, last: res.PerSecond()}, nil
}

// after runs the raw loop after a tilecast run and returns that run's
// baseline, the mean of the raw runs before and after it, with the new
// raw run's result.
func (b *rawBaseline) after() (float64, bench.FanOutResult, error) {
	res, err := b.run()
	if err != nil {
		return 0, res, err
	}
	b.before, b.last = b.last, res.PerSecond()
	return (b.before + b.last) / 2, res, nil
}

// cpuTimes are CPU times (user+system) of this process and the sink.
type cpuTimes struct{ self, sink time.Duration }

// cpuNow reads them: this process with getrusage (µs), the sink (pid > 0)
// from /proc (10 ms ticks, fine for runs of seconds).
func cpuNow(sinkPid int) cpuTimes {
	var c cpuTimes
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		c.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if sinkPid <= 0 {
		return c
	}
	if t, err := bench.CPUTicks(sinkPid); err == nil {
		c.sink = time.Duration(t) * 10 * time.Millisecond
	}
	return c
}

// peakMem is what peak measured.
type peakMem struct {
	rss  int64  // VmHWM, reset before fn: includes mmapped state-file pages
	anon int64  // highest RssAnon sampled (heap, stacks, runtime)
	heap uint64 // highest HeapInuse sampled
}

// peak samples the heap every 5 ms and RssAnon every 50 ms while fn runs and returns fn's error and
// the peaks.
func peak(fn func() error) (peakMem, error) {
	runtime.GC()
	debug.FreeOSMemory()
	_ = bench.ResetPeakRSS(os.Getpid())
	var maxHeap atomic.Uint64
	var maxAnon atomic.Int64
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		var ms runtime.MemStats
		tick := 0
		for {
			select {
			case <-done:
				return
			case <-t.C:
				runtime.ReadMemStats(&ms)
				if ms.HeapInuse > maxHeap.Load() {
					maxHeap.Store(ms.HeapInuse)
				}
				// /proc reads cost more than ReadMemStats: every 10th tick.
				if tick++; tick%10 == 1 {
					if a, err := bench.RSSAnon(os.Getpid()); err == nil && a > maxAnon.Load() {
						maxAnon.Store(a)
					}
				}
			}
		}
	}()
	err := fn()
	close(done)
	_, hwm, _ := bench.ProcStatus(os.Getpid())
	return peakMem{rss: hwm, anon: maxAnon.Load(), heap: maxHeap.Load()}, err
}

func cmdFanOut(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("fanout", flag.ExitOnError)
	ns := fs.String("n", "1000,10000,100000", "channel counts")
	runs := fs.String("runs", "5,5,5", "runs per channel count (one value or one per count)")
	kind := fs.String("sink", bench.SinkEmulator, "sink: emulator or minimal")
	conc := fs.Int("c", bench.DefaultConcurrency, "push concurrency (Bot and raw loop)")
	dir := fs.String("dir", "", "directory for the state files (default: a temp dir on disk)")
	build := fs.String("build-dir", "/dev/shm", "where the template state is built (tmpfs: no fsync per channel)")
	copyChunk := fs.Int("copy-write", os.Getpagesize(), "bytes per write when the template is copied for a run; 0: one write (see bench.CopyFile)")
	cpuprof := fs.String("cpuprofile", "", "CPU profiles of the runs of the largest N: FILE.<run> (tilecast), FILE.raw.<run> (raw loop)")
	transportFlag := fs.String("transport", "mpns", "mpns: phones, a toast and a tile each; wns: Windows devices, a toast, a tile and a badge each, "+
		"with access tokens from the sink's token endpoint (the raw loop gets one token before it starts); webpush: browsers, "+
		"a toast and a tile each, encrypted and VAPID-signed per request by tilecast and the raw loop alike")
	state := fs.String("state", "bbolt", "bbolt: a state file per run; postgres: a throw-away PostgreSQL cluster started for the bench "+
		"(initdb + postgres from /usr/lib/postgresql/*/bin, unix socket, durable settings), a schema per run; postgres://…: that server "+
		"(a role that may create schemas); PostgreSQL runs also report SQL statements per notification")
	instances := fs.Int("instances", 1, "PostgreSQL only: delivering instances, each a Bot in this process with a DB of its own "+
		"(own instance name and row, pool, leases and daily-cap reservations), started together on the same sink")
	topStatements := fs.Int("pg-statements", 0, "PostgreSQL only: after each run, print the N statements that took the server's "+
		"time (pg_stat_statements: the bench's own cluster loads it; a postgres://… server must have it in shared_preload_libraries)")
	var pgSettings []string
	fs.Func("pg-setting", "PostgreSQL only, the bench's own cluster: one more server setting, name=value (postgres -c), such as "+
		"auto_explain.log_min_duration=3ms; may be repeated", func(v string) error {
		if !strings.Contains(v, "=") {
			return fmt.Errorf("want name=value, got %q", v)
		}
		pgSettings = append(pgSettings, v)
		return nil
	})
	_ = fs.Parse(args)
	transport, err := tilecast.ParseTransport(*transportFlag)
	if err != nil || transport == "" {
		return fmt.Errorf("fanout -transport: want mpns, wns or webpush, got %q", *transportFlag)
	}
	counts, err := ints(*ns)
	if err != nil {
		return err
	}
	rr, err := ints(*runs)
	if err != nil {
		return err
	}
	cleanup, err := defaultDir(dir)
	if err != nil {
		return err
	}
	defer cleanup()
	bdir, err := os.MkdirTemp(*build, "tilecast-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(bdir)
	if *state != "bbolt" {
		return pgFanOut(ctx, *state, *kind, transport, counts, rr, *conc, *dir, bdir, *copyChunk, *instances, *topStatements, pgSettings)
	}
	rawNs, err := bench.RawNotificationsFor(transport)
	if err != nil {
		return err
	}
	fmt.Printf("transport %s: %d notifications per channel\n\n", transport, len(rawNs))
	fmt.Printf("| N | runs | tilecast notif/s (median) | raw notif/s (median) | ratio (median of per-run ratios) | per-notification cost | commit phase | deliver phase | peak RSS | peak anon RSS | peak heap |\n")
	fmt.Printf("|---|---|---|---|---|---|---|---|---|---|---|\n")
	var cpuRows []string
	cryptoRow := "" // Web Push only
	for i, n := range counts {
		r := rr[min(i, len(rr)-1)]
		uris, sinkPid, stopSink, err := startSinkProcess(*kind, transport, n, bdir)
		if err != nil {
			return err
		}
		opts := bench.FanOutOptions{Concurrency: *conc, Transport: transport}
		if transport == tilecast.TransportWNS {
			opts.TokenURL = bench.TokenURLOf(uris[0])
		}
		tmpl := filepath.Join(bdir, fmt.Sprintf("template-%d.db", n))
		t0 := time.Now()
		if err := bench.BuildFanOutStateFor(tmpl, uris, transport); err != nil {
			stopSink()
			return err
		}
		fmt.Fprintf(os.Stderr, "N=%d: template built in %s\n", n, time.Since(t0).Round(time.Millisecond))
		if transport == tilecast.TransportWebPush && i == 0 {
			// The crypto both sides do per notification, in one goroutine.
			cost, err := bench.WebPushCryptoCost(uris[0], rawNs, 2000)
			if err != nil {
				stopSink()
				return err
			}
			cryptoRow = fmt.Sprintf("| %.1f µs | %.2f µs | %.1f µs |", float64(cost.Encrypt.Nanoseconds())/1e3,
				float64(cost.Authorization.Nanoseconds())/1e3, float64(cost.Sign.Nanoseconds())/1e3)
		}
		var tc, raw, ratio, commit, deliver []float64
		var cpuTC, cpuSinkTC, cpuRaw, cpuSinkRaw []float64 // µs per notification
		var pk peakMem
		rawBase, err := newRawBaseline(func() (bench.FanOutResult, error) {
			return bench.RunRawFanOutWith(ctx, uris, rawNs, opts)
		})
		if err != nil {
			stopSink()
			return err
		}
		for run := range r {
			path, err := freshState(*dir, tmpl, *copyChunk)
			if err != nil {
				stopSink()
				return err
			}
			var res bench.FanOutResult
			// Profiles of the largest N only: FILE.<run> and FILE.raw.<run>.
			profile := func(kind string) string {
				if *cpuprof == "" || i != len(counts)-1 {
					return ""
				}
				return fmt.Sprintf("%s%s.%d", *cpuprof, kind, run)
			}
			stopProf := startCPUProfile(profile(""))
			c0 := cpuNow(sinkPid)
			p, ferr := peak(func() error {
				var err error
				res, err = bench.RunFanOutWith(ctx, path, opts)
				return err
			})
			c1 := cpuNow(sinkPid)
			stopProf()
			if ferr != nil {
				stopSink()
				return ferr
			}
			pk = peakMem{max(pk.rss, p.rss), max(pk.anon, p.anon), max(pk.heap, p.heap)}
			for name, st := range res.Store {
				fmt.Fprintf(os.Stderr, "  store %s: %d calls, %d items, %s\n", name, st.Calls, st.Items, st.Time.Round(time.Millisecond))
			}
			stopRaw := startCPUProfile(profile(".raw"))
			base, rres, err := rawBase.after()
			stopRaw()
			if err != nil {
				stopSink()
				return err
			}
			c2 := cpuNow(sinkPid)
			perN := func(d time.Duration, n int) float64 { return float64(d.Microseconds()) / float64(max(n, 1)) }
			cpuTC = append(cpuTC, perN(c1.self-c0.self, res.Notifications))
			cpuSinkTC = append(cpuSinkTC, perN(c1.sink-c0.sink, res.Notifications))
			cpuRaw = append(cpuRaw, perN(c2.self-c1.self, rres.Notifications))
			cpuSinkRaw = append(cpuSinkRaw, perN(c2.sink-c1.sink, rres.Notifications))
			tc = append(tc, res.PerSecond())
			raw = append(raw, base)
			ratio = append(ratio, res.PerSecond()/base)
			commit = append(commit, res.Commit.Seconds())
			deliver = append(deliver, res.Deliver.Seconds())
			fmt.Fprintf(os.Stderr, "N=%d run %d: tilecast %d in %s (commit %s, deliver %s) = %.0f/s; raw %.0f/s (before %.0f, after %.0f); ratio %.2f; peak RSS %.0f MiB anon %.0f MiB heap %.0f MiB\n",
				n, run+1, res.Notifications, res.Elapsed.Round(time.Millisecond), res.Commit.Round(time.Millisecond),
				res.Deliver.Round(time.Millisecond), res.PerSecond(), base, rawBase.before, rres.PerSecond(), res.PerSecond()/base,
				mib(p.rss), mib(p.anon), mib(int64(p.heap)))
		}
		stopSink()
		cpuRows = append(cpuRows, fmt.Sprintf("| %d | %.0f µs | %.0f µs | %.0f µs | %.0f µs |",
			n, median(cpuTC), median(cpuSinkTC), median(cpuRaw), median(cpuSinkRaw)))
		mt := median(tc)
		fmt.Printf("| %d | %d | %.0f | %.0f | %.2f | %.1f µs | %.2f s | %.2f s | %.0f MiB | %.0f MiB | %.0f MiB |\n",
			n, r, mt, median(raw), median(ratio), 1e6/mt, median(commit), median(deliver), mib(pk.rss), mib(pk.anon), mib(int64(pk.heap)))
	}
	// CPU per notification, user + system (medians): the runs are CPU-bound
	// on small machines, so the ratios follow (raw + sink) / (tilecast + sink).
	fmt.Printf("\n| N | CPU per notification: tilecast | sink (tilecast run) | raw loop | sink (raw run) |\n|---|---|---|---|---|\n")
	for _, row := range cpuRows {
		fmt.Println(row)
	}
	if cryptoRow != "" {
		fmt.Printf("\nWeb Push crypto per notification (one goroutine; both tilecast and the raw loop pay it):\n\n"+
			"| encrypt (aes128gcm, fresh ECDH per message) | VAPID header (token reused per push service) | ES256 token (once per push service per 12 h) |\n|---|---|---|\n%s\n", cryptoRow)
	}
	return nil
}

func cmdTick(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("tick", flag.ExitOnError)
	fsz := fs.String("f", "1000,5000", "feed counts")
	runs := fs.Int("runs", 5, "measured ticks per feed count (after one baseline tick)")
	conc := fs.Int("c", 8, "feeds fetched at once (Bot and raw loop)")
	hosts := fs.Int("hosts", 8, "loopback listeners the feeds are spread over")
	dir := fs.String("dir", "", "directory for the state file (default: a temp dir on disk)")
	cpuprof := fs.String("cpuprofile", "", "CPU profile of the tilecast ticks of the largest F")
	_ = fs.Parse(args)
	counts, err := ints(*fsz)
	if err != nil {
		return err
	}
	cleanup, err := defaultDir(dir)
	if err != nil {
		return err
	}
	defer cleanup()
	fmt.Printf("| F | ticks | tilecast feeds/s (median) | raw feeds/s (median) | ratio (median) | strict raw feeds/s (median) | ratio to strict raw (median) | CPU µs per feed: tilecast / raw / strict raw | 304 answers / tick | write tx beyond the feeds with a new item (304s and unchanged 200s write nothing) |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for ci, f := range counts {
		srv, err := bench.StartFeedServer(f, *hosts)
		if err != nil {
			return err
		}
		path := filepath.Join(*dir, fmt.Sprintf("tick-%d.db", f))
		tb, err := bench.NewTickBot(path, srv)
		if err != nil {
			return err
		}
		// Two baselines: gofeed's default parse (the issue's) and a
		// strict one that skips gofeed's per-item HTML image scan, as
		// tilecast's parse does.
		rt, rs := bench.NewRawTicker(srv, true), bench.NewRawTicker(srv, false)
		// Tick 0: first fetch of every feed (baselines), not measured.
		if _, err := tb.Tick(ctx, *conc); err != nil {
			return err
		}
		if _, err := rt.Tick(ctx, *conc); err != nil {
			return err
		}
		if _, err := rs.Tick(ctx, *conc); err != nil {
			return err
		}
		var tc, raw, ratio, strict, sratio, cpuTC, cpuRaw, cpuStrict []float64
		var n304, extra int
		for run := range *runs {
			srv.Advance()
			prof := ""
			if *cpuprof != "" && ci == len(counts)-1 {
				prof = fmt.Sprintf("%s.%d", *cpuprof, run)
			}
			stopProf := startCPUProfile(prof)
			c0 := cpuNow(0)
			res, err := tb.Tick(ctx, *conc)
			c1 := cpuNow(0)
			stopProf()
			if err != nil {
				return err
			}
			rres, err := rt.Tick(ctx, *conc)
			if err != nil {
				return err
			}
			c2 := cpuNow(0)
			sres, err := rs.Tick(ctx, *conc)
			if err != nil {
				return err
			}
			c3 := cpuNow(0)
			perFeed := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(f) }
			cpuTC = append(cpuTC, perFeed(c1.self-c0.self))
			cpuRaw = append(cpuRaw, perFeed(c2.self-c1.self))
			cpuStrict = append(cpuStrict, perFeed(c3.self-c2.self))
			strict = append(strict, sres.PerSecond())
			sratio = append(sratio, res.PerSecond()/sres.PerSecond())
			// Only a feed with a new item commits; any other write was
			// caused by a 304 or an unchanged 200.
			extra += res.Writes - bench.NewFeeds(f)
			n304 = res.Got304
			tc = append(tc, res.PerSecond())
			raw = append(raw, rres.PerSecond())
			ratio = append(ratio, res.PerSecond()/rres.PerSecond())
			fmt.Fprintf(os.Stderr, "F=%d tick %d: tilecast %.0f feeds/s (%d×200, %d×304, %d writes); raw %.0f feeds/s (%d×200, %d×304); ratio %.2f; strict raw %.0f feeds/s, ratio %.2f\n",
				f, run+1, res.PerSecond(), res.Got200, res.Got304, res.Writes, rres.PerSecond(), rres.Got200, rres.Got304, res.PerSecond()/rres.PerSecond(),
				sres.PerSecond(), res.PerSecond()/sres.PerSecond())
		}
		_ = tb.Close()
		_ = srv.Close()
		fmt.Printf("| %d | %d | %.0f | %.0f | %.2f | %.0f | %.2f | %.0f / %.0f / %.0f | %d | %d |\n", f, *runs, median(tc), median(raw), median(ratio),
			median(strict), median(sratio), median(cpuTC), median(cpuRaw), median(cpuStrict), n304, extra)
	}
	return nil
}

func cmdRetention(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("retention", flag.ExitOnError)
	feeds := fs.Int("feeds", 500, "feeds")
	days := fs.Int("days", 90, "simulated days of hourly ticks")
	chans := fs.Int("channels", 1, "https channels on the default list")
	every := fs.Int("every", 15, "report the size every N days")
	dir := fs.String("dir", "/dev/shm", "directory for the state file (size does not depend on fsync)")
	_ = fs.Parse(args)
	d, err := os.MkdirTemp(*dir, "tilecast-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(d)
	start := time.Now()
	pts, err := bench.SimulateRetention(ctx, filepath.Join(d, "state.db"), *feeds, *days, *chans, *every)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "retention: simulated in %s\n", time.Since(start).Round(time.Second))
	fmt.Printf("| day | state file |\n|---|---|\n")
	for _, p := range pts {
		fmt.Printf("| %d | %.2f MiB |\n", p.Day, mib(p.Bytes))
	}
	return nil
}

// cmdIdle runs the real daemon (`tilecast run`) with F feeds on a 15-minute
// schedule against a loopback feed server, waits for the catch-up fetch of
// every feed, then samples its RSS and CPU time over a window.
func cmdIdle(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("idle", flag.ExitOnError)
	bin := fs.String("tilecast", "", "path to a built tilecast binary")
	feeds := fs.Int("f", 1000, "feeds")
	window := fs.Duration("window", 2*time.Minute, "sampling window")
	_ = fs.Parse(args)
	if *bin == "" {
		return errors.New("idle: -tilecast is required")
	}
	srv, err := bench.StartFeedServer(*feeds, 8)
	if err != nil {
		return err
	}
	defer srv.Close()
	dir, err := os.MkdirTemp("", "tilecast-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var b strings.Builder
	fmt.Fprintf(&b, "state = %q\n[log]\nlevel = \"warn\"\n[http]\nlisten = \"\"\n[fetch]\nallow_private = true\n[push]\nallow_private = true\nallowed_hosts = [\"127.0.0.1\"]\n[defaults]\nschedule = \"*/15 * * * *\"\n", filepath.Join(dir, "state.db"))
	for i := range *feeds {
		fmt.Fprintf(&b, "[[feed]]\nname = \"feed%05d\"\nurl = %q\n[feed.toast]\ntext1 = \"{{.Feed.Title}}\"\ntext2 = \"{{.Item.Title}}\"\n[feed.tile]\ntitle = \"{{.Feed.Title}}\"\ncount = \"{{.NewCount}}\"\nback_content = \"{{.Item.Title}}\"\n", i, srv.URL(i))
	}
	cfg := filepath.Join(dir, "tilecast.toml")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o600); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, *bin, "run", "--config", cfg)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() }()
	pid := cmd.Process.Pid
	served := func() int64 { return srv.Count[0].Load() + srv.Count[1].Load() + srv.Count[2].Load() }
	t0 := time.Now()
	for served() < int64(*feeds) {
		if time.Since(t0) > 2*time.Minute {
			return fmt.Errorf("idle: catch-up fetched only %d of %d feeds", served(), *feeds)
		}
		time.Sleep(100 * time.Millisecond)
	}
	catchUp := time.Since(t0)
	_, hwmStart, _ := bench.ProcStatus(pid)
	time.Sleep(10 * time.Second) // let the catch-up's commits finish
	c0, err := bench.CPUTicks(pid)
	if err != nil {
		return err
	}
	before := served()
	var maxRSS, sumRSS int64
	var maxAt time.Duration
	samples := 0
	ws := time.Now()
	for time.Since(ws) < *window {
		time.Sleep(time.Second)
		rss, _, err := bench.ProcStatus(pid)
		if err != nil {
			return err
		}
		if rss > maxRSS {
			maxRSS, maxAt = rss, time.Since(ws)
		}
		sumRSS += rss
		samples++
	}
	c1, _ := bench.CPUTicks(pid)
	_, hwm, _ := bench.ProcStatus(pid)
	el := time.Since(ws)
	fmt.Fprintf(os.Stderr, "idle: catch-up of %d feeds took %s (peak RSS by then %.0f MiB); window max %.1f MiB at +%s\n",
		*feeds, catchUp.Round(time.Millisecond), mib(hwmStart), mib(maxRSS), maxAt.Round(time.Second))
	fmt.Printf("| feeds | window | idle RSS (mean / max) | idle CPU | feed requests in window | peak RSS incl. catch-up |\n|---|---|---|---|---|---|\n")
	fmt.Printf("| %d | %s | %.1f / %.1f MiB | %.2f %% | %d | %.1f MiB |\n", *feeds, el.Round(time.Second),
		mib(sumRSS/int64(max(samples, 1))), mib(maxRSS), float64(c1-c0)/100/el.Seconds()*100, served()-before, mib(hwm))
	return nil
}
