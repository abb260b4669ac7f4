package web_test

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/store"
	"github.com/tilecast/tilecast/web"
)

const apiKey = "integration-key-5e0c1d7a9b3f4e2d8c6a"

// newRealServer wires web to a real bbolt store in a temp dir, the way
// cmd/tilecast does.
func newRealServer(t *testing.T) (*store.DB, http.Handler) {
	t.Helper()
	dir := t.TempDir()
	db, err := store.Open(filepath.Join(dir, "state.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	keys := filepath.Join(dir, "api-keys")
	if err := os.WriteFile(keys, []byte(apiKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv, err := web.New(web.Options{
		Store:  db,
		Counts: db.Counts,
		Feeds: func() []tilecast.Feed {
			return []tilecast.Feed{{Name: "news", URL: "https://example.org/news.xml"}}
		},
		AllowedHosts: func() []string { return []string{"*.notify.live.net"} },
		APIKeysFile:  keys,
		Registry:     prometheus.NewRegistry(),
		Logger:       slog.New(slog.DiscardHandler),
		Burst:        1000,
	})
	if err != nil {
		t.Fatal(err)
	}
	return db, srv.Handler()
}

func call(t *testing.T, h http.Handler, method, path, body string) (int, tilecast.Channel) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+apiKey)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var ch tilecast.Channel
	if rec.Code == http.StatusOK || rec.Code == http.StatusCreated {
		_ = json.Unmarshal(rec.Body.Bytes(), &ch)
	}
	return rec.Code, ch
}

// A4 on the real store: 100 identical registrations at once make exactly one record.
func TestRealStoreConcurrentDedupe(t *testing.T) {
	db, h := newRealServer(t)
	const uri = "https://db3.notify.live.net/throttledthirdparty/01.00/AAFx7QwPf3ZKq"
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		codes = map[int]int{}
		ids   = map[string]bool{}
		start = make(chan struct{})
	)
	for i := range 100 {
		// Half of them spell the host differently: still one channel.
		u := uri
		if i%2 == 1 {
			u = strings.Replace(uri, "db3.notify.live.net", "DB3.Notify.Live.Net:443", 1)
		}
		wg.Go(func() {
			<-start
			code, ch := call(t, h, http.MethodPost, "/v1/channels", `{"uri":"`+u+`","feeds":["news"]}`)
			mu.Lock()
			codes[code]++
			ids[ch.ID] = true
			mu.Unlock()
		})
	}
	close(start)
	wg.Wait()
	if codes[http.StatusCreated] != 1 || codes[http.StatusOK] != 99 || len(ids) != 1 {
		t.Errorf("answers %v naming ids %v; want one 201, 99 200, one id", codes, ids)
	}
	chs, err := db.Channels("")
	if err != nil || len(chs) != 1 || chs[0].URI != uri {
		t.Fatalf("stored %+v, %v; want exactly one channel with %s", chs, err, uri)
	}
}

// Every spelling of one URI — the hostile run's trailing U+3002 among
// them — registers one channel on the real store; ports out of range are
// refused with 400 naming the port, a foreign host with 422.
func TestRealStoreOneChannelPerURI(t *testing.T) {
	db, h := newRealServer(t)
	const uri = "https://db3.notify.live.net/throttledthirdparty/01.00/AA~F"
	spellings := []string{
		uri,
		"https://db3.notify.live.net\u3002/throttledthirdparty/01.00/AA~F",
		"https://db3.notify.live.net\uff0e:443/throttledthirdparty/01.00/AA~F",
		"https://db3.notify.live.net\uff61/throttledthirdparty/01.00/AA%7eF",
		"HTTPS://DB3.Notify.Live.NET.:0443/throttledthirdparty/01.00/AA%7EF",
		"https://\uff44b3.notify.live.net/throttledthirdparty/01.00/AA~F",
	}
	var id string
	for i, u := range spellings {
		code, ch := call(t, h, http.MethodPost, "/v1/channels", `{"uri":"`+u+`"}`)
		want := http.StatusOK
		if i == 0 {
			want, id = http.StatusCreated, ch.ID
		}
		if code != want || ch.ID != id || ch.URI != uri {
			t.Errorf("POST %q: %d %+v; want %d, channel %s with %s", u, code, ch, want, id, uri)
		}
	}
	if chs, err := db.Channels(""); err != nil || len(chs) != 1 {
		t.Fatalf("stored %+v, %v; want one channel", chs, err)
	}
	for _, tc := range []struct {
		uri  string
		code int
		msg  string
	}{
		{"https://db3.notify.live.net:0/x", http.StatusBadRequest, "port 0 is out of range"},
		{"https://db3.notify.live.net:65536/x", http.StatusBadRequest, "port 65536 is out of range"},
		{"https://db3.notify.live.net\u3002\u3002/x", http.StatusBadRequest, "empty label"},
		{"https://db3.notify.live.net\u3002evil.com/x", http.StatusUnprocessableEntity, `db3.notify.live.net.evil.com\" is not in push.allowed_hosts`},
	} {
		req := httptest.NewRequest(http.MethodPost, "/v1/channels", strings.NewReader(`{"uri":"`+tc.uri+`"}`))
		req.Header.Set("Authorization", "Bearer "+apiKey)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.code || !strings.Contains(rec.Body.String(), tc.msg) {
			t.Errorf("POST %q: %d %s; want %d with %q", tc.uri, rec.Code, rec.Body, tc.code, tc.msg)
		}
	}
}

func TestRealStoreLifecycle(t *testing.T) {
	db, h := newRealServer(t)
	const (
		uri1 = "https://db3.notify.live.net/throttledthirdparty/01.00/one"
		uri2 = "https://db5.notify.live.net/throttledthirdparty/01.00/two"
	)
	code, first := call(t, h, http.MethodPost, "/v1/channels", `{"uri":"`+uri1+`","device":"dev-1"}`)
	if code != http.StatusCreated {
		t.Fatalf("register: %d", code)
	}
	code, again := call(t, h, http.MethodPost, "/v1/channels", `{"uri":"`+uri1+`","device":"dev-1","user":"ann","feeds":["news"]}`)
	if code != http.StatusOK || again.ID != first.ID || again.User != "ann" || len(again.Feeds) != 1 {
		t.Fatalf("re-register: %d %+v", code, again)
	}
	// The user's device got a new URI: its channel is rotated in place.
	code, moved := call(t, h, http.MethodPost, "/v1/channels", `{"uri":"`+uri2+`","device":"dev-1","user":"ann"}`)
	if code != http.StatusOK || moved.ID != first.ID || moved.URI != uri2 {
		t.Fatalf("new uri for the device: %d %+v", code, moved)
	}
	if code, ch := call(t, h, http.MethodGet, "/v1/channels/"+first.ID, ""); code != http.StatusOK || ch.URI != uri2 {
		t.Errorf("rotated channel: %d %+v, want it with the new URI", code, ch)
	}
	if st, err := db.Counts(); err != nil || st.Channels != 1 {
		t.Errorf("stats %+v, %v; want 1 channel", st, err)
	}
	if code, _ := call(t, h, http.MethodDelete, "/v1/channels/"+moved.ID, ""); code != http.StatusNoContent {
		t.Errorf("delete: %d", code)
	}
	if code, _ := call(t, h, http.MethodDelete, "/v1/channels/"+moved.ID, ""); code != http.StatusNotFound {
		t.Errorf("delete again: %d", code)
	}
	if code, _ := call(t, h, http.MethodGet, "/v1/status", ""); code != http.StatusOK {
		t.Errorf("status: %d", code)
	}
}
