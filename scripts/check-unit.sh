#!/usr/bin/env bash
# check-unit.sh — checks contrib/systemd/tilecast.service and the template
# contrib/systemd/tilecast@.service (several instances on one host) as
# systemd would load them, without systemd running as PID 1 (.ci/run
# calls it):
#   - systemd-analyze security: exposure must be ≤ 2.0 for each;
#   - systemd-analyze verify: no problem at all. A freshly built tilecast
#     stands in for /usr/local/bin/tilecast (verify wants the executables
#     to exist); any other line verify prints fails the check. The
#     template is verified as an instance, tilecast@a.service, since a
#     template is only ever started as one (%i expanded);
#   - the template carries exactly the main unit's LoadCredential= lines,
#     commented ones included: its DynamicUser can no more read the
#     root-only secrets in /etc/tilecast than the main unit's, and README
#     tells operators of both the same credential names.
set -euo pipefail
cd "$(dirname "$0")/.."
main=contrib/systemd/tilecast.service
template=contrib/systemd/tilecast@.service
if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "check-unit: systemd-analyze not found; install systemd to run this check (Debian: apt-get install systemd)" >&2
  exit 1
fi

# security NAME FILE: the exposure of FILE, which systemd-analyze reports
# under NAME (a template under its instance "i").
security() {
  local name=$1 file=$2 out score
  out=$(systemd-analyze security --offline=yes "$file" 2>&1)
  score=$(printf '%s\n' "$out" | sed -n "s/.*Overall exposure level for $name: \([0-9.]*\).*/\1/p")
  if [ -z "$score" ]; then
    printf '%s\n' "$out" | tail -5
    echo "check-unit: could not read the exposure level of $file" >&2
    exit 1
  fi
  echo "check-unit: $file exposure $score (limit 2.0)"
  awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }' || { echo "check-unit: $file exposure $score > 2.0" >&2; exit 1; }
}
security tilecast.service "$main"
security 'tilecast@i.service' "$template"

creds() { grep -E '^#?LoadCredential=' "$1" || true; }
if [ -z "$(creds "$main")" ]; then
  echo "check-unit: $main has no LoadCredential= line" >&2
  exit 1
fi
if ! diff <(creds "$main") <(creds "$template") >/dev/null; then
  diff -u --label "$main" --label "$template" <(creds "$main") <(creds "$template") >&2 || true
  echo "check-unit: $template must carry the LoadCredential= lines of $main (above: what differs)" >&2
  exit 1
fi
echo "check-unit: $template has the LoadCredential= lines of $main"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/tilecast" ./cmd/tilecast
mkdir "$tmp/unit"
sed "s#/usr/local/bin/tilecast#$tmp/tilecast#g" "$main" >"$tmp/unit/tilecast.service"
sed "s#/usr/local/bin/tilecast#$tmp/tilecast#g" "$template" >"$tmp/unit/tilecast@.service"
# systemd-analyze finds the template next to the instance named.
for u in tilecast.service tilecast@a.service; do
  if ! out=$(cd "$tmp/unit" && systemd-analyze verify --man=no "./$u" 2>&1) || [ -n "$out" ]; then
    printf '%s\n' "$out" >&2
    echo "check-unit: systemd-analyze verify reported problems in $u" >&2
    exit 1
  fi
  echo "check-unit: systemd-analyze verify $u ok"
done
