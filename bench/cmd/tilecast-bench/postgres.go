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
// tracer counted for the enqueue and the delivery. Each run is followed
// by the same fan-out on bbolt (a state file in dir, copied from the same
// template in copyChunk writes) against the same sink, each with its own
// two-sided raw baseline, so the two stores are compared in one sitting.
func pgFanOut(ctx context.Context, state, kind string, transport tilecast.Transport, counts, rr []int, conc int, dir, bdir string,
	copyChunk, instances, topStatements int, pgSettings []string) error {
	base := state
	if !postgres.IsURL(state) {
		if state != "postgres" {
			return fmt.Errorf("fanout -state: want bbolt, postgres or a postgres:// URL, got %q", state)
		}
		settings := pgSettings
		if topStatements > 0 {
			settings = append(settings, "shared_preload_libraries=pg_stat_statements")
		}
		u, stop, err := pgtest.Start(true, settings...)
		if err != nil {
			return err
		}
		defer func() { _ = stop() }()
		base = u
		fmt.Printf("PostgreSQL: a throw-away cluster (initdb, unix socket, fsync/synchronous_commit/full_page_writes on, shared_buffers 256MB%s)\n",
			map[bool]string{true: ", pg_stat_statements loaded", false: ""}[topStatements > 0])
		for _, kv := range pgSettings {
			fmt.Printf("PostgreSQL setting: %s\n", kv)
		}
	} else {
		if len(pgSettings) > 0 {
			return fmt.Errorf("fanout -pg-setting: only for the bench's own cluster (-state postgres)")
		}
		fmt.Printf("PostgreSQL: %s\n", postgres.Redact(state))
	}
	pm := postmasterPID(ctx, base)
	if topStatements > 0 {
		if err := pgExec(ctx, base, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"); err != nil {
			return fmt.Errorf("fanout -pg-statements: %w", err)
		}
	}
	rawNs, err := bench.RawNotificationsFor(transport)
	if err != nil {
		return err
	}
	fmt.Printf("transport %s: %d notifications per channel; statements counted by pgx tracers on the pools (queries, batched queries, COPY, BEGIN/COMMIT)\n\n",
		transport, len(rawNs))
	fmt.Printf("| N | instances | runs | tilecast notif/s (median) | raw notif/s (median) | ratio (median of per-run ratios) | bbolt notif/s, same sitting (median) | bbolt ratio | statements per notification: enqueue | delivery + recording | commit phase | deliver phase | CPU per notification: tilecast | PostgreSQL server (postmaster and its backends) | sink |\n")
	fmt.Printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
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
			var tc, raw, ratio, enq, del, commit, deliver, cpuTC, cpuPG, cpuSink, bolt, boltRatio []float64
			rawBase, err := newRawBaseline(func() (bench.FanOutResult, error) {
				return bench.RunRawFanOutWith(ctx, uris, rawNs, opts)
			})
			if err != nil {
				return err
			}
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
				if topStatements > 0 {
					if err := pgExec(ctx, base, "SELECT pg_stat_statements_reset()"); err != nil {
						_ = drop()
						return err
					}
				}
				c0, pg0 := cpuNow(sinkPid), postgresCPU(pm)
				res, err := bench.RunFanOutPG(ctx, dbURL, opts, instances)
				c1, pg1 := cpuNow(sinkPid), postgresCPU(pm)
				if err == nil && topStatements > 0 {
					err = printTopStatements(ctx, base, topStatements, res.Notifications)
				}
				_ = drop()
				if err != nil {
					return err
				}
				fmt.Fprintf(os.Stderr, "  outcomes per instance: %v (instance rows %d)\n", res.PerInstance, res.InstanceRows)
				for name, st := range res.Store {
					fmt.Fprintf(os.Stderr, "  store %s: %d calls, %d items, %s\n", name, st.Calls, st.Items, st.Time.Round(time.Millisecond))
				}
				rawRate, rres, err := rawBase.after()
				if err != nil {
					return err
				}
				perN := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(max(res.Notifications, 1)) }
				cpuTC = append(cpuTC, perN(c1.self-c0.self))
				cpuPG = append(cpuPG, perN(pg1-pg0))
				cpuSink = append(cpuSink, perN(c1.sink-c0.sink))
				tc = append(tc, res.PerSecond())
				raw = append(raw, rawRate)
				ratio = append(ratio, res.PerSecond()/rawRate)
				enq = append(enq, res.EnqueuePerNotification())
				del = append(del, res.DeliverPerNotification())
				commit = append(commit, res.Commit.Seconds())
				deliver = append(deliver, res.Deliver.Seconds())
				fmt.Fprintf(os.Stderr, "N=%d run %d: tilecast on PostgreSQL %d in %s (commit %s, deliver %s) = %.0f/s; raw %.0f/s (before %.0f, after %.0f); ratio %.2f; statements: enqueue %d (%.3f/notification), delivery %d (%.3f/notification)\n",
					n, run+1, res.Notifications, res.Elapsed.Round(time.Millisecond), res.Commit.Round(time.Millisecond),
					res.Deliver.Round(time.Millisecond), res.PerSecond(), rawRate, rawBase.before, rres.PerSecond(), res.PerSecond()/rawRate,
					res.EnqueueStatements, res.EnqueuePerNotification(), res.DeliverStatements, res.DeliverPerNotification())

				// bbolt next to it: same template, sink and options.
				path, err := freshState(dir, tmpl, copyChunk)
				if err != nil {
					return err
				}
				bres, err := bench.RunFanOutWith(ctx, path, opts)
				if err != nil {
					return err
				}
				boltBase, braw, err := rawBase.after()
				if err != nil {
					return err
				}
				bolt = append(bolt, bres.PerSecond())
				boltRatio = append(boltRatio, bres.PerSecond()/boltBase)
				fmt.Fprintf(os.Stderr, "N=%d run %d: tilecast on bbolt %d in %s = %.0f/s; raw %.0f/s (before %.0f, after %.0f); ratio %.2f\n",
					n, run+1, bres.Notifications, bres.Elapsed.Round(time.Millisecond), bres.PerSecond(), boltBase, rawBase.before,
					braw.PerSecond(), bres.PerSecond()/boltBase)
			}
			fmt.Printf("| %d | %d | %d | %.0f | %.0f | %.2f | %.0f | %.2f | %.3f | %.3f | %.2f s | %.2f s | %.0f µs | %.0f µs | %.0f µs |\n",
				n, instances, r, median(tc), median(raw), median(ratio), median(bolt), median(boltRatio), median(enq), median(del), median(commit), median(deliver),
				median(cpuTC), median(cpuPG), median(cpuSink))
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

// pgExec runs one statement on a connection of its own.
func pgExec(ctx context.Context, base, sql string) error {
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("%s: %w", sql, err)
	}
	return nil
}

// printTopStatements prints (stderr) the n statements with the most
// server execution time since the last pg_stat_statements_reset, as a
// markdown table, with their share of the run's notifications.
func printTopStatements(ctx context.Context, base string, n, notifications int) error {
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	var total float64
	var calls int64
	if err := conn.QueryRow(ctx, `SELECT coalesce(sum(total_exec_time), 0), coalesce(sum(calls), 0) FROM pg_stat_statements`).Scan(&total, &calls); err != nil {
		return fmt.Errorf("pg_stat_statements: %w", err)
	}
	rows, err := conn.Query(ctx, `SELECT calls, total_exec_time, mean_exec_time, rows,
			left(regexp_replace(query, '\s+', ' ', 'g'), 200)
		FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT $1`, n)
	if err != nil {
		return fmt.Errorf("pg_stat_statements: %w", err)
	}
	defer rows.Close()
	fmt.Fprintf(os.Stderr, "  pg_stat_statements: %d calls, %.0f ms executing (%.0f µs per notification); top %d:\n",
		calls, total, total*1000/float64(max(notifications, 1)), n)
	fmt.Fprintf(os.Stderr, "  | calls | total ms | mean ms | rows | µs per notification | statement |\n  |---|---|---|---|---|---|\n")
	for rows.Next() {
		var c, r int64
		var tot, mean float64
		var q string
		if err := rows.Scan(&c, &tot, &mean, &r, &q); err != nil {
			return fmt.Errorf("pg_stat_statements: %w", err)
		}
		fmt.Fprintf(os.Stderr, "  | %d | %.0f | %.3f | %d | %.1f | `%s` |\n", c, tot, mean, r, tot*1000/float64(max(notifications, 1)), q)
	}
	return rows.Err()
}
