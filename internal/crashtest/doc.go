// Package crashtest holds tilecast's crash and kill tests (reliability.md
// S1, S2, S4, S5, S6, S7): they build the real binary, run it against a
// loopback feed server and the MPNS emulator (in the test process, which
// counts every delivery per channel, item and kind), kill it at random or
// at its failpoints, restart it and check that nothing was lost, that
// duplicates stay within the sends in flight at each kill and that the
// state file passes bbolt's check every time.
//
// TestDiskFull (S5, root only) fills the state file's tmpfs under the
// running daemon and checks that the same process, not restarted,
// delivers everything once space is freed, and that
// tilecast_store_errors_total counted every failed write.
//
// TestKillFanOut kills it during fan-outs to thousands of phones and holds
// each kill's duplicates to 2 × push.concurrency (design.md §1).
//
// The tests need the `crash` build tag (they are slow):
//
//	go test -tags crash ./internal/crashtest -run Kill -kills=50 -fanout-kills=5
//	scripts/crash.sh 1000
package crashtest
