package policy

import (
	"context"
	"strings"
	"testing"

	"github.com/keycloak-jwt/keycloak-jwt/internal/testidp"
	"github.com/keycloak-jwt/keycloak-jwt/internal/testrealms"
	"github.com/keycloak-jwt/keycloak-jwt/jwks"
)

var tenantClients = []testidp.Client{{ID: "svc", Secret: "s", Scopes: []string{"orders:read"}, Audience: []string{"orders-api"}}}

// TestTenantIssuers: an issuer pattern accepts the tokens of every realm
// it matches (one created at run time included), each verified with its own
// realm's keys; the tenant is on the decision; tenants restricts it, before
// any discovery; cache hits keep the tenant and its checks.
func TestTenantIssuers(t *testing.T) {
	h := testrealms.New(tenantClients, nil)
	t.Cleanup(h.Close)
	for _, r := range []string{"acme", "globex"} {
		if _, err := h.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	keys := jwks.NewCache(jwks.Options{})
	compile := func(edit func(*Config)) *Policy {
		cfg := Config{Requirements: Requirements{
			Issuers:   []Issuer{{Issuer: h.Pattern(), TenantRegex: "[a-z]+"}},
			Audiences: []string{"orders-api"},
		}}
		if edit != nil {
			edit(&cfg)
		}
		p, err := Compile(cfg, Deps{Keys: keys})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	tok := func(realm string) string {
		tk, err := h.Token(realm, "svc")
		if err != nil {
			t.Fatal(err)
		}
		return tk
	}
	p := compile(nil)
	acmeOnly := compile(func(c *Config) { c.Tenants = []string{"acme"} })
	ctx := context.Background()

	for _, realm := range []string{"acme", "globex"} {
		d := p.Check(ctx, tok(realm))
		if !d.Allow || d.Tenant != realm {
			t.Fatalf("%s: %v %s %s tenant %q", realm, d.Allow, d.Reason, d.Detail, d.Tenant)
		}
		if d2 := p.Check(ctx, tok(realm)); !d2.Allow || d2.Tenant != realm {
			t.Fatalf("%s again: %+v", realm, d2)
		}
	}
	// A cache hit still carries the tenant, and tenants still applies.
	acme := tok("acme")
	p.Check(ctx, acme)
	if d := p.Check(ctx, acme); !d.CachedResult || d.Tenant != "acme" {
		t.Fatalf("cache hit: cached %v tenant %q", d.CachedResult, d.Tenant)
	}
	globex := tok("globex")
	p.Check(ctx, globex) // cached by p
	if d := acmeOnly.Check(ctx, globex); d.Allow || d.Reason != ReasonTenant || d.Status != 401 {
		t.Fatalf("globex on an acme-only policy: %+v", d)
	}
	if d := acmeOnly.Check(ctx, acme); !d.Allow || d.Tenant != "acme" {
		t.Fatalf("acme on the acme-only policy: %+v", d)
	}

	// A realm created while the policy runs.
	if _, err := h.Add("initech"); err != nil {
		t.Fatal(err)
	}
	before, _ := h.Discoveries()
	if d := p.Check(ctx, tok("initech")); !d.Allow || d.Tenant != "initech" {
		t.Fatalf("realm created at run time: %s %s", d.Reason, d.Detail)
	}
	if after, _ := h.Discoveries(); after != before+1 {
		t.Fatalf("%d discoveries for the new realm", after-before)
	}

	// A route for acme only never discovers another realm.
	if _, err := h.Add("umbrella"); err != nil {
		t.Fatal(err)
	}
	before, _ = h.Discoveries()
	if d := acmeOnly.Check(ctx, tok("umbrella")); d.Reason != ReasonTenant || !strings.Contains(d.Detail, `"umbrella"`) {
		t.Fatalf("umbrella on the acme-only policy: %+v", d)
	}
	if after, _ := h.Discoveries(); after != before {
		t.Fatal("a refused tenant was discovered")
	}

	// A token signed by one realm's key but naming another realm's iss is
	// verified with the named realm's keys, and fails.
	acmeIdP, _ := h.Add("acme2")
	forged, err := acmeIdP.Token("svc", testidp.WithClaim("iss", h.Issuer("globex")))
	if err != nil {
		t.Fatal(err)
	}
	if d := p.Check(ctx, forged); d.Allow || (d.Reason != ReasonUnknownKey && d.Reason != ReasonSignature) {
		t.Fatalf("cross-realm token: %s %s", d.Reason, d.Detail)
	}
	// Not a realm, and not matching the pattern.
	if d := p.Check(ctx, signedBy(t, acmeIdP, h.Issuer("nosuchrealm"))); d.Reason != ReasonIssuer || !strings.Contains(d.Detail, "realm unknown") {
		t.Fatalf("unknown realm: %s %s", d.Reason, d.Detail)
	}
	if d := p.Check(ctx, signedBy(t, acmeIdP, h.Issuer("Acme"))); d.Reason != ReasonIssuer {
		t.Fatalf("tenant outside tenant_regex: %s %s", d.Reason, d.Detail)
	}
	// A fixed issuer's token has no tenant: refused where tenants is set.
	fixed := compile(func(c *Config) {
		c.Issuers = append(c.Issuers, Issuer{Issuer: h.Issuer("acme2")})
		c.Tenants = []string{"acme"}
	})
	if d := fixed.Check(ctx, tok("acme2")); d.Reason != ReasonTenant || !strings.Contains(d.Detail, "no tenant") {
		t.Fatalf("fixed issuer on a tenants policy: %s %s", d.Reason, d.Detail)
	}
}

func signedBy(t *testing.T, idp *testidp.IdP, iss string) string {
	t.Helper()
	tok, err := idp.Token("svc", testidp.WithClaim("iss", iss))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestTenantConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		iss   Issuer
		other func(*Config)
		field string
	}{
		{Issuer{Issuer: "https://sso/realms/{tenant}"}, nil, "issuers[0]"},
		{Issuer{Issuer: "https://sso/realms/{tenant}", TenantRegex: "("}, nil, "issuers[0]"},
		{Issuer{Issuer: "https://sso/realms/{tenant}", TenantRegex: "a", MaxTenants: -1}, nil, "issuers[0].max_tenants"},
		{Issuer{Issuer: "https://sso/realms/{tenant}", TenantRegex: "a", TenantAbsentSeconds: 1 << 30}, nil, "issuers[0].tenant_absent_seconds"},
		{Issuer{Issuer: "https://sso/realms/x", TenantRegex: "a"}, nil, "issuers[0].tenant_regex"},
		{Issuer{Issuer: "https://sso/realms/x"}, func(c *Config) { c.Tenants = []string{"acme"} }, "tenants"},
		{Issuer{Issuer: "https://sso/realms/{tenant}", TenantRegex: "a"}, func(c *Config) { c.Tenants = []string{""} }, "tenants[0]"},
	} {
		cfg := Config{Requirements: Requirements{Issuers: []Issuer{tc.iss}, Audiences: []string{"api"}}}
		if tc.other != nil {
			tc.other(&cfg)
		}
		err := cfg.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), tc.field+": ") {
			t.Errorf("%+v: %v, want an error on %s", tc.iss, err, tc.field)
		}
	}
	ok := Config{Requirements: Requirements{Issuers: []Issuer{{Issuer: "https://sso/realms/{tenant}",
		DiscoveryURL: "http://keycloak:8080/realms/{tenant}/.well-known/openid-configuration", TenantAllowList: []string{"acme"},
		MaxTenants: 10, TenantIdleSeconds: 60, TenantDiscoveriesPerMinute: 5, TenantAbsentSeconds: 30}},
		Audiences: []string{"api"}, Tenants: []string{"acme"}}}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestTenantExplain: Explain follows issuer patterns as Check does.
func TestTenantExplain(t *testing.T) {
	h := testrealms.New(tenantClients, nil)
	t.Cleanup(h.Close)
	if _, err := h.Add("acme"); err != nil {
		t.Fatal(err)
	}
	p, err := Compile(Config{Requirements: Requirements{Issuers: []Issuer{{Issuer: h.Pattern(), TenantAllowList: []string{"acme", "globex"}}},
		Audiences: []string{"orders-api"}}}, Deps{Keys: jwks.NewCache(jwks.Options{})})
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := h.Token("acme", "svc")
	if ex := p.Explain(context.Background(), tok); !ex.Decision.Allow || len(ex.Failed()) > 0 {
		t.Fatalf("acme: %s, failed %v", ex.Summary(), ex.Failed())
	}
	idp, _ := h.Add("other")
	tok, _ = idp.Token("svc", testidp.WithClaim("iss", h.Issuer("globex")))
	ex := p.Explain(context.Background(), tok)
	if ex.Decision.Allow || strings.Join(ex.Failed(), ",") != "issuer" || !strings.Contains(ex.Steps[5].Detail, "globex") {
		t.Fatalf("globex (no such realm): %s, failed %v, %+v", ex.Summary(), ex.Failed(), ex.Steps)
	}
}
