package testidp

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
)

// TestDemoRealmIsTheExample keeps the embedded realm identical to the
// export that Keycloak imports.
func TestDemoRealmIsTheExample(t *testing.T) {
	example, err := os.ReadFile("../../examples/keycloak/realm-demo.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(example, demoRealmJSON) {
		t.Fatal("internal/testidp/realm-demo.json differs from examples/keycloak/realm-demo.json: copy the example over it")
	}
}

func TestDemoRealm(t *testing.T) {
	r, err := DemoRealm()
	if err != nil {
		t.Fatal(err)
	}
	if r.Name != "demo" || r.TokenTTL.Seconds() != 300 {
		t.Errorf("realm %q, ttl %s", r.Name, r.TokenTTL)
	}
	var ids []string
	for _, c := range r.Clients {
		ids = append(ids, c.ID)
	}
	if !slices.Equal(ids, []string{"orders-service", "reports-job", "no-audience-client", "orders-signed-jwt"}) {
		t.Fatalf("clients %v (orders-api is bearer-only: no tokens)", ids)
	}
	want := map[string]Client{
		"orders-service": {ID: "orders-service", Secret: "orders-service-demo-secret", Scopes: []string{"profile", "orders:read", "orders:write"},
			RealmRoles: []string{"api-client", "orders-admin"}, ClientRoles: map[string][]string{"orders-api": {"reader", "writer"}}, Audience: []string{"orders-api"}},
		"reports-job": {ID: "reports-job", Secret: "reports-job-demo-secret", Scopes: []string{"profile", "orders:read"}, OptionalScopes: []string{"orders:export"},
			RealmRoles: []string{"api-client"}, ClientRoles: map[string][]string{"orders-api": {"reader"}}, Audience: []string{"orders-api"}},
		"no-audience-client": {ID: "no-audience-client", Secret: "no-audience-client-demo-secret", Scopes: []string{"profile", "orders:read"},
			RealmRoles: []string{"api-client"}},
		// client-jwt: no secret, so testidp's token endpoint refuses it.
		"orders-signed-jwt": {ID: "orders-signed-jwt", Scopes: []string{"profile", "orders:read"},
			RealmRoles: []string{"api-client"}, ClientRoles: map[string][]string{"orders-api": {"reader"}}, Audience: []string{"orders-api"}},
	}
	for id, w := range want {
		got, _ := r.Client(id)
		gj, _ := json.Marshal(got)
		wj, _ := json.Marshal(w)
		if !bytes.Equal(gj, wj) {
			t.Errorf("client %s:\n got %s\nwant %s", id, gj, wj)
		}
	}
}

// TestExportShape: tokens of the demo realm look like the ones Keycloak 26
// issues for the imported export (e2e/keycloak compares the two).
func TestExportShape(t *testing.T) {
	r, err := DemoRealm()
	if err != nil {
		t.Fatal(err)
	}
	idp, err := New(r.Options())
	if err != nil {
		t.Fatal(err)
	}
	defer idp.Close()
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"orders:export"}}
	req, _ := http.NewRequest(http.MethodPost, idp.TokenURL(), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("reports-job", "reports-job-demo-secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tr TokenResponse
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil || resp.StatusCode != 200 {
		t.Fatalf("status %d, %v", resp.StatusCode, err)
	}
	if tr.Scope != "profile orders:read orders:export" {
		t.Errorf("scope %q", tr.Scope)
	}
	_, claims, _, _ := parseJWT(t, tr.AccessToken)
	for _, absent := range []string{"allowed-origins", "email_verified", "clientId"} {
		if _, ok := claims[absent]; ok {
			t.Errorf("claim %s present", absent)
		}
	}
	if claims["aud"] != "orders-api" || claims["client_id"] != "reports-job" {
		t.Errorf("aud %v, client_id %v", claims["aud"], claims["client_id"])
	}
	tok, err := idp.Token("no-audience-client")
	if err != nil {
		t.Fatal(err)
	}
	if _, c, _, _ := parseJWT(t, tok); c["aud"] != nil || c["resource_access"] != nil {
		t.Errorf("no-audience-client: aud %v, resource_access %v", c["aud"], c["resource_access"])
	}
	if _, err := idp.Token("orders-service", WithScope("orders:export")); err == nil {
		t.Error("orders-service got the optional scope it lacks")
	}
}
