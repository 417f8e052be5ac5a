package sidecar

import (
	"net/http"
	"strings"
	"testing"

	"github.com/keycloak-jwt/keycloak-jwt/internal/testidp"
	"github.com/keycloak-jwt/keycloak-jwt/internal/testrealms"
)

const tenantYAML = `
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
upstream: {url: "${UPSTREAM}"}
policy:
  issuers:
    - issuer: "${PATTERN}"
      tenant_regex: "[a-z]+"
      tenant_discoveries_per_minute: 5
  audiences: [orders-api]
routes:
  - {prefix: /acme, tenants: [acme]}
  - {prefix: /, scopes_required: [orders:read]}
`

// TestTenantRoutes: one sidecar for a realm per tenant, over real sockets:
// the tenant reaches the upstream in X-Tenant (a client's copy is
// replaced), a route for one tenant refuses the others, a realm created at
// run time is served without a change, and invented realms cost at most
// tenant_discoveries_per_minute discoveries.
func TestTenantRoutes(t *testing.T) {
	realms := testrealms.New(testClients, nil)
	t.Cleanup(realms.Close)
	for _, r := range []string{"acme", "globex"} {
		if _, err := realms.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	h := start(t, harnessOpt{yaml: tenantYAML, env: map[string]string{"PATTERN": realms.Pattern()}})
	tok := func(realm string) string {
		tk, err := realms.Token(realm, "reports-job")
		if err != nil {
			t.Fatal(err)
		}
		return tk
	}
	forged := http.Header{"X-Tenant": {"acme"}}
	for _, tc := range []struct {
		path, realm string
		status      int
	}{
		{"/acme/orders", "acme", 200},
		{"/acme/orders", "globex", 401},
		{"/orders", "globex", 200},
		{"/orders", "acme", 200},
	} {
		r := do(t, "GET", h.url+tc.path, tok(tc.realm), forged, nil)
		if r.status != tc.status {
			t.Fatalf("%s with a %s token: %d %s", tc.path, tc.realm, r.status, r.body)
		}
		if tc.status == 200 {
			if got := r.echo(t).Headers.Values("X-Tenant"); len(got) != 1 || got[0] != tc.realm {
				t.Fatalf("%s with a %s token: upstream saw X-Tenant %q", tc.path, tc.realm, got)
			}
		}
	}
	if _, err := realms.Add("initech"); err != nil {
		t.Fatal(err)
	}
	if r := do(t, "GET", h.url+"/orders", tok("initech"), nil, nil); r.status != 200 || r.echo(t).Headers.Get("X-Tenant") != "initech" {
		t.Fatalf("realm created at run time: %d %s", r.status, r.body)
	}
	// Invented realms: tokens signed by a real realm's key, naming others.
	idp, _ := realms.Add("mallory")
	before, _ := realms.Discoveries()
	for i := 0; i < 50; i++ {
		iss := realms.Issuer("invented" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + string(rune('a'+i/26)))
		tk, err := idp.Token("reports-job", testidp.WithClaim("iss", iss))
		if err != nil {
			t.Fatal(err)
		}
		if r := do(t, "GET", h.url+"/orders", tk, nil, nil); r.status != 401 {
			t.Fatalf("invented realm %s: %d", iss, r.status)
		}
	}
	// This minute already discovered acme, globex and initech: 2 are left.
	if after, _ := realms.Discoveries(); after-before > 2 {
		t.Fatalf("%d discoveries for 50 invented realms", after-before)
	}
	// A reload keeps the realms held and their keys: no rediscovery.
	h.srv.reload.lookup = mapEnv(map[string]string{"PATTERN": realms.Pattern(), "UPSTREAM": h.up.URL})
	before, _ = realms.Discoveries()
	jwksBefore := realms.JWKSFetches()
	if res := h.srv.Reload([]byte(strings.Replace(tenantYAML, "tenants: [acme]", "tenants: [acme, globex]", 1))); !res.Applied {
		t.Fatalf("reload: %+v", res)
	}
	if r := do(t, "GET", h.url+"/acme/x", tok("globex"), nil, nil); r.status != 200 || r.echo(t).Headers.Get("X-Tenant") != "globex" {
		t.Fatalf("globex on /acme after the reload: %d %s", r.status, r.body)
	}
	if after, _ := realms.Discoveries(); after != before || realms.JWKSFetches() != jwksBefore {
		t.Fatalf("the reload cost %d discoveries, %d JWKS fetches", after-before, realms.JWKSFetches()-jwksBefore)
	}
	m := metricsText(t, h)
	wantMetric(t, m, `keycloak_jwt_tenant_realms{pattern="`+realms.Pattern()+`",state="held"}`, "3")
	if v, _ := metricValue(m, `keycloak_jwt_tenant_refused_total{pattern="`+realms.Pattern()+`",why="rate"}`); v == "0" || v == "" {
		t.Errorf("refused by rate: %q", v)
	}
}
