package tilecast_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
)

func TestInferTransport(t *testing.T) {
	for _, tt := range []struct {
		uri  string
		keys bool
		want tilecast.Transport
	}{
		{"https://wns2-par02p.notify.windows.com/w/?token=a", false, tilecast.TransportWNS},
		{"https://DB5.NOTIFY.WINDOWS.COM./?token=a", false, tilecast.TransportWNS},
		{"https://db5.notify.windows.com:444/?token=a", false, tilecast.TransportWNS},
		{"https://db3.notify.live.net/throttledthirdparty/01.00/x", false, tilecast.TransportMPNS},
		{"http://127.0.0.1:8461/w/?token=a", false, tilecast.TransportMPNS}, // emulator: must be named
		{"https://notify.windows.com/x", false, tilecast.TransportMPNS},     // the bare domain is no channel host
		{"https://notify.windows.com.evil.example/x", false, tilecast.TransportMPNS},
		{"https://evilnotify.windows.com/x", false, tilecast.TransportMPNS},
		{"https://fcm.googleapis.com/fcm/send/x", true, tilecast.TransportWebPush},
		// Edge's Web Push endpoints are on WNS hosts; the keys decide.
		{"https://wns2-par02p.notify.windows.com/w/?token=a", true, tilecast.TransportWebPush},
		{"::not a uri", false, tilecast.TransportMPNS},
	} {
		if got := tilecast.InferTransport(tt.uri, tt.keys); got != tt.want {
			t.Errorf("InferTransport(%q, %v) = %q, want %q", tt.uri, tt.keys, got, tt.want)
		}
	}
}

func TestParseTransport(t *testing.T) {
	for in, want := range map[string]tilecast.Transport{
		"": "", "wns": tilecast.TransportWNS, " WNS ": tilecast.TransportWNS, "mpns": tilecast.TransportMPNS,
		"webpush": tilecast.TransportWebPush,
	} {
		if got, err := tilecast.ParseTransport(in); err != nil || got != want {
			t.Errorf("ParseTransport(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"apns", "web-push", "w ns"} {
		if _, err := tilecast.ParseTransport(bad); !errors.Is(err, tilecast.ErrUnknownTransport) {
			t.Errorf("ParseTransport(%q) = %v, want ErrUnknownTransport", bad, err)
		}
	}
}

// transportPusher records which transport's pusher got each push.
type transportPusher struct {
	name     string
	got      *[]string
	degraded string
}

func (p transportPusher) Push(_ context.Context, ch *tilecast.Channel, n *tilecast.Notification, _ time.Duration) tilecast.Result {
	*p.got = append(*p.got, p.name+":"+ch.ID)
	return tilecast.Result{Status: 200, Verdict: tilecast.VerdictDelivered}
}

func (p transportPusher) Degraded() (bool, string) { return p.degraded != "", p.degraded }

func TestPushMux(t *testing.T) {
	var got []string
	var logs bytes.Buffer
	c := &clock{t: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}
	mux := tilecast.NewPushMux(map[tilecast.Transport]tilecast.Pusher{
		tilecast.TransportMPNS: transportPusher{name: "mpns", got: &got},
		tilecast.TransportWNS:  transportPusher{name: "wns", got: &got},
	}, tilecast.PushMuxOptions{Missing: map[tilecast.Transport]string{tilecast.TransportWebPush: "no [push.webpush] keys"},
		Hold: 10 * time.Minute, Logger: slog.New(slog.NewTextHandler(&logs, nil)), Now: c.Now})
	push := func(id string, tr tilecast.Transport) tilecast.Result {
		return mux.Push(context.Background(), &tilecast.Channel{ID: id, Transport: tr}, &tilecast.Notification{Kind: tilecast.KindToast}, 0)
	}
	push("a", "")
	push("b", tilecast.TransportMPNS)
	push("c", tilecast.TransportWNS)
	if want := []string{"mpns:a", "mpns:b", "wns:c"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("routed %v, want %v (no transport is MPNS)", got, want)
	}
	if bad, why := mux.Degraded(); bad {
		t.Errorf("degraded with every pusher fine: %s", why)
	}

	// A transport without a pusher: not sent, held, degraded, logged once per hold.
	for range 3 {
		r := push("w", tilecast.TransportWebPush)
		if !tilecast.NotSent(r) || !errors.Is(r.Err, tilecast.ErrNoTransport) || r.Wait != 10*time.Minute || r.Verdict != tilecast.VerdictRetry {
			t.Fatalf("push without a pusher = %+v, want not sent, held 10 min", r)
		}
	}
	if len(got) != 3 {
		t.Errorf("a webpush push reached another transport's pusher: %v", got)
	}
	if n := strings.Count(logs.String(), "notifications held"); n != 1 {
		t.Errorf("%d log lines for 3 held pushes, want 1:\n%s", n, logs.String())
	}
	bad, why := mux.Degraded()
	if !bad || !strings.Contains(why, "webpush") || !strings.Contains(why, "no [push.webpush] keys") {
		t.Errorf("Degraded = %v, %q; want the held transport and its reason", bad, why)
	}
	c.Add(21 * time.Minute)
	if bad, why := mux.Degraded(); bad {
		t.Errorf("still degraded long after the last held push: %s", why)
	}
	push("w", tilecast.TransportWebPush)
	if n := strings.Count(logs.String(), "notifications held"); n != 2 {
		t.Errorf("%d log lines after a hold period, want 2", n)
	}

	// A pusher's own report comes through.
	mux2 := tilecast.NewPushMux(map[tilecast.Transport]tilecast.Pusher{
		tilecast.TransportWNS: transportPusher{name: "wns", got: &got, degraded: "wns: token endpoint answers 503"},
	}, tilecast.PushMuxOptions{})
	if bad, why := mux2.Degraded(); !bad || why != "wns: token endpoint answers 503" {
		t.Errorf("Degraded = %v, %q", bad, why)
	}
}
