package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/channeluri"
	"github.com/tilecast/tilecast/config"
	"github.com/tilecast/tilecast/notify/webpush"
	"github.com/tilecast/tilecast/store"
	"github.com/tilecast/tilecast/web"
)

const opsKey = "ops-test-key-6b1f0e9d2c3a4b5c"

// opsEnv is a config, a state file and an HTTP server at the config's
// http.listen that serves the real web API once a "daemon" holds the file.
type opsEnv struct {
	dir, cfg, state, keys string
	handler               atomic.Pointer[http.Handler] // nil: no daemon
}

func newOpsEnv(t *testing.T) *opsEnv {
	t.Helper()
	o := &opsEnv{dir: t.TempDir()}
	o.state = filepath.Join(o.dir, "state.db")
	o.keys = filepath.Join(o.dir, "api-keys")
	if err := os.WriteFile(o.keys, []byte("# operators\n\n"+opsKey+"\nsecond-key-unused\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := o.handler.Load()
		if h == nil {
			t.Errorf("API called (%s %s) while no daemon holds the state file", r.Method, r.URL)
			http.Error(w, "no daemon", http.StatusServiceUnavailable)
			return
		}
		(*h).ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	o.cfg = o.writeConfig(t, "config.toml", strings.TrimPrefix(srv.URL, "http://"), o.keys)
	return o
}

func (o *opsEnv) writeConfig(t *testing.T, name, listen, keys string) string {
	t.Helper()
	path := filepath.Join(o.dir, name)
	cfg := fmt.Sprintf(`state = %q
[http]
listen = %q
api_keys_file = %q
[push]
allowed_hosts = ["*.notify.live.net"]
[[feed]]
name = "news"
url = "http://127.0.0.1:9/news.xml"
schedule = "@every 1h"
[feed.toast]
text1 = "{{.Feed.Title}}"
text2 = "{{.Item.Title}}"
[[feed]]
name = "inbox"
url = "http://127.0.0.1:9/users/{user}.xml"
schedule = "@every 1h"
[feed.toast]
text1 = "Mail"
text2 = "{{.Item.Title}}"
`, o.state, listen, keys)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startDaemon holds the state file as the running daemon does and serves
// the real web API on it; stop closes both.
func (o *opsEnv) startDaemon(t *testing.T) (db *store.DB, stop func()) {
	t.Helper()
	db, err := store.Open(o.state, store.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	feeds := []tilecast.Feed{
		{Name: "news", URL: "http://127.0.0.1:9/news.xml", Schedule: "@every 1h"},
		{Name: "inbox", URL: "http://127.0.0.1:9/users/{user}.xml", Schedule: "@every 1h"},
	}
	srv, err := web.New(web.Options{
		Store:        db,
		Counts:       db.Counts,
		Feeds:        func() []tilecast.Feed { return feeds },
		AllowedHosts: func() []string { return []string{"*.notify.live.net"} },
		APIKeysFile:  o.keys,
		Backup:       db.Snapshot,
		DeadLetters: func(cursor string, limit int) ([]web.DeadLetter, string, error) {
			ds, next, err := db.DeadLettersPage(cursor, limit)
			out := make([]web.DeadLetter, len(ds))
			for i, d := range ds {
				out[i] = web.DeadLetter(d)
			}
			return out, next, err
		},
		RatePerSecond: 1e6,
		Burst:         1e6,
	})
	if err != nil {
		t.Fatal(err)
	}
	h := srv.Handler()
	o.handler.Store(&h)
	var stopped bool
	stop = func() {
		if !stopped {
			stopped = true
			o.handler.Store(nil)
			if err := db.Close(); err != nil {
				t.Error(err)
			}
		}
	}
	t.Cleanup(stop)
	return db, stop
}

// seed stores two channels, feed states, three sends in the ledger (one
// of them a dead letter) and returns the channels.
func seed(t *testing.T, path string) (ana, bob tilecast.Channel) {
	t.Helper()
	db, err := store.Open(path, store.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ana, _, err = db.AddChannel(tilecast.Channel{URI: "https://db3.notify.live.net/t/ana", User: "ana", Feeds: []string{"news", "inbox"}})
	if err != nil {
		t.Fatal(err)
	}
	bob, _, _ = db.AddChannel(tilecast.Channel{URI: "https://db3.notify.live.net/t/bob"})
	now := time.Now().UTC().Truncate(time.Second)
	_ = db.SaveFeedState(tilecast.FeedKey{Feed: "news"}, tilecast.FeedState{Baselined: true, LastFetch: now.Add(-time.Minute), LastResult: "ok",
		Validators: tilecast.Validators{ETag: `"e1"`}})
	_ = db.SaveFeedState(tilecast.FeedKey{Feed: "inbox", User: "ana"}, tilecast.FeedState{LastFetch: now.Add(-time.Hour), LastResult: "http 500: boom",
		Broken: true, FailingSince: now.Add(-30 * time.Hour)})
	_ = db.SaveFeedState(tilecast.FeedKey{Feed: "gone"}, tilecast.FeedState{LastResult: "ok"}) // no longer configured
	ns := []tilecast.Notification{
		{ChannelID: ana.ID, Feed: "news", ItemID: "i1", Kind: tilecast.KindToast, Payload: []byte("<a/>")},
		{ChannelID: bob.ID, Feed: "news", ItemID: "i1", Kind: tilecast.KindToast, Payload: []byte("<b/>")},
		{ChannelID: ana.ID, Feed: "inbox", User: "ana", ItemID: "m1", Kind: tilecast.KindToast, Payload: []byte("<c/>")},
	}
	for i := range ns {
		ns[i].NextAttempt, ns[i].Created = now.Add(-3*time.Hour), now.Add(-3*time.Hour)
	}
	if err := db.Enqueue(ns); err != nil {
		t.Fatal(err)
	}
	due, err := db.Due(now, 10, func(uint64) bool { return false })
	if err != nil || len(due) != 3 {
		t.Fatalf("Due = %d, %v", len(due), err)
	}
	var recs []tilecast.Record
	for i, p := range due {
		oc := tilecast.Outcome{Time: now.Add(time.Duration(i-3) * time.Hour), ChannelID: p.ChannelID, User: p.User, Feed: p.Feed,
			ItemID: p.ItemID, Kind: p.Kind, Status: 200, Notification: "Received", Action: tilecast.ActionDelivered, Attempt: 1}
		rec := tilecast.Record{ID: p.ID, Due: p.NextAttempt, Op: tilecast.OpDone, Sent: true, Outcome: oc}
		if p.Feed == "inbox" {
			rec.Op = tilecast.OpDead
			rec.Outcome.Status, rec.Outcome.Notification, rec.Outcome.Action = 400, "", tilecast.ActionFailed
			rec.Outcome.Error = "bad request"
		}
		recs = append(recs, rec)
	}
	if err := db.Record(recs); err != nil {
		t.Fatal(err)
	}
	return ana, bob
}

// The read commands print the same thing from the state file and through
// the API of a daemon that holds it.
func TestReadCommandsSameWithAndWithoutDaemon(t *testing.T) {
	o := newOpsEnv(t)
	ana, _ := seed(t, o.state)
	tests := []struct {
		name string
		args []string
		want []string // substrings of the output
		not  []string
	}{
		{"channels list", []string{"channels", "list"}, []string{ana.ID, "ana", "[news inbox]", "delivered", "(all global)", "https://db3.notify.live.net/t/bob"}, nil},
		{"channels list user", []string{"channels", "list", "--user", "ana"}, []string{ana.ID}, []string{"/t/bob"}},
		{"channels list json", []string{"channels", "list", "--json"}, []string{`"id": "` + ana.ID + `"`}, nil},
		{"status", []string{"status"}, []string{"channels 2   outbox 0   dead letters 1", "news ", "inbox/ana", "BROKEN since",
			"http 500: boom", "dead letters (newest 20)", "channel " + ana.ID + " feed inbox toast: failed bad request"}, []string{"gone"}},
		{"status json", []string{"status", "--json"}, []string{`"channels": 2`, `"outbox_depth": 0`, `"dead_letters": 1`, `"feeds_broken": 1`, `"user": "ana"`,
			`"broken": true`, `"recent_dead_letters": [`, `"outcome": "failed"`}, []string{"ETag", `"gone"`, `"Channels"`}},
		{"outcomes all", []string{"outcomes"}, []string{"TIME", ana.ID, "delivered", "200 Received", "failed", "bad request"}, nil},
		{"outcomes feed", []string{"outcomes", "--feed", "inbox"}, []string{"inbox", "failed"}, []string{"news"}},
		{"outcomes channel", []string{"outcomes", "--channel", ana.ID}, []string{ana.ID}, []string{"/t/bob"}},
		{"outcomes since", []string{"outcomes", "--since", "30m"}, []string{"TIME"}, []string{"delivered", "failed"}},
		{"outcomes json", []string{"outcomes", "--json", "--feed", "nosuch"}, []string{"[]"}, nil},
	}
	outputs := map[string]string{}
	for _, mode := range []string{"local", "api"} {
		if mode == "api" {
			o.startDaemon(t)
		}
		for _, tc := range tests {
			t.Run(mode+"/"+tc.name, func(t *testing.T) {
				args := append(slices.Clone(tc.args), "--config", o.cfg)
				code, out, errs := runCLI(t, t.Context(), args...)
				if code != exitOK {
					t.Fatalf("exit %d: %s", code, errs)
				}
				for _, w := range tc.want {
					if !strings.Contains(out, w) {
						t.Errorf("output lacks %q:\n%s", w, out)
					}
				}
				for _, n := range tc.not {
					if strings.Contains(out, n) {
						t.Errorf("output has %q:\n%s", n, out)
					}
				}
				if mode == "local" {
					outputs[tc.name] = out
				} else if out != outputs[tc.name] {
					t.Errorf("through the API the output differs:\n--- state file\n%s--- api\n%s", outputs[tc.name], out)
				}
			})
		}
	}
	// "outcomes --channel" of an unknown channel is an error either way.
	code, _, errs := runCLI(t, t.Context(), "outcomes", "--config", o.cfg, "--channel", "nosuch")
	if code != exitRuntime || !strings.Contains(errs, "not found") {
		t.Errorf("outcomes of an unknown channel through the API: exit %d %s", code, errs)
	}
}

func TestOutcomesUnknownChannelLocal(t *testing.T) {
	o := newOpsEnv(t)
	seed(t, o.state)
	code, _, errs := runCLI(t, t.Context(), "outcomes", "--config", o.cfg, "--channel", "nosuch")
	if code != exitRuntime || !strings.Contains(errs, "not found") {
		t.Errorf("exit %d %s", code, errs)
	}
	for _, bad := range []string{"-1h", "yesterday"} {
		if code, _, _ := runCLI(t, t.Context(), "outcomes", "--config", o.cfg, "--since", bad); code != exitUsage {
			t.Errorf("--since %s: exit %d, want 2", bad, code)
		}
	}
}

// channels add and remove change the store the same way in both paths.
func TestChannelsWriteWithAndWithoutDaemon(t *testing.T) {
	for _, mode := range []string{"local", "api"} {
		t.Run(mode, func(t *testing.T) {
			o := newOpsEnv(t)
			var db *store.DB
			if mode == "api" {
				db, _ = o.startDaemon(t)
			}
			// A non-canonical spelling is stored canonical, as the API stores it.
			code, out, errs := runCLI(t, t.Context(), "channels", "add", "--json", "--config", o.cfg,
				"--uri", "HTTPS://DB3.Notify.Live.NET.:443/t/x", "--user", "ana", "--feed", "inbox")
			if code != exitOK {
				t.Fatalf("add: exit %d %s", code, errs)
			}
			var ch tilecast.Channel
			if err := json.Unmarshal([]byte(out), &ch); err != nil || ch.URI != "https://db3.notify.live.net/t/x" || ch.User != "ana" {
				t.Fatalf("add printed %q (%v)", out, err)
			}
			// Refusals are usage errors either way, with the API's wording.
			for _, bad := range []struct {
				args []string
				msg  string
			}{
				{[]string{"--uri", "https://evil.example.com/x"}, "not in push.allowed_hosts"},
				{[]string{"--uri", "https://db3.notify.live.net/x", "--feed", "inbox"}, "a user is required"},
				{[]string{"--uri", "https://db3.notify.live.net/x", "--feed", "nosuch"}, `unknown feed "nosuch"`},
				{[]string{"--uri", "https://db3.notify.live.net/x#frag"}, "fragment"},
				{[]string{"--uri", "https://db3.notify.live.net/x", "--user", "a\tb"}, "control character"},
				{[]string{"--uri", "https://db3.notify.live.net/x", "--user", "ana\u202egnp"}, "bidi control U+202E"},
				{[]string{"--uri", "https://db3.notify.live.net/x", "--user", "ana\xff"}, "not valid UTF-8"},
			} {
				code, _, errs := runCLI(t, t.Context(), append([]string{"channels", "add", "--json", "--config", o.cfg}, bad.args...)...)
				if code != exitUsage || !strings.Contains(errs, bad.msg) {
					t.Errorf("add %v: exit %d %q, want 2 with %q", bad.args, code, errs, bad.msg)
				}
			}
			// Remove by another spelling of the URI, then by ID: not found.
			code, out, errs = runCLI(t, t.Context(), "channels", "remove", "--config", o.cfg, "--uri", "https://db3.notify.live.net:443/t/x")
			if code != exitOK || !strings.Contains(out, "removed "+ch.ID) {
				t.Fatalf("remove --uri: exit %d %s %s", code, out, errs)
			}
			code, _, errs = runCLI(t, t.Context(), "channels", "remove", "--config", o.cfg, ch.ID)
			if code != exitRuntime || !strings.Contains(errs, "channel "+ch.ID+": not found") {
				t.Errorf("remove unknown: exit %d %q", code, errs)
			}
			if db == nil {
				var err error
				if db, err = store.Open(o.state, store.Options{}); err != nil {
					t.Fatal(err)
				}
				defer db.Close()
			}
			if s, _ := db.Counts(); s.Channels != 0 {
				t.Errorf("%d channels left, want 0", s.Channels)
			}
		})
	}
}

// With the state file held and no usable API, the error says why.
func TestDaemonWithoutUsableAPI(t *testing.T) {
	o := newOpsEnv(t)
	o.startDaemon(t)
	emptyKeys := filepath.Join(o.dir, "empty-keys")
	os.WriteFile(emptyKeys, []byte("# none yet\n"), 0o600)
	tests := []struct {
		name, listen, keys, want string
	}{
		{"api disabled", "", o.keys, `http.listen = ""`},
		{"no keys file", "127.0.0.1:8460", "", `http.api_keys_file = ""`},
		{"keys file missing", "127.0.0.1:8460", filepath.Join(o.dir, "nope"), "read api keys file"},
		{"no key in the file", "127.0.0.1:8460", emptyKeys, "has no key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := o.writeConfig(t, "cfg-"+strings.ReplaceAll(tc.name, " ", "-")+".toml", tc.listen, tc.keys)
			for _, args := range [][]string{
				{"status", "--config", cfg}, {"outcomes", "--config", cfg}, {"channels", "list", "--config", cfg},
				{"channels", "remove", "--config", cfg, "someid"}, {"backup", "--config", cfg, filepath.Join(o.dir, "b.db")},
			} {
				code, _, errs := runCLI(t, t.Context(), args...)
				if code == exitOK || !strings.Contains(errs, "in use by the running tilecast") || !strings.Contains(errs, tc.want) {
					t.Errorf("%v: exit %d %q, want an error naming %q", args, code, errs, tc.want)
				}
			}
		})
	}
	// A wrong key is refused by the daemon.
	wrong := filepath.Join(o.dir, "wrong-keys")
	os.WriteFile(wrong, []byte("not-the-key\n"), 0o600)
	cfg := o.writeConfig(t, "wrong.toml", strings.TrimPrefix(o.listen(t), "http://"), wrong)
	if code, _, errs := runCLI(t, t.Context(), "status", "--config", cfg); code != exitRuntime || !strings.Contains(errs, "invalid api key") {
		t.Errorf("wrong key: exit %d %q", code, errs)
	}
}

// listen returns the test server's base URL from the main config.
func (o *opsEnv) listen(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(o.cfg)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`listen = "([^"]+)"`).FindSubmatch(b)
	if m == nil {
		t.Fatal("no listen in config")
	}
	return "http://" + string(m[1])
}

// backup writes a file that opens and checks, from the state file or
// through the daemon, and never overwrites the state file itself.
func TestBackupWithAndWithoutDaemon(t *testing.T) {
	for _, mode := range []string{"local", "api"} {
		t.Run(mode, func(t *testing.T) {
			o := newOpsEnv(t)
			ana, _ := seed(t, o.state)
			if mode == "api" {
				o.startDaemon(t)
			}
			dest := filepath.Join(o.dir, "backup.db")
			os.WriteFile(dest, []byte("an older backup"), 0o600)
			code, out, errs := runCLI(t, t.Context(), "backup", "--config", o.cfg, dest)
			if code != exitOK || !strings.Contains(out, "checked") {
				t.Fatalf("backup: exit %d %s %s", code, out, errs)
			}
			if _, err := os.Stat(dest + ".tmp"); !os.IsNotExist(err) {
				t.Errorf("%s.tmp left behind: %v", dest, err)
			}
			if fi, err := os.Stat(dest); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("backup file: %v, mode %v; want 0600", err, fi.Mode().Perm())
			}
			db, err := store.Open(dest, store.Options{ReadOnly: true})
			if err != nil {
				t.Fatalf("open the backup: %v", err)
			}
			defer db.Close()
			if err := db.Check(); err != nil {
				t.Errorf("check the backup: %v", err)
			}
			if got, err := db.Channel(ana.ID); err != nil || got.URI != ana.URI {
				t.Errorf("backup channel = %+v, %v", got, err)
			}
			if oc, _ := db.Outcomes("", "", time.Time{}); len(oc) != 3 {
				t.Errorf("backup ledger has %d entries, want 3", len(oc))
			}
			for _, args := range [][]string{{o.state}, {}, {dest, "extra"}} {
				if code, _, _ := runCLI(t, t.Context(), append([]string{"backup", "--config", o.cfg}, args...)...); code != exitUsage {
					t.Errorf("backup %v: exit %d, want 2", args, code)
				}
			}
		})
	}
}

func TestBackupRefusesAMissingStateAndBadDestination(t *testing.T) {
	o := newOpsEnv(t)
	code, _, errs := runCLI(t, t.Context(), "backup", "--config", o.cfg, filepath.Join(o.dir, "b.db"))
	if code != exitRuntime || !strings.Contains(errs, "does not exist") {
		t.Errorf("no state file: exit %d %q", code, errs)
	}
	seed(t, o.state)
	dest := filepath.Join(o.dir, "no-such-dir", "b.db")
	if code, _, errs := runCLI(t, t.Context(), "backup", "--config", o.cfg, dest); code != exitRuntime || !strings.Contains(errs, "no such file") {
		t.Errorf("bad destination: exit %d %q", code, errs)
	}
}

// A snapshot that does not check is not renamed into place.
func TestWriteBackupChecksBeforeRename(t *testing.T) {
	dest := filepath.Join(t.TempDir(), "b.db")
	_, err := writeBackup(t.Context(), fakeBackup("not a bbolt file at all"), dest, newProgress(env{stderr: io.Discard}, "backup", "bytes", 0, 0))
	if err == nil || !strings.Contains(err.Error(), "does not check") {
		t.Fatalf("writeBackup of garbage: %v", err)
	}
	for _, p := range []string{dest, dest + ".tmp"} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s exists after a failed backup", p)
		}
	}
}

// fakeBackup is an ops whose Backup writes fixed bytes.
type fakeBackup string

func (f fakeBackup) Backup(_ context.Context, w io.Writer) (int64, error) {
	n, err := io.WriteString(w, string(f))
	return int64(n), err
}
func (fakeBackup) Close() error { return nil }
func (fakeBackup) ChannelsPage(context.Context, tilecast.ChannelFilter, string, int) ([]web.ChannelView, string, error) {
	return nil, "", nil
}
func (fakeBackup) ChannelByURI(context.Context, string) (tilecast.Channel, error) {
	return tilecast.Channel{}, nil
}
func (fakeBackup) AddChannel(context.Context, tilecast.Channel) (tilecast.Channel, error) {
	return tilecast.Channel{}, nil
}
func (fakeBackup) RemoveChannel(context.Context, string) error  { return nil }
func (fakeBackup) Status(context.Context) (statusReport, error) { return statusReport{}, nil }
func (fakeBackup) OutcomesPage(context.Context, tilecast.OutcomeFilter, string, int) ([]tilecast.Outcome, string, error) {
	return nil, "", nil
}

func TestChannelsImport(t *testing.T) {
	tests := []struct {
		name     string
		file     string // name; "-" is stdin
		format   string
		content  string
		code     int
		summary  string   // "added A, updated U, rejected R"
		rejected []string // "line N: reason" substrings
		users    map[string]string
	}{
		{
			name: "json lines", file: "chs.jsonl",
			content: `{"uri": "https://db3.notify.live.net/a", "user": "ana", "feeds": ["news", "inbox"]}

{"uri": "HTTPS://DB3.notify.live.net:443/b"}
{"uri": "https://db3.notify.live.net/c", "feeds": ["inbox"]}
{"uri": "https://db3.notify.live.net/d", "device": "x", "colour": "red"}
{"uri": "https://evil.example.com/e"}
{"uri": "https://db3.notify.live.net/f", "feeds": ["nosuch"]}
not json
{"uri": "https://db3.notify.live.net/g"} {"uri": "x"}
{"uri": "https://db3.notify.live.net/a", "user": "bob"}
{"uri": 5}
`,
			code: exitOK, summary: "added 2, updated 0, rejected 7",
			rejected: []string{"line 4: feed \"inbox\" is per-user", "line 5: unknown field \"colour\"", "line 6: ", "not in push.allowed_hosts",
				"line 7: unknown feed \"nosuch\"", "line 8: malformed JSON", "line 9: malformed JSON: more than one value", "line 11: malformed JSON"},
			users: map[string]string{"https://db3.notify.live.net/a": "bob", "https://db3.notify.live.net/b": ""},
		},
		{
			name: "csv with header and BOM", file: "chs.csv",
			content: "\xef\xbb\xbfuri,user,feeds\n" +
				"https://db3.notify.live.net/a,ana,news;inbox\n" +
				"# a comment\n" +
				"\"https://db3.notify.live.net/b\", , \n" +
				"https://db3.notify.live.net/c,,inbox\n" +
				"https://db3.notify.live.net/d,dan,news,inbox\n" +
				"https://db3.notify.live.net/e,x\"y,news\n" +
				"https://db3.notify.live.net/f,fay, news ; inbox ;\n",
			code: exitOK, summary: "added 3, updated 0, rejected 3",
			rejected: []string{"line 5: feed \"inbox\" is per-user", "line 6: 4 fields", "line 7: malformed CSV"},
			users:    map[string]string{"https://db3.notify.live.net/a": "ana", "https://db3.notify.live.net/f": "fay"},
		},
		{
			name: "csv without header, sniffed", file: "chs.txt",
			content: "\n  https://db3.notify.live.net/a,ana\nhttps://db3.notify.live.net/b\n",
			code:    exitOK, summary: "added 2, updated 0, rejected 0",
		},
		{
			name: "json lines on stdin, sniffed", file: "-",
			content: "\n\n   {\"uri\":\"https://db3.notify.live.net/a\"}\n",
			code:    exitOK, summary: "added 1, updated 0, rejected 0",
		},
		{
			name: "format flag wins over the extension", file: "chs.csv", format: "jsonl",
			content: "{\"uri\":\"https://db3.notify.live.net/a\"}\n",
			code:    exitOK, summary: "added 1, updated 0, rejected 0",
		},
		{
			name: "every line rejected", file: "bad.csv",
			content: "ftp://db3.notify.live.net/a\nhttps://evil.example.com/b\n",
			code:    exitRuntime, summary: "added 0, updated 0, rejected 2",
			rejected: []string{"line 1: channel uri must be an absolute http or https URL", "line 2: "},
		},
		{
			name: "empty file", file: "empty.jsonl",
			content: "",
			code:    exitOK, summary: "added 0, updated 0, rejected 0",
		},
		{
			// Invalid bytes are refused, not stored replaced; bidi controls
			// (raw or escaped) are refused in JSON lines and CSV alike.
			name: "user names", file: "users.jsonl",
			content: `{"uri": "https://db3.notify.live.net/a", "user": "Zoë 王"}` + "\n" +
				`{"uri": "https://db3.notify.live.net/b", "user": "bob` + "\xff" + `"}` + "\n" +
				`{"uri": "https://db3.notify.live.net/c", "user": "eve\u202e"}` + "\n" +
				`{"uri": "https://db3.notify.live.net/d", "user": "mal` + "\u2067" + `x"}` + "\n",
			code: exitOK, summary: "added 1, updated 0, rejected 3",
			rejected: []string{"line 2: user: U+FFFD", "line 3: user: bidi control U+202E", "line 4: user: bidi control U+2067"},
			users:    map[string]string{"https://db3.notify.live.net/a": "Zoë 王"},
		},
		{
			name: "user names in CSV", file: "users.csv",
			content: "https://db3.notify.live.net/a,ok\nhttps://db3.notify.live.net/b,bob\xff\nhttps://db3.notify.live.net/c,eve\u200f\n",
			code:    exitOK, summary: "added 1, updated 0, rejected 2",
			rejected: []string{"line 2: user is not valid UTF-8", "line 3: user: bidi control U+200F"},
		},
		{
			name: "a line too long", file: "long.jsonl",
			content: `{"uri": "https://db3.notify.live.net/` + strings.Repeat("a", maxImportLine) + "\"}\n" +
				`{"uri": "https://db3.notify.live.net/ok"}` + "\n",
			code: exitOK, summary: "added 1, updated 0, rejected 1",
			rejected: []string{"line 1: line is longer than 65536 bytes"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := newOpsEnv(t)
			args := []string{"channels", "import", "--config", o.cfg}
			if tc.format != "" {
				args = append(args, "--format", tc.format)
			}
			var stdin string
			if tc.file == "-" {
				stdin = tc.content
				args = append(args, "-")
			} else {
				path := filepath.Join(o.dir, tc.file)
				os.WriteFile(path, []byte(tc.content), 0o600)
				args = append(args, path)
			}
			var out, errb bytes.Buffer
			code := run(t.Context(), args, strings.NewReader(stdin), &out, &errb)
			if code != tc.code || !strings.HasPrefix(out.String(), tc.summary) {
				t.Fatalf("exit %d (want %d), output:\n%s%s", code, tc.code, out.String(), errb.String())
			}
			for _, r := range tc.rejected {
				if !strings.Contains(out.String(), r) {
					t.Errorf("output lacks %q:\n%s", r, out.String())
				}
			}
			db, err := store.Open(o.state, store.Options{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			for uri, user := range tc.users {
				if ch, err := db.ChannelByURI(uri); err != nil || ch.User != user {
					t.Errorf("%s: %+v, %v; want user %q", uri, ch, err, user)
				}
			}
		})
	}
}

// channels add, channels import and channels remove --uri meet on one
// record whichever spelling of a URI each was given (the hostile run's
// trailing U+3002 among them), and refuse a port out of range by name.
func TestChannelsOneRecordPerURIAcrossDoors(t *testing.T) {
	o := newOpsEnv(t)
	const uri = "https://db3.notify.live.net/t/x"
	code, out, errs := runCLI(t, t.Context(), "channels", "add", "--json", "--config", o.cfg, "--uri", "https://db3.notify.live.net\u3002/t/x")
	var added tilecast.Channel
	if code != exitOK || json.Unmarshal([]byte(out), &added) != nil || added.URI != uri {
		t.Fatalf("add: exit %d %s %s", code, out, errs)
	}
	path := filepath.Join(o.dir, "chs.csv")
	os.WriteFile(path, []byte("HTTPS://DB3.notify.live.net.:443/t/x,ana\nhttps://db3.notify.live.net\uff61/t/%78,bob\n"), 0o600)
	code, out, errs = runCLI(t, t.Context(), "channels", "import", "--config", o.cfg, path)
	if code != exitOK || !strings.HasPrefix(out, "added 0, updated 1, rejected 0 (1 lines repeated a URI") {
		t.Fatalf("import: exit %d %s %s", code, out, errs)
	}
	db, err := store.Open(o.state, store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	chs, err := db.Channels("")
	db.Close()
	if err != nil || len(chs) != 1 || chs[0].ID != added.ID || chs[0].URI != uri || chs[0].User != "bob" {
		t.Fatalf("stored %+v, %v; want only %s (%s) for bob", chs, err, added.ID, uri)
	}
	for _, port := range []string{"0", "65536"} {
		code, _, errs := runCLI(t, t.Context(), "channels", "add", "--json", "--config", o.cfg, "--uri", "https://db3.notify.live.net:"+port+"/t/y")
		if code != exitUsage || !strings.Contains(errs, "port "+port+" is out of range") {
			t.Errorf("add with port %s: exit %d %q, want 2 naming the port", port, code, errs)
		}
	}
	code, out, errs = runCLI(t, t.Context(), "channels", "remove", "--config", o.cfg, "--uri", "https://DB3.notify.live.net\uff0e/t/x")
	if code != exitOK || !strings.Contains(out, "removed "+added.ID) {
		t.Fatalf("remove --uri: exit %d %s %s", code, out, errs)
	}
}

// Importing again updates; a repeated URI counts once; a running daemon is refused.
func TestChannelsImportAgainAndWhileRunning(t *testing.T) {
	o := newOpsEnv(t)
	path := filepath.Join(o.dir, "chs.csv")
	os.WriteFile(path, []byte("https://db3.notify.live.net/a,ana\nhttps://db3.notify.live.net/b\nhttps://db3.notify.live.net/a,bob\n"), 0o600)
	code, out, _ := runCLI(t, t.Context(), "channels", "import", "--config", o.cfg, path)
	if code != exitOK || !strings.HasPrefix(out, "added 2, updated 0, rejected 0 (1 lines repeated a URI") {
		t.Fatalf("first import: exit %d %s", code, out)
	}
	code, out, _ = runCLI(t, t.Context(), "channels", "import", "--config", o.cfg, path)
	if code != exitOK || !strings.HasPrefix(out, "added 0, updated 2, rejected 0") {
		t.Fatalf("second import: exit %d %s", code, out)
	}
	o.startDaemon(t)
	code, _, errs := runCLI(t, t.Context(), "channels", "import", "--config", o.cfg, path)
	if code != exitUsage || !strings.Contains(errs, "stop the daemon to import") {
		t.Errorf("import while the daemon runs: exit %d %q", code, errs)
	}
	for _, args := range [][]string{{}, {path, path}, {"--format", "xml", path}} {
		if code, _, _ := runCLI(t, t.Context(), append([]string{"channels", "import", "--config", o.cfg}, args...)...); code != exitUsage {
			t.Errorf("import %v: exit %d, want 2", args, code)
		}
	}
	if code, _, errs := runCLI(t, t.Context(), "channels", "import", "--config", o.cfg, filepath.Join(o.dir, "nope.csv")); code != exitRuntime || !strings.Contains(errs, "no such file") {
		t.Errorf("missing file: exit %d %q", code, errs)
	}
}

// importLines writes n generated JSON lines: a third with a user and the
// per-user feed, a third listing news, a third listing nothing.
func importLines(tb testing.TB, path string, n int) {
	tb.Helper()
	var b strings.Builder
	for i := range n {
		uri := fmt.Sprintf("https://db3.notify.live.net/throttledthirdparty/01.00/%08dAQHgBxKxXv8cSYmBwXGWE", i)
		switch i % 3 {
		case 0:
			fmt.Fprintf(&b, `{"uri":%q,"user":"u%d","feeds":["news","inbox"]}`+"\n", uri, i%5000)
		case 1:
			fmt.Fprintf(&b, `{"uri":%q,"feeds":["news"]}`+"\n", uri)
		default:
			fmt.Fprintf(&b, `{"uri":%q}`+"\n", uri)
		}
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		tb.Fatal(err)
	}
}

// Several store batches through the command: all stored. The 100k case is
// BenchmarkChannelsImport100k (too slow for every -race run).
func TestChannelsImportManyLines(t *testing.T) {
	o := newOpsEnv(t)
	n := 2*store.ImportBatch + 11
	path := filepath.Join(o.dir, "many.jsonl")
	importLines(t, path, n)
	code, out, errs := runCLI(t, t.Context(), "channels", "import", "--config", o.cfg, path)
	if code != exitOK || !strings.HasPrefix(out, fmt.Sprintf("added %d, updated 0, rejected 0", n)) {
		t.Fatalf("exit %d: %s %s", code, out, errs)
	}
	db, err := store.Open(o.state, store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if s, _ := db.Counts(); s.Channels != n {
		t.Errorf("%d channels stored, want %d", s.Channels, n)
	}
}

// BenchmarkChannelsImport100k: `tilecast channels import` of 100k JSON
// lines into a new state file, count checked.
func BenchmarkChannelsImport100k(b *testing.B) {
	const n = 100_000
	src := filepath.Join(b.TempDir(), "100k.jsonl")
	importLines(b, src, n)
	for b.Loop() {
		b.StopTimer()
		dir := b.TempDir()
		state := filepath.Join(dir, "state.db")
		cfg := filepath.Join(dir, "tilecast.toml")
		os.WriteFile(cfg, []byte(fmt.Sprintf(`state = %q
[push]
allowed_hosts = ["*.notify.live.net"]
[[feed]]
name = "news"
url = "http://127.0.0.1:9/news.xml"
[feed.toast]
text1 = "x"
[[feed]]
name = "inbox"
url = "http://127.0.0.1:9/{user}.xml"
[feed.toast]
text1 = "x"
`, state)), 0o600)
		b.StartTimer()
		var out, errb bytes.Buffer
		code := run(b.Context(), []string{"channels", "import", "--config", cfg, src}, strings.NewReader(""), &out, &errb)
		b.StopTimer()
		if code != exitOK || !strings.HasPrefix(out.String(), fmt.Sprintf("added %d, updated 0, rejected 0", n)) {
			b.Fatalf("exit %d: %s %s", code, out.String(), errb.String())
		}
		db, err := store.Open(state, store.Options{ReadOnly: true})
		if err != nil {
			b.Fatal(err)
		}
		if s, _ := db.Counts(); s.Channels != n {
			b.Fatalf("%d channels stored, want %d", s.Channels, n)
		}
		db.Close()
		b.StartTimer()
	}
}

func TestOpsHelp(t *testing.T) {
	for _, args := range [][]string{
		{"channels", "import", "--help"}, {"outcomes", "--help"}, {"backup", "--help"}, {"status", "--help"},
		{"channels", "list", "--help"}, {"channels", "add", "--help"}, {"channels", "remove", "--help"},
	} {
		code, out, _ := runCLI(t, t.Context(), args...)
		want := "Usage: tilecast " + strings.Join(args[:len(args)-1], " ")
		if code != exitOK || !strings.Contains(out, want) || !strings.Contains(out, "-config") {
			t.Errorf("%v: exit %d, output %q", args, code, out)
		}
	}
	_, out, _ := runCLI(t, t.Context(), "channels", "import", "--help")
	for _, w := range []string{"stopped", "JSON lines", "CSV", "Exit status", "every line was rejected"} {
		if !strings.Contains(out, w) {
			t.Errorf("import --help lacks %q", w)
		}
	}
	_, out, _ = runCLI(t, t.Context(), "outcomes", "--help")
	if !strings.Contains(out, "through its API") {
		t.Errorf("outcomes --help does not say it works while the daemon runs:\n%s", out)
	}
}

// FuzzParseImport: any input, either format, never panics; every accepted
// row is a registration the API would store as is, and line numbers point
// into the input.
func FuzzParseImport(f *testing.F) {
	f.Add("uri,user,feeds\nhttps://db3.notify.live.net/a,ana,news;inbox\n", "")
	f.Add("\xef\xbb\xbf{\"uri\":\"HTTPS://DB3.notify.live.net:443/a\",\"feeds\":[\"news\"]}\n\n{\"uri\":5}\n", "")
	f.Add("\"https://db3.notify.live.net/a\n,\"x", formatCSV)
	f.Add("{\"uri\":\"https://db3.notify.live.net/a#x\"} {}\n{", formatJSONL)
	f.Add("https://db3.notify.live.net/a,a\x00b,inbox\r\nhttps://db3.notify.live.net/b,,;;news", formatCSV)
	f.Add(`{"subscription":`+fcmSubscription+`,"user":"ana","feeds":["inbox"]}`+"\n"+
		`{"subscription":{"endpoint":"https://fcm.googleapis.com/x","expirationTime":1e3,"keys":{"p256dh":"","auth":"x"}}}`, formatJSONL)
	cfg := &config.Config{
		Push: config.Push{AllowedHosts: []string{"*.notify.live.net"}, WebPush: config.DefaultWebPush()},
		Feeds: []tilecast.Feed{
			{Name: "news", URL: "http://127.0.0.1/news.xml"},
			{Name: "inbox", URL: "http://127.0.0.1/{user}.xml"},
		},
	}
	f.Fuzz(func(t *testing.T, in, format string) {
		if format != formatCSV && format != formatJSONL {
			format = ""
		}
		rows, rejected, err := parseImport(strings.NewReader(in), format, cfg)
		if err != nil {
			t.Fatalf("parseImport: %v (only read errors may stop it)", err)
		}
		lines := strings.Count(in, "\n") + 1
		for _, r := range rows {
			if r.line < 1 || r.line > lines {
				t.Errorf("row line %d outside 1..%d", r.line, lines)
			}
			ch := r.ch
			if err := checkRegistration(cfg, &ch); err != nil || ch.URI != r.ch.URI {
				t.Errorf("accepted row %+v does not re-check as is: %v (%q)", r.ch, err, ch.URI)
			}
			if k := r.ch.Keys; k != nil && (len(k.P256DH) != webpush.PublicKeyLen || len(k.Auth) != webpush.AuthLen ||
				r.ch.Transport != tilecast.TransportWebPush) {
				t.Errorf("accepted subscription with keys %+v, transport %q", k, r.ch.Transport)
			}
			if c, err := channeluri.Canonical(r.ch.URI); err != nil || c != r.ch.URI {
				t.Errorf("accepted URI %q is not canonical", r.ch.URI)
			}
		}
		for _, r := range rejected {
			if r.line < 1 || r.line > lines || r.reason == "" {
				t.Errorf("rejection %+v: line outside 1..%d or no reason", r, lines)
			}
		}
	})
}

// TestStatusJSONIsV1Status: `status --json` answers with GET /v1/status's
// keys and values (plus the newest dead letters), from the state file and
// through the API alike.
func TestStatusJSONIsV1Status(t *testing.T) {
	o := newOpsEnv(t)
	seed(t, o.state)
	code, local, errs := runCLI(t, t.Context(), "status", "--json", "--config", o.cfg)
	if code != exitOK {
		t.Fatalf("status --json: exit %d %s", code, errs)
	}
	o.startDaemon(t)
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, o.listen(t)+"/v1/status", nil)
	req.Header.Set("Authorization", "Bearer "+opsKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var api, cli map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&api); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(local), &cli); err != nil {
		t.Fatalf("status --json is not JSON: %v\n%s", err, local)
	}
	if _, ok := cli["recent_dead_letters"]; !ok {
		t.Errorf("status --json lacks recent_dead_letters:\n%s", local)
	}
	delete(cli, "recent_dead_letters")
	if !reflect.DeepEqual(api, cli) {
		t.Errorf("status --json (without recent_dead_letters) differs from GET /v1/status:\n cli %v\n api %v", cli, api)
	}
}
