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
# database, kill -9 of one at a time — TestKillRunInstances (feed ticks to
# 1,000 phones, KILLS / 10 rounds, at least 20) and TestKillRunFanOuts
# (2,000 phones, KILLS / 20 fan-outs, at least 10, two kills each); in
# both every 25th phone starts near its daily cap. At KILLS 50 (CI) that
# is -kill-rounds=20 -fanout-waves=10, about 2.5 minutes. Loopback only.
#
#   scripts/crash.sh          # short run, as in CI (5 fan-out kills; 20 rounds, 10 fan-outs)
#   scripts/crash.sh 1000     # long run (about 20 minutes, then an estimated 13 for
#                             # the instances: 100 rounds, 50 fan-outs; 100 fan-out kills)
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
# The multi-instance rounds grow with KILLS too, from the short run's
# 20 rounds and 10 fan-outs (about 80 s and 70 s at KILLS 50).
rounds=$((kills / 10))
if [ "$rounds" -lt 20 ]; then
	rounds=20
fi
waves=$((kills / 20))
if [ "$waves" -lt 10 ]; then
	waves=10
fi
# A round takes up to 5.5 s and its items' sends, a fan-out 5–10 s; leave
# room for the builds and the drains.
timeout=$((rounds * 10 + waves * 20 + 300))s
exec go test -tags crash -count=1 -v -timeout "$timeout" -run 'TestKillRun' ./internal/multitest -kill-rounds="$rounds" -fanout-waves="$waves"
