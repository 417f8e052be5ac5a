package interop

import (
	"slices"
	"testing"
)

// TestRealmExport checks examples/keycloak/realm-demo.json for what Keycloak
// needs to import it and for what the demo needs from it: confidential
// clients that can only use the client-credentials grant, their scopes, the
// audience mapper, and their service-account users with roles.
func TestRealmExport(t *testing.T) {
	r := loadRealm(t)
	if r.Realm != "demo" {
		t.Errorf("realm %q, want demo (the issuer is .../realms/demo)", r.Realm)
	}
	if !isTrue(r.Enabled) {
		t.Error("realm: enabled must be true")
	}

	t.Run("client scopes", func(t *testing.T) {
		seen := map[string]bool{}
		for _, s := range r.ClientScopes {
			if seen[s.Name] {
				t.Errorf("client scope %q declared twice", s.Name)
			}
			seen[s.Name] = true
			if s.Protocol != "openid-connect" {
				t.Errorf("client scope %q: protocol %q, want openid-connect", s.Name, s.Protocol)
			}
			for _, m := range s.ProtocolMappers {
				if m.Protocol != "openid-connect" || m.ProtocolMapper == "" || m.Name == "" {
					t.Errorf("client scope %q: mapper %+v needs a name, protocol openid-connect and a protocolMapper", s.Name, m)
				}
			}
		}
		for _, name := range []string{"orders:read", "orders:write"} {
			s := r.scope(name)
			if s == nil {
				t.Errorf("client scope %q is missing", name)
				continue
			}
			if s.Attributes["include.in.token.scope"] != "true" {
				t.Errorf("client scope %q: include.in.token.scope must be \"true\" or it never reaches the scope claim", name)
			}
		}
		// A realm file that declares clientScopes gets none of Keycloak's
		// built-in ones: sub and the role claims must be declared here.
		if !scopeHasMapper(r, "basic", "oidc-sub-mapper") {
			t.Error(`client scope "basic" with an oidc-sub-mapper is missing: access tokens would have no sub`)
		}
		for _, m := range []string{"oidc-usermodel-realm-role-mapper", "oidc-usermodel-client-role-mapper"} {
			if !scopeHasMapper(r, "roles", m) {
				t.Errorf(`client scope "roles" lacks %s: tokens would have no role claims`, m)
			}
		}
	})

	t.Run("audience mapper", func(t *testing.T) {
		found := false
		for _, s := range r.ClientScopes {
			for _, m := range s.ProtocolMappers {
				if m.ProtocolMapper != "oidc-audience-mapper" {
					continue
				}
				found = true
				if m.Config["access.token.claim"] != "true" {
					t.Errorf("audience mapper %q of %q: access.token.claim must be \"true\"", m.Name, s.Name)
				}
				if aud := m.Config["included.client.audience"]; aud != "" && r.client(aud) == nil {
					t.Errorf("audience mapper %q names client %q, which the realm lacks", m.Name, aud)
				}
			}
		}
		if !found {
			t.Fatal("no oidc-audience-mapper: Keycloak's tokens would not name the API in aud")
		}
	})

	t.Run("resource server client", func(t *testing.T) {
		api := r.client("orders-api")
		if api == nil {
			t.Fatal("client orders-api (holder of the client roles and the audience) is missing")
		}
		if isTrue(api.ServiceAccountsEnabled) || isTrue(api.StandardFlowEnabled) ||
			isTrue(api.ImplicitFlowEnabled) || isTrue(api.DirectAccessGrantsEnabled) || isTrue(api.PublicClient) {
			t.Error("orders-api must not be able to get tokens: every flow off, not public")
		}
		for _, role := range []string{"reader", "writer"} {
			if !r.hasClientRole("orders-api", role) {
				t.Errorf("client role orders-api:%s is missing", role)
			}
		}
	})

	t.Run("machine clients", func(t *testing.T) {
		for _, id := range []string{OrdersService, ReportsJob, NoAudienceClient} {
			c := r.client(id)
			if c == nil {
				t.Errorf("client %q is missing", id)
				continue
			}
			if !isTrue(c.Enabled) || !isTrue(c.ServiceAccountsEnabled) {
				t.Errorf("client %q: enabled and serviceAccountsEnabled must be true", id)
			}
			if !isFalse(c.PublicClient) || isTrue(c.BearerOnly) {
				t.Errorf("client %q: must be confidential (publicClient false, not bearerOnly)", id)
			}
			if !isFalse(c.StandardFlowEnabled) || !isFalse(c.ImplicitFlowEnabled) || !isFalse(c.DirectAccessGrantsEnabled) {
				t.Errorf("client %q: standardFlowEnabled, implicitFlowEnabled and directAccessGrantsEnabled must be false", id)
			}
			if c.ClientAuthenticatorType != "client-secret" || c.Secret == "" {
				t.Errorf("client %q: clientAuthenticatorType client-secret with a secret is required", id)
			}
			if c.Secret != DemoSecret(id) {
				t.Errorf("client %q: secret %q differs from the demo secret the scripts and oidc-server use", id, c.Secret)
			}
			if c.Protocol != "openid-connect" {
				t.Errorf("client %q: protocol %q", id, c.Protocol)
			}
		}
		wantScopes := map[string][]string{
			OrdersService:    {"orders:read", "orders:write"},
			ReportsJob:       {"orders:read"},
			NoAudienceClient: {"orders:read"},
		}
		for id, want := range wantScopes {
			if c := r.client(id); c != nil {
				got := slices.DeleteFunc(r.grantedScopes(c), func(s string) bool { return s == "profile" })
				if !slices.Equal(got, want) {
					t.Errorf("client %q: tokens would carry scopes %v, want %v", id, got, want)
				}
			}
		}
		wantAud := map[string]bool{OrdersService: true, ReportsJob: true, NoAudienceClient: false}
		for id, want := range wantAud {
			if c := r.client(id); c != nil {
				if got := slices.Contains(r.audiences(c), "orders-api"); got != want {
					t.Errorf("client %q: aud contains orders-api = %t, want %t", id, got, want)
				}
			}
		}
	})

	t.Run("every referenced client scope is declared", func(t *testing.T) {
		// Keycloak only warns ("Referenced client scope ... doesn't exist.
		// Ignoring") and imports the client without it.
		for _, c := range r.Clients {
			for _, name := range slices.Concat(c.DefaultClientScopes, c.OptionalClientScopes) {
				if r.scope(name) == nil {
					t.Errorf("client %q refers to undeclared client scope %q", c.ClientID, name)
				}
			}
		}
	})

	t.Run("service-account users", func(t *testing.T) {
		for _, c := range r.serviceClients() {
			u := r.serviceAccount(c.ClientID)
			if u == nil {
				t.Errorf("client %q has no service-account user (users[].serviceAccountClientId)", c.ClientID)
				continue
			}
			if want := "service-account-" + c.ClientID; u.Username != want {
				t.Errorf("service account of %q: username %q, want %q", c.ClientID, u.Username, want)
			}
			if !isTrue(u.Enabled) {
				t.Errorf("service account of %q must be enabled", c.ClientID)
			}
		}
		for _, u := range r.Users {
			if u.ServiceAccountClientID == "" {
				t.Errorf("user %q is not a service account: this realm has no human users", u.Username)
			}
			if len(u.Credentials) > 0 {
				t.Errorf("user %q has credentials: service accounts authenticate with their client's secret", u.Username)
			}
			for _, role := range u.RealmRoles {
				if !r.hasRealmRole(role) {
					t.Errorf("user %q: realm role %q is not declared", u.Username, role)
				}
			}
			for client, roles := range u.ClientRoles {
				for _, role := range roles {
					if !r.hasClientRole(client, role) {
						t.Errorf("user %q: client role %s:%s is not declared", u.Username, client, role)
					}
				}
			}
		}
		if u := r.serviceAccount(OrdersService); u == nil || !slices.Contains(u.ClientRoles["orders-api"], "writer") {
			t.Error("orders-service must hold orders-api:writer")
		}
		if u := r.serviceAccount(ReportsJob); u == nil || slices.Contains(u.ClientRoles["orders-api"], "writer") {
			t.Error("reports-job must not hold orders-api:writer")
		}
	})
}

func scopeHasMapper(r *realmExport, scope, mapper string) bool {
	s := r.scope(scope)
	if s == nil {
		return false
	}
	return slices.ContainsFunc(s.ProtocolMappers, func(m protocolMapper) bool {
		return m.ProtocolMapper == mapper && m.Config["access.token.claim"] == "true"
	})
}
