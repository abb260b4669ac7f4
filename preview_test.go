package tilecast_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/tilecast/tilecast"
)

// textRenderer renders notifications as readable text, to see which item
// each one is about.
type textRenderer struct{}

func (textRenderer) Toast(_ *tilecast.Feed, d *tilecast.TemplateData) ([]byte, error) {
	return []byte("toast " + d.Item.ID), nil
}

func (textRenderer) SummaryToast(_ *tilecast.Feed, _ *tilecast.TemplateData, more int) ([]byte, error) {
	return []byte(fmt.Sprintf("summary %d", more)), nil
}

func (textRenderer) TileUpdate(_ *tilecast.Feed, d *tilecast.TemplateData) ([]tilecast.Rendered, error) {
	return []tilecast.Rendered{{Kind: tilecast.KindTile, Payload: []byte(fmt.Sprintf("tile %s count %d", d.Item.ID, d.NewCount))}}, nil
}

// savedState is a PreviewState: one feed key's state and seen set.
type savedState struct {
	exists bool
	seen   map[string]bool
}

func (s savedState) FeedState(tilecast.FeedKey) (tilecast.FeedState, bool, error) {
	return tilecast.FeedState{Baselined: s.exists}, s.exists, nil
}

func (s savedState) Unseen(_ tilecast.FeedKey, ids []string) ([]string, error) {
	var out []string
	for _, id := range ids {
		if !s.seen[id] {
			out = append(out, id)
		}
	}
	return out, nil
}

// TestPreview: what a run would send, decided as the run decides it.
func TestPreview(t *testing.T) {
	items := func(ids ...string) *tilecast.FeedResult {
		res := &tilecast.FeedResult{Title: "T"}
		for _, id := range ids {
			res.Items = append(res.Items, tilecast.Item{ID: id, Title: id})
		}
		return res
	}
	seen := func(ids ...string) savedState {
		s := savedState{exists: true, seen: map[string]bool{}}
		for _, id := range ids {
			s.seen[id] = true
		}
		return s
	}
	feed := func(firstRun string, maxToasts, flood int) *tilecast.Feed {
		return &tilecast.Feed{Name: "news", FirstRun: firstRun, MaxToasts: maxToasts, FloodLimit: flood,
			Toast: &tilecast.ToastSpec{Text1: "x"}, Tile: &tilecast.TileSpec{Template: tilecast.TileFlip}}
	}
	tests := []struct {
		name     string
		f        *tilecast.Feed
		res      *tilecast.FeedResult
		state    tilecast.PreviewState // nil: --as-new
		baseline bool
		want     string // payloads, "|"-joined
	}{
		{"first run records a baseline", feed(tilecast.FirstRunBaseline, 3, 20), items("a", "b"), savedState{}, true, ""},
		{"first run with first_run notify", feed(tilecast.FirstRunNotify, 3, 20), items("a", "b"), savedState{}, false,
			"toast a|toast b|tile a count 2"},
		{"only unseen items", feed(tilecast.FirstRunBaseline, 3, 20), items("c", "b", "a"), seen("a", "b"), false,
			"toast c|tile c count 1"},
		{"nothing new", feed(tilecast.FirstRunBaseline, 3, 20), items("b", "a"), seen("a", "b"), false, ""},
		{"max_toasts and a summary", feed(tilecast.FirstRunBaseline, 2, 20), items("e", "d", "c", "b", "a"), seen("a"), false,
			"toast e|toast d|summary 2|tile e count 4"},
		{"flood_limit", feed(tilecast.FirstRunBaseline, 3, 2), items("d", "c", "b", "a"), seen("a"), false,
			"summary 3|tile d count 3"},
		{"as new", feed(tilecast.FirstRunBaseline, 1, 20), items("b", "a"), nil, false, "toast b|summary 1|tile b count 2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			run, err := tilecast.Preview(context.Background(), tc.f, "", tc.res, tc.state, tilecast.TransportMPNS, textRenderer{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range run.Payloads {
				got = append(got, string(p.Payload))
			}
			if strings.Join(got, "|") != tc.want || run.Baseline != tc.baseline || run.AsNew != (tc.state == nil) {
				t.Errorf("payloads %q baseline %v as-new %v; want %q baseline %v", strings.Join(got, "|"), run.Baseline, run.AsNew,
					tc.want, tc.baseline)
			}
		})
	}
}
