// Package interop holds the checks that tie keycloak-jwt to the world outside
// its Go code, all runnable without Docker by `go test ./...`:
//
//   - the deployment files (Dockerfile, docker-compose.yml, examples/) are
//     parsed and checked against each other and against the engine's own
//     configuration validation;
//   - the engine is exercised with tokens from an independent OAuth 2.0
//     server (oidc-provider on Node.js, see oidc-server/), including a real
//     signing-key rotation;
//   - the example shell scripts are run against that server.
//
// The package is a Go module of its own (interop/go.mod, using the product
// through a replace directive), so that what only these checks need, such as
// compose-go, stays out of the product's go.mod; scripts/test.sh runs it
// beside the product module. Its non-test files are test support:
// StartOIDCServer starts the independent server and NPMInstall prepares a
// Node.js project. Both need `node` and `npm` on PATH and skip the calling
// test, with a clear message, when they are missing.
package interop
