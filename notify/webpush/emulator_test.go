package webpush_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/emulator"
	"github.com/tilecast/tilecast/notify/webpush"
)

// TestClientAgainstEmulator sends with the Client to the project's
// emulator, which checks VAPID and decrypts with its own code: what the
// browser shows, and how each behaviour is classified.
func TestClientAgainstEmulator(t *testing.T) {
	clk := newClock()
	emu := emulator.New(emulator.Options{Now: clk.Now})
	srv := httptest.NewServer(emu.Handler())
	emu.SetBaseURL(srv.URL)
	t.Cleanup(srv.Close)
	t.Cleanup(emu.Close)

	chans := map[string]*tilecast.Channel{}
	browser := func(behaviour string, p ...emulator.BrowserParams) string {
		t.Helper()
		br, err := emu.CreateBrowser(behaviour, behaviour, p...)
		if err != nil {
			t.Fatal(err)
		}
		doc, _ := json.Marshal(br.Subscription)
		sub, err := webpush.ParseSubscription(doc, webpush.ParseOptions{AllowLoopbackHTTP: true})
		if err != nil {
			t.Fatal(err)
		}
		ch := sub.Channel() // as the registration will store it
		ch.ID = br.Token
		chans[br.Token] = &ch
		return br.Token
	}
	c := newClient(t, clk)
	push := func(token string, n *tilecast.Notification) tilecast.Result {
		return c.Push(context.Background(), chans[token], n, 2*time.Hour)
	}

	anna := browser(emulator.Healthy, emulator.BrowserParams{ApplicationServerKey: loadKeys(t).VAPID.PublicKey})
	toast, _ := webpush.ToastPayload(webpush.Toast{Title: "Daily News", Body: "Storm watch", URL: "/item?id=1"})
	if r := push(anna, &tilecast.Notification{Feed: "news", Kind: tilecast.KindToast, Payload: toast}); r.Verdict != tilecast.VerdictDelivered || r.Status != 201 {
		t.Fatalf("toast: %v %d %v", r.Verdict, r.Status, r.Err)
	}
	seven := 7
	tile, _ := webpush.TilePayload(webpush.Tile{Count: &seven, Title: "News", Body: "Seven new"})
	if r := push(anna, &tilecast.Notification{Feed: "news", Kind: tilecast.KindTile, Payload: tile}); r.Verdict != tilecast.VerdictDelivered {
		t.Fatalf("tile: %v %v", r.Verdict, r.Err)
	}
	st, _ := emu.Browser(anna)
	if len(st.Notifications) != 1 || st.Notifications[0].Title != "Daily News" || st.Badge != 7 || st.Tile == nil || st.Tile.Body != "Seven new" {
		t.Errorf("browser shows %+v, badge %d, tile %+v", st.Notifications, st.Badge, st.Tile)
	}
	if l := st.Last; l.TTL != 7200 || l.Urgency != "low" || l.Topic != "news" || l.Audience != srv.URL {
		t.Errorf("the service saw %+v", l)
	}

	for _, tc := range []struct {
		behaviour string
		verdict   tilecast.Verdict
		wait      time.Duration
		is        error
	}{
		{emulator.Unsubscribed, tilecast.VerdictGone, 0, tilecast.ErrChannelExpired},
		{emulator.Expired, tilecast.VerdictGone, 0, tilecast.ErrChannelExpired},
		{emulator.RateLimited, tilecast.VerdictRetry, 30 * time.Second, nil},
	} {
		r := push(browser(tc.behaviour), &tilecast.Notification{Feed: "news", Kind: tilecast.KindToast, Payload: toast})
		if r.Verdict != tc.verdict || r.Wait != tc.wait || (tc.is != nil && !errors.Is(r.Err, tc.is)) {
			t.Errorf("%s: %v wait %s %v", tc.behaviour, r.Verdict, r.Wait, r.Err)
		}
	}

	// Subscriptions made with another VAPID key: each push is refused
	// (403), and ten in a row pause the whole service — anna included.
	foreignKey := emulator.BrowserParams{ApplicationServerKey: newSignerKey(t)}
	for i := range 10 {
		r := push(browser(emulator.Healthy, foreignKey), &tilecast.Notification{Feed: "news", Kind: tilecast.KindToast, Payload: toast})
		if r.Verdict != tilecast.VerdictFailed || r.Status != 403 || !errors.Is(r.Err, webpush.ErrVAPID) {
			t.Fatalf("push %d with a foreign key: %v %d %v", i, r.Verdict, r.Status, r.Err)
		}
	}
	if bad, why := c.Degraded(); !bad || why == "" {
		t.Fatal("not degraded after ten refusals")
	}
	if r := push(anna, &tilecast.Notification{Feed: "news", Kind: tilecast.KindToast, Payload: toast}); r.Verdict != tilecast.VerdictRetry || !errors.Is(r.Err, webpush.ErrPaused) {
		t.Errorf("push to the paused service: %v %v", r.Verdict, r.Err)
	}
	clk.Advance(webpush.DefaultPauseMin)
	if r := push(anna, &tilecast.Notification{Feed: "news", Kind: tilecast.KindToast, Payload: toast}); r.Verdict != tilecast.VerdictDelivered {
		t.Errorf("probe to a browser with the right key: %v %v", r.Verdict, r.Err)
	}
	if bad, why := c.Degraded(); bad {
		t.Errorf("still degraded: %s", why)
	}
}

// newSignerKey returns the public key of a fresh VAPID key.
func newSignerKey(t *testing.T) string {
	t.Helper()
	k, err := webpush.GenerateKey(t.TempDir() + "/k.pem")
	if err != nil {
		t.Fatal(err)
	}
	return k.PublicKey()
}
