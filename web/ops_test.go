package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/store"
)

// ledgerStore pages a fixed ledger and remembers what it was asked.
type ledgerStore struct {
	*fakeStore
	ledger []tilecast.Outcome
	gotArg tilecast.OutcomeFilter
}

func (l *ledgerStore) OutcomesPage(f tilecast.OutcomeFilter, cursor string, limit int) ([]tilecast.Outcome, string, error) {
	l.gotArg = f
	return pageLedger(l.ledger, f, cursor, limit)
}

func TestOpsRoutesNeedAKey(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.Backup = func(w io.Writer) (int64, error) { n, err := io.WriteString(w, "snapshot"); return int64(n), err }
		o.DeadLetters = func(string, int) ([]DeadLetter, string, error) { return nil, "", nil }
	})
	for _, path := range []string{"/v1/backup", "/v1/outcomes", "/v1/deadletters"} {
		for _, key := range []string{"", "wrong"} {
			if rec := e.do(t, http.MethodGet, path, key, nil); rec.Code != http.StatusUnauthorized {
				t.Errorf("GET %s with key %q: %d, want 401", path, key, rec.Code)
			}
		}
		if rec := e.do(t, http.MethodGet, path, keyOne, nil); rec.Code != http.StatusOK {
			t.Errorf("GET %s with a key: %d %s", path, rec.Code, rec.Body)
		}
		if rec := e.do(t, http.MethodPost, path, keyOne, nil); rec.Code != http.StatusMethodNotAllowed {
			t.Errorf("POST %s: %d, want 405", path, rec.Code)
		}
	}
}

func TestOpsRoutesNotWired(t *testing.T) {
	e := newEnv(t, nil)
	for _, path := range []string{"/v1/backup", "/v1/deadletters"} {
		rec := e.do(t, http.MethodGet, path, keyOne, nil)
		if rec.Code != http.StatusNotImplemented || !strings.Contains(errorOf(t, rec), "not available") {
			t.Errorf("GET %s without the option: %d %s", path, rec.Code, rec.Body)
		}
	}
}

// The snapshot of a real store over HTTP is a state file that opens and checks.
func TestBackupRealStore(t *testing.T) {
	dir := t.TempDir()
	db, err := store.Open(filepath.Join(dir, "state.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ch, _, err := db.AddChannel(tilecast.Channel{URI: "https://db3.notify.live.net/x/1", User: "ana"})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(o *Options) { o.Backup = db.Backup })
	rec := e.do(t, http.MethodGet, "/v1/backup", keyOne, nil)
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/octet-stream" {
		t.Fatalf("GET /v1/backup: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	if cd := rec.Header().Get("Content-Disposition"); !strings.Contains(cd, "attachment") {
		t.Errorf("Content-Disposition %q", cd)
	}
	copyPath := filepath.Join(dir, "copy.db")
	if err := os.WriteFile(copyPath, rec.Body.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	cp, err := store.Open(copyPath, store.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("open the snapshot: %v", err)
	}
	defer cp.Close()
	if err := cp.Check(); err != nil {
		t.Errorf("snapshot check: %v", err)
	}
	if got, err := cp.Channel(ch.ID); err != nil || got.URI != ch.URI {
		t.Errorf("snapshot channel = %+v, %v", got, err)
	}
}

// A failure before the first byte is a JSON 500; after it, the connection
// is cut so the client cannot take a short body for a whole file.
func TestBackupFailure(t *testing.T) {
	tests := []struct {
		name    string
		written string // bytes written before failing
		status  int    // 0: the transfer must fail
	}{
		{"before any byte", "", http.StatusInternalServerError},
		{"midway", strings.Repeat("x", 64<<10), 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(o *Options) {
				o.Backup = func(w io.Writer) (int64, error) {
					n, _ := io.WriteString(w, tc.written)
					return int64(n), errors.New("disk read error")
				}
			})
			srv := httptest.NewServer(e.handler)
			defer srv.Close()
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/v1/backup", nil)
			req.Header.Set("Authorization", "Bearer "+keyOne)
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, readErr := io.ReadAll(resp.Body)
			if tc.status != 0 {
				var eb errorBody
				if resp.StatusCode != tc.status || json.Unmarshal(body, &eb) != nil || eb.Error == "" {
					t.Errorf("answer %d %q, want %d with a JSON error", resp.StatusCode, body, tc.status)
				}
				return
			}
			if readErr == nil {
				t.Errorf("read the whole body (%d bytes) without an error: a cut transfer must not look complete", len(body))
			}
		})
	}
}

func TestAllOutcomes(t *testing.T) {
	ls := &ledgerStore{ledger: []tilecast.Outcome{
		{Time: t0.Add(-48 * time.Hour), ChannelID: "a", Feed: "news", Action: tilecast.ActionDelivered},
		{Time: t0.Add(-2 * time.Hour), ChannelID: "b", Feed: "news", Action: tilecast.ActionRetry},
		{Time: t0.Add(-1 * time.Hour), ChannelID: "a", Feed: "weather", Action: tilecast.ActionFailed},
	}}
	e := newEnv(t, func(o *Options) {
		ls.fakeStore = o.Store.(*fakeStore)
		o.Store = ls
	})
	tests := []struct {
		query  string
		status int
		want   []string // channel/feed of each entry
		since  time.Time
	}{
		// By channel, then oldest first.
		{"", 200, []string{"a/news", "a/weather", "b/news"}, t0.Add(-DefaultOutcomesSince)},
		{"?since=24h", 200, []string{"a/weather", "b/news"}, t0.Add(-24 * time.Hour)},
		{"?since=24h&feed=news", 200, []string{"b/news"}, t0.Add(-24 * time.Hour)},
		{"?since=" + t0.Add(-90*time.Minute).Format(time.RFC3339), 200, []string{"a/weather"}, t0.Add(-90 * time.Minute)},
		{"?feed=nosuch", 200, []string{}, t0.Add(-DefaultOutcomesSince)},
		{"?since=-1h", 400, nil, time.Time{}},
		{"?since=yesterday", 400, nil, time.Time{}},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			rec := e.do(t, http.MethodGet, "/v1/outcomes"+tc.query, keyOne, nil)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			if tc.status != 200 {
				errorOf(t, rec)
				return
			}
			var got []tilecast.Outcome
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || got == nil {
				t.Fatalf("decode %s: %v (want a JSON list, never null)", rec.Body, err)
			}
			var ids []string
			for _, o := range got {
				ids = append(ids, o.ChannelID+"/"+o.Feed)
			}
			if strings.Join(ids, ",") != strings.Join(tc.want, ",") {
				t.Errorf("entries %v, want %v", ids, tc.want)
			}
			if ls.gotArg.Channel != "" || !ls.gotArg.Since.Equal(tc.since) {
				t.Errorf("store asked for channel %q since %v, want every channel since %v", ls.gotArg.Channel, ls.gotArg.Since, tc.since)
			}
		})
	}
}

func TestDeadLettersRoute(t *testing.T) {
	type ask struct {
		cursor string
		limit  int
	}
	var asked []ask
	e := newEnv(t, func(o *Options) {
		o.DeadLetters = func(cursor string, limit int) ([]DeadLetter, string, error) {
			asked = append(asked, ask{cursor, limit})
			if limit == 7 {
				return nil, "", errBoom
			}
			if cursor == "bad" {
				return nil, "", fmt.Errorf("dead letters: %w", tilecast.ErrBadCursor)
			}
			out := make([]DeadLetter, min(limit, 3))
			for i := range out {
				out[i] = DeadLetter{Notification: tilecast.Notification{ID: uint64(i + 1), ChannelID: "c"},
					Outcome: tilecast.Outcome{Action: tilecast.ActionDropped}}
			}
			next := ""
			if limit < 3 {
				next = "more"
			}
			return out, next, nil
		}
	})
	tests := []struct {
		query  string
		status int
		n      int
		asked  []ask
		link   string
	}{
		{"", 200, 3, []ask{{"", tilecast.DefaultPageLimit}}, ""},
		{"?limit=2", 200, 2, []ask{{"", 2}}, `</v1/deadletters?cursor=more&limit=2>; rel="next"`},
		{"?limit=1000&cursor=abc", 200, 3, []ask{{"abc", 1000}}, ""},
		{"?limit=0", 400, 0, nil, ""},
		{"?limit=1001", 400, 0, nil, ""},
		{"?limit=x", 400, 0, nil, ""},
		{"?cursor=bad", 400, 0, []ask{{"bad", tilecast.DefaultPageLimit}}, ""},
		{"?limit=7", 500, 0, []ask{{"", 7}}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			asked = nil
			rec := e.do(t, http.MethodGet, "/v1/deadletters"+tc.query, keyOne, nil)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			if !slices.Equal(asked, tc.asked) {
				t.Errorf("DeadLetters called with %v, want %v", asked, tc.asked)
			}
			if got := rec.Header().Get("Link"); got != tc.link {
				t.Errorf("Link %q, want %q", got, tc.link)
			}
			if tc.status != 200 {
				if msg := errorOf(t, rec); tc.status == 500 && strings.Contains(msg, errBoom.Error()) {
					t.Errorf("500 leaks the store error: %q", msg)
				}
				return
			}
			var got []DeadLetter
			dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
			if err := dec.Decode(&got); err != nil || len(got) != tc.n {
				t.Errorf("got %d dead letters (%v), want %d", len(got), err, tc.n)
			}
		})
	}
}

// store.DeadLetter converts to DeadLetter, as the daemon wiring does.
var _ = func(d store.DeadLetter) DeadLetter { return DeadLetter(d) }
