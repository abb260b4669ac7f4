package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/config"
	"github.com/tilecast/tilecast/store"
	"github.com/tilecast/tilecast/web"
)

// maxImportLine bounds one line of an import file: a registration is a
// 2 KiB URI, a user and at most 256 feed names.
const maxImportLine = 64 << 10

// Import formats.
const (
	formatAuto  = "auto"
	formatJSONL = "jsonl"
	formatCSV   = "csv"
)

const importUsage = `channels import --config FILE [--format auto|jsonl|csv] FILE|-

Bulk-loads channels into the state file; the daemon must be stopped (an
import through the API would take one request per channel). On PostgreSQL
(state = a postgres:// URL) the import goes into the database while daemons
run.

  JSON lines  one object per line: {"uri": "...", "user": "...", "feeds": ["a", "b"],
              "transport": "wns", "device": "..."} (all but uri optional); a Web
              Push channel has "subscription": {"endpoint": "...",
              "expirationTime": null, "keys": {"p256dh": "...", "auth": "..."}}
              (the browser's JSON) in place of uri
  CSV         uri,user,feeds,transport,device with feeds separated by ';'; the
              later columns may be left off. A header line naming the columns
              ("uri,user,feeds" or any order of those five names) is optional;
              lines starting with # are skipped

transport is mpns, wns or webpush; left out or empty, it is inferred from the
URI as for the API (a subscription is Web Push, *.notify.windows.com is WNS,
anything else MPNS; CSV has no subscription column: import Web Push channels
from JSON lines). WNS
channels must be https on *.notify.windows.com (another host of
push.allowed_hosts only with push.allow_private and transport wns named).
device is the app install's stable id, scoped to the user: a line with a new
URI for a known device rotates that device's channel to it, as a
registration through the API does.

The format comes from the extension (.jsonl .ndjson .json / .csv), else from
the first non-blank byte ('{' is JSON lines). "-" reads standard input.
Each line is checked like a registration through the API (uri and
push.allowed_hosts, known feeds, a user for per-user feeds) and its URI
canonicalised; a URI already stored is updated, a URI repeated in the file
counts once (its last line wins). Imported channels get no tile_on_subscribe
tile: they get the next tile of their feeds.

Shows progress on stderr (a bar on a terminal, else a line every 5 s), then
prints the lines read, added, updated and every rejected line with its line
number and reason. Exit status:
0 when at least one line was imported (or the file had no lines), 1 when
every line was rejected or the import failed, 2 on bad flags or config or
while the daemon holds the state file.
`

// importRow is one accepted line.
type importRow struct {
	line int
	ch   tilecast.Channel
}

// rejection is one refused line.
type rejection struct {
	line   int
	reason string
}

func cmdChannelsImport(ctx context.Context, e env) error {
	fs := newFlags(e, "channels import", importUsage)
	cfgPath := fs.String("config", "", "config file (TOML)")
	format := fs.String("format", formatAuto, "input format: auto, jsonl or csv")
	if err := parseFlags(fs, e, e.args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("channels import: give one FILE (or - for standard input)")
	}
	switch *format {
	case formatAuto, formatJSONL, formatCSV:
	default:
		return usagef("channels import: --format must be auto, jsonl or csv, got %q", *format)
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	name := fs.Arg(0)
	var in io.Reader = e.stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return fmt.Errorf("channels import: %w", err)
		}
		defer f.Close()
		in = f
	}
	// Open the store before reading: a running daemon is reported at once,
	// not after parsing a large file.
	var db stateStore
	if config.IsDatabaseURL(cfg.State) {
		// A database takes an import while daemons run.
		db, err = openDatabase(cfg, newLogger(cfg, e.stderr), nil)
	} else {
		db, err = store.Open(cfg.State, store.Options{Timeout: lockWait, Logger: newLogger(cfg, e.stderr)})
	}
	if err != nil {
		if errors.Is(err, tilecast.ErrStateLocked) {
			return usagef("channels import: state file %s is in use by the running tilecast: stop the daemon to import "+
				"(importing through the API would be one request per channel), then start it again", cfg.State)
		}
		return err
	}
	defer db.Close()

	start := time.Now()
	var size int64 // for the progress bar; 0 (unknown) for a pipe
	if f, ok := in.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
			size = st.Size()
		}
	}
	pr := &progressReader{r: in, p: newProgress(e, "channels import: reading", "bytes", size, 0)}
	pr.p.extra = func() string { return fmt.Sprintf("%d lines", pr.lineCount()) }
	rows, rejected, err := parseImport(pr, pickFormat(*format, name), cfg)
	pr.p.finish()
	if err != nil {
		return fmt.Errorf("channels import %s: %w", name, err)
	}
	chs, dups := dedupeRows(rows)
	added, updated, err := importInChunks(e, db, chs)
	if err != nil {
		return fmt.Errorf("channels import: %w (added %d, updated %d before the error; importing again is safe)", err, added, updated)
	}
	fmt.Fprintf(e.stdout, "added %d, updated %d, rejected %d", added, updated, len(rejected))
	if dups > 0 {
		fmt.Fprintf(e.stdout, " (%d lines repeated a URI of the file and counted once)", dups)
	}
	fmt.Fprintf(e.stdout, "; %s read in %s\n", plural(int(pr.lineCount()), "line", "lines"), time.Since(start).Round(time.Millisecond))
	for _, r := range rejected {
		fmt.Fprintf(e.stdout, "  line %d: %s\n", r.line, r.reason)
	}
	if len(rows) == 0 && len(rejected) > 0 {
		return fmt.Errorf("channels import: every line was rejected (%d)", len(rejected))
	}
	return nil
}

// importChunk is how many channels one ImportChannels call stores, so
// that progress can be shown while a large file is stored.
const importChunk = 10000

// importInChunks stores chs importChunk at a time, with progress.
func importInChunks(e env, db stateStore, chs []tilecast.Channel) (added, updated int, err error) {
	p := newProgress(e, "channels import: storing", "channels", int64(len(chs)), 0)
	defer p.finish()
	for i := 0; i < len(chs); i += importChunk {
		j := min(i+importChunk, len(chs))
		a, u, err := db.ImportChannels(chs[i:j])
		added, updated = added+a, updated+u
		if err != nil {
			return added, updated, err
		}
		p.add(int64(j - i))
	}
	return added, updated, nil
}

// pickFormat resolves auto from the file name; "" means sniff the content.
func pickFormat(format, name string) string {
	if format != formatAuto {
		return format
	}
	switch strings.ToLower(filepath.Ext(name)) {
	case ".jsonl", ".ndjson", ".json":
		return formatJSONL
	case ".csv":
		return formatCSV
	}
	return ""
}

// dedupeRows keeps one row per URI, the last one in the file, at the
// place of the first; it returns how many rows were dropped.
func dedupeRows(rows []importRow) ([]tilecast.Channel, int) {
	at := make(map[string]int, len(rows))
	chs := make([]tilecast.Channel, 0, len(rows))
	for _, r := range rows {
		if i, ok := at[r.ch.URI]; ok {
			chs[i] = r.ch
			continue
		}
		at[r.ch.URI] = len(chs)
		chs = append(chs, r.ch)
	}
	return chs, len(rows) - len(chs)
}

// parseImport reads every line of in; format "" sniffs it. Lines that do
// not parse or fail checkRegistration are rejections, not errors: only a
// read error stops it.
func parseImport(in io.Reader, format string, cfg *config.Config) ([]importRow, []rejection, error) {
	br := bufio.NewReaderSize(in, 64<<10)
	if b, err := br.Peek(3); err == nil && bytes.Equal(b, []byte("\xef\xbb\xbf")) {
		_, _ = br.Discard(3) // a UTF-8 byte order mark, as spreadsheets write it
	}
	if format == "" {
		format = sniff(br)
	}
	p := &importParser{cfg: cfg, now: time.Now()}
	var err error
	if format == formatJSONL {
		err = p.jsonLines(br)
	} else {
		err = p.csv(br)
	}
	return p.rows, p.rejected, err
}

// sniff returns jsonl when the first non-blank byte is '{', else csv.
func sniff(br *bufio.Reader) string {
	for n := 1; n <= br.Size(); n *= 2 {
		b, err := br.Peek(n)
		if i := bytes.IndexFunc(b, func(r rune) bool { return !strings.ContainsRune(" \t\r\n", r) }); i >= 0 {
			if b[i] == '{' {
				return formatJSONL
			}
			return formatCSV
		}
		if err != nil {
			break
		}
	}
	return formatCSV
}

type importParser struct {
	cfg      *config.Config
	now      time.Time // a subscription's expirationTime must be later
	rows     []importRow
	rejected []rejection
}

// accept checks ch like a registration and keeps it, or rejects the line.
func (p *importParser) accept(line int, ch tilecast.Channel) {
	if err := checkRegistration(p.cfg, &ch); err != nil {
		p.reject(line, err.Error())
		return
	}
	p.rows = append(p.rows, importRow{line: line, ch: ch})
}

func (p *importParser) reject(line int, reason string) {
	p.rejected = append(p.rejected, rejection{line: line, reason: reason})
}

// importJSON is one JSON line; other fields are refused, as by the API.
type importJSON struct {
	URI       string   `json:"uri"`
	User      string   `json:"user"`
	Feeds     []string `json:"feeds"`
	Transport string   `json:"transport"`
	Device    string   `json:"device"`
	// Subscription is a Web Push subscription as the browser's JSON
	// (web.ApplySubscription), in place of uri.
	Subscription json.RawMessage `json:"subscription"`
}

func (p *importParser) jsonLines(br *bufio.Reader) error {
	for n := 1; ; n++ {
		line, tooLong, err := readLine(br)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		switch {
		case tooLong:
			p.reject(n, fmt.Sprintf("line is longer than %d bytes", maxImportLine))
			continue
		case len(bytes.TrimSpace(line)) == 0:
			continue
		}
		var v importJSON
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&v); err != nil {
			msg := strings.TrimPrefix(err.Error(), "json: ")
			if f, ok := strings.CutPrefix(msg, "unknown field "); ok {
				p.reject(n, "unknown field "+f+": want uri, user, feeds, transport, device, subscription")
			} else {
				p.reject(n, "malformed JSON: "+msg)
			}
			continue
		}
		if err := dec.Decode(new(json.RawMessage)); !errors.Is(err, io.EOF) {
			p.reject(n, "malformed JSON: more than one value on the line")
			continue
		}
		ch := tilecast.Channel{URI: v.URI, User: v.User, Feeds: v.Feeds, Transport: tilecast.Transport(v.Transport), Device: v.Device}
		if len(v.Subscription) > 0 && string(bytes.TrimSpace(v.Subscription)) != "null" {
			if v.URI != "" {
				p.reject(n, "give uri or subscription, not both: a Web Push channel's uri is its subscription's endpoint")
				continue
			}
			if err := web.ApplySubscription(&ch, v.Subscription, p.cfg.Push.AllowPrivate, p.now); err != nil {
				p.reject(n, err.Error())
				continue
			}
		}
		p.accept(n, ch)
	}
}

// readLine returns the next line without its line ending. A line over
// maxImportLine is skipped to its end and reported as tooLong. io.EOF
// comes only when nothing is left.
func readLine(br *bufio.Reader) (line []byte, tooLong bool, err error) {
	for {
		part, isPrefix, err := br.ReadLine()
		if err != nil {
			if errors.Is(err, io.EOF) && (len(line) > 0 || tooLong) {
				return line, tooLong, nil
			}
			return nil, false, err
		}
		if !tooLong {
			if len(line)+len(part) > maxImportLine {
				tooLong, line = true, nil
			} else {
				line = append(line, part...)
			}
		}
		if !isPrefix {
			return line, tooLong, nil
		}
	}
}

func (p *importParser) csv(br *bufio.Reader) error {
	r := csv.NewReader(br)
	r.FieldsPerRecord = -1
	r.Comment = '#'
	r.TrimLeadingSpace = true
	r.ReuseRecord = true
	first := true
	cols := csvColumns() // the columns in order: the header's, else the default
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		var perr *csv.ParseError
		if errors.As(err, &perr) {
			p.reject(perr.StartLine, "malformed CSV: "+perr.Err.Error())
			first = false
			continue
		}
		if err != nil {
			return err
		}
		line, _ := r.FieldPos(0)
		if first {
			first = false
			if h, ok := headerColumns(rec); ok {
				cols = h
				continue // the header line
			}
		}
		for _, f := range rec {
			if len(f) > maxImportLine {
				p.reject(line, fmt.Sprintf("field is longer than %d bytes", maxImportLine))
				rec = nil
				break
			}
		}
		switch {
		case rec == nil:
			continue
		case len(rec) > len(cols):
			p.reject(line, fmt.Sprintf("%d fields, want %s (feeds are separated by ';')", len(rec), strings.Join(cols, ",")))
			continue
		}
		var ch tilecast.Channel
		for i, v := range rec {
			v = strings.TrimSpace(v)
			switch cols[i] {
			case "uri":
				ch.URI = v
			case "user":
				ch.User = v
			case "feeds":
				for f := range strings.SplitSeq(v, ";") {
					if f = strings.TrimSpace(f); f != "" {
						ch.Feeds = append(ch.Feeds, f)
					}
				}
			case "transport":
				ch.Transport = tilecast.Transport(v)
			case "device":
				ch.Device = v
			}
		}
		p.accept(line, ch)
	}
}

// csvColumns returns the CSV columns in their default order (no header line).
func csvColumns() []string { return []string{"uri", "user", "feeds", "transport", "device"} }

// headerColumns reads rec as a CSV header line: the names of csvColumns,
// each at most once, uri among them, in any order. ok is false when rec is
// not one (a first line of data: a URI is never a column name).
func headerColumns(rec []string) (cols []string, ok bool) {
	cols = make([]string, len(rec))
	seen := map[string]bool{}
	for i, v := range rec {
		v = strings.ToLower(strings.TrimSpace(v))
		known := false
		for _, c := range csvColumns() {
			known = known || c == v
		}
		if !known || seen[v] {
			return nil, false
		}
		seen[v] = true
		cols[i] = v
	}
	return cols, seen["uri"]
}
