#!/usr/bin/env python3
"""Example machine client of an API behind keycloak-jwt, written with requests.

It gets an access token from Keycloak with the OAuth 2.0 client-credentials
grant, renews it before it expires, and calls the API COUNT times.

    python3 examples/python-client/client.py                 # GET http://localhost:8000/orders
    CLIENT_ID=reports-job METHOD=POST python3 examples/python-client/client.py   # 403
    API_URL=http://localhost:8081/orders python3 examples/python-client/client.py  # the sidecar

Environment (defaults in brackets):
    TOKEN_URL      token endpoint [http://localhost:8080/realms/demo/protocol/openid-connect/token]
    CLIENT_ID      client id [orders-service]
    CLIENT_SECRET  client secret [the demo secret of a demo client; required otherwise]
    CLIENT_AUTH    client_secret_basic (HTTP Basic) or client_secret_post [client_secret_basic]
    SCOPE          space-separated scopes to ask for [none: the client's default scopes]
    API_URL        URL to call [http://localhost:8000/orders]
    METHOD         HTTP method [GET]
    COUNT          number of calls [3]
    INTERVAL       seconds between calls [1]

Exit status: 0 when at least one call got a 2xx answer, 1 when every call
failed, 2 for a usage error. Tokens and secrets are never printed.
"""

import os
import sys
import time

import requests

DEMO_CLIENTS = ("orders-service", "reports-job", "no-audience-client")


class TokenSource:
    """Hands out the current access token; renews it 30 s (or half its
    lifetime, if shorter) before it expires, or when the API refused it."""

    def __init__(self, session, token_url, client_id, secret, auth, scope):
        self.session = session
        self.token_url = token_url
        self.client_id = client_id
        self.secret = secret
        self.auth = auth
        self.scope = scope
        self.token = None
        self.renew_at = 0.0

    def get(self):
        if self.token is not None and time.monotonic() < self.renew_at:
            return self.token
        data = {"grant_type": "client_credentials"}
        if self.scope:
            data["scope"] = self.scope
        auth = None
        if self.auth == "client_secret_basic":
            # requests encodes id and secret as Latin-1; RFC 6749 2.3.1 wants
            # them form-encoded first, which leaves ASCII ids and secrets as they are.
            auth = requests.auth.HTTPBasicAuth(
                requests.utils.quote(self.client_id, safe=""), requests.utils.quote(self.secret, safe="")
            )
        else:
            data["client_id"] = self.client_id
            data["client_secret"] = self.secret
        resp = self.session.post(self.token_url, data=data, auth=auth, headers={"Accept": "application/json"}, timeout=10)
        if resp.status_code != 200:
            try:
                body = resp.json()
            except ValueError:
                body = {}
            raise RuntimeError(
                "token request for %s failed: HTTP %d %s %s"
                % (self.client_id, resp.status_code, body.get("error", ""), body.get("error_description", ""))
            )
        body = resp.json()
        self.token = body["access_token"]
        life = float(body.get("expires_in", 60))
        self.renew_at = time.monotonic() + life - min(30.0, life / 2)
        print("new token for %s: expires in %ds" % (self.client_id, life), file=sys.stderr)
        return self.token

    def invalidate(self, token):
        if self.token == token:
            self.token = None


def call(session, tokens, method, url):
    """One request with a bearer token; a 401 invalid_token (e.g. after a key
    rotation) gets one retry with a new token."""
    for attempt in range(2):
        token = tokens.get()
        resp = session.request(method, url, headers={"Authorization": "Bearer " + token, "Accept": "application/json"}, timeout=10)
        challenge = resp.headers.get("WWW-Authenticate", "")
        if resp.status_code == 401 and 'error="invalid_token"' in challenge and attempt == 0:
            tokens.invalidate(token)
            continue
        return resp.status_code, challenge, resp.text


def main():
    env = os.environ.get
    token_url = env("TOKEN_URL") or "http://localhost:8080/realms/demo/protocol/openid-connect/token"
    client_id = env("CLIENT_ID") or "orders-service"
    secret = env("CLIENT_SECRET") or ""
    if not secret:
        if client_id not in DEMO_CLIENTS:
            print("client.py: set CLIENT_SECRET for client %s" % client_id, file=sys.stderr)
            return 2
        secret = client_id + "-demo-secret"
    auth = env("CLIENT_AUTH") or "client_secret_basic"
    if auth not in ("client_secret_basic", "client_secret_post"):
        print("client.py: CLIENT_AUTH must be client_secret_basic or client_secret_post", file=sys.stderr)
        return 2
    api_url = env("API_URL") or "http://localhost:8000/orders"
    method = env("METHOD") or "GET"
    try:
        count = int(env("COUNT") or "3")
        interval = float(env("INTERVAL") or "1")
    except ValueError:
        print("client.py: COUNT and INTERVAL must be numbers", file=sys.stderr)
        return 2

    session = requests.Session()
    tokens = TokenSource(session, token_url, client_id, secret, auth, env("SCOPE") or "")
    succeeded = 0
    for i in range(count):
        if i > 0 and interval > 0:
            time.sleep(interval)
        try:
            status, challenge, body = call(session, tokens, method, api_url)
        except (requests.RequestException, RuntimeError, KeyError, ValueError) as e:
            print("%s %s: %s" % (method, api_url, e), file=sys.stderr)
            continue
        if 200 <= status < 300:
            succeeded += 1
        summary = " ".join(body.split())[:200]
        print("%s %s -> %d %s%s" % (method, api_url, status, challenge + " " if challenge else "", summary))
    if count > 0 and succeeded == 0:
        print("client.py: every call failed (%d of %d)" % (count, count), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
