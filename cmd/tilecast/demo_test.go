package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tilecast/tilecast/emulator"
	"github.com/tilecast/tilecast/internal/logtest"
)

// TestDemo runs the demo as README tells a newcomer to, for a few seconds,
// and checks what the phone view shows and what the log says.
func TestDemo(t *testing.T) {
	stdout, stderr := &logtest.Buffer{}, &logtest.Buffer{}
	done := make(chan int, 1)
	go func() {
		done <- run(context.Background(), []string{"demo", "--seconds", "16", "--every", "2s"}, strings.NewReader(""), stdout, stderr)
	}()
	re := regexp.MustCompile(`phone view: (http://\S+)/`)
	waitFor(t, "the phone view URL", func() bool { return re.MatchString(stdout.String()) })
	url := re.FindStringSubmatch(stdout.String())[1]
	tmp := regexp.MustCompile(`state in (\S+)`).FindStringSubmatch(stdout.String())[1]

	var phones struct {
		Phones []emulator.ChannelState `json:"phones"`
	}
	// While it runs: the healthy phones show toasts and a tile.
	waitFor(t, "toasts and tiles on the healthy phones", func() bool {
		resp, err := http.Get(url + "/state.json")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		phones.Phones = nil
		if json.NewDecoder(resp.Body).Decode(&phones) != nil {
			return false
		}
		ok := 0
		for _, p := range phones.Phones {
			if p.Behaviour == emulator.Healthy && len(p.Toasts) > 0 && p.Tile.Kind != "" {
				ok++
			}
		}
		return ok == 3
	})
	// The inbox feed's tile is a secondary tile (/Inbox.xaml): the news
	// feed keeps the primary one.
	secondary := 0
	for _, p := range phones.Phones {
		if st, ok := p.Secondary["/Inbox.xaml"]; ok && st.Kind == "IconicTile" {
			secondary++
		}
		if p.Tile.Kind == "IconicTile" {
			t.Errorf("%s: the inbox overwrote the primary tile", p.Name)
		}
	}
	if secondary != 2 {
		waitFor(t, "the inbox's secondary tile on alice's and bob's phones", func() bool {
			resp, err := http.Get(url + "/state.json")
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			phones.Phones = nil
			if json.NewDecoder(resp.Body).Decode(&phones) != nil {
				return false
			}
			n := 0
			for _, p := range phones.Phones {
				if _, ok := p.Secondary["/Inbox.xaml"]; ok {
					n++
				}
			}
			return n == 2
		})
	}
	// The dashboard and API run on loopback with the printed admin key.
	m := regexp.MustCompile(`dashboard: +(http://\S+)/ \(log in with the admin key (\S+),`).FindStringSubmatch(stdout.String())
	if m == nil {
		t.Fatalf("demo prints no dashboard URL and key:\n%s", stdout.String())
	}
	for _, path := range []string{"/", "/v1/status"} {
		req, _ := http.NewRequest(http.MethodGet, m[1]+path, nil)
		req.Header.Set("Authorization", "Bearer "+m[2])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("GET %s with the printed key: %d", path, resp.StatusCode)
		}
	}
	if !strings.Contains(stdout.String(), url+"/?poll for headless browsers") {
		t.Errorf("demo does not name the ?poll URL:\n%s", stdout.String())
	}
	if !strings.Contains(stdout.String(), "retried after 3s, 6s, 12s") {
		t.Errorf("demo does not say why retries come after seconds:\n%s", stdout.String())
	}
	for _, p := range phones.Phones {
		if len(p.Rejected) > 0 {
			t.Errorf("emulator rejected pushes to %s: %+v", p.Name, p.Rejected)
		}
	}
	// The Windows devices: both show toasts, a Start tile in four sizes
	// and a badge while the channel lives; the phone view renders them.
	var view struct {
		Windows []struct {
			emulator.WindowsState
			StartHTML        string `json:"start_html"`
			ActionCenterHTML string `json:"action_center_html"`
		} `json:"windows"`
	}
	waitFor(t, "toasts, tiles and badges on the Windows devices", func() bool {
		resp, err := http.Get(url + "/state.json")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		view.Windows = nil
		if json.NewDecoder(resp.Body).Decode(&view) != nil || len(view.Windows) != 2 {
			return false
		}
		for _, w := range view.Windows {
			if len(w.Toasts) == 0 || len(w.Tile.Sizes) != 4 || w.Badge == "" || w.StartHTML == "" || w.ActionCenterHTML == "" {
				return false
			}
		}
		return true
	})
	for _, w := range view.Windows {
		if len(w.Rejected) > 0 || w.Counts.Unauthorized > 0 {
			t.Errorf("emulator refused pushes to %s: %+v (401s: %d)", w.Name, w.Rejected, w.Counts.Unauthorized)
		}
	}
	// The browsers: notifications and the app badge from the tile's count.
	var browsers struct {
		Browsers []emulator.BrowserState `json:"browsers"`
	}
	waitFor(t, "notifications and badges in the browsers", func() bool {
		resp, err := http.Get(url + "/state.json")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		browsers.Browsers = nil
		if json.NewDecoder(resp.Body).Decode(&browsers) != nil || len(browsers.Browsers) != 2 {
			return false
		}
		for _, b := range browsers.Browsers {
			if len(b.Notifications) == 0 || b.Badge <= 0 || b.Tile == nil {
				return false
			}
		}
		return true
	})
	for _, b := range browsers.Browsers {
		if len(b.Rejected) > 0 {
			t.Errorf("emulator refused pushes to %s: %+v", b.Name, b.Rejected)
		}
	}
	select {
	case code := <-done:
		if code != exitOK {
			t.Fatalf("demo exited %d:\n%s", code, stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("demo did not stop after --seconds")
	}
	logs := stderr.String()
	for _, want := range []string{"outcome=channel_removed", "outcome=delivered", "kind=tile", "kind=toast", "feed=inbox user=alice",
		"device_id=alice-phone", "device_id=alice-pc", "device_id=uninstalled-app"} {
		if !strings.Contains(logs, want) {
			t.Errorf("demo log lacks %q", want)
		}
	}
	// WNS lines: delivered with WNS's ids, badges, and the expiring
	// device's channel removed after its 410.
	for _, re := range []string{`kind=badge .*outcome=delivered .*transport=wns msg_id=\w+`,
		`status=410 .*outcome=channel_removed .*transport=wns`,
		`kind=toast .*status=201 .*outcome=delivered .*transport=webpush`,
		`status=410 .*outcome=channel_removed .*transport=webpush`} {
		if !regexp.MustCompile(re).MatchString(logs) {
			t.Errorf("demo log has no line matching %s", re)
		}
	}
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Errorf("demo left its temp dir %s behind (err %v)", tmp, err)
	}
}
