// Package sidecar is the net/http adapter of keycloak-jwt: a reverse proxy
// and forward-auth server that protects an HTTP API called with OAuth2
// client-credentials tokens from Keycloak.
//
// The package only wires HTTP to the engine. Token extraction is
// policy.ExtractToken, every decision is Policy.Check, denials are rendered
// with Decision.WWWAuthenticate and Decision.Body, and what goes upstream for
// an allowed request (identity headers, signed upstream JWT) is rendered by
// package upstream. The sidecar never reads a claim itself.
//
// The flow of one request on the main listener:
//
//  1. a request id is accepted (X-Request-Id) or generated;
//  2. the path is checked to be canonical (no dot segments, no empty
//     segments, no backslashes or control characters), else 400;
//  3. the route table picks the rule with the longest matching prefix, then
//     the rule for the method; no rule means 403 (fail closed);
//  4. a public rule forwards without a token; any other rule extracts the
//     bearer token and asks its compiled policy.Policy;
//  5. an allowed request is forwarded (reverse proxy) or answered 200 with
//     the identity headers (forward auth); a denied one gets the decision's
//     status, WWW-Authenticate challenge and JSON body.
//
// Client-supplied copies of every header the sidecar sets upstream are
// deleted from every forwarded request, allowed or public.
//
// Configuration is one YAML file, documented field by field in config.go and
// in CONFIG.md beside this file. Server wires it all and serves the main and
// admin listeners; the admin listener serves /healthz, /readyz, /metrics and
// the public JWKS of the upstream JWT.
package sidecar
