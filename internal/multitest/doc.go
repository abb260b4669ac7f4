// Package multitest runs several tilecast instances on one PostgreSQL
// state (design.md §10): Bots in the test process and, for crashes, the
// test binary re-run as a separate instance that kills itself mid
// fan-out. The feeds are real RSS on a loopback server, the pushes go to
// the project's MPNS emulator, and the database is a throw-away cluster
// (internal/pgtest). The tests show that each feed tick is fetched once
// however many instances run it, that instances share deliveries without
// sending one twice, that instances all resuming the same interrupted
// paged delivery enqueue each page once, and that what a killed instance
// leased is delivered by another once its lease ends, with the duplicates
// within its send window and counted, and that a channel's daily cap is
// exact however many instances send to it (TestDailyCapExactAcrossInstances).
//
// TestKillRunInstances (build tag crash, like internal/crashtest) runs
// three real `tilecast run` processes on one database and kill -9s one at
// a time for -kill-rounds rounds while a feed gains an item a second for
// -kill-phones phones (1,000); TestKillRunFanOuts does the same at scale,
// 2,000 phones and two kills in each of -fanout-waves fan-outs. Both check
// each phone's toasts item by item and its duplicates from a record of
// what reached it (pushLog), and in both every 25th phone starts with
// 0–5 sends left of its daily cap: it must get no more, and the rest
// must wait for midnight, not be dropped (checkCaps). scripts/crash.sh
// runs both; CI (scripts/crash.sh 50) with
//
//	go test -tags crash ./internal/multitest -run KillRun -kill-rounds=20 -fanout-waves=10
//
// about 80 s and 70 s on 2 cores; scripts/crash.sh KILLS raises both
// for a long run (KILLS / 10 rounds, KILLS / 20 fan-outs). The flags'
// defaults (4 and 4) are a quick local run.
package multitest
