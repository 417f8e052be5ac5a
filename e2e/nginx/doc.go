// Package nginx holds end-to-end tests with a real nginx (Debian's, which
// scripts/test.sh installs) in front of the sidecar on loopback:
//
//   - auth_request to the sidecar's forward-auth endpoint, with the nginx
//     snippet of sidecar/CONFIG.md ("Forward-auth setups") read from that
//     file and used as it stands (only the sidecar's address is replaced);
//   - nginx as a reverse proxy in front of the sidecar's reverse proxy.
//
// Each runs the hostile-header cases of sidecar/hostile_test.go (underscore
// and dotted spellings of identity headers, repeated Authorization, method
// override headers and parameters) under nginx's default header settings
// and under underscores_in_headers on / ignore_invalid_headers off. What
// nginx itself drops, passes or answers is part of each assertion: the
// facts CONFIG.md states for nginx users come from here.
//
// Without nginx the tests skip, except on CI (CI=true), where they fail.
package nginx
