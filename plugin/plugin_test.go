package plugin

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/Kong/go-pdk/test"

	"github.com/keycloak-jwt/keycloak-jwt/internal/testidp"
	"github.com/keycloak-jwt/keycloak-jwt/policy"
)

// Unit tests with go-pdk's own test environment (in-process bridge).

func newIdP(t *testing.T) *testidp.IdP {
	t.Helper()
	idp, err := testidp.New(testidp.Options{Clients: []testidp.Client{
		{ID: "orders-service", Secret: "x", Scopes: []string{"orders:read"}, Audience: []string{"orders-api"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(idp.Close)
	return idp
}

func cfgFor(t *testing.T, idp *testidp.IdP, extra string) *Config {
	t.Helper()
	c := &Config{}
	raw := `{"issuers":[{"issuer":"` + idp.Issuer() + `"}],"audiences":["orders-api"]` + extra + `}`
	if err := json.Unmarshal([]byte(raw), c); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestPDKAllow(t *testing.T) {
	idp := newIdP(t)
	tok, _ := idp.Token("orders-service")
	env, err := test.New(t, test.Request{Method: "GET", Url: "http://kong/orders",
		Headers: http.Header{"Authorization": {"Bearer " + tok}, "X-Client-Id": {"forged"}}})
	if err != nil {
		t.Fatal(err)
	}
	env.DoAccess(cfgFor(t, idp, `,"scopes_required":["orders:read"]`))
	if env.ClientRes.Status != 0 { // 0: the plugin did not answer, the request goes upstream
		t.Fatalf("denied: status %d %s", env.ClientRes.Status, env.ClientRes.Body)
	}
	if got := env.ServiceReq.Headers.Get("X-Client-Id"); got != "orders-service" {
		t.Fatalf("X-Client-Id upstream = %q", got)
	}
}

func TestPDKDeny(t *testing.T) {
	idp := newIdP(t)
	tok, _ := idp.Token("orders-service")
	for name, tc := range map[string]struct {
		hdr    http.Header
		extra  string
		status int
	}{
		"no token":      {http.Header{}, "", 401},
		"missing scope": {http.Header{"Authorization": {"Bearer " + tok}}, `,"scopes_required":["orders:write"]`, 403},
		"misconfigured": {http.Header{"Authorization": {"Bearer " + tok}}, `,"scopes_match":"some"`, 500},
	} {
		t.Run(name, func(t *testing.T) {
			env, err := test.New(t, test.Request{Method: "GET", Url: "http://kong/orders", Headers: tc.hdr})
			if err != nil {
				t.Fatal(err)
			}
			env.DoAccess(cfgFor(t, idp, tc.extra))
			if env.ClientRes.Status != tc.status {
				t.Fatalf("status %d, want %d", env.ClientRes.Status, tc.status)
			}
			if tc.status != 500 && env.ClientRes.Headers.Get("WWW-Authenticate") == "" {
				t.Fatal("no WWW-Authenticate")
			}
		})
	}
}

func TestCompileNamesFields(t *testing.T) {
	idp := newIdP(t)
	for extra, field := range map[string]string{
		`,"realm":"a\"b"`:                 "realm",
		`,"header_names":["x y"]`:         "header_names[0]",
		`,"cookie_names":["a=b"]`:         "cookie_names[0]",
		`,"uri_param_names":[""]`:         "uri_param_names[0]",
		`,"header_names":["X-Client-Id"]`: "header_names",
	} {
		_, err := Compile(cfgFor(t, idp, extra), policy.Deps{Keys: keys})
		var ce *policy.ConfigError
		if !errors.As(err, &ce) || ce.Field != field {
			t.Errorf("%s: err %v, want field %s", extra, err, field)
		}
	}
}

// TestLintReportsEveryProblem: one finding per problem of an entry, each
// naming its field, not one per entry.
func TestLintReportsEveryProblem(t *testing.T) {
	doc := []byte("plugins:\n- name: keycloak-jwt\n  config:\n    issuers: [{issuer: 'https://sso.example.com/realms/a'}]\n" +
		"    audiences: []\n    scopes_match: some\n    jwks: {min_ttl_seconds: 7200, max_ttl_seconds: 3600}\n")
	n, findings, err := Lint(doc, LintOptions{})
	if err != nil || n != 1 {
		t.Fatalf("%d entries, %v", n, err)
	}
	var fields []string
	for _, f := range findings {
		var ce *policy.ConfigError
		if !errors.As(f.Err, &ce) {
			t.Fatalf("finding without a field: %v", f)
		}
		fields = append(fields, ce.Field)
	}
	if strings.Join(fields, ",") != "jwks.min_ttl_seconds,audiences,scopes_match" {
		t.Fatalf("findings %v", findings)
	}
}

// TestLintIssuerSlashAndAnonymous: a Keycloak issuer with a trailing slash
// never matches a token; an anonymous consumer the file does not define
// makes Kong answer 500 (a warning when the file defines no consumers).
func TestLintIssuerSlashAndAnonymous(t *testing.T) {
	base := "plugins:\n- name: keycloak-jwt\n  config:\n    issuers: [{issuer: '%s'}]\n    audiences: [a]\n    anonymous: %s\n%s"
	for _, tc := range []struct {
		name, issuer, anonymous, consumers string
		field                              string
		warning                            bool
	}{
		{"trailing slash", "https://sso.example.com/realms/a/", "", "", "issuers[0].issuer", false},
		{"undefined anonymous", "https://sso.example.com/realms/a", "guest", "consumers: [{username: someone}]\n", "anonymous", false},
		{"anonymous, no consumers in the file", "https://sso.example.com/realms/a", "guest", "", "anonymous", true},
		{"anonymous defined", "https://sso.example.com/realms/a", "guest", "consumers: [{username: guest}]\n", "", false},
	} {
		anon := tc.anonymous
		if anon == "" {
			anon = "''"
		}
		_, findings, err := Lint([]byte(fmt.Sprintf(base, tc.issuer, anon, tc.consumers)), LintOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if tc.field == "" {
			if len(findings) != 0 {
				t.Errorf("%s: %v", tc.name, findings)
			}
			continue
		}
		var ce *policy.ConfigError
		if len(findings) != 1 || !errors.As(findings[0].Err, &ce) || ce.Field != tc.field || findings[0].Warning != tc.warning {
			t.Errorf("%s: %v", tc.name, findings)
		}
	}
}
