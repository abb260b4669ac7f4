package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// Progress of long commands (channels import, backup, state copy), on
// stderr: on a terminal a bar redrawn in place, at most every
// progressRedraw; otherwise (a log, a pipe, systemd) one plain line every
// progressEvery, so the output stays readable line by line. Each command
// prints its summary on stdout when it ends.
const (
	progressRedraw = 100 * time.Millisecond
	progressEvery  = 5 * time.Second
	progressWidth  = 24 // cells of the bar
)

// progress reports how far one phase of a command got.
type progress struct {
	mu    sync.Mutex
	w     io.Writer
	tty   bool
	label string // "channels import: reading"
	unit  string // "bytes" (shown as KiB/MiB…) or a count's noun ("channels")
	total int64  // 0: unknown, no bar or percentage
	extra func() string
	every time.Duration
	now   func() time.Time

	start, last time.Time
	done        int64
	drawn       bool // a bar is on the terminal's current line
}

// newProgress starts a report on e.stderr; total 0 is unknown. every is
// the interval of plain lines (0: progressEvery); a bar is redrawn every
// progressRedraw.
func newProgress(e env, label, unit string, total int64, every time.Duration) *progress {
	p := &progress{w: e.stderr, tty: isTerminal(e.stderr), label: label, unit: unit, total: total, now: time.Now}
	p.every = every
	switch {
	case p.tty:
		p.every = progressRedraw
	case p.every <= 0:
		p.every = progressEvery
	}
	p.start = p.now()
	p.last = p.start
	return p
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// add counts n more units done.
func (p *progress) add(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += n
	p.maybeDraw()
}

// set says how many units are done.
func (p *progress) set(done int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done = done
	p.maybeDraw()
}

func (p *progress) maybeDraw() {
	now := p.now()
	if now.Sub(p.last) < p.every {
		return
	}
	p.last = now
	p.draw(now)
}

// setTotal corrects the expected total, once it is known (a snapshot's
// real size, where the file's size was the estimate).
func (p *progress) setTotal(total int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.total = total
}

// finish ends the report: a bar is drawn complete and its line ended.
// Plain lines need no end.
func (p *progress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty && p.drawn {
		p.draw(p.now())
		fmt.Fprintln(p.w)
		p.drawn = false
	}
}

func (p *progress) draw(now time.Time) {
	var b strings.Builder
	if p.tty {
		b.WriteString("\r")
	}
	b.WriteString(p.label)
	if p.tty {
		b.WriteString(" ")
		if p.total > 0 {
			filled := int(min(p.done, p.total) * progressWidth / p.total)
			b.WriteString("[" + strings.Repeat("#", filled) + strings.Repeat("-", progressWidth-filled) + "]")
		}
	} else {
		b.WriteString(":")
	}
	if p.total > 0 {
		fmt.Fprintf(&b, " %3d%% %s of %s", min(p.done, p.total)*100/p.total, p.amount(p.done), p.amount(p.total))
	} else {
		fmt.Fprintf(&b, " %s", p.amount(p.done))
	}
	if p.extra != nil {
		if x := p.extra(); x != "" {
			b.WriteString(", " + x)
		}
	}
	fmt.Fprintf(&b, ", %s", now.Sub(p.start).Round(100*time.Millisecond))
	if p.tty {
		b.WriteString("\x1b[K") // clear what a longer earlier line left
		p.drawn = true
	} else {
		b.WriteString("\n")
	}
	io.WriteString(p.w, b.String())
}

// amount formats n units: bytes in binary units, counts as numbers.
func (p *progress) amount(n int64) string {
	if p.unit != "bytes" {
		return fmt.Sprintf("%d %s", n, p.unit)
	}
	return byteSize(n)
}

// byteSize formats n bytes: "512 B", "1.5 KiB", "12.0 MiB".
func byteSize(n int64) string {
	const k = 1024
	if n < k {
		return fmt.Sprintf("%d B", n)
	}
	f, units := float64(n)/k, []string{"KiB", "MiB", "GiB", "TiB"}
	i := 0
	for f >= k && i < len(units)-1 {
		f /= k
		i++
	}
	return fmt.Sprintf("%.1f %s", f, units[i])
}

// progressReader counts the bytes and lines read through it into p.
type progressReader struct {
	r        io.Reader
	p        *progress
	newlines int64
	n        int64
	last     byte
}

func (r *progressReader) Read(b []byte) (int, error) {
	n, err := r.r.Read(b)
	if n > 0 {
		r.n += int64(n)
		r.newlines += int64(bytes.Count(b[:n], []byte{'\n'}))
		r.last = b[n-1]
		r.p.set(r.n)
	}
	return n, err
}

// lineCount is the lines read so far, a last one without a newline too.
func (r *progressReader) lineCount() int64 {
	if r.n > 0 && r.last != '\n' {
		return r.newlines + 1
	}
	return r.newlines
}

// progressWriter counts the bytes written through it into p.
type progressWriter struct {
	w io.Writer
	p *progress
}

func (w progressWriter) Write(b []byte) (int, error) {
	n, err := w.w.Write(b)
	w.p.add(int64(n))
	return n, err
}
