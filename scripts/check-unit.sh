#!/usr/bin/env bash
# Checks contrib/systemd/tilecast.service: systemd-analyze security exposure
# must be ≤ 2.0 (reliability.md §5, D1). Skips with a notice only where
# systemd-analyze does not exist (it ships with systemd on Debian).
set -euo pipefail
cd "$(dirname "$0")/.."
unit=contrib/systemd/tilecast.service
if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "check-unit: systemd-analyze not found; install systemd to run this check" >&2
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
# verify: only the missing binary may be reported.
if systemd-analyze verify "$unit" 2>&1 | grep -v 'is not executable' | grep -q .; then
  systemd-analyze verify "$unit" >&2 || true
  echo "check-unit: systemd-analyze verify reported problems" >&2
  exit 1
fi
