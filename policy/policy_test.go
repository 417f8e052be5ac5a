package policy

import (
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/keycloak-jwt/keycloak-jwt/internal/testidp"
)

func enc(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// signRaw signs header/payload maps with the IdP's current key.
func signRaw(t *testing.T, e *env, hdr, payload map[string]any) string {
	t.Helper()
	h, _ := json.Marshal(hdr)
	p, _ := json.Marshal(payload)
	tok, err := e.idp.SignRaw(h, p)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func validClaims(e *env) map[string]any {
	now := e.clock.Now().Unix()
	return map[string]any{
		"iss": e.idp.Issuer(), "aud": []string{"orders-api", "account"}, "azp": "orders-service",
		"sub": "6c1a", "typ": "Bearer", "exp": now + 300, "iat": now, "jti": "j1",
		"scope": "profile email orders:read",
	}
}

func hdrFor(e *env, extra map[string]any) map[string]any {
	h := map[string]any{"alg": "RS256", "typ": "JWT", "kid": e.idp.CurrentKid()}
	for k, v := range extra {
		if v == nil {
			delete(h, k)
		} else {
			h[k] = v
		}
	}
	return h
}

func claimsWith(e *env, edits map[string]any) map[string]any {
	c := validClaims(e)
	for k, v := range edits {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

// TestHostileTokens: every token here must be denied, with the given reason.
func TestHostileTokens(t *testing.T) {
	e := newEnv(t, "RS256")
	p := e.compile(t, func(c *Config) { c.Algorithms = []string{"RS256", "RS384"} })
	good := e.token(t, "orders-service")
	parts := strings.Split(good, ".")

	// HS256 "signed" with the realm's RSA public key, the classic confusion attack.
	pub := e.idp.PublicKey(e.idp.CurrentKid()).(*rsa.PublicKey)
	der, _ := x509.MarshalPKIXPublicKey(pub)
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	hsInput := enc(map[string]any{"alg": "HS256", "typ": "JWT", "kid": e.idp.CurrentKid()}) + "." + parts[1]
	mac := hmac.New(sha256.New, pemKey)
	mac.Write([]byte(hsInput))
	hsToken := hsInput + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))

	// Signed with the realm's enc key, under its kid.
	encKey := e.idp.PrivateKey(e.idp.EncKid())
	encInput := enc(map[string]any{"alg": "RS256", "typ": "JWT", "kid": e.idp.EncKid()}) + "." + parts[1]
	d := sha256.Sum256([]byte(encInput))
	encSig, err := encKey.Sign(rand.Reader, d[:], crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	encToken := encInput + "." + base64.RawURLEncoding.EncodeToString(encSig)

	// An attacker's own key, embedded in the header.
	attacker, _ := rsa.GenerateKey(rand.Reader, 2048)
	jwkHdr := map[string]any{"kty": "RSA", "n": base64.RawURLEncoding.EncodeToString(attacker.N.Bytes()), "e": "AQAB"}

	refresh, err := e.idp.RefreshToken("orders-service")
	if err != nil {
		t.Fatal(err)
	}
	huge := e.token(t, "orders-service", testidp.WithClaim("padding", strings.Repeat("x", 9000)))

	cases := []struct {
		name, token, reason string
		status              int
	}{
		{"alg none, empty signature", enc(map[string]any{"alg": "none", "typ": "JWT"}) + "." + parts[1] + ".", ReasonMalformed, 401},
		{"alg none with signature", enc(map[string]any{"alg": "none"}) + "." + parts[1] + "." + parts[2], ReasonAlgorithm, 401},
		{"alg None", enc(map[string]any{"alg": "None", "kid": e.idp.CurrentKid()}) + "." + parts[1] + "." + parts[2], ReasonAlgorithm, 401},
		{"HS256 with the RSA public key", hsToken, ReasonAlgorithm, 401},
		{"embedded jwk", signRaw(t, e, hdrFor(e, map[string]any{"jwk": jwkHdr}), validClaims(e)), ReasonBadHeader, 401},
		{"jku", signRaw(t, e, hdrFor(e, map[string]any{"jku": "http://evil.example/jwks"}), validClaims(e)), ReasonBadHeader, 401},
		{"x5u", signRaw(t, e, hdrFor(e, map[string]any{"x5u": "http://evil.example/cert"}), validClaims(e)), ReasonBadHeader, 401},
		{"x5c", signRaw(t, e, hdrFor(e, map[string]any{"x5c": []string{"MIIB"}}), validClaims(e)), ReasonBadHeader, 401},
		{"unknown crit", signRaw(t, e, hdrFor(e, map[string]any{"crit": []string{"exp"}, "exp": 1}), validClaims(e)), ReasonBadHeader, 401},
		{"b64 false", signRaw(t, e, hdrFor(e, map[string]any{"b64": false, "crit": []string{"b64"}}), validClaims(e)), ReasonBadHeader, 401},
		{"nested JWT", signRaw(t, e, hdrFor(e, map[string]any{"cty": "JWT"}), validClaims(e)), ReasonBadHeader, 401},
		{"unknown kid", signRaw(t, e, hdrFor(e, map[string]any{"kid": "nope"}), validClaims(e)), ReasonUnknownKey, 401},
		{"kid of the enc key", encToken, ReasonUnknownKey, 401},
		{"alg not fitting the key's alg", signRaw(t, e, hdrFor(e, map[string]any{"alg": "RS384"}), validClaims(e)), ReasonAlgorithm, 401},
		{"two segments", parts[0] + "." + parts[1], ReasonMalformed, 401},
		{"four segments", good + ".x", ReasonMalformed, 401},
		{"five segments (JWE)", "a.b.c.d.e", ReasonMalformed, 401},
		{"empty header", "." + parts[1] + "." + parts[2], ReasonMalformed, 401},
		{"padded segment", parts[0] + "=." + parts[1] + "." + parts[2], ReasonMalformed, 401},
		{"header not JSON", base64.RawURLEncoding.EncodeToString([]byte("hello")) + "." + parts[1] + "." + parts[2], ReasonMalformed, 401},
		{"header JSON array", enc([]string{"RS256"}) + "." + parts[1] + "." + parts[2], ReasonMalformed, 401},
		{"payload not JSON", mustSignBytes(t, e, hdrFor(e, nil), []byte("not json")), ReasonMalformed, 401},
		{"payload trailing garbage", mustSignBytes(t, e, hdrFor(e, nil), append(mustJSON(validClaims(e)), []byte("{}")...)), ReasonMalformed, 401},
		{"exp as a string", signRaw(t, e, hdrFor(e, nil), claimsWith(e, map[string]any{"exp": "9999999999"})), ReasonMalformed, 401},
		{"exp missing", signRaw(t, e, hdrFor(e, nil), claimsWith(e, map[string]any{"exp": nil})), ReasonMalformed, 401},
		{"iss as a number", signRaw(t, e, hdrFor(e, nil), claimsWith(e, map[string]any{"iss": 7})), ReasonMalformed, 401},
		{"aud as an object", signRaw(t, e, hdrFor(e, nil), claimsWith(e, map[string]any{"aud": map[string]any{"a": 1}})), ReasonMalformed, 401},
		{"scope as an array", signRaw(t, e, hdrFor(e, nil), claimsWith(e, map[string]any{"scope": []string{"orders:read"}})), ReasonMalformed, 401},
		{"roles not strings", signRaw(t, e, hdrFor(e, nil), claimsWith(e, map[string]any{"realm_access": map[string]any{"roles": []int{1}}})), ReasonMalformed, 401},
		{"token over the size limit", huge, ReasonTooLarge, 401},
		{"Keycloak refresh token", refresh, ReasonAlgorithm, 401},
		{"tampered payload", parts[0] + "." + enc(claimsWith(e, map[string]any{"azp": "evil"})) + "." + parts[2], ReasonSignature, 401},
		{"truncated signature", parts[0] + "." + parts[1] + "." + parts[2][:40], ReasonSignature, 401},
		{"signature not base64", parts[0] + "." + parts[1] + ".***", ReasonMalformed, 401},
		// Go's base64 decoder skips CR and LF even in strict mode, and the
		// signature is not signed: without a check, these second spellings of
		// the good token would verify.
		{"line feed in the signature", parts[0] + "." + parts[1] + "." + parts[2][:20] + "\n" + parts[2][20:], ReasonMalformed, 401},
		{"CR LF in the signature", parts[0] + "." + parts[1] + "." + parts[2] + "\r\n", ReasonMalformed, 401},
		{"empty token", "", ReasonNoToken, 401},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := check(p, tc.token)
			if d.Allow || d.Reason != tc.reason || d.Status != tc.status {
				t.Fatalf("got allow=%v status=%d reason=%s (%s), want %d %s", d.Allow, d.Status, d.Reason, d.Detail, tc.status, tc.reason)
			}
			if tc.status == 401 && tc.reason != ReasonNoToken && d.Error != ErrInvalidToken {
				t.Fatalf("error code %q, want invalid_token", d.Error)
			}
			if strings.Contains(d.Message, tc.token) && tc.token != "" {
				t.Fatal("public message contains the token")
			}
		})
	}
	if d := check(p, good); !d.Allow {
		t.Fatalf("the good token is denied: %s %s", d.Reason, d.Detail)
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func mustSignBytes(t *testing.T, e *env, hdr map[string]any, payload []byte) string {
	t.Helper()
	tok, err := e.idp.SignRaw(mustJSON(hdr), payload)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestECDSAZeroSignature(t *testing.T) {
	e := newEnv(t, "ES256")
	p := e.compile(t, func(c *Config) { c.Algorithms = []string{"ES256"} })
	good := e.token(t, "orders-service")
	if d := check(p, good); !d.Allow {
		t.Fatalf("valid ES256 token denied: %s", d.Detail)
	}
	parts := strings.Split(good, ".")
	zero := base64.RawURLEncoding.EncodeToString(make([]byte, 64))
	for name, sig := range map[string]string{"r=s=0": zero, "short": zero[:20], "long": zero + "AAAA"} {
		d := check(p, parts[0]+"."+parts[1]+"."+sig)
		if d.Allow || d.Reason != ReasonSignature {
			t.Errorf("%s: got %v %s", name, d.Allow, d.Reason)
		}
	}
}

func TestAlgorithms(t *testing.T) {
	for _, alg := range []string{"RS256", "RS384", "RS512", "PS256", "PS512", "ES256", "ES384", "ES512", "EdDSA"} {
		t.Run(alg, func(t *testing.T) {
			e := newEnv(t, alg)
			p := e.compile(t, func(c *Config) { c.Algorithms = []string{alg} })
			if d := check(p, e.token(t, "orders-service")); !d.Allow {
				t.Fatalf("denied: %s %s", d.Reason, d.Detail)
			}
			other := "RS256"
			if alg == "RS256" {
				other = "ES256"
			}
			p2 := e.compile(t, func(c *Config) { c.Algorithms = []string{other} })
			if d := check(p2, e.token(t, "orders-service")); d.Allow || d.Reason != ReasonAlgorithm {
				t.Fatalf("alg outside the allow-list: %v %s", d.Allow, d.Reason)
			}
		})
	}
}

// TestClaimRules is the table of every claim rule, on tokens signed by the realm.
func TestClaimRules(t *testing.T) {
	e := newEnv(t, "RS256")
	now := e.clock.Now().Unix()
	type tc struct {
		name   string
		edit   func(*Config)
		claims map[string]any // edits of the valid claims
		hdr    map[string]any // edits of the header
		allow  bool
		reason string
		status int
	}
	cases := []tc{
		{name: "valid", allow: true},
		{name: "wrong issuer", claims: map[string]any{"iss": "http://evil/realms/demo"}, reason: ReasonIssuer, status: 401},
		{name: "issuer differs by a trailing slash", claims: map[string]any{"iss": e.idp.Issuer() + "/"}, reason: ReasonIssuer, status: 401},
		{name: "aud string matches", claims: map[string]any{"aud": "orders-api"}, allow: true},
		{name: "aud wrong", claims: map[string]any{"aud": []string{"account"}}, reason: ReasonAudience, status: 401},
		{name: "aud missing", claims: map[string]any{"aud": nil}, reason: ReasonAudience, status: 401},
		{name: "one of several audiences", edit: func(c *Config) { c.Audiences = []string{"x", "account"} }, claims: map[string]any{"aud": "account"}, allow: true},
		{name: "azp allowed", edit: func(c *Config) { c.AllowedClients = []string{"orders-service"} }, allow: true},
		{name: "azp not allowed", edit: func(c *Config) { c.AllowedClients = []string{"reports-job"} }, reason: ReasonClient, status: 401},
		{name: "client_id used without azp", edit: func(c *Config) { c.AllowedClients = []string{"c1"} }, claims: map[string]any{"azp": nil, "client_id": "c1"}, allow: true},
		{name: "expired", claims: map[string]any{"exp": now - 61}, reason: ReasonExpired, status: 401},
		{name: "expired within leeway", claims: map[string]any{"exp": now - 30}, allow: true},
		{name: "expired, zero leeway", edit: func(c *Config) { z := 0; c.LeewaySeconds = &z }, claims: map[string]any{"exp": now}, reason: ReasonExpired, status: 401},
		{name: "nbf future", claims: map[string]any{"nbf": now + 120}, reason: ReasonNotYetValid, status: 401},
		{name: "nbf within leeway", claims: map[string]any{"nbf": now + 30}, allow: true},
		{name: "iat future", claims: map[string]any{"iat": now + 120}, reason: ReasonIssuedInFuture, status: 401},
		{name: "fractional exp", claims: map[string]any{"exp": float64(now) + 100.5}, allow: true},
		{name: "typ Refresh", claims: map[string]any{"typ": "Refresh"}, reason: ReasonType, status: 401},
		{name: "typ ID", claims: map[string]any{"typ": "ID"}, reason: ReasonType, status: 401},
		{name: "typ Logout", claims: map[string]any{"typ": "Logout"}, reason: ReasonType, status: 401},
		{name: "no typ anywhere", claims: map[string]any{"typ": nil}, reason: ReasonType, status: 401},
		{name: "RFC 9068 at+jwt header", claims: map[string]any{"typ": nil}, hdr: map[string]any{"typ": "at+jwt"}, allow: true},
		{name: "application/at+jwt header", claims: map[string]any{"typ": nil}, hdr: map[string]any{"typ": "application/at+jwt"}, allow: true},
		{name: "Bearer refused when only at+jwt", edit: func(c *Config) { c.TokenTypes = []string{"at+jwt"} }, reason: ReasonType, status: 401},
		{name: "scope all ok", edit: func(c *Config) { c.ScopesRequired = []string{"orders:read", "email"} }, allow: true},
		{name: "scope all missing one", edit: func(c *Config) { c.ScopesRequired = []string{"orders:read", "orders:write"} }, reason: ReasonScope, status: 403},
		{name: "scope any", edit: func(c *Config) { c.ScopesRequired = []string{"orders:write", "orders:read"}; c.ScopesMatch = "any" }, allow: true},
		{name: "scope any none", edit: func(c *Config) { c.ScopesRequired = []string{"orders:write", "x"}; c.ScopesMatch = "any" }, reason: ReasonScope, status: 403},
		{name: "scope prefix is not a match", edit: func(c *Config) { c.ScopesRequired = []string{"orders"} }, reason: ReasonScope, status: 403},
		{name: "scp array", edit: func(c *Config) { c.ScopesRequired = []string{"a"} }, claims: map[string]any{"scope": nil, "scp": []string{"a", "b"}}, allow: true},
		{name: "realm role all", edit: func(c *Config) { c.RealmRolesRequired = []string{"admin", "ops"} }, claims: map[string]any{"realm_access": map[string]any{"roles": []string{"ops", "admin"}}}, allow: true},
		{name: "realm role all missing", edit: func(c *Config) { c.RealmRolesRequired = []string{"admin", "ops"} }, claims: map[string]any{"realm_access": map[string]any{"roles": []string{"ops"}}}, reason: ReasonRealmRole, status: 403},
		{name: "realm role any", edit: func(c *Config) { c.RealmRolesRequired = []string{"admin", "ops"}; c.RealmRolesMatch = "any" }, claims: map[string]any{"realm_access": map[string]any{"roles": []string{"ops"}}}, allow: true},
		{name: "realm roles absent", edit: func(c *Config) { c.RealmRolesRequired = []string{"admin"} }, reason: ReasonRealmRole, status: 403},
		{name: "client role all", edit: func(c *Config) { c.ClientRolesRequired = []string{"orders-api:reader", "orders-api:writer"} },
			claims: map[string]any{"resource_access": map[string]any{"orders-api": map[string]any{"roles": []string{"writer", "reader"}}}}, allow: true},
		{name: "client role of another client", edit: func(c *Config) { c.ClientRolesRequired = []string{"orders-api:reader"} },
			claims: map[string]any{"resource_access": map[string]any{"billing": map[string]any{"roles": []string{"reader"}}}}, reason: ReasonClientRole, status: 403},
		{name: "client role any", edit: func(c *Config) {
			c.ClientRolesRequired = []string{"orders-api:admin", "billing:reader"}
			c.ClientRolesMatch = "any"
		}, claims: map[string]any{"resource_access": map[string]any{"billing": map[string]any{"roles": []string{"reader"}}}}, allow: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := e.compile(t, c.edit)
			tok := signRaw(t, e, hdrFor(e, c.hdr), claimsWith(e, c.claims))
			d := check(p, tok)
			if d.Allow != c.allow {
				t.Fatalf("allow=%v (%s: %s), want %v", d.Allow, d.Reason, d.Detail, c.allow)
			}
			if c.allow {
				if d.Status != 200 || d.Claims == nil || d.ClientID() == "" {
					t.Fatalf("allow decision incomplete: %+v", d)
				}
				return
			}
			if d.Reason != c.reason || d.Status != c.status {
				t.Fatalf("got %d %s (%s), want %d %s", d.Status, d.Reason, d.Detail, c.status, c.reason)
			}
			wantErr := ErrInvalidToken
			if c.status == 403 {
				wantErr = ErrInsufficientScope
			}
			if d.Error != wantErr {
				t.Fatalf("error %q, want %q", d.Error, wantErr)
			}
		})
	}
}

// An allowed decision says until when the policy accepts the token: exp
// plus the leeway, on the cold path and on a cache hit alike.
func TestAcceptedUntil(t *testing.T) {
	e := newEnv(t, "RS256")
	leeway := 30
	p := e.compile(t, func(c *Config) { c.LeewaySeconds = &leeway })
	exp := e.clock.Now().Unix() + 300
	tok := signRaw(t, e, hdrFor(e, nil), claimsWith(e, map[string]any{"exp": exp}))
	for i, want := range []bool{false, true} {
		d := check(p, tok)
		if !d.Allow || d.CachedResult != want || d.AcceptedUntil != exp+30 || d.CheckedAt != e.clock.Now().Unix() {
			t.Fatalf("check %d: allow=%v cached=%v AcceptedUntil=%d CheckedAt=%d, want %d and %d", i, d.Allow, d.CachedResult,
				d.AcceptedUntil, d.CheckedAt, exp+30, e.clock.Now().Unix())
		}
	}
	if d := check(p, "garbage"); d.AcceptedUntil != 0 || d.CheckedAt != 0 {
		t.Fatalf("denied decision with AcceptedUntil %d, CheckedAt %d", d.AcceptedUntil, d.CheckedAt)
	}
}

func TestKeycloakTokens(t *testing.T) {
	e := newEnv(t, "RS256")
	write := e.compile(t, func(c *Config) {
		c.ScopesRequired = []string{"orders:write"}
		c.ClientRolesRequired = []string{"orders-api:writer"}
	})
	d := check(write, e.token(t, "orders-service"))
	if !d.Allow || d.ClientID() != "orders-service" || !contains(d.Claims.Scopes, "orders:write") ||
		!contains(d.Claims.RealmRoles, "orders-admin") {
		t.Fatalf("orders-service: %+v", d)
	}
	if v, ok := d.Claims.Get("preferred_username"); !ok || v != "service-account-orders-service" {
		t.Fatalf("Get(preferred_username) = %v %v", v, ok)
	}
	d = check(write, e.token(t, "reports-job"))
	if d.Allow || d.Status != http.StatusForbidden || d.Scope != "orders:write" {
		t.Fatalf("reports-job on a write route: %+v", d)
	}
	if got := d.WWWAuthenticate("orders"); got != `Bearer realm="orders", error="insufficient_scope", error_description="The access token lacks a required scope", scope="orders:write"` {
		t.Fatalf("challenge: %s", got)
	}
	// Keycloak's default: without an audience mapper, aud is only "account".
	d = check(write, e.token(t, "no-audience"))
	if d.Allow || d.Reason != ReasonAudience {
		t.Fatalf("token without the API audience: %s", d.Reason)
	}
}

func TestCompileErrors(t *testing.T) {
	e := newEnv(t, "RS256")
	neg := -1
	cases := []struct {
		name, field string
		edit        func(*Config)
	}{
		{"no issuers", "issuers", func(c *Config) { c.Issuers = nil }},
		{"empty issuer", "issuers[0].issuer", func(c *Config) { c.Issuers = []Issuer{{}} }},
		{"duplicate issuer", "issuers[1].issuer", func(c *Config) { c.Issuers = append(c.Issuers, c.Issuers[0]) }},
		{"bad jwks_uri", "issuers[0]", func(c *Config) { c.Issuers[0].JWKSURI = "ftp://x" }},
		{"no audience", "audiences", func(c *Config) { c.Audiences = nil }},
		{"blank audience", "audiences[0]", func(c *Config) { c.Audiences = []string{" "} }},
		{"HS256", "algorithms[0]", func(c *Config) { c.Algorithms = []string{"HS256"} }},
		{"none", "algorithms[1]", func(c *Config) { c.Algorithms = []string{"RS256", "none"} }},
		{"unknown alg", "algorithms[0]", func(c *Config) { c.Algorithms = []string{"RS1"} }},
		{"bad match", "scopes_match", func(c *Config) { c.ScopesMatch = "some" }},
		{"bad realm match", "realm_roles_match", func(c *Config) { c.RealmRolesMatch = "x" }},
		{"client role without client", "client_roles_required[0]", func(c *Config) { c.ClientRolesRequired = []string{"reader"} }},
		{"scope with space", "scopes_required[0]", func(c *Config) { c.ScopesRequired = []string{"a b"} }},
		{"negative leeway", "leeway_seconds", func(c *Config) { c.LeewaySeconds = &neg }},
		{"tiny max token", "max_token_bytes", func(c *Config) { c.MaxTokenBytes = 10 }},
		{"negative cache", "token_cache_size", func(c *Config) { c.TokenCacheSize = &neg }},
		{"bad token type", "token_types[0]", func(c *Config) { c.TokenTypes = []string{"ID"} }},
		{"negative jwks timeout", "jwks.fetch_timeout_seconds", func(c *Config) { c.JWKS.FetchTimeoutSeconds = -1 }},
		// 18446744074 s overflows time.Duration and would wrap to ~0.29 s.
		{"huge refresh interval", "jwks.min_refresh_interval_seconds", func(c *Config) { c.JWKS.MinRefreshIntervalSeconds = 18446744074 }},
		{"max_stale over a year", "jwks.max_stale_seconds", func(c *Config) { c.JWKS.MaxStaleSeconds = maxJWKSSeconds + 1 }},
		{"negative response limit", "jwks.max_response_bytes", func(c *Config) { c.JWKS.MaxResponseBytes = -1 }},
		{"missing CA file", "issuers[0]", func(c *Config) { c.JWKS.CAFile = "/nonexistent/ca.pem" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := e.config()
			tc.edit(&cfg)
			_, err := Compile(cfg, Deps{Keys: e.keys})
			var ce *ConfigError
			if err == nil || !asConfigError(err, &ce) || ce.Field != tc.field {
				t.Fatalf("err = %v, want a ConfigError on %s", err, tc.field)
			}
		})
	}
}

func asConfigError(err error, target **ConfigError) bool {
	return errors.As(err, target)
}

// TestCompileReportsEveryError: one Compile names every wrong field, and the
// JWKS settings are reported in the operator's field names and unit.
func TestCompileReportsEveryError(t *testing.T) {
	e := newEnv(t, "RS256")
	cfg := e.config()
	cfg.Audiences = nil
	cfg.ScopesMatch = "some"
	cfg.Algorithms = []string{"HS256"}
	cfg.JWKS.MinTTLSeconds, cfg.JWKS.MaxTTLSeconds = 7200, 3600
	_, err := Compile(cfg, Deps{Keys: e.keys})
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	for _, want := range []string{"audiences:", "scopes_match:", "algorithms[0]:",
		"jwks.min_ttl_seconds: jwks.min_ttl_seconds (7200) is greater than jwks.max_ttl_seconds (3600)"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "2h0m0s") || strings.Contains(msg, "jwks.min_ttl ") {
		t.Errorf("error %q speaks in durations, not the operator's seconds", msg)
	}
	// Only max_ttl set, below the default min_ttl (60 s).
	cfg = e.config()
	cfg.JWKS.MaxTTLSeconds = 30
	if _, err := Compile(cfg, Deps{Keys: e.keys}); err == nil ||
		err.Error() != "jwks.max_ttl_seconds: jwks.min_ttl_seconds (60, the default) is greater than jwks.max_ttl_seconds (30)" {
		t.Errorf("max_ttl below the default min_ttl: %v", err)
	}
}

func TestMisconfiguredFailsClosed(t *testing.T) {
	d := Misconfigured(&ConfigError{Field: "audiences", Msg: "required"})
	if d.Allow || d.Status != 500 || strings.Contains(string(d.Body()), "audiences") || !strings.Contains(d.Detail, "audiences") {
		t.Fatalf("%+v %s", d, d.Body())
	}
}

func TestKeysUnavailableDenies(t *testing.T) {
	e := newEnv(t, "RS256")
	e.idp.SetFault(testidp.Fault{Down: true})
	p := e.compile(t, nil)
	d := check(p, e.token(t, "orders-service"))
	if d.Allow || d.Reason != ReasonKeysUnavailable || d.Status != 401 {
		t.Fatalf("%+v", d)
	}
}
