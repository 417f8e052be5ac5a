#!/usr/bin/env python3
"""Verify the upstream JWT that keycloak-jwt (Kong plugin or sidecar) signs.

An upstream behind the gateway runs this check on each request, e.g. in a
middleware: the JWT arrives in the X-Upstream-Jwt header. Here it is read
from the first argument or stdin, and its claims are printed as JSON.

    JWKS_URL=http://localhost:8000/.well-known/keycloak-jwt/jwks.json \\
    ISSUER=keycloak-jwt-kong AUDIENCE=orders-api python3 verify.py "$JWT"

Settings (environment): JWKS_URL (the gateway's public JWKS), ISSUER and
AUDIENCE (upstream_jwt.issuer and .audience), ALGORITHM (upstream_jwt.algorithm,
default ES256). Exit status 1 when the JWT is refused, with the reason.
"""
import json
import os
import sys

import jwt  # PyJWT, with its crypto extra (requirements.txt)

JWKS_URL = os.environ.get("JWKS_URL") or "http://localhost:8000/.well-known/keycloak-jwt/jwks.json"
ISSUER = os.environ.get("ISSUER") or "keycloak-jwt-kong"
AUDIENCE = os.environ.get("AUDIENCE") or "orders-api"
ALGORITHM = os.environ.get("ALGORITHM") or "ES256"

# One client per process: it caches the key set and fetches it again when a
# JWT names a kid it does not hold (the gateway's key roll-over).
jwks = jwt.PyJWKClient(JWKS_URL, cache_keys=True, lifespan=300, timeout=5)


def verify(token):
    """Return the claims of a valid upstream JWT; raise jwt.InvalidTokenError."""
    key = jwks.get_signing_key_from_jwt(token)  # by the kid in the header
    return jwt.decode(
        token,
        key,
        algorithms=[ALGORITHM],  # never the algorithm the token names
        issuer=ISSUER,
        audience=AUDIENCE,
        leeway=5,  # seconds of clock skew between gateway and upstream
        options={"require": ["iss", "aud", "sub", "iat", "exp", "jti"]},
    )


def main():
    token = sys.argv[1] if len(sys.argv) > 1 else sys.stdin.read().strip()
    try:
        claims = verify(token)
    except (jwt.InvalidTokenError, jwt.PyJWKClientError) as e:
        print(f"refused: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print(json.dumps(claims, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
