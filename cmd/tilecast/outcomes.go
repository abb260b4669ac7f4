package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/tilecast/tilecast"
)

// defaultOutcomesSince is how far back outcomes looks without --since.
const defaultOutcomesSince = 24 * time.Hour

func cmdOutcomes(ctx context.Context, e env) error {
	fs := newFlags(e, "outcomes", "outcomes --config FILE [--channel ID] [--feed NAME] [--since 24h] [--wide] [--json]\n\n"+
		"The delivery ledger: one entry per send (the ledger keeps 7 days, at most 100\n"+
		"entries per channel), by channel ID and then oldest first. Without --channel,\n"+
		"every channel's. Read and printed a page (1000 entries) at a time.\n"+
		"--wide adds what WNS answered for Microsoft's support: MSG ID (X-WNS-Msg-ID),\n"+
		"DEBUG TRACE (X-WNS-Debug-Trace) and MS-CV, and TOKEN: \"refreshed\" when a 401\n"+
		"got a new access token and the push was sent again. --json has every field."+daemonNote)
	cfgPath := fs.String("config", "", "config file (TOML)")
	channel := fs.String("channel", "", "only this channel (its ID)")
	feed := fs.String("feed", "", "only this feed")
	sinceFlag := fs.String("since", defaultOutcomesSince.String(), "how far back: a duration (24h) or an RFC 3339 time")
	wide := fs.Bool("wide", false, "add the columns MSG ID, DEBUG TRACE, MS-CV and TOKEN (WNS)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, e, e.args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("outcomes: unexpected argument %q (use --channel ID)", fs.Arg(0))
	}
	since, err := parseSince(*sinceFlag, time.Now())
	if err != nil {
		return err
	}
	_, o, err := loadAndConnect(*cfgPath, e, true)
	if err != nil {
		return err
	}
	defer o.Close()
	page := func(cursor string) ([]tilecast.Outcome, string, error) {
		out, next, err := o.OutcomesPage(ctx, tilecast.OutcomeFilter{Channel: *channel, Feed: *feed, Since: since}, cursor, tilecast.MaxPageLimit)
		if err != nil {
			return nil, "", fmt.Errorf("outcomes: %w", err)
		}
		return out, next, nil
	}
	if *asJSON {
		arr := &jsonArray{w: e.stdout}
		err := eachPage(page, func(out []tilecast.Outcome) error {
			for i := range out {
				if err := arr.add(&out[i]); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		return arr.close()
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	header := "TIME\tCHANNEL\tTRANSPORT\tFEED\tKIND\tOUTCOME\tSTATUS\tATTEMPT\tRETRY IN\t"
	if *wide {
		header += "MSG ID\tDEBUG TRACE\tMS-CV\tTOKEN\t"
	}
	fmt.Fprintln(tw, header+"ERROR")
	err = eachPage(page, func(out []tilecast.Outcome) error {
		for _, oc := range out {
			retry := "-"
			if oc.RetryIn > 0 {
				retry = oc.RetryIn.String()
			}
			status := "-"
			if oc.Status != 0 {
				status = fmt.Sprint(oc.Status)
				if oc.Notification != "" {
					status += " " + oc.Notification
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t", fmtTime(oc.Time), oc.ChannelID, orDash(string(oc.Transport)),
				oc.Feed, oc.Kind, oc.Action, status, oc.Attempt, retry)
			if *wide {
				token := "-"
				if oc.TokenRefreshed {
					token = "refreshed"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t", orDash(oc.MsgID), orDash(oc.DebugTrace), orDash(oc.CorrelationVector), token)
			}
			fmt.Fprintln(tw, orDash(oc.Error))
		}
		return tw.Flush() // a page at a time: columns line up within a page
	})
	if err != nil {
		return err
	}
	return tw.Flush()
}

// parseSince reads --since as a duration back from now or an RFC 3339
// time, as GET /v1/channels/{id}/outcomes reads ?since=.
func parseSince(v string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(v); err == nil {
		if d < 0 {
			return time.Time{}, usagef("--since must be a positive duration such as 24h, got %q", v)
		}
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	return time.Time{}, usagef("--since must be a duration such as 24h or an RFC 3339 time, got %q", v)
}
