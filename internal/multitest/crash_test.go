package multitest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/internal/logtest"
	"github.com/tilecast/tilecast/internal/pgtest"
	"github.com/tilecast/tilecast/store/postgres"
)

// The environment of a child instance: envChild makes the test binary one
// (TestMain), with the state's URL, its push concurrency and the send
// after which it kills itself.
const (
	envChild       = "TILECAST_MULTITEST_CHILD"
	envChildURL    = "TILECAST_MULTITEST_URL"
	envChildConc   = "TILECAST_MULTITEST_CONCURRENCY"
	envChildKillAt = "TILECAST_MULTITEST_KILL_AT"
)

// childLease is the lease of the instance that is killed: short, so the
// survivor takes its entries over within the test, and still a dozen
// heartbeats long, so a loaded machine does not end it while the
// instance lives (that would be a duplicate no kill made).
const childLease = 3 * time.Second

// child is an instance that delivers the outbox and kill -9s itself
// right after its nth send (tilecast.FailAfterSend), with sends of its
// other workers in flight and outcomes unrecorded. Its exit code 3 says
// it ran out of work before that.
func child() int {
	conc, _ := strconv.Atoi(os.Getenv(envChildConc))
	killAt, _ := strconv.Atoi(os.Getenv(envChildKillAt))
	db, err := postgres.Open(context.Background(), os.Getenv(envChildURL), postgres.Options{
		Instance: os.Getenv(envChild), Lease: childLease, LeaseBatch: 2 * conc})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	bot := newBot(nilTB{}, db, conc, os.Stderr)
	var sends atomic.Int64
	bot.Failpoint = func(point string) {
		if point == tilecast.FailAfterSend && sends.Add(1) == int64(killAt) {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
	}
	if err := bot.DeliverDue(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 3
}

// nilTB lets the child use the tests' constructors; nothing in them fails
// for a Bot built from valid options.
type nilTB struct{ testing.TB }

func (nilTB) Helper()               {}
func (nilTB) Fatal(args ...any)     { fmt.Fprintln(os.Stderr, args...); os.Exit(1) }
func (nilTB) Cleanup(f func())      {}
func (nilTB) Fatalf(string, ...any) { os.Exit(1) }

// An instance killed (SIGKILL) in the middle of a fan-out, while another
// delivers too: every phone gets its toast; the duplicates are at most
// the killed instance's send window (2 × push.concurrency), and the
// survivor counts at least as many possible duplicates from the leases
// the dead one left, and not more than it could have leased.
func TestKillOneInstance(t *testing.T) {
	const (
		conc   = 4
		phoneN = 400
		rounds = 3
	)
	for round := range rounds {
		t.Run(fmt.Sprint("round", round), func(t *testing.T) {
			url := pgtest.New(t)
			emu := newEmulator(t)
			var dups atomic.Int64
			survivor := openInstance(t, url, "survivor", postgres.Options{LeaseBatch: 2 * conc,
				PossibleDuplicates: func(n int) { dups.Add(int64(n)) }})
			ps := phones(t, emu, survivor, phoneN)
			enqueueToasts(t, survivor, 1)

			cmd := exec.Command(os.Args[0])
			cmd.Env = append(os.Environ(), envChild+"=doomed", envChildURL+"="+url,
				envChildConc+"="+strconv.Itoa(conc), envChildKillAt+"="+strconv.Itoa(40+round*37))
			out := &logtest.Buffer{}
			cmd.Stdout, cmd.Stderr = out, out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// The survivor starts when the doomed instance is sending.
			waitFor(t, "the doomed instance to send", func() bool { return received(emu, ps) > 10 })
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var wg sync.WaitGroup
			bot := newBot(t, survivor, conc, &logtest.Buffer{})
			wg.Go(func() {
				if err := bot.Deliver(ctx); err != nil {
					t.Error(err)
				}
			})
			err := cmd.Wait()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("the doomed instance was not killed mid fan-out: %v\n%s", err, out.String())
			}
			waitFor(t, "every phone's toast", func() bool {
				for _, p := range ps {
					if st, _ := emu.Channel(p.Token); st.Counts.Received == 0 {
						return false
					}
				}
				return true
			})
			// Let anything still leased go out before counting.
			waitFor(t, "an empty outbox", func() bool { c, _ := survivor.Counts(); return c.OutboxDepth == 0 })
			cancel()
			wg.Wait()
			extra := received(emu, ps) - phoneN
			t.Logf("round %d: %d duplicates, %d possible duplicates counted", round, extra, dups.Load())
			if extra > 2*conc {
				t.Errorf("%d duplicates, more than the killed instance's send window %d", extra, 2*conc)
			}
			if n := dups.Load(); n < int64(extra) || n > 4*conc {
				t.Errorf("%d possible duplicates counted for %d duplicates: want at least those and at most %d (window + a lease batch)",
					n, extra, 4*conc)
			}
			ins, err := survivor.Instances()
			if err != nil || len(ins) != 2 || ins[0].ID != "doomed" || ins[0].Alive || ins[0].Leases != 0 || !ins[1].Alive {
				t.Errorf("Instances = %+v, %v; want the doomed one dead without leases, the survivor alive", ins, err)
			}
		})
	}
}
