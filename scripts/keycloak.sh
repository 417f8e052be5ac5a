#!/usr/bin/env bash
# Real Keycloak as a test dependency (issue 11).
#
#   scripts/keycloak.sh start   fetch (cached), unpack, start on loopback with the
#                               realm export imported, wait for /health/ready,
#                               check the import log, set up the Python client's venv
#                               and OpenTofu (examples/terraform's parse check)
#   scripts/keycloak.sh env     print the exports the end-to-end tests read
#   scripts/keycloak.sh stop    stop the Keycloak this script started (by PID)
#   scripts/keycloak.sh log     print the server log
#
# Keycloak's own distribution is the Maven artifact
# org.keycloak:keycloak-quarkus-dist:<version>:zip; docker-compose.yml pins the
# same version (a test in interop/ keeps them equal). Keycloak 26 needs Java 21
# or newer: JAVA_HOME defaults to the Temurin 25 JDK installed beside Debian's 17.
#
# Settings (environment): KEYCLOAK_VERSION, KEYCLOAK_JWT_CACHE (default
# ~/.cache/keycloak-jwt), KEYCLOAK_PORT (8380), KEYCLOAK_MANAGEMENT_PORT (9000),
# KEYCLOAK_WAIT_SECONDS (240), KEYCLOAK_JAVA_HOME.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

VERSION="${KEYCLOAK_VERSION:-26.7.3}"
CACHE="${KEYCLOAK_JWT_CACHE:-$HOME/.cache/keycloak-jwt}"
PORT="${KEYCLOAK_PORT:-8380}"
MGMT_PORT="${KEYCLOAK_MANAGEMENT_PORT:-9000}"
WAIT="${KEYCLOAK_WAIT_SECONDS:-240}"
JAVA_HOME_KC="${KEYCLOAK_JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}"
TOFU_VERSION=v1.12.6
REALM_FILE="$ROOT/examples/keycloak/realm-demo.json"
# The Python examples' pinned dependencies, installed into one venv.
PY_REQUIREMENTS=("$ROOT/examples/python-client/requirements.txt" "$ROOT/examples/upstream-jwt/requirements.txt")

DIST="$CACHE/keycloak-$VERSION"
RUN="$CACHE/run"
PIDFILE="$RUN/keycloak.pid"
LOG="$RUN/keycloak.log"
VENV="$CACHE/venv"
BASE_URL="http://127.0.0.1:$PORT"
ADMIN_USER=admin
ADMIN_PASSWORD=admin

say() { echo "keycloak.sh: $*" >&2; }

fetch() {
  local zip="$CACHE/keycloak-quarkus-dist-$VERSION.zip"
  mkdir -p "$CACHE"
  if [ ! -s "$zip" ]; then
    say "fetching org.keycloak:keycloak-quarkus-dist:$VERSION:zip with Maven"
    mvn -q -B dependency:copy "-Dartifact=org.keycloak:keycloak-quarkus-dist:$VERSION:zip" \
      "-DoutputDirectory=$CACHE" >&2
  fi
  if [ ! -x "$DIST/bin/kc.sh" ]; then
    say "unpacking $zip"
    rm -rf "$DIST.tmp" && mkdir -p "$DIST.tmp"
    if command -v unzip >/dev/null 2>&1; then
      (cd "$DIST.tmp" && unzip -q "$zip")
    else
      python3 -m zipfile -e "$zip" "$DIST.tmp"
      chmod +x "$DIST.tmp/keycloak-$VERSION/bin/"*.sh
    fi
    rm -rf "$DIST" && mv "$DIST.tmp/keycloak-$VERSION" "$DIST" && rmdir "$DIST.tmp"
  fi
}

running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

# The Java process kc.sh runs (its child), for the memory figure.
# (kc.sh execs Java itself after a re-augmentation).
java_pid() {
  local pid; pid=$(cat "$PIDFILE")
  if [ "$(ps -o comm= -p "$pid" 2>/dev/null)" = java ]; then echo "$pid"; return; fi
  pgrep -P "$pid" java 2>/dev/null | head -n 1 || true
}

# The realm import is a test: Keycloak reports it, and logs no ERROR and no
# WARN at all, except the deprecation notice of features enabled by default.
check_import() {
  if ! grep -q "Realm 'demo' imported" "$LOG" || ! grep -q 'Import finished successfully' "$LOG"; then
    say "the log does not report the import of realm demo:"; tail -n 40 "$LOG" >&2; return 1
  fi
  local bad
  bad=$(grep -E '^[0-9-]+ [0-9:,]+ +(ERROR|WARN) ' "$LOG" |
    grep -Ev '\[org\.keycloak\.common\.Profile\] .*Deprecated features .* enabled by default' || true)
  if [ -n "$bad" ]; then
    say "Keycloak logged errors or warnings at start-up / realm import:"; echo "$bad" >&2; return 1
  fi
}

python_venv() {
  local want=() f
  for f in "${PY_REQUIREMENTS[@]}"; do [ -f "$f" ] && want+=(-r "$f"); done
  [ ${#want[@]} -gt 0 ] || return 0
  if [ ! -x "$VENV/bin/python" ] || ! cat "${PY_REQUIREMENTS[@]}" 2>/dev/null | cmp -s - "$VENV/requirements.txt"; then
    say "installing the Python examples' requirements into $VENV"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "${want[@]}" >&2
    cat "${PY_REQUIREMENTS[@]}" 2>/dev/null >"$VENV/requirements.txt"
  fi
}

# OpenTofu, built from its Go module (the proxy serves it; `go install
# pkg@version` refuses its replace directive, so it is built inside the
# downloaded module), for the parse check of examples/terraform. The Keycloak
# provider is not served by the Go module proxy and the provider registry is
# out of reach here, so the example is parsed, not applied.
tofu_build() {
  local bin="$CACHE/bin/tofu-$TOFU_VERSION"
  [ -x "$bin" ] && return 0
  say "building OpenTofu $TOFU_VERSION from the Go module proxy (once; several minutes)"
  local dir src
  dir=$(go mod download -json "github.com/opentofu/opentofu@$TOFU_VERSION" | python3 -c 'import sys, json; print(json.load(sys.stdin)["Dir"])')
  src=$(mktemp -d)
  cp -r "$dir/." "$src" && chmod -R u+w "$src"
  mkdir -p "$CACHE/bin"
  (cd "$src" && go build -o "$bin.tmp" ./cmd/tofu) && mv "$bin.tmp" "$bin"
  rm -rf "$src"
}

start() {
  if running; then say "already running (pid $(cat "$PIDFILE"))"; python_venv; tofu_build; return 0; fi
  [ -x "$JAVA_HOME_KC/bin/java" ] || { say "no Java at $JAVA_HOME_KC (Keycloak 26 needs 21+; set KEYCLOAK_JAVA_HOME)"; return 1; }
  fetch
  # A fresh database every start: --import-realm imports only into an empty one.
  rm -rf "$DIST/data" && mkdir -p "$DIST/data/import" "$RUN"
  cp "$REALM_FILE" "$DIST/data/import/"
  say "starting Keycloak $VERSION (Java: $("$JAVA_HOME_KC/bin/java" -version 2>&1 | head -n 1)) on $BASE_URL, management :$MGMT_PORT"
  local t0; t0=$(date +%s.%N)
  JAVA_HOME="$JAVA_HOME_KC" KC_BOOTSTRAP_ADMIN_USERNAME=$ADMIN_USER KC_BOOTSTRAP_ADMIN_PASSWORD=$ADMIN_PASSWORD \
    setsid "$DIST/bin/kc.sh" start-dev --import-realm \
      --http-host=127.0.0.1 --http-port="$PORT" \
      --http-management-port="$MGMT_PORT" --health-enabled=true \
      --hostname-strict=false --log-level=info \
      </dev/null >"$LOG" 2>&1 &
  echo $! >"$PIDFILE"
  local deadline=$(( $(date +%s) + WAIT ))
  until curl -fsS -o /dev/null "http://127.0.0.1:$MGMT_PORT/health/ready" 2>/dev/null; do
    if ! running; then say "Keycloak exited during start-up:"; tail -n 60 "$LOG" >&2; rm -f "$PIDFILE"; return 1; fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      say "not ready after ${WAIT}s:"; tail -n 60 "$LOG" >&2; stop; return 1
    fi
    sleep 1
  done
  local secs rss jp
  secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  jp=$(java_pid); rss="?"
  [ -n "$jp" ] && rss=$(awk '/^VmRSS/ { printf "%d MiB", $2 / 1024 }' "/proc/$jp/status")
  say "Keycloak $VERSION ready in ${secs}s (pid $(cat "$PIDFILE"), java pid ${jp:-?}, RSS $rss)"
  if ! check_import; then stop; return 1; fi
  say "realm demo imported from examples/keycloak/realm-demo.json without errors or warnings"
  python_venv
  tofu_build
}

stop() {
  running || { rm -f "$PIDFILE"; return 0; }
  local pid; pid=$(cat "$PIDFILE")
  local jp; jp=$(java_pid)
  if [ -n "$jp" ]; then
    say "RSS at stop: $(awk '/^VmRSS/ { printf "%d MiB", $2 / 1024 }' "/proc/$jp/status" 2>/dev/null || echo '?')"
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
  if kill -0 "$pid" 2>/dev/null; then
    say "still running after 30s: killing process group $pid"
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$PIDFILE"
  say "stopped"
}

env_exports() {
  cat <<EOF
export KEYCLOAK_E2E_URL=$BASE_URL
export KEYCLOAK_E2E_ADMIN_USER=$ADMIN_USER
export KEYCLOAK_E2E_ADMIN_PASSWORD=$ADMIN_PASSWORD
export KEYCLOAK_E2E_VERSION=$VERSION
export KEYCLOAK_E2E_LOG=$LOG
EOF
  if [ -x "$VENV/bin/python" ]; then echo "export KEYCLOAK_E2E_PYTHON=$VENV/bin/python"; fi
  if [ -x "$CACHE/bin/tofu-$TOFU_VERSION" ]; then echo "export KEYCLOAK_E2E_TOFU=$CACHE/bin/tofu-$TOFU_VERSION"; fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  env) env_exports ;;
  log) cat "$LOG" ;;
  fetch) fetch ;;
  *) echo "usage: $0 start|stop|env|log|fetch" >&2; exit 2 ;;
esac
