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
	fs := newFlags(e, "emulate", "emulate [--listen ADDR] [--host NAME]... [--wns-client-id ID --wns-client-secret-file FILE [--wns-token-ttl D]]")
	listen := fs.String("listen", "127.0.0.1:8461", "address to listen on")
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
	_, url, stop, err := startEmulatorWith(*listen, log, opts)
	if err != nil {
		return err
	}
	defer stop()
	fmt.Fprintf(e.stdout, "MPNS, WNS and Web Push emulator on %s\n  phone view:      %s/\n  create channels: curl -X POST -d '{\"behaviour\":\"healthy\",\"name\":\"my phone\"}' %s/channels\n",
		url, url, url)
	fmt.Fprintf(e.stdout, "  Windows devices: curl -X POST -d '{\"transport\":\"wns\",\"behaviour\":\"healthy\",\"name\":\"my PC\"}' %s/channels\n", url)
	fmt.Fprintf(e.stdout, "  browsers:        curl -X POST -d '{\"transport\":\"webpush\",\"behaviour\":\"healthy\",\"name\":\"my laptop\"}' %s/channels\n", url)
	if *wnsID != "" {
		fmt.Fprintf(e.stdout, "  WNS token_url:   %s%s (classic), %s%s (Entra ID)\n", url, emulator.WNSClassicTokenPath, url, emulator.WNSEntraTokenPath("TENANT"))
	} else {
		fmt.Fprintf(e.stdout, "  WNS tokens:      off (start with --wns-client-id and --wns-client-secret-file)\n")
	}
	<-ctx.Done()
	return nil
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
	opts.Logger, opts.BaseURL = log.With("component", "emulator"), base
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
