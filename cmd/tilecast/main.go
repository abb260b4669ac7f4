// Command tilecast is the feed-to-push daemon and its operator tools: run,
// once, check, status, channels, outcomes, backup, state, preview, send, vapid,
// emulate, demo and version.
// This package only parses flags and wires the concrete parts (config,
// fetch, notify, store) into a tilecast.Bot.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at link time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit codes (design.md §4).
const (
	exitOK      = 0
	exitRuntime = 1
	exitUsage   = 2
)

// usageError marks errors that exit with code 2 (bad flags, bad config).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// env is what every command gets: arguments and the standard streams.
type env struct {
	args   []string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	// health, when set, replaces the daemon's health limits: tests
	// outlast them in seconds rather than minutes.
	health *healthLimits
}

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, e env) error
}

func commands() []command {
	return []command{
		{"run", "run the daemon (systemd Type=notify)", cmdRun},
		{"once", "fetch now, deliver until nothing is due, exit", cmdOnce},
		{"check", "validate the config; print each feed and its next 5 run times", cmdCheck},
		{"status", "feeds, channels, outbox, dead letters", cmdStatus},
		{"channels", "manage channels: list | add | remove | import", cmdChannels},
		{"outcomes", "the delivery ledger: one entry per send, last 7 days", cmdOutcomes},
		{"backup", "write a consistent, checked snapshot of the state file", cmdBackup},
		{"state", "copy a whole state between a bbolt file and PostgreSQL: state copy --from --to", cmdState},
		{"preview", "fetch a feed now and print the payloads that would be sent", cmdPreview},
		{"send", "send (or --dry-run print) one notification to a channel URI", cmdSend},
		{"vapid", "Web Push's VAPID key: generate | public", cmdVAPID},
		{"emulate", "run the local MPNS, WNS and Web Push emulator with its phone view", cmdEmulate},
		{"demo", "everything on embedded defaults: emulator, sample feed, daemon", cmdDemo},
		{"version", "print the version", cmdVersion},
	}
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return runEnv(ctx, env{args: args, stdin: stdin, stdout: stdout, stderr: stderr})
}

// runEnv is run with e passed on to the command (its args less the
// command's name), so that tests running the daemon as the command line
// does can shorten its health limits (env.health).
func runEnv(ctx context.Context, e env) int {
	args, stdout, stderr := e.args, e.stdout, e.stderr
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printUsage(stdout)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		sub := e
		sub.args = args[1:]
		err := c.run(ctx, sub)
		switch {
		case err == nil, errors.Is(err, flag.ErrHelp):
			return exitOK
		case errors.As(err, new(usageError)):
			fmt.Fprintln(stderr, "tilecast:", err)
			return exitUsage
		default:
			fmt.Fprintln(stderr, "tilecast:", err)
			return exitRuntime
		}
	}
	fmt.Fprintf(stderr, "tilecast: unknown command %q\n\n", args[0])
	printUsage(stderr)
	return exitUsage
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "Usage: tilecast COMMAND [flags]   (tilecast COMMAND --help for its flags)")
	fmt.Fprintln(w)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
}

// newFlags returns a flag set that reports errors instead of exiting and
// prints its usage to stdout on --help.
func newFlags(e env, name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprintf(out, "Usage: tilecast %s\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args; --help prints usage to stdout and returns flag.ErrHelp.
func parseFlags(fs *flag.FlagSet, e env, args []string) error {
	for _, a := range args {
		if a == "-h" || a == "--help" || a == "-help" {
			fs.SetOutput(e.stdout)
			fs.Usage()
			return flag.ErrHelp
		}
	}
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	return nil
}

// stringList is a repeatable string flag (--feed a --feed b).
type stringList []string

func (s *stringList) String() string     { return fmt.Sprint(*s) }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func cmdVersion(ctx context.Context, e env) error {
	fs := newFlags(e, "version", "version")
	if err := parseFlags(fs, e, e.args); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, "tilecast", version)
	return nil
}
