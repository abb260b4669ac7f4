package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/store"
)

// TestListingsPageThroughEverything: with more channels and ledger
// entries than one page (1000) holds, channels list and outcomes print
// every record once, in order, the same from the state file and through
// the daemon's paged API; channels remove --uri finds a channel on a late
// page through the API.
func TestListingsPageThroughEverything(t *testing.T) {
	o := newOpsEnv(t)
	const n = 2345
	db, err := store.Open(o.state, store.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var chs []tilecast.Channel
	for i := range n {
		user := ""
		if i%3 == 0 {
			user = "ana"
		}
		chs = append(chs, tilecast.Channel{URI: fmt.Sprintf("https://db3.notify.live.net/p/%d", i), User: user})
	}
	if _, _, err := db.ImportChannels(chs); err != nil {
		t.Fatal(err)
	}
	var stored []tilecast.Channel
	if stored, err = db.Channels(""); err != nil || len(stored) != n {
		t.Fatalf("stored %d channels, %v", len(stored), err)
	}
	slices.SortFunc(stored, func(a, b tilecast.Channel) int { return strings.Compare(a.ID, b.ID) })
	now := time.Now()
	var recs []tilecast.Record
	for i, ch := range stored {
		for j := range 1 + i%2 { // 1.5 entries per channel on average
			recs = append(recs, tilecast.Record{ID: uint64(1 + 2*i + j), Op: tilecast.OpDone, Sent: true, Outcome: tilecast.Outcome{
				Time: now.Add(-time.Duration(2-j) * time.Hour), ChannelID: ch.ID, Feed: "news", Action: tilecast.ActionDelivered,
				ItemID: fmt.Sprint(ch.ID, "/", j)}})
		}
	}
	if err := db.Record(recs); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	var wantIDs, wantAna, wantLedger []string
	for i, ch := range stored {
		wantIDs = append(wantIDs, ch.ID)
		if ch.User == "ana" {
			wantAna = append(wantAna, ch.ID)
		}
		for j := range 1 + i%2 {
			wantLedger = append(wantLedger, fmt.Sprint(ch.ID, "/", j))
		}
	}

	list := func(t *testing.T, args ...string) string {
		t.Helper()
		code, out, errs := runCLI(t, t.Context(), append(args, "--config", o.cfg)...)
		if code != exitOK {
			t.Fatalf("%v: exit %d: %s", args, code, errs)
		}
		return out
	}
	outputs := map[string]string{}
	for _, mode := range []string{"local", "api"} {
		if mode == "api" {
			o.startDaemon(t)
		}
		t.Run(mode, func(t *testing.T) {
			for _, tc := range []struct {
				args []string
				want []string
				key  func(raw json.RawMessage) string
			}{
				{[]string{"channels", "list", "--json"}, wantIDs, jsonField("id")},
				{[]string{"channels", "list", "--json", "--user", "ana"}, wantAna, jsonField("id")},
				{[]string{"outcomes", "--json"}, wantLedger, jsonField("item")},
			} {
				out := list(t, tc.args...)
				var items []json.RawMessage
				if err := json.Unmarshal([]byte(out), &items); err != nil {
					t.Fatalf("%v: not a JSON array: %v", tc.args, err)
				}
				got := make([]string, len(items))
				for i, raw := range items {
					got[i] = tc.key(raw)
				}
				if !slices.Equal(got, tc.want) {
					t.Errorf("%v: %d records, want %d in order", tc.args, len(got), len(tc.want))
				}
				name := strings.Join(tc.args, " ")
				if mode == "local" {
					outputs[name] = out
				} else if out != outputs[name] {
					t.Errorf("%v: the API's output differs from the state file's", tc.args)
				}
			}
			table := list(t, "channels", "list")
			if lines := strings.Count(table, "\n"); lines != n+1 {
				t.Errorf("channels list: %d lines, want a header and %d channels", lines, n)
			}
		})
	}
	// Through the API: the last channel in ID order is on the third page.
	last := stored[len(stored)-1]
	code, out, errs := runCLI(t, t.Context(), "channels", "remove", "--config", o.cfg, "--uri", last.URI)
	if code != exitOK || !strings.Contains(out, last.ID) {
		t.Errorf("remove --uri of a channel on the last page: exit %d %s %s", code, out, errs)
	}
}

// jsonField returns a function reading the string field name of an object.
func jsonField(name string) func(json.RawMessage) string {
	return func(raw json.RawMessage) string {
		var m map[string]any
		_ = json.Unmarshal(raw, &m)
		s, _ := m[name].(string)
		return s
	}
}
