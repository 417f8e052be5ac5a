package policy

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/keycloak-jwt/keycloak-jwt/internal/testidp"
)

func tamper(tok string) string {
	i := strings.LastIndexByte(tok, '.') + 5
	c := byte('A')
	if tok[i] == 'A' {
		c = 'B'
	}
	return tok[:i] + string(c) + tok[i+1:]
}

// TestExplain: for each misconfiguration operators meet, the explanation's
// verdict is Check's, its first failing step gives Check's reason, every
// claim rule is evaluated, and the fix names what to change in Keycloak.
func TestExplain(t *testing.T) {
	e := newEnv(t, "RS256")
	now := e.clock.Now()
	refresh, err := e.idp.RefreshToken("orders-service")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		edit   func(*Config)
		token  string
		reason string   // "" = allowed
		failed []string // every failing check
		fix    string   // a substring of the first failure's fix
	}{
		{"allowed", nil, e.token(t, "orders-service"), "", nil, ""},
		{"audience mapper missing", nil, e.token(t, "no-audience"), ReasonAudience, []string{"audience"}, "add an Audience mapper to client \"no-audience\"'s dedicated scope"},
		{"optional scope not requested", func(c *Config) { c.ScopesRequired = []string{"orders:write"} },
			e.token(t, "orders-service", testidp.WithScope("orders:read")), ReasonScope, []string{"scopes"}, "request scope=orders:write"},
		{"scope and role missing, both shown", func(c *Config) {
			c.ScopesRequired = []string{"orders:write"}
			c.RealmRolesRequired = []string{"orders-admin"}
		}, e.token(t, "reports-job"), ReasonScope, []string{"scopes", "realm roles"}, "scope=orders:write"},
		{"client role missing", func(c *Config) { c.ClientRolesRequired = []string{"orders-api:writer"} },
			e.token(t, "reports-job"), ReasonClientRole, []string{"client roles"}, "assign the client role orders-api:writer to the service account"},
		{"issuer under another host name", func(c *Config) {
			c.Issuers = append(c.Issuers, Issuer{Issuer: strings.Replace(e.idp.Issuer(), "127.0.0.1", "keycloak", 1), JWKSURI: e.idp.Issuer() + "/protocol/openid-connect/certs"})
		}, e.token(t, "orders-service", testidp.WithClaim("iss", strings.Replace(e.idp.Issuer(), "127.0.0.1", "localhost", 1))),
			ReasonIssuer, []string{"issuer"}, "KC_HOSTNAME"},
		{"clock behind Keycloak", nil, e.token(t, "orders-service", testidp.WithClaim("nbf", now.Add(10*time.Minute).Unix()),
			testidp.WithClaim("iat", now.Add(10*time.Minute).Unix())), ReasonNotYetValid, []string{"not before", "issued at"}, "clocks of Keycloak and the gateway differ by about 600 s"},
		{"expired", nil, e.token(t, "orders-service", testidp.WithTTL(-time.Hour)), ReasonExpired, []string{"expiry"}, "get a new token"},
		// Keycloak signs refresh tokens with HS512: the algorithm refuses it first, and the
		// explanation shows the type too.
		{"refresh token sent", nil, refresh, ReasonAlgorithm, []string{"algorithm", "key", "token type", "audience"}, "send the access_token"},
		{"tampered signature", nil, tamper(e.token(t, "orders-service")), ReasonSignature, []string{"signature"}, "altered"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := e.compile(t, tc.edit)
			ex := p.Explain(context.Background(), tc.token)
			d := p.Check(context.Background(), tc.token)
			if ex.Decision.Allow != d.Allow || ex.Decision.Reason != d.Reason || ex.Decision.Status != d.Status {
				t.Fatalf("explain decides %+v, Check %+v", ex.Decision, d)
			}
			if tc.reason == "" {
				if !d.Allow || len(ex.Failed()) != 0 {
					t.Fatalf("allowed token: %+v %v", d, ex.Steps)
				}
				return
			}
			if d.Reason != tc.reason {
				t.Fatalf("reason %s (%s), want %s", d.Reason, d.Detail, tc.reason)
			}
			var first *Step
			for i := range ex.Steps {
				if ex.Steps[i].Result == StepFail {
					first = &ex.Steps[i]
					break
				}
			}
			if first == nil || first.Reason != d.Reason {
				t.Fatalf("first failure %+v, Check's reason %s", first, d.Reason)
			}
			if got := strings.Join(ex.Failed(), ","); got != strings.Join(tc.failed, ",") {
				t.Fatalf("failed %s, want %s", got, strings.Join(tc.failed, ","))
			}
			if !strings.Contains(first.Fix, tc.fix) {
				t.Fatalf("fix %q lacks %q", first.Fix, tc.fix)
			}
			b, _ := json.Marshal(ex)
			parts := strings.Split(tc.token, ".")
			if strings.Contains(string(b), parts[len(parts)-1]) || strings.Contains(string(b), tc.token) {
				t.Fatal("the explanation holds the token or its signature")
			}
		})
	}
}
