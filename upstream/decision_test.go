package upstream

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keycloak-jwt/keycloak-jwt/internal/testidp"
	"github.com/keycloak-jwt/keycloak-jwt/jwks"
	"github.com/keycloak-jwt/keycloak-jwt/policy"
)

// The issuer and audience of the tokens allowed builds: a payload without
// "iss" or "aud" gets these.
const (
	testIssuer   = "https://kc.example/realms/demo"
	testAudience = "orders-api"
)

var (
	issuerOnce sync.Once
	issuerIdP  *testidp.IdP
	issuerKeys *jwks.Cache
	issuerErr  error
)

// allowed builds an allowed decision from a raw JWT payload the way
// production does: the payload is signed by a test issuer, and a policy
// trusting that issuer verifies it and returns its claims. The payload's
// bytes are signed as they are, so the claims read back (Claims.Get) are
// exactly the payload's; only "iss" and "aud" are added when absent
// (testIssuer, testAudience). The policy's clock is set a second before the
// payload's "exp". The decision keeps the claims and drops the policy's
// dating (CheckedAt, AcceptedUntil): tests that need them set them.
func allowed(t testing.TB, payload string) *policy.Decision {
	t.Helper()
	issuerOnce.Do(func() {
		issuerIdP, issuerErr = testidp.New(testidp.Options{})
		issuerKeys = jwks.NewCache(jwks.Options{})
	})
	if issuerErr != nil {
		t.Fatalf("test issuer: %v", issuerErr)
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal([]byte(payload), &members); err != nil {
		t.Fatalf("payload %s: %v", payload, err)
	}
	var exp int64
	if err := json.Unmarshal(members["exp"], &exp); err != nil {
		t.Fatalf("payload %s: exp: %v", payload, err)
	}
	var add string
	if _, ok := members["iss"]; !ok {
		add += `"iss":"` + testIssuer + `",`
	}
	if _, ok := members["aud"]; !ok {
		add += `"aud":"` + testAudience + `",`
	}
	open := strings.IndexByte(payload, '{') + 1
	raw := payload[:open] + add + payload[open:]

	hdr := `{"alg":"RS256","typ":"at+jwt","kid":"` + issuerIdP.CurrentKid() + `"}`
	tok, err := issuerIdP.SignRaw([]byte(hdr), []byte(raw))
	if err != nil {
		t.Fatalf("sign %s: %v", raw, err)
	}
	noCache := 0
	cfg := policy.Config{MaxTokenBytes: 1 << 20, TokenCacheSize: &noCache}
	cfg.Issuers = []policy.Issuer{{Issuer: testIssuer, JWKSURI: issuerIdP.JWKSURL()}}
	cfg.Audiences = []string{testAudience}
	p, err := policy.Compile(cfg, policy.Deps{Keys: issuerKeys, Clock: func() time.Time { return time.Unix(exp-1, 0) }})
	if err != nil {
		t.Fatalf("policy.Compile: %v", err)
	}
	d := p.Check(context.Background(), tok)
	if !d.Allow || d.Claims == nil {
		t.Fatalf("payload %s: denied (%s: %s)", raw, d.Reason, d.Detail)
	}
	return &policy.Decision{Allow: true, Status: d.Status, Reason: d.Reason, Claims: d.Claims}
}
