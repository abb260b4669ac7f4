// Package bench is tilecast's performance harness: the fan-out, feed-tick and
// footprint scenarios of the "Performance" issue, each with the plain
// net/http baseline it is compared against, and the `go test -bench` entry
// points. Everything talks to loopback servers only (the emulator or a
// minimal MPNS sink, and a generated feed server).
//
// Heavy runs live behind -bench (bench_test.go) or the tilecast-bench
// command (cmd/tilecast-bench, driven by scripts/bench.sh); the package's
// plain tests are small smoke checks that time nothing.
package bench
