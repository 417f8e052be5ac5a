// Package keycloak holds the end-to-end tests that run against a real
// Keycloak: the realm export examples/keycloak/realm-demo.json imported by
// scripts/keycloak.sh, real tokens from its token endpoint, real key
// rotations and secret regenerations through its admin REST API, and both
// adapters (the sidecar over HTTP, the Kong plugin through its socket).
//
// The tests read Keycloak's base URL from KEYCLOAK_E2E_URL (set by
// `eval "$(scripts/keycloak.sh env)"`; scripts/test.sh does it). Without it
// they skip, except on CI (CI=true), where they fail: the suite never
// silently skips there.
package keycloak
