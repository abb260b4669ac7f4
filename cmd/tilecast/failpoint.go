package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/tilecast/tilecast"
)

// failpointEnv names the variable the crash tests set to make the daemon die
// at one of the Bot's commit boundaries (reliability.md S2):
//
//	TILECAST_FAILPOINT=POINT:ACTION[@N]
//
// POINT is one of after-fetch, after-commit, after-send, after-record (the
// Bot's boundaries) or in-commit, in-record, in-migrate (inside the store's
// Commit and Record transactions and a migration's batches; use exit or
// kill there, see store.Options.Failpoint).
// ACTION is panic (an unrecovered panic unless the scheduler's recovery
// catches it), exit (os.Exit(3) at once: no deferred calls, no flush), kill
// (SIGKILL to itself) or hang (the goroutine that hit POINT blocks for
// good while the process lives on: a stuck feed run or deliverer, which
// the health check and the systemd watchdog must notice, reliability.md
// D3).
// @N fires on the Nth hit of POINT only (default 1).
const failpointEnv = "TILECAST_FAILPOINT"

// exitFailpoint is the exit code of the exit action, distinct from the
// command's own codes so a test can tell the failpoint fired.
const exitFailpoint = 3

// failpointAction is what a hit failpoint does.
type failpointAction string

const (
	failPanic failpointAction = "panic"
	failExit  failpointAction = "exit"
	failKill  failpointAction = "kill"
	failHang  failpointAction = "hang"
)

// failpointSpec is a parsed TILECAST_FAILPOINT.
type failpointSpec struct {
	point  string
	action failpointAction
	nth    int64
}

// parseFailpoint parses POINT:ACTION[@N].
func parseFailpoint(s string) (failpointSpec, error) {
	point, rest, ok := strings.Cut(s, ":")
	if !ok {
		return failpointSpec{}, fmt.Errorf("%s=%q: want POINT:ACTION[@N]", failpointEnv, s)
	}
	switch point {
	case tilecast.FailAfterFetch, tilecast.FailAfterCommit, tilecast.FailAfterSend, tilecast.FailAfterRecord,
		tilecast.FailInCommit, tilecast.FailInRecord, tilecast.FailInMigrate:
	default:
		return failpointSpec{}, fmt.Errorf("%s: unknown point %q", failpointEnv, point)
	}
	action, nth, hasN := strings.Cut(rest, "@")
	sp := failpointSpec{point: point, action: failpointAction(action), nth: 1}
	switch sp.action {
	case failPanic, failExit, failKill, failHang:
	default:
		return failpointSpec{}, fmt.Errorf("%s: unknown action %q (panic, exit, kill or hang)", failpointEnv, action)
	}
	if hasN {
		n, err := strconv.ParseInt(nth, 10, 64)
		if err != nil || n < 1 {
			return failpointSpec{}, fmt.Errorf("%s: @%s is not a hit count ≥ 1", failpointEnv, nth)
		}
		sp.nth = n
	}
	return sp, nil
}

// hook returns the Bot.Failpoint function of sp. It counts the hits of its
// point and acts on the nth; the message on w tells a test it fired.
func (sp failpointSpec) hook(w io.Writer, exit func(int), kill, hang func()) func(string) {
	var hits atomic.Int64
	return func(point string) {
		if point != sp.point || hits.Add(1) != sp.nth {
			return
		}
		fmt.Fprintf(w, "tilecast: failpoint %s hit %d: %s\n", point, sp.nth, sp.action)
		switch sp.action {
		case failPanic:
			panic("failpoint " + point)
		case failExit:
			exit(exitFailpoint)
		case failKill:
			kill()
		case failHang:
			hang()
		}
	}
}

// failpointFromEnv returns the failpoint hook TILECAST_FAILPOINT asks for,
// or nil when it is unset (the normal case: the Bot then skips the calls).
// A malformed value stops the process with exit code 2: a crash test whose
// failpoint silently never fires would pass for the wrong reason.
func failpointFromEnv() func(string) {
	v := os.Getenv(failpointEnv)
	if v == "" {
		return nil
	}
	sp, err := parseFailpoint(v)
	if err != nil {
		fmt.Fprintln(os.Stderr, "tilecast:", err)
		os.Exit(exitUsage)
	}
	return sp.hook(os.Stderr, os.Exit, killSelf, hangForever)
}

// hangForever blocks the calling goroutine for as long as the process
// lives.
func hangForever() { select {} }

// killSelf sends SIGKILL to this process (Process.Kill is SIGKILL on Unix)
// and parks the calling goroutine until the signal lands, so nothing after
// the failpoint runs in it.
func killSelf() {
	if p, err := os.FindProcess(os.Getpid()); err == nil {
		_ = p.Kill()
	}
	select {}
}
