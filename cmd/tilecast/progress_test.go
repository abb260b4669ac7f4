package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeClock is a clock a test moves by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time      { return c.t }
func (c *fakeClock) add(d time.Duration) { c.t = c.t.Add(d) }
func testProgress(tty bool, unit string, total int64, every time.Duration) (*progress, *strings.Builder, *fakeClock) {
	var out strings.Builder
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	p := newProgress(env{stderr: &out}, "work", unit, total, every)
	p.tty, p.now = tty, clk.now
	if tty {
		p.every = progressRedraw
	}
	p.start, p.last = clk.now(), clk.now()
	return p, &out, clk
}

// Not on a terminal: one plain line per interval, none in between, and
// nothing to end.
func TestProgressPlainLines(t *testing.T) {
	p, out, clk := testProgress(false, "bytes", 10<<20, 0)
	if p.every != progressEvery {
		t.Fatalf("plain interval %s, want %s", p.every, progressEvery)
	}
	for i := 0; i < 10; i++ { // 1 MiB a second for 10 s
		clk.add(time.Second)
		p.add(1 << 20)
	}
	p.finish()
	want := "work:  50% 5.0 MiB of 10.0 MiB, 5s\nwork: 100% 10.0 MiB of 10.0 MiB, 10s\n"
	if out.String() != want {
		t.Errorf("plain lines\n got %q\nwant %q", out.String(), want)
	}
}

// On a terminal: a bar redrawn in place, ended by finish with a newline.
func TestProgressBar(t *testing.T) {
	p, out, clk := testProgress(true, "channels", 4, 0)
	p.extra = func() string { return "x" }
	clk.add(time.Second)
	p.add(1)
	clk.add(10 * time.Millisecond) // within the redraw interval: not drawn
	p.add(1)
	clk.add(time.Second)
	p.add(2)
	p.finish()
	lines := strings.Split(out.String(), "\r")
	want := []string{"",
		"work [######------------------]  25% 1 channels of 4 channels, x, 1s\x1b[K",
		"work [########################] 100% 4 channels of 4 channels, x, 2s\x1b[K",
		"work [########################] 100% 4 channels of 4 channels, x, 2s\x1b[K\n"}
	if fmt.Sprintf("%q", lines) != fmt.Sprintf("%q", want) {
		t.Errorf("bar\n got %q\nwant %q", lines, want)
	}
}

// An unknown total shows the amount, no bar and no percentage.
func TestProgressUnknownTotal(t *testing.T) {
	p, out, clk := testProgress(false, "bytes", 0, time.Second)
	clk.add(time.Second)
	p.set(1536)
	if got, want := out.String(), "work: 1.5 KiB, 1s\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if isTerminal(&strings.Builder{}) {
		t.Error("a strings.Builder is a terminal")
	}
}

// channels import of 30,000 lines (three chunks of importChunk; 100,000
// take a minute under -race): every line counted, the rejected ones
// listed with their line numbers, the time given; progress on stderr is
// a plain line (stderr is no terminal here) or nothing at all when it
// took less than the interval.
func TestImportManyLines(t *testing.T) {
	o := newOpsEnv(t)
	const n = 30000
	var b strings.Builder
	b.WriteString("uri,user,feeds\n")
	for i := 1; i < n; i++ { // line i+1
		switch i {
		case 500:
			b.WriteString("https://evil.example.org/t/x,ana,news\n")
		case 25000:
			b.WriteString("https://db3.notify.live.net/t/y,ana,nosuchfeed\n")
		default:
			fmt.Fprintf(&b, "https://db3.notify.live.net/t/%d,u%d,news\n", i, i%100)
		}
	}
	path := filepath.Join(o.dir, "channels.csv")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCLI(t, t.Context(), "channels", "import", "--config", o.cfg, path)
	if code != exitOK {
		t.Fatalf("import: exit %d\n%s%s", code, out, errs)
	}
	for _, want := range []string{fmt.Sprintf("added %d, updated 0, rejected 2; %d lines read in ", n-3, n), "\n  line 501: ", "\n  line 25001: "} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	for _, l := range strings.Split(strings.TrimSuffix(errs, "\n"), "\n") {
		if l != "" && !strings.HasPrefix(l, "channels import: reading:") && !strings.HasPrefix(l, "channels import: storing:") {
			t.Errorf("stderr line that is no progress line: %q", l)
		}
	}
}

// backup counts the snapshot's bytes into its progress, up to the state
// file's size.
func TestBackupProgress(t *testing.T) {
	o := newOpsEnv(t)
	seed(t, o.state)
	st, err := os.Stat(o.state)
	if err != nil {
		t.Fatal(err)
	}
	var errb strings.Builder
	e := env{stdout: io.Discard, stderr: &errb}
	cfg, ops, err := loadAndConnect(o.cfg, e, true)
	if err != nil || cfg == nil {
		t.Fatal(err)
	}
	defer ops.Close()
	p := newProgress(e, "backup", "bytes", st.Size(), time.Nanosecond)
	n, err := writeBackup(t.Context(), ops, filepath.Join(o.dir, "b.db"), p)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(errb.String(), "\n"), "\n")
	last := lines[len(lines)-1]
	if want := fmt.Sprintf("backup: %3d%% %s of %s, ", n*100/st.Size(), byteSize(n), byteSize(st.Size())); len(lines) < 2 || !strings.HasPrefix(last, want) {
		t.Errorf("last progress line %q, want it to start with %q, after others (all: %q)", last, want, errb.String())
	}
	// On a terminal, the bar ends full at the snapshot's real size.
	p.tty, p.drawn = true, true
	p.setTotal(n)
	p.finish()
	if want := fmt.Sprintf("\rbackup [########################] 100%% %s of %s, ", byteSize(n), byteSize(n)); !strings.Contains(errb.String(), want) {
		t.Errorf("finished bar lacks %q: %q", want, errb.String())
	}
}
