package plugin

import (
	"strings"
	"testing"
)

const kicManifests = `apiVersion: apps/v1
kind: Deployment
metadata: {name: orders}
spec: {}
---
apiVersion: configuration.konghq.com/v1
kind: KongPlugin
metadata:
  name: jwt-read
  namespace: orders
plugin: keycloak-jwt
config:
  issuers: [{issuer: "https://sso/realms/demo"}]
  audiences: [orders-api]
  scopes_match: some
---
apiVersion: configuration.konghq.com/v1
kind: KongClusterPlugin
metadata:
  name: jwt-global
  labels: {global: "true"}
plugin: keycloak-jwt
config:
  issuers: [{issuer: "https://sso/realms/demo"}]
  audiences: [internal-api]
---
apiVersion: configuration.konghq.com/v1
kind: KongPlugin
metadata: {name: jwt-consumer, namespace: orders}
consumerRef: orders-service
plugin: keycloak-jwt
config: {issuers: [{issuer: "https://sso/realms/demo"}], audiences: [a]}
---
apiVersion: configuration.konghq.com/v1
kind: KongPlugin
metadata: {name: jwt-secret, namespace: orders}
plugin: keycloak-jwt
configFrom: {secretKeyRef: {name: jwt-config, key: config}}
---
apiVersion: configuration.konghq.com/v1
kind: KongPlugin
metadata: {name: jwt-off, namespace: orders}
plugin: keycloak-jwt
disabled: true
config: {audiences: []}
---
apiVersion: configuration.konghq.com/v1
kind: KongPlugin
metadata: {name: limit, namespace: orders}
plugin: rate-limiting
config: {minute: 5}
`

// TestLintKongIngressControllerManifests: the keycloak-jwt KongPlugins and
// KongClusterPlugins of a manifest stream are checked, with their lines.
func TestLintKongIngressControllerManifests(t *testing.T) {
	n, findings, err := LintFiles([]File{{Name: "plugins.yaml", Data: []byte(kicManifests)}}, LintOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		line  int
		where string
		text  string
	}{
		{1 + strings.Count(kicManifests[:strings.Index(kicManifests, "  scopes_match: some")], "\n"), "KongPlugin orders/jwt-read", "scopes_match"},
		{1 + strings.Count(kicManifests[:strings.Index(kicManifests, "apiVersion: configuration.konghq.com/v1\nkind: KongPlugin\nmetadata: {name: jwt-consumer")], "\n"), "KongPlugin orders/jwt-consumer", "cannot be scoped to a consumer"},
		{1 + strings.Count(kicManifests[:strings.Index(kicManifests, "apiVersion: configuration.konghq.com/v1\nkind: KongPlugin\nmetadata: {name: jwt-secret")], "\n"), "KongPlugin orders/jwt-secret", "configFrom"},
	}
	if n != 4 || len(findings) != len(want) {
		t.Fatalf("%d entries (want 4: the disabled one and other plugins are not checked), findings: %v", n, findings)
	}
	for i, w := range want {
		f := findings[i]
		if f.Line != w.line || f.File != "plugins.yaml" || f.Where != w.where || !strings.Contains(f.Err.Error(), w.text) {
			t.Errorf("finding %d: %s: %s, want line %d %s %q", i, f.Location(), f, w.line, w.where, w.text)
		}
	}
}
