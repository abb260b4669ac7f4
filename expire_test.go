package tilecast_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/store"
)

// SweepExpired removes exactly the channels whose subscription's
// expirationTime has passed, across pages of the listing (more channels
// than one page holds), and logs each removal without the keys.
func TestSweepExpiredRemovesOnlyExpiredChannels(t *testing.T) {
	db, err := store.Open(filepath.Join(t.TempDir(), "state.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	p256dh, _ := base64.RawURLEncoding.DecodeString("BFDZ5JD0Ib4oxvIt__F5k7nkTG-roGeX6Hun6agEvq9gisJi5J5rX7eTvgFaanEX2yX6XIZbT_u0PwMhzpPOst8")
	auth, _ := base64.RawURLEncoding.DecodeString("R7sQMSD-sO4heEqd2ME0mw")
	keys := &tilecast.PushKeys{P256DH: p256dh, Auth: auth}

	// Every 100th browser expired a minute ago, every 100th+1 expires in
	// a minute, the rest never; MPNS phones have no expiry at all.
	var chs []tilecast.Channel
	wantGone := map[string]bool{}
	for i := range tilecast.MaxPageLimit + 250 {
		uri := fmt.Sprintf("https://fcm.googleapis.com/fcm/send/sub-%04d", i)
		ch := tilecast.Channel{URI: uri, User: fmt.Sprintf("u%d", i), Transport: tilecast.TransportWebPush, Keys: keys}
		switch i % 100 {
		case 0:
			ch.Expires = now.Add(-time.Minute)
			wantGone[uri] = true
		case 1:
			ch.Expires = now.Add(time.Minute)
		case 2:
			ch.Expires = now // the instant it ends counts as ended
			wantGone[uri] = true
		case 3:
			ch = tilecast.Channel{URI: fmt.Sprintf("http://db3.notify.live.net/throttledthirdparty/01.00/ph-%d", i)}
		}
		chs = append(chs, ch)
	}
	if _, _, err := db.ImportChannels(chs); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	bot := &tilecast.Bot{Store: db, Now: func() time.Time { return now },
		Logger: slog.New(slog.NewTextHandler(&logs, nil))}

	n, err := bot.SweepExpired(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	if n != len(wantGone) {
		t.Errorf("removed %d channels, want %d", n, len(wantGone))
	}
	left, err := db.Channels("")
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != len(chs)-len(wantGone) {
		t.Errorf("%d channels left, want %d", len(left), len(chs)-len(wantGone))
	}
	for _, ch := range left {
		if wantGone[ch.URI] {
			t.Errorf("expired channel %s still stored", ch.URI)
		}
	}
	if got := strings.Count(logs.String(), "channel removed: subscription expired"); got != len(wantGone) {
		t.Errorf("%d removal lines, want %d:\n%s", got, len(wantGone), logs.String())
	}
	for _, secret := range []string{"BFDZ5JD0", "R7sQMSD", fmt.Sprintf("%x", auth)} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("the log holds key material %q", secret)
		}
	}

	// A second sweep finds nothing; an hour later the next ones go.
	if n, err := bot.SweepExpired(t.Context(), db); err != nil || n != 0 {
		t.Errorf("second sweep removed %d (%v), want 0", n, err)
	}
	now = now.Add(time.Hour)
	if n, err := bot.SweepExpired(t.Context(), db); err != nil || n != 13 {
		t.Errorf("sweep an hour later removed %d (%v), want the 13 that expired meanwhile", n, err)
	}
}
