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
)

func cmdEmulate(ctx context.Context, e env) error {
	fs := newFlags(e, "emulate", "emulate [--listen ADDR] [--host NAME]...")
	listen := fs.String("listen", "127.0.0.1:8461", "address to listen on")
	var hosts stringList
	fs.Var(&hosts, "host", "a further host name the emulator answers to, e.g. a container's (repeatable; IP addresses and localhost always work)")
	if err := parseFlags(fs, e, e.args); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(e.stderr, nil))
	_, url, stop, err := startEmulator(*listen, log, hosts...)
	if err != nil {
		return err
	}
	defer stop()
	fmt.Fprintf(e.stdout, "MPNS emulator on %s\n  phone view:      %s/\n  create channels: curl -X POST -d '{\"behaviour\":\"healthy\",\"name\":\"my phone\"}' %s/channels\n",
		url, url, url)
	<-ctx.Done()
	return nil
}

// startEmulator serves a new emulator on addr and returns its base URL and
// a stop function. hosts are further host names it answers to besides IP
// addresses and localhost (emulator.Options.Hosts).
func startEmulator(addr string, log *slog.Logger, hosts ...string) (*emulator.Emulator, string, func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", nil, fmt.Errorf("emulator: %w", err)
	}
	base := "http://" + ln.Addr().String()
	emu := emulator.New(emulator.Options{Logger: log.With("component", "emulator"), BaseURL: base, Hosts: hosts})
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
