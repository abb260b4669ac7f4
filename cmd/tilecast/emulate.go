package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/tilecast/tilecast/emulator"
	"github.com/tilecast/tilecast/notify/wns"
)

func cmdEmulate(ctx context.Context, e env) error {
	fs := newFlags(e, "emulate", "emulate [--listen ADDR] [--state FILE] [--host NAME]... [--wns-client-id ID --wns-client-secret-file FILE [--wns-token-ttl D]]\n\n"+
		"Plays MPNS, WNS and a Web Push service with the phones, Windows devices and\n"+
		"browsers behind them. Create a device with its JSON API (the answer holds the\n"+
		"channel URI to register with tilecast, e.g. `tilecast channels add --uri URI`):\n"+
		"  curl -X POST -d '{\"behaviour\":\"healthy\",\"name\":\"my phone\"}' http://ADDR/channels\n"+
		"  curl -X POST -d '{\"transport\":\"wns\",\"name\":\"my PC\"}' http://ADDR/channels\n"+
		"  curl -X POST -d '{\"transport\":\"webpush\",\"name\":\"my laptop\"}' http://ADDR/channels\n"+
		"The body's \"behaviour\" (default healthy) decides how the device answers and\n"+
		"its params tune that (left out or 0: the default in brackets).\n"+
		"POST /channels/TOKEN/behaviour {\"behaviour\":B, params} changes it (without\n"+
		"params it keeps the current ones); POST /channels/TOKEN/expire makes a phone\n"+
		"expired, a Windows device revoked and a browser expired.\n"+
		"\n"+
		"Phones (MPNS: no \"transport\", or \"mpns\"); params queuefull_n, flaky_p,\n"+
		"slow_ms, https:\n"+
		"  healthy       200 Received / Active / Connected\n"+
		"  expired       404 Dropped / Expired / Disconnected (the app was uninstalled)\n"+
		"  inactive      412 Dropped / - / InActive\n"+
		"  queuefull     200 QueueFull for the first queuefull_n pushes [3], then healthy\n"+
		"  suppressed    200 Suppressed / Active / Connected (the phone did not show it)\n"+
		"  flaky         503 with probability flaky_p [0.5], otherwise healthy\n"+
		"  slow          waits slow_ms [2000] ms, then healthy\n"+
		"  A phone takes 500 pushes a UTC day, then 406, unless \"https\":true made it\n"+
		"  an authenticated channel.\n"+
		"Windows devices (\"transport\":\"wns\"; a push without a valid access token\n"+
		"from the token endpoint gets 401); params throttle_n, throttle_status,\n"+
		"continue_after, flaky_p, slow_ms:\n"+
		"  healthy       200 received\n"+
		"  revoked       410 (the channel expired)\n"+
		"  unknown       404 (WNS does not know the channel)\n"+
		"  throttled     the first throttle_n pushes [3] get throttle_status [406]\n"+
		"                (or 429, or 200 with X-WNS-Status channelthrottled) and\n"+
		"                X-WNS-CONTINUE-AFTER: continue_after [5]; then healthy\n"+
		"  wrongapp      403 (the channel belongs to another app)\n"+
		"  flaky         503 with probability flaky_p [0.5], otherwise healthy\n"+
		"  slow          waits slow_ms [2000] ms, then healthy\n"+
		"Browsers (\"transport\":\"webpush\"; a push needs VAPID and aes128gcm);\n"+
		"params flaky_p, slow_ms, retry_after_s, application_server_key (the VAPID\n"+
		"public key the page subscribed with: a push signed with another gets 403):\n"+
		"  healthy       201, delivered at once\n"+
		"  offline       201, held until the behaviour changes; a held message is\n"+
		"                dropped when its TTL runs out and replaced by a newer one\n"+
		"                with the same Topic\n"+
		"  unsubscribed  410 (the user revoked the permission)\n"+
		"  expired       404 (the subscription expired)\n"+
		"  ratelimited   429 with Retry-After: retry_after_s [30]\n"+
		"  flaky         503 with probability flaky_p [0.5], otherwise healthy\n"+
		"  slow          waits slow_ms [2000] ms, then healthy\n"+
		"\n"+
		"The phone view at http://ADDR/ updates live; add ?poll\n"+
		"(http://ADDR/?poll) for headless browsers and screenshots, which otherwise wait\n"+
		"on the live-update stream forever.\n"+
		"Without --state the devices live in memory only: after a restart every channel\n"+
		"tilecast knows answers \"Expired\" (404) and the daemon deletes it. With --state\n"+
		"they are saved to FILE as they change and loaded at start (keep --listen the same:\n"+
		"the channel URIs name it).\n")
	listen := fs.String("listen", "127.0.0.1:8461", "address to listen on")
	statePath := fs.String("state", "", "file that keeps the devices across restarts (\"\": memory only)")
	var hosts stringList
	fs.Var(&hosts, "host", "a further host name the emulator answers to, e.g. a container's (repeatable; IP addresses and localhost always work)")
	wnsID := fs.String("wns-client-id", "", "the WNS client id its token endpoints accept (a package SID \"ms-app://…\" or an Azure app id); without it they refuse every token request")
	wnsSecretFile := fs.String("wns-client-secret-file", "", "file holding the WNS client secret its token endpoints accept (with --wns-client-id)")
	wnsTTL := fs.Duration("wns-token-ttl", emulator.DefaultWNSTokenTTL, "how long a WNS access token it issues lasts")
	if err := parseFlags(fs, e, e.args); err != nil {
		return err
	}
	opts := emulator.Options{Hosts: hosts, WNSClientID: *wnsID, WNSTokenTTL: *wnsTTL}
	switch {
	case *wnsTTL <= 0:
		return usagef("emulate: --wns-token-ttl must be > 0")
	case (*wnsID == "") != (*wnsSecretFile == ""):
		return usagef("emulate: give --wns-client-id and --wns-client-secret-file together")
	case *wnsSecretFile != "":
		secret, err := wns.ReadSecret(*wnsSecretFile)
		if err != nil {
			return usagef("emulate: %v", err)
		}
		opts.WNSClientSecret = secret
	}
	log := slog.New(slog.NewTextHandler(e.stderr, nil))
	emu, url, stop, err := startEmulatorWith(*listen, log, opts)
	if err != nil {
		return err
	}
	defer stop()
	if *statePath != "" {
		if err := emu.LoadFile(*statePath); err != nil {
			return err
		}
		saved := emu.Version()
		save := func() {
			if v := emu.Version(); v != saved {
				if err := emu.SaveFile(*statePath); err != nil {
					log.Error("save emulator state", "file", *statePath, "error", err.Error())
					return
				}
				saved = v
			}
		}
		defer save()
		go func() {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					save()
				}
			}
		}()
	}
	fmt.Fprintf(e.stdout, "MPNS, WNS and Web Push emulator on %s\n  phone view:      %s/ (add ?poll for headless browsers and screenshots)\n  create channels: curl -X POST -d '{\"behaviour\":\"healthy\",\"name\":\"my phone\"}' %s/channels\n",
		url, url, url)
	fmt.Fprintf(e.stdout, "  Windows devices: curl -X POST -d '{\"transport\":\"wns\",\"behaviour\":\"healthy\",\"name\":\"my PC\"}' %s/channels\n", url)
	fmt.Fprintf(e.stdout, "  browsers:        curl -X POST -d '{\"transport\":\"webpush\",\"behaviour\":\"healthy\",\"name\":\"my laptop\"}' %s/channels\n", url)
	if *wnsID != "" {
		fmt.Fprintf(e.stdout, "  WNS token_url:   %s%s (classic), %s%s (Entra ID)\n", url, emulator.WNSClassicTokenPath, url, emulator.WNSEntraTokenPath("TENANT"))
	} else {
		fmt.Fprintf(e.stdout, "  WNS tokens:      off (start with --wns-client-id and --wns-client-secret-file)\n")
	}
	switch {
	case *statePath != "":
		fmt.Fprintf(e.stdout, "  state:           %s (%d devices; saved as they change)\n", *statePath, devices(emu))
	default:
		fmt.Fprintf(e.stdout, "  state:           memory only: after a restart tilecast's channels answer Expired and are deleted (--state FILE keeps them)\n")
	}
	<-ctx.Done()
	return nil
}

func devices(emu *emulator.Emulator) int {
	return len(emu.Channels()) + len(emu.WindowsDevices()) + len(emu.Browsers())
}

// startEmulatorWith serves a new emulator with opts on addr and returns
// it, its base URL and a stop function (opts' Logger and BaseURL are set
// here).
func startEmulatorWith(addr string, log *slog.Logger, opts emulator.Options) (*emulator.Emulator, string, func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", nil, fmt.Errorf("emulator: %w", err)
	}
	base := "http://" + ln.Addr().String()
	opts.Logger, opts.BaseURL = log, base // the emulator adds component=emulator itself
	emu := emulator.New(opts)
	srv := &http.Server{Handler: emu.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("emulator stopped", "error", err.Error())
		}
	}()
	stop := func() {
		emu.Close() // ends the phone view's event streams so Shutdown does not wait on them
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}
	return emu, base, stop, nil
}
