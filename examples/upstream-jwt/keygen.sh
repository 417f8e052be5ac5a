#!/usr/bin/env bash
# The signing key of the upstream JWT (upstream_jwt.private_key_file), made
# with openssl (1.1.1 or newer; every Debian, Ubuntu, Alpine and macOS has it).
#
#   examples/upstream-jwt/keygen.sh [ALGORITHM] [OUT]
#
# ALGORITHM is upstream_jwt.algorithm: ES256 (the default; a P-256 key),
# EdDSA (Ed25519) or RS256 (RSA 3072). OUT defaults to upstream-jwt.pem; the
# public half goes to OUT with .pub.pem for .pem (a public key is enough for
# next_private_key_file and previous_private_key_file, and for an upstream
# that pins the key instead of reading the JWKS). An existing OUT is never
# overwritten. The private key is PKCS#8, unencrypted, readable by its owner
# only: hand it to the gateway alone, through a file or a secret
# (private_key_env takes the PEM itself).
set -euo pipefail
ALG="${1:-ES256}"
OUT="${2:-upstream-jwt.pem}"
PUB="${OUT%.pem}.pub.pem"
command -v openssl >/dev/null || { echo "keygen.sh: openssl is not installed" >&2; exit 1; }
case "$ALG" in
  ES256) args=(-algorithm EC -pkeyopt ec_paramgen_curve:P-256) ;;
  EdDSA) args=(-algorithm ED25519) ;;
  RS256) args=(-algorithm RSA -pkeyopt rsa_keygen_bits:3072) ;;
  *) echo "keygen.sh: algorithm $ALG: want ES256, EdDSA or RS256" >&2; exit 2 ;;
esac
if [ -e "$OUT" ]; then echo "keygen.sh: $OUT exists; not overwriting it" >&2; exit 1; fi
(umask 077 && openssl genpkey "${args[@]}" -out "$OUT")
openssl pkey -in "$OUT" -pubout -out "$PUB"
echo "keygen.sh: $ALG private key in $OUT (keep it on the gateway), public key in $PUB" >&2
