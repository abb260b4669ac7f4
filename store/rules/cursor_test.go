package rules

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/tilecast/tilecast"
)

func TestCursorRoundTrip(t *testing.T) {
	key := append([]byte("c1\x00"), binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, 42), 7)...)
	c := EncodeCursor(CursorOutcomes, key)
	got, err := DecodeCursor(c, CursorOutcomes)
	if err != nil || string(got) != string(key) {
		t.Fatalf("DecodeCursor = %q, %v", got, err)
	}
	ch, nanos, seq, err := LedgerPosition(got)
	if err != nil || ch != "c1" || nanos != 42 || seq != 7 {
		t.Errorf("LedgerPosition = %q %d %d %v", ch, nanos, seq, err)
	}
	if _, err := DecodeCursor(c, CursorChannels); !errors.Is(err, tilecast.ErrBadCursor) {
		t.Errorf("another listing's cursor: %v", err)
	}
	if k, err := DecodeCursor("", CursorDead); k != nil || err != nil {
		t.Errorf("the first page's cursor: %q, %v", k, err)
	}
	for _, bad := range [][]byte{[]byte("a\x00b"), []byte("\xff")} {
		if err := ChannelPosition(bad); !errors.Is(err, tilecast.ErrBadCursor) {
			t.Errorf("ChannelPosition(%q) = %v", bad, err)
		}
	}
	for _, bad := range [][]byte{[]byte("no-nul"), []byte("\x00" + string(make([]byte, 16))), append([]byte("\xff\x00"), make([]byte, 16)...), []byte("c\x00short")} {
		if _, _, _, err := LedgerPosition(bad); !errors.Is(err, tilecast.ErrBadCursor) {
			t.Errorf("LedgerPosition(%q) = %v", bad, err)
		}
	}
}

// FuzzDecodeCursor: whatever a client sends is a key or ErrBadCursor.
func FuzzDecodeCursor(f *testing.F) {
	f.Add("")
	f.Add(EncodeCursor(CursorChannels, []byte("0123456789abcdef")))
	f.Add("AQ")
	f.Fuzz(func(t *testing.T, c string) {
		for _, kind := range []byte{CursorChannels, CursorOutcomes, CursorDead} {
			k, err := DecodeCursor(c, kind)
			if err != nil && !errors.Is(err, tilecast.ErrBadCursor) {
				t.Errorf("DecodeCursor(%q): %v", c, err)
			}
			if err == nil && c != "" && EncodeCursor(kind, k) != c {
				t.Errorf("DecodeCursor(%q) = %q, which encodes differently", c, k)
			}
		}
	})
}
