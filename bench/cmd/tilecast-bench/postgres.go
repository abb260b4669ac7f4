package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/bench"
	"github.com/tilecast/tilecast/internal/pgtest"
	"github.com/tilecast/tilecast/store/postgres"
)

// pgFanOut is `fanout -state postgres|URL`: the fan-out of cmdFanOut on
// PostgreSQL, each run on a fresh copy of the template state in a schema
// of its own, with the statements per notification the store's pgx
// tracer counted for the enqueue and the delivery.
func pgFanOut(ctx context.Context, state, kind string, transport tilecast.Transport, counts, rr []int, conc int, bdir string) error {
	base := state
	if !postgres.IsURL(state) {
		if state != "postgres" {
			return fmt.Errorf("fanout -state: want bbolt, postgres or a postgres:// URL, got %q", state)
		}
		u, stop, err := pgtest.Start(true)
		if err != nil {
			return err
		}
		defer func() { _ = stop() }()
		base = u
		fmt.Println("PostgreSQL: a throw-away cluster (initdb, unix socket, fsync/synchronous_commit/full_page_writes on, shared_buffers 256MB)")
	} else {
		fmt.Printf("PostgreSQL: %s\n", postgres.Redact(state))
	}
	pm := postmasterPID(ctx, base)
	rawNs, err := bench.RawNotificationsFor(transport)
	if err != nil {
		return err
	}
	fmt.Printf("transport %s: %d notifications per channel; statements counted by pgx tracers on the pools (queries, batched queries, COPY, BEGIN/COMMIT)\n\n",
		transport, len(rawNs))
	fmt.Printf("| N | runs | tilecast notif/s (median) | raw notif/s (median) | ratio (median of per-run ratios) | statements per notification: enqueue | delivery + recording | commit phase | deliver phase | CPU per notification: tilecast | PostgreSQL server (postmaster and its backends) |\n")
	fmt.Printf("|---|---|---|---|---|---|---|---|---|---|---|\n")
	for i, n := range counts {
		r := rr[min(i, len(rr)-1)]
		uris, sinkPid, stopSink, err := startSinkProcess(kind, transport, n, bdir)
		if err != nil {
			return err
		}
		err = func() error {
			defer stopSink()
			opts := bench.FanOutOptions{Concurrency: conc, Transport: transport}
			if transport == tilecast.TransportWNS {
				opts.TokenURL = bench.TokenURLOf(uris[0])
			}
			tmpl := filepath.Join(bdir, fmt.Sprintf("template-%d.db", n))
			if err := bench.BuildFanOutStateFor(tmpl, uris, transport); err != nil {
				return err
			}
			var tc, raw, ratio, enq, del, commit, deliver, cpuTC, cpuPG []float64
			for run := range r {
				schema := fmt.Sprintf("bench_%d_%d_%d", n, run, time.Now().UnixNano())
				dbURL, drop, err := bench.NewSchema(ctx, base, schema)
				if err != nil {
					return err
				}
				t0 := time.Now()
				if err := bench.CopyStateToPG(ctx, tmpl, dbURL); err != nil {
					_ = drop()
					return err
				}
				fmt.Fprintf(os.Stderr, "N=%d run %d: state copied into schema %s in %s\n", n, run+1, schema, time.Since(t0).Round(time.Millisecond))
				c0, pg0 := cpuNow(sinkPid), postgresCPU(pm)
				res, err := bench.RunFanOutPG(ctx, dbURL, opts)
				c1, pg1 := cpuNow(sinkPid), postgresCPU(pm)
				_ = drop()
				if err != nil {
					return err
				}
				for name, st := range res.Store {
					fmt.Fprintf(os.Stderr, "  store %s: %d calls, %d items, %s\n", name, st.Calls, st.Items, st.Time.Round(time.Millisecond))
				}
				rres, err := bench.RunRawFanOutWith(ctx, uris, rawNs, opts)
				if err != nil {
					return err
				}
				perN := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(max(res.Notifications, 1)) }
				cpuTC = append(cpuTC, perN(c1.self-c0.self))
				cpuPG = append(cpuPG, perN(pg1-pg0))
				tc = append(tc, res.PerSecond())
				raw = append(raw, rres.PerSecond())
				ratio = append(ratio, res.PerSecond()/rres.PerSecond())
				enq = append(enq, res.EnqueuePerNotification())
				del = append(del, res.DeliverPerNotification())
				commit = append(commit, res.Commit.Seconds())
				deliver = append(deliver, res.Deliver.Seconds())
				fmt.Fprintf(os.Stderr, "N=%d run %d: tilecast on PostgreSQL %d in %s (commit %s, deliver %s) = %.0f/s; raw %.0f/s; ratio %.2f; statements: enqueue %d (%.3f/notification), delivery %d (%.3f/notification)\n",
					n, run+1, res.Notifications, res.Elapsed.Round(time.Millisecond), res.Commit.Round(time.Millisecond),
					res.Deliver.Round(time.Millisecond), res.PerSecond(), rres.PerSecond(), res.PerSecond()/rres.PerSecond(),
					res.EnqueueStatements, res.EnqueuePerNotification(), res.DeliverStatements, res.DeliverPerNotification())
			}
			fmt.Printf("| %d | %d | %.0f | %.0f | %.2f | %.3f | %.3f | %.2f s | %.2f s | %.0f µs | %.0f µs |\n",
				n, r, median(tc), median(raw), median(ratio), median(enq), median(del), median(commit), median(deliver),
				median(cpuTC), median(cpuPG))
			return nil
		}()
		if err != nil {
			return err
		}
	}
	return nil
}

// postmasterPID returns the PID of the server at base when it runs on
// this machine (the parent of a backend), else 0: its CPU is not measured.
func postmasterPID(ctx context.Context, base string) int {
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return 0
	}
	defer conn.Close(context.Background())
	var backend int
	if err := conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&backend); err != nil {
		return 0
	}
	pp, err := bench.ParentPID(backend)
	if err != nil {
		return 0
	}
	return pp
}

// postgresCPU is the CPU time of the server with postmaster pid (0: not
// measured), with its backends' (bench.TreeCPUTicks).
func postgresCPU(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	t, err := bench.TreeCPUTicks(pid)
	if err != nil {
		return 0
	}
	return time.Duration(t) * 10 * time.Millisecond
}
