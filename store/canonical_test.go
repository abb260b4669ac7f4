package store

import (
	"errors"
	"strings"
	"testing"

	"github.com/tilecast/tilecast"
)

// spellings are forms of one URI as a hostile run, an operator or an app
// may write it; canonicalURI is how the store keeps it.
const canonicalURI = "https://db3.notify.live.net/throttledthirdparty/01.00/AA~F"

var spellings = []string{
	canonicalURI,
	"https://db3.notify.live.net\u3002/throttledthirdparty/01.00/AA~F", // ideographic full stop
	"https://db3.notify.live.net\uff0e/throttledthirdparty/01.00/AA~F", // full-width full stop
	"https://db3.notify.live.net\uff61/throttledthirdparty/01.00/AA~F", // half-width ideographic full stop
	"https://db3.notify.live.net./throttledthirdparty/01.00/AA~F",
	"HTTPS://DB3.Notify.Live.NET:443/throttledthirdparty/01.00/AA%7eF",
	"https://db3.notify.live.net:0443/throttledthirdparty/01.00/AA%7EF",
	"https://\uff24\uff22\uff13.notify.live.net/throttledthirdparty/01.00/AA~F", // full-width letters
}

// AddChannel canonicalises by itself: whatever the caller checked or not,
// every spelling is one record, found by any spelling.
func TestAddChannelOneRecordPerURI(t *testing.T) {
	db, _ := mustOpen(t)
	var id string
	for i, u := range spellings {
		ch, created, err := db.AddChannel(tilecast.Channel{URI: u, User: "ana"})
		if err != nil {
			t.Fatalf("AddChannel(%q): %v", u, err)
		}
		if created != (i == 0) || ch.URI != canonicalURI || (i > 0 && ch.ID != id) {
			t.Errorf("AddChannel(%q) = %+v, created %v; want channel %s with %s, created only first", u, ch, created, id, canonicalURI)
		}
		id = ch.ID
	}
	chs, err := db.Channels("")
	if err != nil || len(chs) != 1 || chs[0].URI != canonicalURI {
		t.Fatalf("Channels = %+v, %v; want one channel with %s", chs, err, canonicalURI)
	}
	for _, u := range spellings {
		if ch, err := db.ChannelByURI(u); err != nil || ch.ID != id {
			t.Errorf("ChannelByURI(%q) = %+v, %v; want %s", u, ch, err, id)
		}
	}
	if _, err := db.ChannelByURI("https://db3.notify.live.net/throttledthirdparty/01.00/aa~f"); !errors.Is(err, tilecast.ErrNotFound) {
		t.Errorf("ChannelByURI of another token (path case differs) = %v, want ErrNotFound", err)
	}
}

// ImportChannels canonicalises too: spellings inside one import, and
// against channels already stored, are one record.
func TestImportChannelsOneRecordPerURI(t *testing.T) {
	db, _ := mustOpen(t)
	first := addChannel(t, db, tilecast.Channel{URI: spellings[1]})
	in := make([]tilecast.Channel, 0, len(spellings))
	for _, u := range spellings {
		in = append(in, tilecast.Channel{URI: u, User: "bob"})
	}
	added, updated, err := db.ImportChannels(in)
	if err != nil || added != 0 || updated != len(spellings) {
		t.Fatalf("ImportChannels = %d added, %d updated, %v; want 0, %d", added, updated, err, len(spellings))
	}
	chs, err := db.Channels("")
	if err != nil || len(chs) != 1 || chs[0].ID != first.ID || chs[0].URI != canonicalURI || chs[0].User != "bob" {
		t.Fatalf("Channels = %+v, %v; want only %s with %s for bob", chs, err, first.ID, canonicalURI)
	}
}

// The URIs a hostile run got stored, and other malformed ones, are refused
// by the store itself with ErrInvalidChannel and the reason.
func TestAddChannelRefusesBadURIs(t *testing.T) {
	db, _ := mustOpen(t)
	for _, tc := range []struct{ uri, msg string }{
		{"https://db3.notify.live.net:0/x", "port 0 is out of range"},
		{"https://db3.notify.live.net:65536/x", "port 65536 is out of range"},
		{"https://db3.notify.live.net:99999/x", "port 99999 is out of range"},
		{"https://db3.notify.live.net\u3002\u3002/x", "empty label"},
		{"https://db3.notify.live.net/x#frag", "fragment"},
		{"https://u@db3.notify.live.net/x", "userinfo"},
		{"mailto:a@example.org", "scheme"},
		{"https://db3.notify.live.net/x?t=%g0", "invalid percent-encoding"},
	} {
		_, _, err := db.AddChannel(tilecast.Channel{URI: tc.uri})
		if !errors.Is(err, ErrInvalidChannel) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("AddChannel(%q) = %v; want ErrInvalidChannel with %q", tc.uri, err, tc.msg)
		}
		_, _, err = db.ImportChannels([]tilecast.Channel{{URI: canonicalURI}, {URI: tc.uri}})
		if !errors.Is(err, ErrInvalidChannel) || !strings.Contains(err.Error(), "channel 1") || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("ImportChannels with %q = %v; want ErrInvalidChannel for channel 1 with %q", tc.uri, err, tc.msg)
		}
	}
	if s, err := db.Counts(); err != nil || s.Channels != 0 {
		t.Errorf("Stats = %+v, %v; want no channel stored", s, err)
	}
}
