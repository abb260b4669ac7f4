package tilecast_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/internal/logtest"
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

// sweepCounter is a real store that reports the clock time of each
// listing a sweep starts with to a test waiting for it (a listing nobody
// waits for goes unreported), so the test knows when a sweep is over —
// the next one has begun — without sleeping.
type sweepCounter struct {
	*store.DB
	sweeps chan time.Time
}

func (s sweepCounter) ExpiredChannels(now time.Time, limit int) ([]tilecast.Channel, error) {
	select {
	case s.sweeps <- now:
	default: // the test is not listening: it saw enough
	}
	return s.DB.ExpiredChannels(now, limit)
}

// RunExpirySweeps sweeps at once and then on its ticker: a channel that
// expires after the first sweep stays until a later one, which removes
// it; cancelling the context ends the loop.
func TestRunExpirySweepsRemovesLaterExpiriesAndStops(t *testing.T) {
	db, err := store.Open(filepath.Join(t.TempDir(), "state.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var mu sync.Mutex
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	keys := &tilecast.PushKeys{P256DH: bytes.Repeat([]byte{4}, 65), Auth: bytes.Repeat([]byte{1}, 16)}
	add := func(name string, exp time.Time) tilecast.Channel {
		ch, _, err := db.AddChannel(tilecast.Channel{URI: "https://fcm.googleapis.com/fcm/send/" + name, User: name,
			Transport: tilecast.TransportWebPush, Keys: keys, Expires: exp})
		if err != nil {
			t.Fatal(err)
		}
		return ch
	}
	early := add("early", now.Add(-time.Minute))
	later := add("later", now.Add(time.Hour))
	never := add("never", time.Time{})
	exists := func(ch tilecast.Channel) bool {
		_, err := db.Channel(ch.ID)
		if err != nil && !errors.Is(err, tilecast.ErrNotFound) {
			t.Fatal(err)
		}
		return err == nil
	}

	var logs logtest.Buffer
	bot := &tilecast.Bot{Store: db, Now: clock, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	st := sweepCounter{DB: db, sweeps: make(chan time.Time)}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		bot.RunExpirySweeps(ctx, st, 5*time.Millisecond)
	}()
	// next waits for the next sweep to start and returns its time.
	next := func(what string) time.Time {
		t.Helper()
		select {
		case at := <-st.sweeps:
			return at
		case <-time.After(30 * time.Second):
			t.Fatalf("no sweep started (%s)", what)
			return time.Time{}
		}
	}

	if at := next("first"); !at.Equal(now) {
		t.Errorf("first sweep at %v, want the Bot's clock %v", at, now)
	}
	next("second") // the first sweep is over
	if exists(early) || !exists(later) || !exists(never) {
		t.Errorf("after the first sweep: early %v later %v never %v; want only early gone", exists(early), exists(later), exists(never))
	}

	mu.Lock()
	now = now.Add(time.Hour)
	mu.Unlock()
	// A sweep that starts at the new time, and the one after it: the
	// first of them has finished.
	for at := next("after the clock moved"); at.Before(later.Expires); at = next("after the clock moved") {
	}
	next("after the later channel's sweep")
	if exists(later) || !exists(never) {
		t.Errorf("after a later sweep: later %v never %v; want later gone", exists(later), exists(never))
	}
	out := logs.String()
	for _, ch := range []tilecast.Channel{early, later} {
		want := fmt.Sprintf(`msg="channel removed: subscription expired" channel=%s user=%s transport=webpush expires=%s`,
			ch.ID, ch.User, ch.Expires.UTC().Format(time.RFC3339))
		if strings.Count(out, want) != 1 {
			t.Errorf("want one line %q in:\n%s", want, out)
		}
	}
	if strings.Count(out, `msg="expired channels removed" count=1`) != 2 {
		t.Errorf("want two sweep summaries of one channel each:\n%s", out)
	}

	cancel()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("RunExpirySweeps did not return after its context ended")
	}
	// Stopped: no sweep starts any more (the loop has returned, so none can).
	select {
	case at := <-st.sweeps:
		t.Errorf("a sweep started at %v after the loop returned", at)
	default:
	}
}

// staleIndex lists a full page of channels none of which exists: an
// index that names removed channels.
type staleIndex struct{ listings int }

func (s *staleIndex) ExpiredChannels(now time.Time, limit int) ([]tilecast.Channel, error) {
	s.listings++
	chs := make([]tilecast.Channel, limit)
	for i := range chs {
		chs[i] = tilecast.Channel{ID: fmt.Sprintf("gone%012d", i), Expires: now}
	}
	return chs, nil
}

func (s *staleIndex) RemoveExpiredChannel(string, time.Time) (bool, error) { return false, nil }

// A sweep whose listing names only channels that are gone stops with an
// error instead of listing the same page forever.
func TestSweepExpiredStopsOnAStaleIndex(t *testing.T) {
	st := &staleIndex{}
	bot := &tilecast.Bot{Now: func() time.Time { return time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC) }}
	n, err := bot.SweepExpired(t.Context(), st)
	if err == nil || n != 0 || !strings.Contains(err.Error(), "none could be removed") {
		t.Errorf("SweepExpired = %d, %v; want an error naming the stale listing", n, err)
	}
	if st.listings != 1 {
		t.Errorf("%d listings, want 1", st.listings)
	}
}
