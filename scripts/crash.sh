#!/bin/sh
# crash.sh [KILLS] — reliability.md S1: SIGKILL the real tilecast binary
# KILLS times (default 50) at random moments, restarting it each time, and
# check that nothing is lost, duplicates stay within the sends in flight
# and the state file passes bbolt's check after every kill. Also runs the
# failpoint (S2), first-open (S4), second-instance (S6), corrupt-file (S7)
# and disk-full (S5, needs root for a tmpfs) tests. Loopback only.
#
#   scripts/crash.sh          # short run, as in CI
#   scripts/crash.sh 1000     # long run (about 15 minutes)
set -eu
cd "$(dirname "$0")/.."
kills="${1:-50}"
# Each kill takes up to 1.5 s plus a restart; leave room for the drain.
timeout=$((kills * 3 + 300))s
# S5 mounts a tmpfs: root only.
skip=""
if [ "$(id -u)" != 0 ]; then
	skip="-skip=TestDiskFull"
	echo "crash.sh: not root, leaving out TestDiskFull (S5)" >&2
fi
exec go test -tags crash -count=1 -v -timeout "$timeout" $skip ./internal/crashtest -kills="$kills"
