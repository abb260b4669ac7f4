package tilecast_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
)

// stepFailer makes the nth FanOutStep fail, as a crash between two pages
// would leave the store: earlier pages committed, the rest not.
type stepFailer struct {
	tilecast.Store
	n, calls int
}

var errStep = errors.New("injected: crash between pages")

func (s *stepFailer) FanOutStep(job tilecast.FanOutJob, from string, ns []tilecast.Notification, done bool) error {
	if s.calls++; s.calls == s.n {
		return errStep
	}
	return s.Store.FanOutStep(job, from, ns, done)
}

// TestPagedFanOut: a global feed with more subscribers than a page is
// delivered in page-sized transactions, and a run that stops between pages
// is finished by ResumeFanOuts after a restart (or by the feed's next run)
// with every channel getting the item exactly once.
func TestPagedFanOut(t *testing.T) {
	const channels, page = 11, 3 // pages of 3, 3, 3, 2 (+ the default-list channel first)
	for _, tc := range []struct {
		name   string
		failAt int  // FanOutStep call that fails (0: none)
		resume bool // after the restart: ResumeFanOuts (else the next run)
	}{
		{"no crash", 0, false},
		{"crash before the first page", 1, true},
		{"crash after two pages, resumed at start", 3, true},
		{"crash after two pages, resumed by the next run", 3, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			news := h.feed("news", "/news.xml")
			h.feeds.add("/news.xml", rssItem{"n0", "Baseline", ""})
			tokens := []string{"all"}
			h.channel("all", "") // lists no feeds: gets every global feed
			for i := range channels - 1 {
				tok := fmt.Sprintf("c%02d", i)
				tokens = append(tokens, tok)
				h.channel(tok, "", "news")
			}
			h.channel("other", "", "sports") // not a subscriber
			h.bot.SetFeeds([]tilecast.Feed{*news})
			h.bot.FanOutPage = page
			h.run(news)
			h.deliver() // tiles on subscribe, if any
			h.feeds.add("/news.xml", rssItem{"n1", "Breaking", ""})

			if tc.failAt > 0 {
				h.bot.Store = &stepFailer{Store: h.db, n: tc.failAt}
				if err := h.bot.RunFeed(context.Background(), news); !errors.Is(err, errStep) {
					t.Fatalf("RunFeed = %v, want the injected step error", err)
				}
				before := h.deliver()
				h.restart()
				h.bot.SetFeeds([]tilecast.Feed{*news})
				h.bot.FanOutPage = page
				jobs, err := h.db.FanOutJobs()
				if err != nil || len(jobs) != 1 {
					t.Fatalf("after the crash: jobs %+v, %v; want one", jobs, err)
				}
				if tc.resume {
					if err := h.bot.ResumeFanOuts(context.Background()); err != nil {
						t.Fatal(err)
					}
				} else {
					h.run(news) // 200, nothing new: resumes the job first
				}
				after := h.deliver()
				checkOnce(t, append(before, after...), tokens)
			} else {
				h.run(news)
				checkOnce(t, h.deliver(), tokens)
			}
			if jobs, err := h.db.FanOutJobs(); err != nil || len(jobs) != 0 {
				t.Errorf("jobs left: %+v, %v", jobs, err)
			}
			h.run(news)
			if extra := h.deliver(); len(extra) != 0 {
				t.Errorf("a quiet tick sent %d pushes", len(extra))
			}
		})
	}
}

func checkOnce(t *testing.T, got []push, tokens []string) {
	t.Helper()
	for _, tok := range tokens {
		if n := count(got, tok, "toast"); n != 1 {
			t.Errorf("channel %s: %d toasts, want 1", tok, n)
		}
		if n := count(got, tok, "token"); n != 1 {
			t.Errorf("channel %s: %d tiles, want 1", tok, n)
		}
	}
	if n := count(got, "other", ""); n != 0 {
		t.Errorf("a channel of another feed got %d pushes", n)
	}
}

// TestPagedFanOutSkipsLateSubscribers: a paged run is interrupted after
// its first page; a channel is then registered whose feed-index key sorts
// after the job's cursor, so the remaining pages read it. When the job
// resumes, the new channel gets nothing of that run (no backlog: it came
// after the run started) while each channel that existed gets it once.
// The feed's next run reaches them all.
func TestPagedFanOutSkipsLateSubscribers(t *testing.T) {
	const page = 3
	for _, resume := range []string{"at start", "by the next run"} {
		t.Run("resumed "+resume, func(t *testing.T) {
			h := newHarness(t)
			news := h.feed("news", "/news.xml")
			h.feeds.add("/news.xml", rssItem{"n0", "Baseline", ""})
			var tokens []string
			for i := range 9 {
				tok := fmt.Sprintf("c%02d", i)
				tokens = append(tokens, tok)
				h.channel(tok, "", "news")
			}
			h.bot.SetFeeds([]tilecast.Feed{*news})
			h.bot.FanOutPage = page
			h.run(news)
			h.deliver()

			h.feeds.add("/news.xml", rssItem{"n1", "Breaking", ""})
			h.bot.Store = &stepFailer{Store: h.db, n: 2} // page 1 committed, page 2 not
			if err := h.bot.RunFeed(context.Background(), news); !errors.Is(err, errStep) {
				t.Fatalf("RunFeed = %v, want the injected step error", err)
			}
			before := h.deliver()
			h.restart()
			h.bot.SetFeeds([]tilecast.Feed{*news})
			h.bot.FanOutPage = page
			jobs, err := h.db.FanOutJobs()
			if err != nil || len(jobs) != 1 || jobs[0].Cursor == "" {
				t.Fatalf("after the crash: jobs %+v, %v; want one with a cursor", jobs, err)
			}

			// A minute later a phone subscribes; keep registering until
			// one sorts after the cursor (IDs are random).
			h.clock.Add(time.Minute)
			late := ""
			for i := 0; late == "" && i < 100; i++ {
				tok := fmt.Sprintf("late%02d", i)
				ch := h.channel(tok, "", "news")
				if "news\x00"+ch.ID > jobs[0].Cursor {
					late = tok
				} else if err := h.db.RemoveChannel(ch.ID); err != nil {
					t.Fatal(err)
				}
			}
			if late == "" {
				t.Fatal("no channel ID sorted after the cursor in 100 tries")
			}
			// The store's remaining pages do hold it: the Bot must skip it.
			rest, _, err := h.db.SubscribersAfter(news, jobs[0].Cursor, 1000)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.ContainsFunc(rest, func(ch tilecast.Channel) bool { return strings.HasSuffix(ch.URI, "/"+late) }) {
				t.Fatalf("the remaining pages do not list %s: the test would prove nothing", late)
			}

			if resume == "at start" {
				if err := h.bot.ResumeFanOuts(context.Background()); err != nil {
					t.Fatal(err)
				}
			} else {
				h.run(news) // nothing new: resumes the job first
			}
			after := h.deliver()
			checkOnce(t, append(before, after...), tokens)
			if n := count(after, late, ""); n != 0 {
				t.Errorf("the late channel got %d pushes of a run that started before it registered", n)
			}
			if jobs, err := h.db.FanOutJobs(); err != nil || len(jobs) != 0 {
				t.Errorf("jobs left: %+v, %v", jobs, err)
			}

			h.feeds.add("/news.xml", rssItem{"n2", "Later", ""})
			h.run(news)
			checkOnce(t, h.deliver(), append(tokens, late))
		})
	}
}

// TestPagedFanOutRotatedChannelKeepsItsShare: a device's channel rotated
// to a new URI while a paged run is interrupted keeps its ID and creation
// time (store rotation in place), so the resumed run still reaches it, at
// its new URI: every device gets the run's item exactly once.
func TestPagedFanOutRotatedChannelKeepsItsShare(t *testing.T) {
	const page, devices = 3, 8
	h := newHarness(t)
	news := h.feed("news", "/news.xml")
	h.feeds.add("/news.xml", rssItem{"n0", "Baseline", ""})
	ids := make([]string, devices)
	for i := range devices {
		ch, _, err := h.db.AddChannel(tilecast.Channel{URI: h.mpns.uri(fmt.Sprintf("d%d-old", i)), User: "ana",
			Device: fmt.Sprintf("phone%d", i), Feeds: []string{"news"}})
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = ch.ID
	}
	h.bot.SetFeeds([]tilecast.Feed{*news})
	h.bot.FanOutPage = page
	h.run(news)
	h.deliver()

	h.feeds.add("/news.xml", rssItem{"n1", "Breaking", ""})
	h.bot.Store = &stepFailer{Store: h.db, n: 2} // page 1 committed, page 2 not
	if err := h.bot.RunFeed(context.Background(), news); !errors.Is(err, errStep) {
		t.Fatalf("RunFeed = %v, want the injected step error", err)
	}
	before := h.deliver()
	h.restart()
	h.bot.SetFeeds([]tilecast.Feed{*news})
	h.bot.FanOutPage = page
	jobs, err := h.db.FanOutJobs()
	if err != nil || len(jobs) != 1 || jobs[0].Cursor == "" {
		t.Fatalf("after the crash: jobs %+v, %v; want one with a cursor", jobs, err)
	}

	// A minute later every device whose channel the remaining pages will
	// read gets a new channel URI.
	h.clock.Add(time.Minute)
	rotated := map[int]bool{}
	for i, id := range ids {
		if "news\x00"+id <= jobs[0].Cursor {
			continue
		}
		ch, _, err := h.db.AddChannel(tilecast.Channel{URI: h.mpns.uri(fmt.Sprintf("d%d-new", i)), User: "ana",
			Device: fmt.Sprintf("phone%d", i), Feeds: []string{"news"}})
		if err != nil {
			t.Fatal(err)
		}
		if ch.ID != id {
			t.Fatalf("device phone%d rotated to channel %s, want its channel %s kept in place", i, ch.ID, id)
		}
		rotated[i] = true
	}
	if len(rotated) == 0 {
		t.Fatal("no device channel sorts after the cursor: the test would prove nothing")
	}
	if err := h.bot.ResumeFanOuts(context.Background()); err != nil {
		t.Fatal(err)
	}
	after := h.deliver()
	all := append(before, after...)
	for i := range devices {
		old, cur := fmt.Sprintf("d%d-old", i), fmt.Sprintf("d%d-new", i)
		if n := count(all, old, "toast") + count(all, cur, "toast"); n != 1 {
			t.Errorf("device phone%d (rotated %v): %d toasts of the run, want 1", i, rotated[i], n)
		}
		if rotated[i] && count(after, cur, "toast") != 1 {
			t.Errorf("rotated device phone%d: the resumed run did not reach its new URI", i)
		}
	}
}
