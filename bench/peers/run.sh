#!/usr/bin/env bash
# The sidecar against oauth2-proxy and a plain reverse proxy, interleaved
# rounds, warm and cold, concurrency 1, 16, 64 (see bench/peers/main.go).
#   bash bench/peers/run.sh                       # 3 rounds of 5 s runs (about 7 minutes)
#   ROUNDS=1 DURATION=2s bash bench/peers/run.sh  # a quick look
#   CLIENT=net/http bash bench/peers/run.sh       # the load generator sends through http.Client
# oauth2-proxy is installed with go install at the pinned version below, into
# bench/bin (not committed). Ory Oathkeeper is not here: it does not resolve
# from the Go module proxy (see BENCHMARKS.md).
set -euo pipefail
cd "$(dirname "$0")/../.."

OAUTH2_PROXY_VERSION=v7.15.6
ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-5s}"

mkdir -p bench/bin bench/results
export GOBIN="$PWD/bench/bin"
if ! go version -m bench/bin/oauth2-proxy 2>/dev/null | grep -q "mod[[:space:]]*github.com/oauth2-proxy/oauth2-proxy/v7[[:space:]]*${OAUTH2_PROXY_VERSION}"; then
  go install "github.com/oauth2-proxy/oauth2-proxy/v7@${OAUTH2_PROXY_VERSION}"
fi
go build -o bench/bin/keycloak-jwt-sidecar ./cmd/keycloak-jwt-sidecar
go build -o bench/bin/peers ./bench/peers

out="bench/results/peers-$(date -u +%Y%m%dT%H%M%SZ).md"
{
  echo "- machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem:/{print $2}') GiB"
  echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  bench/bin/peers run -sidecar bench/bin/keycloak-jwt-sidecar -oauth2-proxy bench/bin/oauth2-proxy \
    -oauth2-proxy-version "$OAUTH2_PROXY_VERSION" -rounds "$ROUNDS" -duration "$DURATION" -client "${CLIENT:-conn}"
} | tee "$out"
echo
echo "written: $out"
