#!/bin/sh
# Runs tilecast's performance benchmarks (see BENCHMARKS.md). Heavy: minutes.
# Usage: scripts/bench.sh [outdir]   (RUNS_100K=1 for a single run at 100k channels)
set -eu
cd "$(dirname "$0")/.."
out=${1:-bench-out}
mkdir -p "$out"
go build -o "$out/tilecast-bench" ./bench/cmd/tilecast-bench
go build -o "$out/tilecast" ./cmd/tilecast
{
  echo "nproc: $(nproc)"
  grep -m1 'model name' /proc/cpuinfo
  go version
} > "$out/machine.txt"
"$out/tilecast-bench" fanout -n 1000,10000,100000 -runs "5,5,${RUNS_100K:-5}" > "$out/fanout.md" 2> "$out/fanout.log"
# The other transports: WNS (toast, tile and badge, with access tokens
# from the sink's token endpoint) and Web Push (encrypted and signed per
# request in both loops; the crypto cost per notification is reported).
"$out/tilecast-bench" fanout -transport wns -n 10000,100000 -runs "5,${RUNS_100K:-5}" > "$out/fanout-wns.md" 2> "$out/fanout-wns.log"
"$out/tilecast-bench" fanout -transport webpush -n 10000,100000 -runs "5,${RUNS_100K:-5}" > "$out/fanout-webpush.md" 2> "$out/fanout-webpush.log"
# The same fan-out on a throw-away PostgreSQL cluster (durable settings),
# with SQL statements per notification.
"$out/tilecast-bench" fanout -state postgres -n 10000,100000 -runs "3,${RUNS_100K:-5}" > "$out/fanout-postgres.md" 2> "$out/fanout-postgres.log"
# Three delivering instances (in one process, a pool and instance row
# each) on the same 2 cores: contention, not scaling.
"$out/tilecast-bench" fanout -state postgres -instances 3 -n 10000,100000 -runs "3,${RUNS_100K:-5}" > "$out/fanout-postgres-3.md" 2> "$out/fanout-postgres-3.log"
# What a commit's pages cost this disk (fdatasync per page), apart from bbolt.
"$out/tilecast-bench" sync > "$out/sync.md"
"$out/tilecast-bench" tick -f 1000,5000 -runs 5 > "$out/tick.md" 2> "$out/tick.log"
"$out/tilecast-bench" retention -feeds 500 -days 90 > "$out/retention.md" 2> "$out/retention.log"
"$out/tilecast-bench" idle -tilecast "$out/tilecast" -f 1000 -window "${IDLE_WINDOW:-5m}" > "$out/idle.md" 2> "$out/idle.log"
go test -run '^$' -bench 'Build|Diff|FeedState304|CommitUnchanged|Subscribers10k' -benchmem ./bench/ > "$out/micro.txt"
go test -run '^$' -bench . -benchmem ./store/ ./notify/... > "$out/micro-store-notify.txt"
# /healthz and /metrics at 1,000 and at 1,000,000 channels: the same cost.
go test -run '^$' -bench 'HealthzMetrics' -benchmem ./web/ > "$out/healthz-metrics.txt"
cat "$out/machine.txt" "$out/fanout.md" "$out/fanout-wns.md" "$out/fanout-webpush.md" "$out/fanout-postgres.md" "$out/fanout-postgres-3.md" "$out/sync.md" "$out/tick.md" "$out/retention.md" "$out/idle.md" "$out/micro.txt" "$out/healthz-metrics.txt"
