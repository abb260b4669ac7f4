#!/usr/bin/env bash
# check-unit.sh — checks contrib/systemd/tilecast.service as systemd would
# load it, without systemd running as PID 1 (.ci/run calls it):
#   - systemd-analyze security: exposure must be ≤ 2.0;
#   - systemd-analyze verify: no problem at all. A freshly built tilecast
#     stands in for /usr/local/bin/tilecast (verify wants the executables
#     to exist); any other line verify prints fails the check.
set -euo pipefail
cd "$(dirname "$0")/.."
unit=contrib/systemd/tilecast.service
if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "check-unit: systemd-analyze not found; install systemd to run this check (Debian: apt-get install systemd)" >&2
  exit 1
fi
out=$(systemd-analyze security --offline=yes "$unit" 2>&1)
score=$(printf '%s\n' "$out" | sed -n 's/.*Overall exposure level for tilecast.service: \([0-9.]*\).*/\1/p')
if [ -z "$score" ]; then
  printf '%s\n' "$out" | tail -5
  echo "check-unit: could not read the exposure level" >&2
  exit 1
fi
echo "check-unit: exposure $score (limit 2.0)"
awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }' || { echo "check-unit: exposure $score > 2.0" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/tilecast" ./cmd/tilecast
mkdir "$tmp/unit"
sed "s#/usr/local/bin/tilecast#$tmp/tilecast#g" "$unit" >"$tmp/unit/tilecast.service"
if ! out=$(cd "$tmp/unit" && systemd-analyze verify --man=no ./tilecast.service 2>&1) || [ -n "$out" ]; then
  printf '%s\n' "$out" >&2
  echo "check-unit: systemd-analyze verify reported problems" >&2
  exit 1
fi
echo "check-unit: systemd-analyze verify ok"
