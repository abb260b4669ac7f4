package tilecast_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
)

// The JSON of a channel (API answers, `channels list --json`, imports)
// names its transport and a Web Push expiry, and never carries the
// subscription keys, in either direction.
func TestChannelJSON(t *testing.T) {
	ch := tilecast.Channel{ID: "c1", URI: "https://push.example/e", Created: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC),
		Transport: tilecast.TransportWebPush, Keys: &tilecast.PushKeys{P256DH: []byte("SECRET-P256"), Auth: []byte("SECRET-AUTH")},
		Expires: time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)}
	b, err := json.Marshal(&ch)
	if err != nil {
		t.Fatal(err)
	}
	js := string(b)
	for _, want := range []string{`"transport":"webpush"`, `"expires":"2026-04-01T00:00:00Z"`} {
		if !strings.Contains(js, want) {
			t.Errorf("%s lacks %s", js, want)
		}
	}
	for _, secret := range []string{"SECRET", "U0VDUkVU", "keys", "p256"} {
		if strings.Contains(strings.ToLower(js), strings.ToLower(secret)) {
			t.Errorf("%s shows the keys (%s)", js, secret)
		}
	}
	mpns, _ := json.Marshal(tilecast.Channel{ID: "c2", Transport: tilecast.TransportMPNS})
	if strings.Contains(string(mpns), "expires") || !strings.Contains(string(mpns), `"transport":"mpns"`) {
		t.Errorf("MPNS channel JSON %s", mpns)
	}
	var in tilecast.Channel
	if err := json.Unmarshal([]byte(`{"uri":"u","transport":"wns","Keys":{"P256DH":"QQ=="}}`), &in); err != nil {
		t.Fatal(err)
	}
	if in.Transport != tilecast.TransportWNS || in.Keys != nil {
		t.Errorf("decoded %+v: keys must not come in through JSON", in)
	}
}

// The WNS support fields of an outcome have the names the ledger's JSON
// readers use, and are left out when empty.
func TestOutcomeJSON(t *testing.T) {
	o := tilecast.Outcome{Kind: "badge", Transport: tilecast.TransportWNS, MsgID: "m1", DebugTrace: "d1", CorrelationVector: "cv"}
	b, err := json.Marshal(&o)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"kind":"badge"`, `"transport":"wns"`, `"msg_id":"m1"`, `"debug_trace":"d1"`, `"ms_cv":"cv"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("%s lacks %s", b, want)
		}
	}
	empty, _ := json.Marshal(tilecast.Outcome{})
	for _, absent := range []string{"transport", "msg_id", "debug_trace", "ms_cv"} {
		if strings.Contains(string(empty), absent) {
			t.Errorf("%s names %s", empty, absent)
		}
	}
}
