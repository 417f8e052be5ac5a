#!/usr/bin/env bash
# The full performance run (README "Performance", BENCHMARKS.md). Loopback only.
#   bash bench/run.sh                 # everything (about 12 minutes on 2 cores)
#   DURATION=5s TOKENS=100000 bash bench/run.sh   # shorter
# Writes bench/results/<UTC timestamp>.md and prints it. The comparison with
# oauth2-proxy is a separate run: bash bench/peers/run.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-10s}"
TOKENS="${TOKENS:-1000000}"
COUNT="${COUNT:-6}"
ROUNDS="${ROUNDS:-5}" # open-loop latency rounds (median and worst p99 added are reported)
BENCHSTAT_VERSION=v0.0.0-20250813145418-2f7363a06fe1

mkdir -p bench/results bench/bin
rm -f bench/results/callgrind.failed
out="bench/results/$(date -u +%Y%m%dT%H%M%SZ).md"

export GOBIN="$PWD/bench/bin"
[ -x bench/bin/benchstat ] || go install "golang.org/x/perf/cmd/benchstat@${BENCHSTAT_VERSION}"
go build -o bench/bin/keycloak-jwt-sidecar ./cmd/keycloak-jwt-sidecar
go build -o bench/bin/loadbench ./bench/loadbench

{
  echo "# Benchmark run $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo
  echo "- machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem:/{print $2}') GiB"
  echo "- $(go version)"
  echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo
  echo "## 1. Engine (go test -bench, count=${COUNT}, benchstat)"
  echo
  echo '```'
  go test -run '^$' -bench . -benchmem -count "$COUNT" ./policy/ > bench/results/engine.txt
  bench/bin/benchstat bench/results/engine.txt
  echo '```'
  echo
  echo "## 1b. Instruction counts (valgrind --tool=callgrind; fails on > 10 % growth against bench/callgrind.txt)"
  echo
  bash bench/callgrind.sh || echo "callgrind.sh failed" > bench/results/callgrind.failed
  echo
  echo "## 2. Kong plugin through the plugin-server socket (baseline = same PDK calls, no checks)"
  echo
  echo '```'
  go test -run '^$' -bench PluginSocket -benchtime 3000x -count 6 ./plugin/ > bench/results/plugin.txt
  bench/bin/benchstat bench/results/plugin.txt
  echo '```'
  echo
  bench/bin/loadbench run -sidecar bench/bin/keycloak-jwt-sidecar -duration "$DURATION" -tokens "$TOKENS" -rounds "$ROUNDS"
} | tee "$out"
echo
echo "written: $out"
if [ -e bench/results/callgrind.failed ]; then
  echo "run.sh: an instruction count grew by more than 10 % (section 1b)" >&2
  exit 1
fi
