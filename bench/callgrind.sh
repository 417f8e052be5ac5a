#!/usr/bin/env bash
# Instruction counts that the machine's noise cannot move: each operation of
# bench/callgrind (raw RS256 verify, cold check, warm check, a forward-auth
# request through the sidecar handler in-process) runs
# n times under valgrind --tool=callgrind, counting only main.measure, with
# GOGC=off and GOMAXPROCS=1 (run to run the counts agree within about 1 %).
#
#   bash bench/callgrind.sh            # compare with bench/callgrind.txt; fails on > 10 % growth
#   UPDATE=1 bash bench/callgrind.sh   # rewrite bench/callgrind.txt with this run's counts
#
# Run by bench/run.sh, not by scripts/test.sh. Needs valgrind
# (apt-get install -y valgrind).
set -euo pipefail
cd "$(dirname "$0")/.."

LIMIT_PCT="${LIMIT_PCT:-10}"
committed=bench/callgrind.txt
command -v valgrind >/dev/null || { echo "callgrind.sh: valgrind is not installed (apt-get install -y valgrind)" >&2; exit 2; }
mkdir -p bench/bin
go build -o bench/bin/callgrind ./bench/callgrind

# operation, iterations counted
ops="raw 40
cold 40
warm 2000
fwdauth 200"

declare -A got
while read -r op n; do
  total=$(GOGC=off GOMAXPROCS=1 GODEBUG=asyncpreemptoff=1 valgrind --tool=callgrind \
    --toggle-collect=main.measure --callgrind-out-file=/dev/null bench/bin/callgrind "$op" "$n" 2>&1 |
    awk '/Collected :/{print $4}')
  [ -n "$total" ] || { echo "callgrind.sh: no count for $op" >&2; exit 1; }
  got[$op]=$((total / n))
done <<<"$ops"

echo "| operation | instructions | committed | change |"
echo "| --- | ---: | ---: | ---: |"
fail=0
while read -r op n; do
  want=$(awk -v op="$op" '$1 == op {print $2}' "$committed" 2>/dev/null || true)
  if [ -z "$want" ]; then
    echo "| $op | ${got[$op]} | - | - |"
    continue
  fi
  pct=$(awk -v g="${got[$op]}" -v w="$want" 'BEGIN{printf "%+.1f %%", (g-w)*100/w}')
  echo "| $op | ${got[$op]} | $want | $pct |"
  if awk -v g="${got[$op]}" -v w="$want" -v l="$LIMIT_PCT" 'BEGIN{exit !(g > w*(1+l/100))}'; then
    echo "callgrind.sh: $op grew by more than ${LIMIT_PCT} %: ${got[$op]} instructions, committed $want" >&2
    fail=1
  fi
done <<<"$ops"
awk -v r="${got[raw]}" -v c="${got[cold]}" 'BEGIN{printf "\ncold / raw, by instructions: %.3f\n", c/r}'

if [ "${UPDATE:-}" = 1 ]; then
  {
    echo "# Instructions per operation, bench/callgrind.sh ($(valgrind --version), $(go version | cut -d' ' -f3), commit $(git rev-parse --short HEAD))."
    echo "# A rerun fails when one grows by more than 10 %. Rewrite with UPDATE=1 bash bench/callgrind.sh."
    while read -r op n; do echo "$op ${got[$op]}"; done <<<"$ops"
  } >"$committed"
  echo "written: $committed"
  exit 0
fi
exit "$fail"
