package keycloak

import (
	"net/http"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/keycloak-jwt/keycloak-jwt/policy"
	"github.com/keycloak-jwt/keycloak-jwt/sidecar"
)

// demoTokens gets one token per demo client and authentication method, plus
// reports-job's token with the optional scope orders:export requested.
type demoTokens struct {
	orders, reports, noAud map[authMethod]string
	reportsExport          string
}

func getDemoTokens(t *testing.T, k *kc) demoTokens {
	t.Helper()
	d := demoTokens{orders: map[authMethod]string{}, reports: map[authMethod]string{}, noAud: map[authMethod]string{}}
	for _, m := range []authMethod{secretPost, secretBasic} {
		d.orders[m] = k.token(t, ordersService, demoSecret(ordersService), m, "")
		d.reports[m] = k.token(t, reportsJob, demoSecret(reportsJob), m, "")
		d.noAud[m] = k.token(t, noAudience, demoSecret(noAudience), m, "")
	}
	d.reportsExport = k.token(t, reportsJob, demoSecret(reportsJob), secretBasic, "orders:export")
	return d
}

// sidecarTestRoutes are added to the example's routes: realm roles, client
// roles and the optional scope, which the example file does not use. They
// are written as an operator writes them (YAML), not as Go structs.
const sidecarTestRoutes = `
- prefix: /admin
  realm_roles_required: [api-client, orders-admin]
  realm_roles_match: all
- prefix: /writers
  client_roles_required: ["orders-api:writer"]
- prefix: /exports
  scopes_required: [orders:export]
`

func addTestRoutes(t *testing.T) func(*sidecar.Config) {
	t.Helper()
	var routes []sidecar.Route
	if err := yaml.UnmarshalStrict([]byte(sidecarTestRoutes), &routes); err != nil {
		t.Fatalf("test routes: %v", err)
	}
	return func(c *sidecar.Config) { c.Routes = append(c.Routes, routes...) }
}

// TestSidecarDemoClients: every client of the realm export, with both
// client authentication methods, against the example sidecar config.
func TestSidecarDemoClients(t *testing.T) {
	k := keycloak(t)
	g := startSidecar(t, k, addTestRoutes(t))
	d := getDemoTokens(t, k)
	for _, m := range []authMethod{secretPost, secretBasic} {
		t.Run(m.String(), func(t *testing.T) {
			cases := []struct {
				name, method, path, token string
				status                    int
				reason                    string
			}{
				{"orders-service reads", "GET", "/orders", d.orders[m], 200, policy.ReasonOK},
				{"orders-service writes", "POST", "/orders", d.orders[m], 200, policy.ReasonOK},
				{"orders-service deletes", "DELETE", "/orders/42", d.orders[m], 200, policy.ReasonOK},
				{"orders-service: realm roles", "GET", "/admin/stats", d.orders[m], 200, policy.ReasonOK},
				{"orders-service: client role writer", "GET", "/writers", d.orders[m], 200, policy.ReasonOK},
				{"orders-service lacks the optional scope", "GET", "/exports", d.orders[m], 403, policy.ReasonScope},
				{"reports-job reads", "GET", "/orders", d.reports[m], 200, policy.ReasonOK},
				{"reports-job cannot write", "POST", "/orders", d.reports[m], 403, policy.ReasonScope},
				{"reports-job lacks orders-admin", "GET", "/admin/stats", d.reports[m], 403, policy.ReasonRealmRole},
				{"reports-job lacks writer", "GET", "/writers", d.reports[m], 403, policy.ReasonClientRole},
				{"reports-job without scope=orders:export", "GET", "/exports", d.reports[m], 403, policy.ReasonScope},
				{"no-audience-client", "GET", "/orders", d.noAud[m], 401, policy.ReasonAudience},
				{"no token", "GET", "/orders", "", 401, policy.ReasonNoToken},
				{"public route", "GET", "/healthz", "", 200, ""},
			}
			for _, tc := range cases {
				a := g.call(t, tc.method, tc.path, tc.token)
				if a.status != tc.status || (tc.reason != "" && a.reason != tc.reason) {
					t.Errorf("%s: %s %s → %d %s, want %d %s", tc.name, tc.method, tc.path, a.status, a.reason, tc.status, tc.reason)
				}
			}
		})
	}
	t.Run("optional scope requested", func(t *testing.T) {
		for _, path := range []string{"/exports", "/orders"} {
			if a := g.call(t, "GET", path, d.reportsExport); a.status != 200 {
				t.Errorf("reports-job with scope=orders:export: GET %s → %d %s, want 200", path, a.status, a.reason)
			}
		}
	})
}

// TestKongDemoClients: the same clients against the plugin instances of
// examples/kong/kong.yml, through the plugin-server socket.
func TestKongDemoClients(t *testing.T) {
	k := keycloak(t)
	g := startKong(t, k, nil)
	exports := g.clone(t, "orders-read")
	exports["scopes_required"] = []string{"orders:export"}
	delete(exports, "client_roles_required")
	g.start(t, "exports", exports)
	g.paths["exports"] = "/exports"
	d := getDemoTokens(t, k)
	for _, m := range []authMethod{secretPost, secretBasic} {
		t.Run(m.String(), func(t *testing.T) {
			cases := []struct {
				name, route, method, token string
				status                     int
				reason                     string
			}{
				{"orders-service reads", "orders-read", "GET", d.orders[m], 200, ""},
				{"orders-service writes (scope + client role writer)", "orders-write", "POST", d.orders[m], 200, ""},
				{"orders-service is admin (realm roles)", "orders-admin", "GET", d.orders[m], 200, ""},
				{"orders-service reports", "reports-api", "GET", d.orders[m], 200, ""},
				{"orders-service catalog", "catalog", "GET", d.orders[m], 200, ""},
				{"orders-service lacks the optional scope", "exports", "GET", d.orders[m], 403, policy.ReasonScope},
				{"reports-job reads (client role reader)", "orders-read", "GET", d.reports[m], 200, ""},
				{"reports-job cannot write", "orders-write", "POST", d.reports[m], 403, ""},
				{"reports-job is not admin", "orders-admin", "GET", d.reports[m], 401, policy.ReasonClient},
				{"reports-job reports", "reports-api", "GET", d.reports[m], 200, ""},
				{"reports-job without scope=orders:export", "exports", "GET", d.reports[m], 403, policy.ReasonScope},
				{"no-audience-client", "orders-read", "GET", d.noAud[m], 401, policy.ReasonAudience},
				{"no-audience-client on the anonymous catalog", "catalog", "GET", d.noAud[m], 200, ""},
				{"no token", "orders-read", "GET", "", 401, ""},
			}
			for _, tc := range cases {
				a := g.call(t, tc.route, tc.method, tc.token)
				if a.status != tc.status || (tc.reason != "" && a.reason != tc.reason) {
					t.Errorf("%s: %s %s → %d %q, want %d %q", tc.name, tc.route, tc.method, a.status, a.reason, tc.status, tc.reason)
				}
			}
		})
	}
	t.Run("optional scope requested", func(t *testing.T) {
		if a := g.call(t, "exports", "GET", d.reportsExport); a.status != 200 {
			t.Errorf("reports-job with scope=orders:export → %d %s, want 200", a.status, a.reason)
		}
	})
}

// TestDisabledClientGetsNoToken: a disabled client is refused at the token
// endpoint, whichever way it authenticates.
func TestDisabledClientGetsNoToken(t *testing.T) {
	k := keycloak(t)
	const id, secret = "e2e-disabled-client", "e2e-disabled-secret"
	k.createClient(t, id, secret, nil, map[string]any{"enabled": false})
	for _, m := range []authMethod{secretPost, secretBasic} {
		status, tr := k.requestToken(t, id, secret, m, "")
		if status == http.StatusOK || tr.AccessToken != "" {
			t.Errorf("%s: disabled client got a token (status %d)", m, status)
		}
		t.Logf("%s: disabled client → %d %s (%s)", m, status, tr.Error, tr.ErrorDescription)
	}
}

// TestOptionalScopeNotGranted: an optional scope the client does not have
// is refused at the token endpoint (400 invalid_scope), as testidp does.
func TestOptionalScopeNotGranted(t *testing.T) {
	k := keycloak(t)
	status, tr := k.requestToken(t, ordersService, demoSecret(ordersService), secretBasic, "orders:export")
	if status != http.StatusBadRequest || tr.Error != "invalid_scope" || tr.AccessToken != "" {
		t.Errorf("orders-service asking for orders:export: %d %s %s", status, tr.Error, tr.ErrorDescription)
	}
}
