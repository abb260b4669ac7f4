package web_test

import (
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/internal/logtest"
	"github.com/tilecast/tilecast/store"
	"github.com/tilecast/tilecast/web"
)

// TestRegistrationDeviceScopedToUser: through the API on a real store, a
// device ID is scoped to its user. Another user registering the same
// device ID gets a channel of their own and the first user's channel and
// its waiting notifications stay; the first user's next URI rotates their
// channel in place, logged by the store as one "channel rotated" line
// without the URI.
func TestRegistrationDeviceScopedToUser(t *testing.T) {
	dir := t.TempDir()
	logs := &logtest.Buffer{}
	db, err := store.Open(filepath.Join(dir, "state.db"), store.Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	keys := filepath.Join(dir, "api-keys")
	if err := os.WriteFile(keys, []byte(apiKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv, err := web.New(web.Options{
		Store:        db,
		Counts:       db.Counts,
		Feeds:        func() []tilecast.Feed { return []tilecast.Feed{{Name: "news", URL: "https://example.org/news.xml"}} },
		AllowedHosts: func() []string { return []string{"*.notify.live.net"} },
		APIKeysFile:  keys,
		Registry:     prometheus.NewRegistry(),
		Logger:       slog.New(slog.DiscardHandler),
		Burst:        1000,
	})
	if err != nil {
		t.Fatal(err)
	}
	h := srv.Handler()
	const base = "https://db3.notify.live.net/throttledthirdparty/01.00/"
	reg := func(token, user string) (int, tilecast.Channel) {
		return call(t, h, http.MethodPost, "/v1/channels",
			`{"uri":"`+base+token+`","user":"`+user+`","device":"install-42","feeds":["news"]}`)
	}
	code, ana := reg("ANATOKEN1", "ana")
	if code != http.StatusCreated {
		t.Fatalf("ana: %d", code)
	}
	if err := db.Enqueue([]tilecast.Notification{{ChannelID: ana.ID, Feed: "news", ItemID: "1", Kind: tilecast.KindToast, Payload: []byte("<t/>")}}); err != nil {
		t.Fatal(err)
	}
	code, bob := reg("BOBTOKEN1", "bob")
	if code != http.StatusCreated || bob.ID == ana.ID {
		t.Fatalf("bob with ana's device ID: %d %+v, want a channel of his own", code, bob)
	}
	code, ana2 := reg("ANATOKEN2", "ana")
	if code != http.StatusOK || ana2.ID != ana.ID || !ana2.Created.Equal(ana.Created) || ana2.URI != base+"ANATOKEN2" {
		t.Fatalf("ana's new URI: %d %+v, want her channel rotated", code, ana2)
	}
	if got, err := db.Channel(bob.ID); err != nil || got.URI != base+"BOBTOKEN1" {
		t.Errorf("bob's channel after ana's rotation: %+v, %v", got, err)
	}
	due, err := db.Due(time.Now().Add(time.Hour), 10, nil)
	if err != nil || len(due) != 1 || due[0].Channel.ID != ana.ID || due[0].Channel.URI != base+"ANATOKEN2" {
		t.Errorf("waiting after rotation = %+v, %v; want ana's toast to her new URI", due, err)
	}
	out := logs.String()
	if n := strings.Count(out, `msg="channel rotated"`); n != 1 ||
		!strings.Contains(out, "channel="+ana.ID+" old_channel="+ana.ID+" new_channel="+ana.ID+" user=ana device=install-42 host=db3.notify.live.net") {
		t.Errorf("rotation log:\n%s", out)
	}
	if strings.Contains(out, "TOKEN") {
		t.Errorf("the log shows a URI:\n%s", out)
	}
}
