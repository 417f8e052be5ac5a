#!/usr/bin/env bash
# Call the API through the gateway with a bearer token from get-token.sh and
# show the status, the WWW-Authenticate challenge of a refusal, and the body.
#
#   examples/call-api.sh                          # GET /orders as orders-service
#   examples/call-api.sh POST /orders '{"item":"book"}'
#   CLIENT_ID=reports-job examples/call-api.sh POST /orders     # 403 insufficient_scope
#   API_URL=http://localhost:8081 examples/call-api.sh          # through the sidecar
#
# Arguments: [METHOD] [PATH] [JSON_BODY]   (default GET /orders, no body)
#
# Environment:
#   API_URL     base URL of the gateway           (default http://localhost:8000)
#   TOKEN       bearer token to send; when unset, get-token.sh fetches one and
#               every variable it reads applies (CLIENT_ID, CLIENT_SECRET,
#               CLIENT_AUTH, SCOPE, KEYCLOAK_URL, REALM, TOKEN_URL, JSON_PARSER)
#   NO_TOKEN=1  send no Authorization header at all
#   CURL_OPTS   extra curl options
#
# Exit status: 0 for a 2xx answer, 1 otherwise.
set -euo pipefail

case "${1:-}" in
  -h | --help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
esac

method="${1:-GET}"
path="${2:-/orders}"
body="${3:-}"
API_URL="${API_URL:-http://localhost:8000}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

headers="Accept: application/json"$'\n'
if [[ "${NO_TOKEN:-}" != 1 ]]; then
  if [[ -z "${TOKEN:-}" ]]; then
    TOKEN="$("$here/get-token.sh")"
  fi
  headers+="Authorization: Bearer ${TOKEN}"$'\n'
fi
args=(--silent --show-error --include --request "$method")
if [[ -n "$body" ]]; then
  args+=(--header "Content-Type: application/json" --data-binary "$body")
fi

# The token goes to curl on stdin (-H @-), not on its command line.
# shellcheck disable=SC2086 # CURL_OPTS is a list of options on purpose.
response="$(printf '%s' "$headers" | curl "${args[@]}" --header @- ${CURL_OPTS:-} \
  --write-out '\n%{http_code}' "${API_URL%/}${path}")" || {
  echo "call-api.sh: cannot reach ${API_URL}" >&2
  exit 1
}
status="${response##*$'\n'}"
response="${response%$'\n'*}"

echo "${method} ${path} -> HTTP ${status}" >&2
printf '%s\n' "$response" | tr -d '\r' | grep -i '^www-authenticate:' >&2 || true
# The body follows the first empty line of the response.
printf '%s\n' "$response" | tr -d '\r' | sed '1,/^$/d'

[[ "$status" == 2* ]]
