package dump

import (
	"testing"

	"github.com/tilecast/tilecast"
)

func TestTally(t *testing.T) {
	a, b := Tally{}, Tally{}
	for _, it := range []Item{{Channel: &tilecast.Channel{}}, {Channel: &tilecast.Channel{}}, {Outcome: &tilecast.Outcome{}}, {Seen: &Seen{}}} {
		a.Add(&it)
		b.Add(&it)
	}
	if a.Total() != 4 || a[KindChannel] != 2 || a.Diff(b) != "" {
		t.Errorf("tally %v, total %d, diff %q", a, a.Total(), a.Diff(b))
	}
	b.Add(&Item{Dead: &tilecast.DeadLetter{}})
	if d := a.Diff(b); d != "dead letters 0 ≠ 1" {
		t.Errorf("Diff = %q", d)
	}
	if s := a.String(); s != "channels 2, feed states 0, seen items 1, fan-out jobs 0, outbox entries 0, last tiles 0, dead letters 0, ledger entries 1" {
		t.Errorf("String = %q", s)
	}
	if (&Item{}).Kind() != "" || len(Kinds()) != 8 {
		t.Error("an empty item has a kind, or a kind is missing")
	}
}
