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
// The non-test files of the package are test support meant for reuse by the
// tests of other packages (the sidecar, the plugin binary): StartOIDCServer
// starts the independent server and NPMInstall prepares a Node.js project.
// Both need `node` and `npm` on PATH and skip the calling test, with a clear
// message, when they are missing.
package interop
