#!/bin/sh
# test.sh — README's test command: installs what the tests need when it is
# missing (Debian's chromium for the browser tests, Debian's postgresql for
# the PostgreSQL store's tests, which start a throw-away cluster of their
# own and never rely on Debian's service), then runs every test under the
# race detector, in a shuffled order (-shuffle) so that a test that only
# passes after another one fails. The seed is printed first; a failure
# is reproduced with the same order by TILECAST_TEST_SHUFFLE=SEED.
# Extra arguments go to `go test` (e.g. -run X).
# TILECAST_TEST_POSTGRES=postgres://… runs the PostgreSQL tests on that
# server instead.
#
#   scripts/test.sh
#   scripts/test.sh -run TestDashboard ./web/
#   TILECAST_TEST_SHUFFLE=1767225600 scripts/test.sh ./store/
set -eu
cd "$(dirname "$0")/.."

need=""
command -v chromium >/dev/null 2>&1 || need="$need chromium"
if [ -z "${TILECAST_TEST_POSTGRES:-}" ] && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
	need="$need postgresql"
fi
if [ -n "$need" ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "test.sh: the tests need Debian packages:$need" >&2
		echo "test.sh: run as root, or install them first: sudo apt-get install -y$need" >&2
		exit 2
	fi
	echo "test.sh: installing$need" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# shellcheck disable=SC2086 # a list of package names
	apt-get install -y -qq $need >/dev/null
fi

if [ $# -eq 0 ]; then
	set -- ./...
fi
# -shuffle=SEED: go test shows the seed ("-test.shuffle N") only in the
# output of a failing package or with -v, so it is chosen here and printed
# first. One seed for every package: each shuffles its own tests with it.
seed=${TILECAST_TEST_SHUFFLE:-$(date +%s)}
case $seed in
'' | *[!0-9]*)
	echo "test.sh: TILECAST_TEST_SHUFFLE=$seed is not a number" >&2
	exit 2
	;;
esac
echo "test.sh: go test -shuffle=$seed (the same order again: TILECAST_TEST_SHUFFLE=$seed scripts/test.sh)" >&2
# -timeout 30m: the outbox drain test sends 100,000 waiting notifications, a few
# minutes under -race on a small machine.
exec go test -race -shuffle="$seed" -timeout 30m "$@"
