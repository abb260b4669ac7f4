package bench

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/tilecast/tilecast"
)

// TestFanOutSmoke runs a 20-channel fan-out on the emulator and checks that
// every push arrived and every outcome was recorded. It times nothing.
func TestFanOutSmoke(t *testing.T) {
	s, err := StartSink(SinkEmulator, 20)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	path := filepath.Join(t.TempDir(), "state.db")
	if err := BuildFanOutState(path, s.URIs); err != nil {
		t.Fatal(err)
	}
	res, err := RunFanOut(t.Context(), path, 4)
	if err != nil {
		t.Fatal(err)
	}
	if res.Notifications != 40 || s.Received() != 40 {
		t.Fatalf("notifications = %d, sink received %d; want 40", res.Notifications, s.Received())
	}
	n, err := CountOutcomes(path)
	if err != nil || n != 40 {
		t.Fatalf("delivered outcomes = %d, %v; want 40", n, err)
	}
	ns, err := RawNotifications()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := RunRawFanOut(t.Context(), s.URIs, ns, 4)
	if err != nil || raw.Notifications != 40 || s.Received() != 80 {
		t.Fatalf("raw = %+v, %v; sink received %d, want 80", raw, err, s.Received())
	}
}

// TestFanOutWNSSmoke runs a 20-device WNS fan-out on the emulator and the
// bare loop beside it: every device gets a toast, a tile and a badge from
// each, with access tokens the emulator issued. It times nothing.
func TestFanOutWNSSmoke(t *testing.T) {
	for _, kind := range []string{SinkEmulator, SinkMinimal} {
		t.Run(kind, func(t *testing.T) {
			s, err := StartSinkFor(kind, tilecast.TransportWNS, 20)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if got := TokenURLOf(s.URIs[0]); got != s.TokenURL {
				t.Fatalf("TokenURLOf = %q, want %q", got, s.TokenURL)
			}
			path := filepath.Join(t.TempDir(), "state.db")
			if err := BuildFanOutStateFor(path, s.URIs, tilecast.TransportWNS); err != nil {
				t.Fatal(err)
			}
			opts := FanOutOptions{Concurrency: 4, Transport: tilecast.TransportWNS, TokenURL: s.TokenURL}
			res, err := RunFanOutWith(t.Context(), path, opts)
			if err != nil {
				t.Fatal(err)
			}
			if res.Notifications != 60 || s.Received() != 60 {
				t.Fatalf("notifications = %d, sink received %d; want 60 (toast, tile, badge × 20)", res.Notifications, s.Received())
			}
			if n, err := CountOutcomes(path); err != nil || n != 60 {
				t.Fatalf("delivered outcomes = %d, %v; want 60", n, err)
			}
			ns, err := RawNotificationsFor(tilecast.TransportWNS)
			if err != nil || len(ns) != 3 || ns[2].Kind != tilecast.KindBadge {
				t.Fatalf("raw notifications %+v, %v", ns, err)
			}
			raw, err := RunRawFanOutWith(t.Context(), s.URIs, ns, opts)
			if err != nil || raw.Notifications != 60 || s.Received() != 120 {
				t.Fatalf("raw = %+v, %v; sink received %d, want 120", raw, err, s.Received())
			}
		})
	}
}

// TestTickSmoke runs two ticks of 40 feeds and checks the write rule: 304s
// and unchanged 200s (6 of the 8) write nothing; the only write
// transactions are the commits of the 2 feeds with a new item.
func TestTickSmoke(t *testing.T) {
	srv, err := StartFeedServer(40, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	tb, err := NewTickBot(filepath.Join(t.TempDir(), "state.db"), srv)
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close()
	if _, err := tb.Tick(t.Context(), 4); err != nil {
		t.Fatal(err)
	}
	srv.Advance()
	res, err := tb.Tick(t.Context(), 4)
	if err != nil {
		t.Fatal(err)
	}
	if res.Got304 != 32 || res.Got200 != 8 || res.Writes != 2 {
		t.Fatalf("tick = %+v; want 32×304, 8×200, 2 writes", res)
	}
	rt := NewRawTicker(srv, false)
	for range 2 {
		if _, err := rt.Tick(t.Context(), 4); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRetentionSmoke simulates 3 days of 5 feeds; seen sets are pruned
// only after 30 days, so this checks the simulation runs and grows a file.
func TestRetentionSmoke(t *testing.T) {
	pts, err := SimulateRetention(t.Context(), filepath.Join(t.TempDir(), "state.db"), 5, 3, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 3 || pts[2].Bytes == 0 {
		t.Fatalf("points = %+v", pts)
	}
}

// TestCopyFile copies files of several sizes with several write sizes,
// including a last write shorter than the others and an empty file.
func TestCopyFile(t *testing.T) {
	dir := t.TempDir()
	for _, size := range []int{0, 1, 4095, 4096, 10000} {
		src := filepath.Join(dir, "src")
		want := make([]byte, size)
		for i := range want {
			want[i] = byte(i*7 + size)
		}
		if err := os.WriteFile(src, want, 0o600); err != nil {
			t.Fatal(err)
		}
		for _, chunk := range []int{0, -1, 1000, 4096, 1 << 20} {
			dst := filepath.Join(dir, "dst")
			// A longer old file must be replaced, not overwritten in part.
			if err := os.WriteFile(dst, make([]byte, 20000), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := CopyFile(dst, src, chunk); err != nil {
				t.Fatalf("size %d chunk %d: %v", size, chunk, err)
			}
			got, err := os.ReadFile(dst)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("size %d chunk %d: copy has %d bytes, differs from the source", size, chunk, len(got))
			}
		}
	}
	if err := CopyFile(filepath.Join(dir, "x"), filepath.Join(dir, "missing"), 4096); err == nil {
		t.Error("copying a missing file: no error")
	}
}

// TestFanOutWebPushSmoke runs a 20-browser Web Push fan-out on the
// emulator (which decrypts and checks VAPID) and on the minimal sink, and
// the bare loop beside it: every browser gets a toast and a tile (the
// count inside) from each, encrypted and signed. It times nothing; the
// crypto cost is measured and must be positive.
func TestFanOutWebPushSmoke(t *testing.T) {
	for _, kind := range []string{SinkEmulator, SinkMinimal} {
		t.Run(kind, func(t *testing.T) {
			s, err := StartSinkFor(kind, tilecast.TransportWebPush, 20)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			path := filepath.Join(t.TempDir(), "state.db")
			if err := BuildFanOutStateFor(path, s.URIs, tilecast.TransportWebPush); err != nil {
				t.Fatal(err)
			}
			opts := FanOutOptions{Concurrency: 4, Transport: tilecast.TransportWebPush}
			res, err := RunFanOutWith(t.Context(), path, opts)
			if err != nil {
				t.Fatal(err)
			}
			if res.Notifications != 40 || s.Received() != 40 {
				t.Fatalf("notifications = %d, sink received %d; want 40 (toast, tile × 20)", res.Notifications, s.Received())
			}
			if n, err := CountOutcomes(path); err != nil || n != 40 {
				t.Fatalf("delivered outcomes = %d, %v; want 40", n, err)
			}
			ns, err := RawNotificationsFor(tilecast.TransportWebPush)
			if err != nil || len(ns) != 2 || ns[1].Kind != tilecast.KindTile {
				t.Fatalf("raw notifications %+v, %v", ns, err)
			}
			raw, err := RunRawFanOutWith(t.Context(), s.URIs, ns, opts)
			if err != nil || raw.Notifications != 40 || s.Received() != 80 {
				t.Fatalf("raw = %+v, %v; sink received %d, want 80", raw, err, s.Received())
			}
			cost, err := WebPushCryptoCost(s.URIs[0], ns, 3)
			if err != nil || cost.Encrypt <= 0 || cost.Authorization <= 0 {
				t.Fatalf("crypto cost %+v, %v", cost, err)
			}
		})
	}
}
