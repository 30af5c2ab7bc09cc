#!/usr/bin/env bash
# Runs every `pglock bench` scenario (release build, throwaway server) and keeps the JSON
# reports in bench-results/, for BENCHMARKS.md. Run it on a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product pglock
mkdir -p bench-results
pglock=.build/release/pglock
run() { local name=$1; shift; echo "== $name: pglock bench $*" >&2; "$pglock" bench "$@" --json > "bench-results/$name.json"; }
run lock          lock --duration 10s --warmup 2s
run lock-unnamed  lock --duration 10s --warmup 2s --no-prepared-statements --no-driver-ceiling
run lock-1        lock --duration 10s --warmup 2s --concurrency 1 --no-driver-ceiling
run lock-session  lock-session --duration 10s --warmup 2s
run many-keys     many-keys --duration 10s --warmup 2s
run counter       counter --duration 10s --warmup 2s
run counter-unnamed counter --strategy counter-row --duration 10s --warmup 2s --no-prepared-statements
run queue         queue --duration 10s --warmup 2s
run ingest        ingest --duration 10s --warmup 2s
run ingest-2x200  ingest --duration 10s --warmup 2s --concurrency 2 --batch-size 200
echo "reports in bench-results/" >&2
