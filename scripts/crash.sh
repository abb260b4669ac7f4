#!/bin/sh
# crash.sh [KILLS [FANOUT_KILLS]] — crash safety: SIGKILL the real
# tilecast binary KILLS times (default 50) at random moments, restarting it
# each time, and check that nothing is lost, duplicates stay within the
# sends in flight and the state file passes bbolt's check after every kill.
# TestKillFanOut then kills it FANOUT_KILLS times (default KILLS / 10, at
# least 5) in the middle of a fan-out to 3,000 phones at push.concurrency
# 32, and checks each kill's duplicates against 2 × push.concurrency. Also
# runs the failpoint (a stop at each commit boundary), first-open,
# second-instance, corrupt-file and disk-full (needs root for a tmpfs)
# tests. Then the multi-instance crash tests on PostgreSQL
# (internal/multitest, tag crash): three `tilecast run` instances on one
# database, kill -9 of one at a time — TestKillRunInstances (feed ticks,
# 4 rounds) and TestKillRunFanOuts (2,000 phones, 4 fan-outs, 8 kills;
# about a minute). Loopback only.
#
#   scripts/crash.sh          # short run, as in CI (5 fan-out kills)
#   scripts/crash.sh 1000     # long run (about 20 minutes; 100 fan-out kills)
set -eu
cd "$(dirname "$0")/.."
kills="${1:-50}"
fanout_kills="${2:-$((kills / 10))}"
if [ "$fanout_kills" -lt 5 ]; then
	fanout_kills=5
fi
# Each kill takes up to 1.5 s plus a restart, a fan-out kill a few
# seconds; leave room for the drains.
timeout=$((kills * 3 + fanout_kills * 10 + 300))s
# The disk-full test mounts a tmpfs: root only.
skip=""
if [ "$(id -u)" != 0 ]; then
	skip="-skip=TestDiskFull"
	echo "crash.sh: not root, leaving out TestDiskFull (it mounts a tmpfs)" >&2
fi
go test -tags crash -count=1 -v -timeout "$timeout" $skip ./internal/crashtest -kills="$kills" -fanout-kills="$fanout_kills"
exec go test -tags crash -count=1 -v -timeout 10m -run 'TestKillRun' ./internal/multitest
