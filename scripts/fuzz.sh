#!/usr/bin/env bash
# fuzz.sh runs every Go fuzz target in the module, one at a time, for a
# given time each, and stops at the first failure.
#
#   scripts/fuzz.sh          10s per target (a quick pass)
#   scripts/fuzz.sh 5m       the long run
#   FUZZ_FILTER=fetch scripts/fuzz.sh 1m     only packages whose path matches
#
# Minimisation is off by default (-fuzzminimizetime 0): on a small machine
# the fuzzer can spend its whole budget minimising "interesting" inputs.
# A crasher is still written to testdata/fuzz/<Target>/ for `go test` to
# replay; set FUZZ_MINIMIZE=30s to minimise it.
set -euo pipefail

fuzztime="${1:-10s}"
minimize="${FUZZ_MINIMIZE:-0}"
filter="${FUZZ_FILTER:-}"

cd "$(dirname "$0")/.."

# "dir target" pairs, sorted, from every func FuzzXxx(f *testing.F).
mapfile -t targets < <(
	grep -rE --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*\(f \*testing\.F\)' . |
		sed -E 's|^(.*)/[^/]+_test\.go:func (Fuzz[A-Za-z0-9_]*)\(.*$|\1 \2|' |
		sort -u
)
if [ "${#targets[@]}" -eq 0 ]; then
	echo "fuzz.sh: no fuzz targets found" >&2
	exit 1
fi

summary=()
for entry in "${targets[@]}"; do
	dir="${entry% *}"
	name="${entry#* }"
	if [ -n "$filter" ] && [[ "$dir" != *"$filter"* ]]; then
		continue
	fi
	echo "=== $dir $name ($fuzztime)"
	log="$(mktemp)"
	if ! go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" -fuzzminimizetime "$minimize" "$dir" 2>&1 | tee "$log"; then
		echo "fuzz.sh: $dir $name FAILED (crasher saved under $dir/testdata/fuzz/$name/)" >&2
		rm -f "$log"
		exit 1
	fi
	execs="$(grep -oE 'execs: [0-9]+' "$log" | tail -1 | awk '{print $2}')"
	rm -f "$log"
	summary+=("$(printf '%-22s %-28s execs %s' "$dir" "$name" "${execs:-?}")")
done

echo
echo "fuzz.sh: all targets passed ($fuzztime each)"
printf '  %s\n' "${summary[@]}"
