package tilecast

import (
	"context"
	"log/slog"
)

// PreviewState is what a preview reads of the saved state: the feed's
// state and its seen set. Nothing is written.
type PreviewState interface {
	FeedState(k FeedKey) (FeedState, bool, error)
	Unseen(k FeedKey, ids []string) ([]string, error)
}

// PreviewRun is what a run of a feed would send to one channel of a
// transport, decided the way the run decides it.
type PreviewRun struct {
	AsNew    bool   // every item taken as new; no saved state was read
	Items    int    // distinct items in the feed
	New      []Item // the items the run takes as new, newest first
	Baseline bool   // the run only records the baseline: nothing is sent
	Flood    bool   // more new items than flood_limit: no item toasts
	// Count is the NewCount the run's templates see (a tile's count).
	Count    int
	Payloads []PreviewPayload // in the order the run enqueues them
}

// PreviewPayload is one notification of a preview.
type PreviewPayload struct {
	Kind    Kind
	ItemID  string // "" for a summary toast
	Summary bool   // the "N more" toast
	Payload []byte
}

// Preview works out what a run of f for user would send now to a channel
// of transport t, given the fetched res: the items not in the saved seen
// set (state; nil takes every item as new, as on a first run with
// first_run = "notify"), whether the run would only record the baseline,
// max_toasts and flood_limit applied, rendered by r as the daemon renders
// them. Render errors are logged to log, as a run logs them.
func Preview(ctx context.Context, f *Feed, user string, res *FeedResult, state PreviewState, t Transport, r Renderer,
	log *slog.Logger) (*PreviewRun, error) {
	k := FeedKey{Feed: f.Name, User: user}
	items := uniqueItems(res.Items)
	run := &PreviewRun{AsNew: state == nil, Items: len(items)}
	fresh := append([]Item(nil), items...)
	if state != nil {
		st, exists, err := state.FeedState(k)
		if err != nil {
			return nil, err
		}
		ids := make([]string, len(items))
		for i, it := range items {
			ids[i] = it.ID
		}
		unseen, err := state.Unseen(k, ids)
		if err != nil {
			return nil, err
		}
		isNew := make(map[string]bool, len(unseen))
		for _, id := range unseen {
			isNew[id] = true
		}
		fresh = fresh[:0]
		for _, it := range items {
			if isNew[it.ID] {
				fresh = append(fresh, it)
			}
		}
		run.Baseline = (!exists || !st.Baselined) && f.FirstRun != FirstRunNotify
	}
	newestFirst(fresh)
	run.New, run.Count = fresh, len(fresh)
	if len(fresh) == 0 || run.Baseline || ctx.Err() != nil {
		return run, ctx.Err()
	}
	b := &Bot{Renderers: map[Transport]Renderer{t: r}, Logger: log}
	info := FeedInfo{Name: f.Name, Title: res.Title, Link: res.Link}
	if info.Title == "" {
		info.Title = f.Name
	}
	fan := b.newFanRenderer(f, user, info, fresh, false)
	run.Flood = fan.flood
	for _, p := range fan.render(user, t) {
		run.Payloads = append(run.Payloads, PreviewPayload{Kind: p.kind, ItemID: p.itemID,
			Summary: p.kind == KindToast && p.itemID == "", Payload: p.payload})
	}
	return run, nil
}
