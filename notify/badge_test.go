package notify_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/notify"
	"github.com/tilecast/tilecast/notify/mpns"
)

func TestBadgeOf(t *testing.T) {
	tests := []struct {
		count  notify.Field
		want   int
		wantOK bool
	}{
		{notify.Field{}, 0, false},
		{notify.Value("7"), 7, true},
		{notify.Value(" 12 "), 12, true},
		{notify.Value("0"), 0, true},
		{notify.Value("250"), 99, true},
		{notify.Value("-3"), 0, true},
		{notify.Value("seven"), 0, false},
		{notify.Value(""), 0, false},
		{notify.Clear(), 0, true},
	}
	for _, tt := range tests {
		b, ok := notify.BadgeOf(&notify.Tile{Count: tt.count})
		if ok != tt.wantOK || b.Count != tt.want {
			t.Errorf("BadgeOf(%+v) = %d, %v; want %d, %v", tt.count, b.Count, ok, tt.want, tt.wantOK)
		}
	}
}

// badgeEnc is an encoder with badges that writes the count it is given,
// so the test sees what Fit handed it.
type badgeEnc struct {
	mpns.Encoder
	max int
}

func (e *badgeEnc) EncodeBadge(b notify.Badge) ([]byte, error) {
	return []byte("<badge value=\"" + strconv.Itoa(b.Count) + "\"/>"), nil
}

func (e *badgeEnc) MaxTyped() int { return e.max }

func TestFitBadge(t *testing.T) {
	enc := &badgeEnc{max: 100}
	for _, tt := range []struct {
		in   int
		want string
	}{{3, `<badge value="3"/>`}, {0, `<badge value="0"/>`}, {150, `<badge value="99"/>`}, {-1, `<badge value="0"/>`}} {
		got, err := notify.Fit(enc, notify.Badge{Count: tt.in})
		if err != nil || string(got) != tt.want {
			t.Errorf("Fit(Badge{%d}) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	if _, err := notify.Fit(&badgeEnc{max: 5}, &notify.Badge{Count: 1}); !errors.Is(err, tilecast.ErrPayloadTooLarge) {
		t.Errorf("badge over the limit: %v, want ErrPayloadTooLarge", err)
	}
	// MPNS has no badge notification: Fit says so instead of sending something else.
	_, err := notify.Fit(&mpns.Encoder{}, notify.Badge{Count: 2})
	if err == nil || !strings.Contains(err.Error(), "no badge") {
		t.Errorf("Fit(mpns, badge) = %v, want a refusal naming badges", err)
	}
	if k := (notify.Badge{}).Kind(); k != tilecast.KindBadge {
		t.Errorf("Badge.Kind() = %q", k)
	}
}
