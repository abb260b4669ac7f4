package main

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/store"
)

// WNS's support ids of the seeded WNS send.
const (
	seedMsgID = "1A2B3C4D5E6F7081"
	seedTrace = "DB5SCH101121940"
	seedCV    = "hT8oq2PvZEaUG1xd.0"
)

// seedTransports stores a WNS channel and an MPNS channel with one send
// each in the ledger: the WNS one with WNS's support ids, after a
// renewed access token. It returns their IDs.
func seedTransports(t *testing.T, path string) (wnsID, mpnsID string) {
	t.Helper()
	db, err := store.Open(path, store.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	pc, _, err := db.AddChannel(tilecast.Channel{URI: "https://db5.notify.windows.com/?token=pc", Transport: tilecast.TransportWNS, Feeds: []string{"news"}})
	if err != nil {
		t.Fatal(err)
	}
	phone, _, err := db.AddChannel(tilecast.Channel{URI: "https://db3.notify.live.net/t/phone", Transport: tilecast.TransportMPNS, Feeds: []string{"news"}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	ns := []tilecast.Notification{
		{ChannelID: pc.ID, Feed: "news", ItemID: "i1", Kind: tilecast.KindBadge, Payload: []byte(`<badge value="1"/>`)},
		{ChannelID: phone.ID, Feed: "news", ItemID: "i1", Kind: tilecast.KindToast, Payload: []byte("<a/>")},
	}
	for i := range ns {
		ns[i].NextAttempt, ns[i].Created = now.Add(-time.Hour), now.Add(-time.Hour)
	}
	if err := db.Enqueue(ns); err != nil {
		t.Fatal(err)
	}
	due, err := db.Due(now, 10, func(uint64) bool { return false })
	if err != nil || len(due) != 2 {
		t.Fatalf("Due = %d, %v", len(due), err)
	}
	var recs []tilecast.Record
	for _, p := range due {
		oc := tilecast.Outcome{Time: now.Add(-time.Minute), ChannelID: p.ChannelID, Feed: p.Feed, ItemID: p.ItemID, Kind: p.Kind,
			Status: 200, Action: tilecast.ActionDelivered, Attempt: 1, Transport: tilecast.TransportMPNS, Notification: "Received"}
		if p.ChannelID == pc.ID {
			oc.Transport, oc.Notification = tilecast.TransportWNS, "received"
			oc.MsgID, oc.DebugTrace, oc.CorrelationVector, oc.TokenRefreshed = seedMsgID, seedTrace, seedCV, true
		}
		recs = append(recs, tilecast.Record{ID: p.ID, Due: p.NextAttempt, Op: tilecast.OpDone, Sent: true, Outcome: oc})
	}
	if err := db.Record(recs); err != nil {
		t.Fatal(err)
	}
	return pc.ID, phone.ID
}

// TestOutcomesTransportAndWNSIds: the outcomes table shows each send's
// transport; --wide adds WNS's support ids (X-WNS-Msg-ID, X-WNS-Debug-Trace,
// MS-CV) and the renewed token, each under its own column heading, and
// "-" for a send without them; --json still has them as before. The same
// from the state file and through a daemon's API.
func TestOutcomesTransportAndWNSIds(t *testing.T) {
	o := newOpsEnv(t)
	pc, phone := seedTransports(t, o.state)
	tests := []struct {
		name string
		args []string
		// cells: for a channel's row, the column heading and the value under it.
		cells map[string][][2]string
		not   []string
	}{
		{"default", []string{"outcomes"}, map[string][][2]string{
			pc:    {{"TRANSPORT", "wns"}, {"STATUS", "200 received"}},
			phone: {{"TRANSPORT", "mpns"}, {"STATUS", "200 Received"}},
		}, []string{seedMsgID, seedTrace, seedCV, "MSG ID", "refreshed"}},
		{"wide", []string{"outcomes", "--wide"}, map[string][][2]string{
			pc: {{"TRANSPORT", "wns"}, {"MSG ID", seedMsgID}, {"DEBUG TRACE", seedTrace}, {"MS-CV", seedCV},
				{"TOKEN", "refreshed"}, {"ERROR", "-"}},
			phone: {{"TRANSPORT", "mpns"}, {"MSG ID", "-"}, {"DEBUG TRACE", "-"}, {"MS-CV", "-"}, {"TOKEN", "-"}, {"ERROR", "-"}},
		}, nil},
	}
	for _, mode := range []string{"local", "api"} {
		if mode == "api" {
			o.startDaemon(t)
		}
		for _, tc := range tests {
			t.Run(mode+"/"+tc.name, func(t *testing.T) {
				code, out, errs := runCLI(t, t.Context(), append(slices.Clone(tc.args), "--config", o.cfg)...)
				if code != exitOK {
					t.Fatalf("exit %d: %s", code, errs)
				}
				lines := strings.Split(out, "\n")
				header := lines[0]
				for id, cells := range tc.cells {
					row := ""
					for _, l := range lines[1:] {
						if strings.Contains(l, id) {
							row = l
						}
					}
					if row == "" {
						t.Fatalf("no row for %s:\n%s", id, out)
					}
					for _, c := range cells {
						col := strings.Index(header, c[0])
						if col < 0 {
							t.Errorf("no column %s:\n%s", c[0], out)
							continue
						}
						cell := row[min(col, len(row)):]
						if !strings.HasPrefix(cell, c[1]) || (len(cell) > len(c[1]) && cell[len(c[1])] != ' ') {
							t.Errorf("%s's %s is not %q:\n%s", id, c[0], c[1], out)
						}
					}
				}
				for _, n := range tc.not {
					if strings.Contains(out, n) {
						t.Errorf("output has %q:\n%s", n, out)
					}
				}
			})
		}
		t.Run(mode+"/json", func(t *testing.T) {
			_, out, _ := runCLI(t, t.Context(), "outcomes", "--json", "--channel", pc, "--config", o.cfg)
			for _, w := range []string{`"transport": "wns"`, `"msg_id": "` + seedMsgID + `"`, `"debug_trace": "` + seedTrace + `"`,
				`"ms_cv": "` + seedCV + `"`, `"token_refreshed": true`} {
				if !strings.Contains(out, w) {
					t.Errorf("--json lacks %s:\n%s", w, out)
				}
			}
		})
	}
}
