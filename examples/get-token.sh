#!/usr/bin/env bash
# Get an access token from a Keycloak realm with the OAuth 2.0 client-credentials
# grant and print it on stdout (nothing else goes to stdout).
#
#   TOKEN=$(examples/get-token.sh)
#   CLIENT_ID=reports-job CLIENT_AUTH=client_secret_post examples/get-token.sh
#   examples/get-token.sh --json          # the whole token response instead
#
# Environment:
#   KEYCLOAK_URL   base URL of Keycloak            (default http://localhost:8080)
#   REALM          realm name                      (default demo)
#   TOKEN_URL      token endpoint; overrides the two above
#                  (default $KEYCLOAK_URL/realms/$REALM/protocol/openid-connect/token)
#   CLIENT_ID      client id                       (default orders-service)
#   CLIENT_SECRET  client secret (default: the demo secret of a demo client; required otherwise)
#   CLIENT_AUTH    client_secret_basic (default: HTTP Basic, RFC 6749 section 2.3.1)
#                  or client_secret_post (client_id and client_secret in the form body)
#   SCOPE          space-separated scopes to ask for (default: none, i.e. the client's default scopes)
#   JSON_PARSER    jq or sed (default: jq when installed, else sed)
#   CURL_OPTS      extra curl options, e.g. "--cacert ca.pem"
#
# The secret never appears on a command line (where `ps` would show it): it is
# handed to curl through a config file on stdin.
set -euo pipefail

usage() { sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; }

output=token
case "${1:-}" in
  "") ;;
  --json) output=json ;;
  -h | --help) usage; exit 0 ;;
  *) usage >&2; exit 2 ;;
esac

KEYCLOAK_URL="${KEYCLOAK_URL:-http://localhost:8080}"
REALM="${REALM:-demo}"
TOKEN_URL="${TOKEN_URL:-${KEYCLOAK_URL%/}/realms/${REALM}/protocol/openid-connect/token}"
CLIENT_ID="${CLIENT_ID:-orders-service}"
CLIENT_AUTH="${CLIENT_AUTH:-client_secret_basic}"
SCOPE="${SCOPE:-}"

if [[ -z "${CLIENT_SECRET:-}" ]]; then
  # Demo secrets of examples/keycloak/realm-demo.json; real secrets come from
  # the environment (a secret store), never from this file.
  case "$CLIENT_ID" in
    orders-service | reports-job | no-audience-client) CLIENT_SECRET="${CLIENT_ID}-demo-secret" ;;
    *) echo "get-token.sh: set CLIENT_SECRET for client ${CLIENT_ID}" >&2; exit 2 ;;
  esac
fi

if [[ -z "${JSON_PARSER:-}" ]]; then
  if command -v jq >/dev/null 2>&1; then JSON_PARSER="jq"; else JSON_PARSER="sed"; fi
fi
case "$JSON_PARSER" in
  jq | sed) ;;
  *) echo "get-token.sh: JSON_PARSER must be jq or sed" >&2; exit 2 ;;
esac
case "$CLIENT_AUTH" in
  client_secret_basic | client_secret_post) ;;
  *) echo "get-token.sh: CLIENT_AUTH must be client_secret_basic or client_secret_post" >&2; exit 2 ;;
esac

# urlencode STRING: application/x-www-form-urlencoded encoding of STRING.
urlencode() {
  local LC_ALL=C s="$1" out="" c i
  for ((i = 0; i < ${#s}; i++)); do
    c="${s:i:1}"
    case "$c" in
      [a-zA-Z0-9.~_-]) out+="$c" ;;
      *) printf -v c '%%%02X' "'$c"; out+="$c" ;;
    esac
  done
  printf '%s' "$out"
}

# cfgquote STRING: STRING as a double-quoted value of a curl config file.
cfgquote() {
  local s="${1//\\/\\\\}"
  s="${s//\"/\\\"}"
  printf '"%s"' "$s"
}

# json_string NAME < JSON: the string member NAME of a flat JSON object.
json_string() {
  if [[ "$JSON_PARSER" == jq ]]; then
    jq -r --arg k "$1" '.[$k] // empty | strings'
  else
    # Enough for token responses: values without escaped quotes.
    tr -d '\n' | sed -n "s/.*\"$1\"[[:space:]]*:[[:space:]]*\"\([^\"]*\)\".*/\1/p"
  fi
}

# json_number NAME < JSON: the numeric member NAME of a flat JSON object.
json_number() {
  if [[ "$JSON_PARSER" == jq ]]; then
    jq -r --arg k "$1" '.[$k] // empty | numbers'
  else
    tr -d '\n' | sed -n "s/.*\"$1\"[[:space:]]*:[[:space:]]*\([0-9][0-9]*\).*/\1/p"
  fi
}

config="$(
  printf 'url = %s\n' "$(cfgquote "$TOKEN_URL")"
  printf 'request = "POST"\n'
  printf 'header = "Accept: application/json"\n'
  printf 'data = "grant_type=client_credentials"\n'
  case "$CLIENT_AUTH" in
    client_secret_basic)
      # RFC 6749 2.3.1: id and secret are form-encoded, then joined with ':'.
      basic="$(printf '%s:%s' "$(urlencode "$CLIENT_ID")" "$(urlencode "$CLIENT_SECRET")" | base64 | tr -d '\n')"
      printf 'header = %s\n' "$(cfgquote "Authorization: Basic $basic")"
      ;;
    client_secret_post)
      printf 'data = %s\n' "$(cfgquote "client_id=$(urlencode "$CLIENT_ID")")"
      printf 'data = %s\n' "$(cfgquote "client_secret=$(urlencode "$CLIENT_SECRET")")"
      ;;
  esac
  if [[ -n "$SCOPE" ]]; then
    printf 'data = %s\n' "$(cfgquote "scope=$(urlencode "$SCOPE")")"
  fi
)"

# shellcheck disable=SC2086 # CURL_OPTS is a list of options on purpose.
response="$(printf '%s\n' "$config" | curl --silent --show-error --config - ${CURL_OPTS:-} \
  --write-out '\n%{http_code}')" || {
  echo "get-token.sh: cannot reach the token endpoint ${TOKEN_URL}" >&2
  exit 1
}
status="${response##*$'\n'}"
body="${response%$'\n'*}"

if [[ "$status" != 200 ]]; then
  err="$(printf '%s' "$body" | json_string error || true)"
  desc="$(printf '%s' "$body" | json_string error_description || true)"
  echo "get-token.sh: token request for ${CLIENT_ID} failed: HTTP ${status} ${err:-}${desc:+: ${desc}}" >&2
  exit 1
fi

token="$(printf '%s' "$body" | json_string access_token)"
if [[ -z "$token" ]]; then
  echo "get-token.sh: the token response has no access_token" >&2
  exit 1
fi

if [[ "$output" == json ]]; then
  printf '%s\n' "$body"
else
  expires="$(printf '%s' "$body" | json_number expires_in || true)"
  echo "get-token.sh: token for ${CLIENT_ID} (${CLIENT_AUTH}), expires in ${expires:-?}s" >&2
  printf '%s\n' "$token"
fi
