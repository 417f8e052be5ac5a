#!/usr/bin/env bash
# The project's one test command (README: "Quickstart", step 2; .ci/run runs it).
# Fails on the first failure. Installs nothing by hand: the interop tests run
# `npm ci` for the pinned oidc-provider themselves.
set -euo pipefail
cd "$(dirname "$0")/.."

# A count, not a duration: with a duration, Go 1.26's fuzz coordinator can
# report a bare "context deadline exceeded" failure at the end of the time
# (golang/go#75804, fixed in Go 1.27); a count never arms that deadline.
FUZZTIME="${FUZZTIME:-50000x}"

# Progress: each step is announced with the time since the start, and ends
# with its own duration (the whole run takes minutes: README, "Development").
step_name="" step_start=$SECONDS
step() {
  [ -z "$step_name" ] || echo "   $step_name: $((SECONDS - step_start))s"
  step_name=$1 step_start=$SECONDS
  printf '== %s   [%dm%02ds]\n' "$1" $((SECONDS / 60)) $((SECONDS % 60))
}

# The Go modules: the product, then interop/ (the offline interop checks, a
# module of its own so that their dependencies stay out of the product's
# go.mod). Every go step below runs in each.
modules=(. interop)

step "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path '*/node_modules/*'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

step "go vet"
for m in "${modules[@]}"; do go -C "$m" vet ./...; done

step "staticcheck (pinned)"
for m in "${modules[@]}"; do go -C "$m" run honnef.co/go/tools/cmd/staticcheck@v0.7.0 ./...; done

step "real peers from Debian's packages (installed when missing)"
# command package: php-cli is the PHP upstream of sidecar/hostile_test.go,
# chromium the browser of e2e/browser (driven by playwright-core from npm),
# nginx-light the nginx in front of the sidecar in e2e/nginx (auth_request).
missing=""
apt_need() { command -v "$1" >/dev/null 2>&1 || missing="$missing $2"; }
apt_need php php-cli
apt_need chromium chromium
apt_need nginx nginx-light
apt_need redis-server redis-server
if [ -n "$missing" ]; then
  echo "installing:$missing"
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >/dev/null
fi
php -v | head -n 1
chromium --version
"$(command -v nginx || echo /usr/sbin/nginx)" -v

step "Keycloak (real, for e2e/keycloak: scripts/keycloak.sh; the first run downloads it with Maven)"
trap 'bash scripts/keycloak.sh stop || true' EXIT
bash scripts/keycloak.sh start
eval "$(bash scripts/keycloak.sh env)"

step "go test -race"
testlog=$(mktemp)
trap 'rm -f "$testlog"; bash scripts/keycloak.sh stop || true' EXIT
for m in "${modules[@]}"; do
  # -json through scripts/gotest-progress.py: each package is reported as it
  # finishes, with its time (go test's text output waits for the packages
  # listed before it); a failing package's output is printed in full.
  go -C "$m" test -json -race -count=1 -timeout 30m ./... 2>&1 | python3 scripts/gotest-progress.py | tee -a "$testlog"
  test "${PIPESTATUS[0]}" -eq 0 || { echo "go test failed"; exit 1; }
done
passed=$(grep -c '^ok' "$testlog" || true)
bash scripts/keycloak.sh stop

step "fuzz (each target ${FUZZTIME})"
for file in $(grep -rl --include='*_test.go' '^func Fuzz' . | grep -v node_modules | sort); do
  pkg="./$(dirname "${file#./}")"
  mod=. rel=$pkg # the module of the package, and its path there
  for m in "${modules[@]:1}"; do
    if [[ $pkg/ == ./$m/* ]]; then mod=$m rel=".${pkg#./$m}"; fi
  done
  for target in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$file" | sed 's/^func //'); do
    echo "-- $pkg $target"
    if ! go -C "$mod" test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$rel" > /tmp/fuzz.$$ 2>&1; then
      cat /tmp/fuzz.$$
      # The failing input is written under testdata/ of this (throwaway) clone:
      # print it, so that the failure can be reproduced from the log alone.
      for input in $(grep -o 'testdata/fuzz/[^ ]*' /tmp/fuzz.$$ | sort -u); do
        echo "== failing input $pkg/$input (save it there and run: go -C $mod test -run '${target}/$(basename "$input")' $rel)"
        head -c 20000 "$pkg/$input"; echo
      done
      exit 1
    fi
    tail -n 1 /tmp/fuzz.$$
  done
done
rm -f /tmp/fuzz.$$

step "benchmarks (smoke: 100 iterations each; the full run is bash bench/run.sh)"
: > /tmp/bench.$$
for m in "${modules[@]}"; do
  go -C "$m" test -run '^$' -bench . -benchtime=100x -count=1 ./... >> /tmp/bench.$$ 2>&1 || { cat /tmp/bench.$$; exit 1; }
done
grep -E '^(Benchmark|ok|FAIL)' /tmp/bench.$$ || true
rm -f /tmp/bench.$$
step "all checks passed"
echo "packages: ${passed} passed, 0 failed"
