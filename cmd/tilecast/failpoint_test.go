package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/tilecast/tilecast"
)

func TestParseFailpoint(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    failpointSpec
		wantErr string
	}{
		{in: "after-send:panic", want: failpointSpec{"after-send", failPanic, 1}},
		{in: "after-fetch:exit@3", want: failpointSpec{"after-fetch", failExit, 3}},
		{in: "after-commit:kill@1", want: failpointSpec{"after-commit", failKill, 1}},
		{in: "after-record:exit", want: failpointSpec{"after-record", failExit, 1}},
		{in: "in-commit:exit", want: failpointSpec{"in-commit", failExit, 1}},
		{in: "in-record:kill@2", want: failpointSpec{"in-record", failKill, 2}},
		{in: "after-fetch:hang", want: failpointSpec{"after-fetch", failHang, 1}},
		{in: "after-send", wantErr: "POINT:ACTION"},
		{in: "inside-tx:panic", wantErr: "unknown point"},
		{in: "after-send:explode", wantErr: "unknown action"},
		{in: "after-send:exit@0", wantErr: "hit count"},
		{in: "after-send:exit@x", wantErr: "hit count"},
		{in: "after-send:exit@", wantErr: "hit count"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseFailpoint(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func FuzzParseFailpoint(f *testing.F) {
	for _, s := range []string{"after-send:panic", "after-fetch:exit@3", "x:y@z", ":@", "after-record:kill@9223372036854775807"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sp, err := parseFailpoint(s)
		if err == nil && (sp.nth < 1 || sp.point == "" || sp.action == "") {
			t.Errorf("%q parsed to an unusable %+v", s, sp)
		}
	})
}

func TestFailpointFiresOnNthHitOnly(t *testing.T) {
	for _, action := range []failpointAction{failExit, failKill, failPanic, failHang} {
		t.Run(string(action), func(t *testing.T) {
			var out bytes.Buffer
			var exits, kills, hangs int
			sp := failpointSpec{point: tilecast.FailAfterSend, action: action, nth: 3}
			hook := sp.hook(&out, func(code int) {
				if code != exitFailpoint {
					t.Errorf("exit code %d, want %d", code, exitFailpoint)
				}
				exits++
			}, func() { kills++ }, func() { hangs++ })
			panics := 0
			call := func(p string) {
				defer func() {
					if recover() != nil {
						panics++
					}
				}()
				hook(p)
			}
			for range 5 {
				call(tilecast.FailAfterFetch) // other points never count
				call(tilecast.FailAfterSend)
			}
			fired := map[failpointAction]int{failExit: exits, failKill: kills, failPanic: panics, failHang: hangs}
			for a, n := range fired {
				want := 0
				if a == action {
					want = 1
				}
				if n != want {
					t.Errorf("%s fired %d times, want %d", a, n, want)
				}
			}
			if !strings.Contains(out.String(), "failpoint after-send hit 3: "+string(action)) {
				t.Errorf("message %q", out.String())
			}
		})
	}
}
