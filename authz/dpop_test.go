package authz

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keycloak-jwt/keycloak-jwt/internal/dpoptest"
	"github.com/keycloak-jwt/keycloak-jwt/internal/redistest"
	"github.com/keycloak-jwt/keycloak-jwt/internal/testidp"
	"github.com/keycloak-jwt/keycloak-jwt/jwks"
	"github.com/keycloak-jwt/keycloak-jwt/policy"
	"github.com/keycloak-jwt/keycloak-jwt/store"
)

func header(r Response, name string) []string {
	var out []string
	for _, kv := range r.Header {
		if kv[0] == name {
			out = append(out, kv[1])
		}
	}
	return out
}

// TestDPoP: RFC 9449 proofs, and the refusals of section 2 of the issue.
func TestDPoP(t *testing.T) {
	e := newEnv(t)
	cl := dpoptest.New(t)
	other := dpoptest.New(t)
	g := e.gate(t, func(s *Spec) {
		s.Config.PublicURL = "https://api.example.com/v1"
		s.Config.DPoP = DPoPConfig{Enabled: true}
	}, Options{})
	bound, err := e.idp.Token("orders-service", testidp.WithClaim("cnf", map[string]any{"jkt": cl.JKT}))
	if err != nil {
		t.Fatal(err)
	}
	plain := e.token(t, "orders-service")
	htu := "https://api.example.com/v1/orders"
	dpop := func(tok, proof string) map[string][]string {
		h := map[string][]string{"Authorization": {"DPoP " + tok}}
		if proof != "" {
			h["Dpop"] = []string{proof}
		}
		return h
	}
	replayed := cl.Proof(t, "GET", htu, bound, nil)
	cases := []struct {
		name   string
		method string
		h      map[string][]string
		status int
		reason string
	}{
		{"valid proof", "GET", dpop(bound, cl.Proof(t, "GET", htu, bound, nil)), 200, policy.ReasonOK},
		{"htu with query and another case of host", "GET", dpop(bound, cl.Proof(t, "GET", "https://API.example.com:443/v1/orders?x=1", bound, nil)), 200, policy.ReasonOK},
		{"first use of a proof", "GET", dpop(bound, replayed), 200, policy.ReasonOK},
		{"replayed proof", "GET", dpop(bound, replayed), 401, ReasonDPoPProof},
		{"wrong htu", "GET", dpop(bound, cl.Proof(t, "GET", "https://api.example.com/v1/admin", bound, nil)), 401, ReasonDPoPProof},
		{"wrong htu host", "GET", dpop(bound, cl.Proof(t, "GET", "https://evil.example.com/v1/orders", bound, nil)), 401, ReasonDPoPProof},
		{"wrong htm", "GET", dpop(bound, cl.Proof(t, "POST", htu, bound, nil)), 401, ReasonDPoPProof},
		{"stale iat", "GET", dpop(bound, cl.Proof(t, "GET", htu, bound, func(_, p map[string]any) { p["iat"] = time.Now().Add(-2 * time.Minute).Unix() })), 401, ReasonDPoPProof},
		{"iat in the future", "GET", dpop(bound, cl.Proof(t, "GET", htu, bound, func(_, p map[string]any) { p["iat"] = time.Now().Add(time.Minute).Unix() })), 401, ReasonDPoPProof},
		{"proof key not cnf.jkt", "GET", dpop(bound, other.Proof(t, "GET", htu, bound, nil)), 401, ReasonDPoPProof},
		{"ath of another token", "GET", dpop(bound, cl.Proof(t, "GET", htu, plain, nil)), 401, ReasonDPoPProof},
		{"no ath", "GET", dpop(bound, cl.Proof(t, "GET", htu, bound, func(_, p map[string]any) { delete(p, "ath") })), 401, ReasonDPoPProof},
		{"typ JWT", "GET", dpop(bound, cl.Proof(t, "GET", htu, bound, func(h, _ map[string]any) { h["typ"] = "JWT" })), 401, ReasonDPoPProof},
		{"alg not allowed", "GET", dpop(bound, cl.Proof(t, "GET", htu, bound, func(h, _ map[string]any) { h["alg"] = "HS256" })), 401, ReasonDPoPProof},
		{"private key in jwk", "GET", dpop(bound, cl.Proof(t, "GET", htu, bound, func(h, _ map[string]any) {
			j := map[string]string{"d": privateScalar(t, cl)}
			for k, v := range cl.JWK {
				j[k] = v
			}
			h["jwk"] = j
		})), 401, ReasonDPoPProof},
		{"missing proof", "GET", dpop(bound, ""), 401, ReasonDPoPProof},
		{"two proofs", "GET", map[string][]string{"Authorization": {"DPoP " + bound}, "Dpop": {cl.Proof(t, "GET", htu, bound, nil), cl.Proof(t, "GET", htu, bound, nil)}}, 401, ReasonDPoPProof},
		{"DPoP token sent as Bearer", "GET", map[string][]string{"Authorization": bearer(bound)}, 401, ReasonTokenBound},
		{"bearer token with the DPoP scheme", "GET", dpop(plain, cl.Proof(t, "GET", htu, plain, nil)), 401, ReasonNotBound},
		{"a look-alike DPoP header", "GET", map[string][]string{"Authorization": {"DPoP " + bound}, "Dpop": {cl.Proof(t, "GET", htu, bound, nil)}, "D_pop": {"x"}}, 200, policy.ReasonOK},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := g.Judge(context.Background(), req(tc.method, "/orders", tc.h))
			if res.Decision.Status != tc.status || res.Decision.Reason != tc.reason {
				t.Fatalf("got %d %s (%s), want %d %s", res.Decision.Status, res.Decision.Reason, res.Decision.Detail, tc.status, tc.reason)
			}
			if tc.reason == ReasonDPoPProof {
				www := header(res.Response, "WWW-Authenticate")
				if len(www) != 1 || !strings.HasPrefix(www[0], `DPoP algs="ES256 RS256 PS256 EdDSA"`) || !strings.Contains(www[0], `error="invalid_dpop_proof"`) {
					t.Fatalf("challenge %q", www)
				}
			}
			if tc.reason == ReasonTokenBound {
				if www := header(res.Response, "WWW-Authenticate"); len(www) != 2 || !strings.HasPrefix(www[0], "Bearer") || !strings.HasPrefix(www[1], "DPoP") {
					t.Fatalf("challenges %q", www)
				}
			}
		})
	}
	// Without DPoP, a bound token is no bearer token, and the DPoP scheme is
	// no credential at all.
	off := e.gate(t, nil, Options{})
	if res := off.Judge(context.Background(), req("GET", "/orders", map[string][]string{"Authorization": bearer(bound)})); res.Decision.Reason != ReasonTokenBound {
		t.Fatalf("DPoP off, bound token as Bearer: %+v", res.Decision)
	}
	if res := off.Judge(context.Background(), req("GET", "/orders", dpop(bound, cl.Proof(t, "GET", htu, bound, nil)))); res.Decision.Reason != policy.ReasonNoToken {
		t.Fatalf("DPoP off, DPoP scheme: %+v", res.Decision)
	}
	// DPoP needs public_url.
	if _, err := Compile(Spec{Policy: policy.Config{Requirements: policy.Requirements{Issuers: []policy.Issuer{{Issuer: e.idp.Issuer()}}, Audiences: []string{"a"}}},
		Config: Config{DPoP: DPoPConfig{Enabled: true}}}, Options{Deps: policy.Deps{Keys: e.keys}}); err == nil || !strings.Contains(err.Error(), "public_url") {
		t.Fatalf("dpop without public_url: %v", err)
	}
}

// TestReplayCacheBounded: full of unexpired proofs, the cache refuses new
// ones rather than forget one; expired ones make room.
func TestReplayCacheBounded(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	m := newMemoryReplay(100, func() time.Time { return now })
	for i := 0; i < 100; i++ {
		if ok, err := m.FirstUse(string(rune('a'+i)), time.Minute); !ok || err != nil {
			t.Fatalf("%d: %v %v", i, ok, err)
		}
	}
	if ok, err := m.FirstUse("new", time.Minute); ok || err == nil {
		t.Fatalf("full cache accepted a proof: %v %v", ok, err)
	}
	if ok, _ := m.FirstUse("a", time.Minute); ok {
		t.Fatal("a replay was accepted")
	}
	now = now.Add(2 * time.Minute)
	if ok, err := m.FirstUse("new", time.Minute); !ok || err != nil {
		t.Fatalf("after expiry: %v %v", ok, err)
	}
}

// TestCertificateBoundTokens (RFC 8705): cnf.x5t#S256 must be the SHA-256
// thumbprint of the client certificate the proxy in front passes.
func TestCertificateBoundTokens(t *testing.T) {
	e := newEnv(t)
	certPEM, thumb := selfSigned(t)
	otherPEM, _ := selfSigned(t)
	g := e.gate(t, func(s *Spec) { s.Config.CertificateHeader = "X-Client-Cert" }, Options{})
	tok, err := e.idp.Token("orders-service", testidp.WithClaim("cnf", map[string]any{"x5t#S256": thumb}))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		cert   []string
		status int
	}{
		{"the bound certificate", []string{url.QueryEscape(certPEM)}, 200},
		{"another certificate", []string{url.QueryEscape(otherPEM)}, 401},
		{"no certificate", nil, 401},
		{"garbage", []string{"not-a-cert"}, 401},
	} {
		h := map[string][]string{"Authorization": bearer(tok)}
		if tc.cert != nil {
			h["X-Client-Cert"] = tc.cert
		}
		res := g.Judge(context.Background(), req("GET", "/orders", h))
		if res.Decision.Status != tc.status {
			t.Errorf("%s: %d %s (%s)", tc.name, res.Decision.Status, res.Decision.Reason, res.Decision.Detail)
		}
		if res.Allow && !contains(res.Plan.Delete, "X-Client-Cert") {
			t.Errorf("%s: the certificate header reaches the upstream (plan %v)", tc.name, res.Plan.Delete)
		}
	}
	// The adapter's own TLS connection wins over the header.
	r := req("GET", "/orders", map[string][]string{"Authorization": bearer(tok)})
	r.ClientCertPEM = certPEM
	if res := g.Judge(context.Background(), r); !res.Allow {
		t.Fatalf("certificate from the adapter: %+v", res.Decision)
	}
	// Without certificate_header nor TLS, such tokens are refused.
	plain := e.gate(t, nil, Options{})
	if res := plain.Judge(context.Background(), req("GET", "/orders", map[string][]string{"Authorization": bearer(tok)})); res.Decision.Reason != ReasonTokenBound {
		t.Fatalf("no way to see a certificate: %+v", res.Decision)
	}
}

func selfSigned(t *testing.T) (string, string) {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "orders-service"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), base64.RawURLEncoding.EncodeToString(sum[:])
}

// TestResourceMetadata (RFC 9728): the document names the realms, the
// scopes and the methods; challenges point at it.
func TestResourceMetadata(t *testing.T) {
	e := newEnv(t)
	g := e.gate(t, func(s *Spec) {
		s.Config.PublicURL = "https://api.example.com"
		s.Config.ResourceMetadata = true
		s.Config.DPoP = DPoPConfig{Enabled: true, Algorithms: []string{"ES256"}}
	}, Options{})
	resp, ok := g.Metadata(MetadataPath)
	if !ok || resp.Status != 200 {
		t.Fatalf("metadata: %v %+v", ok, resp)
	}
	var m map[string]any
	if err := json.Unmarshal(resp.Body, &m); err != nil {
		t.Fatal(err)
	}
	if m["resource"] != "https://api.example.com" || m["authorization_servers"].([]any)[0] != e.idp.Issuer() ||
		!strings.Contains(string(resp.Body), `"scopes_supported":["orders:read","orders:write"]`) ||
		!strings.Contains(string(resp.Body), `"dpop_signing_alg_values_supported":["ES256"]`) {
		t.Fatalf("document %s", resp.Body)
	}
	if _, ok := g.Metadata("/orders"); ok {
		t.Fatal("metadata served on another path")
	}
	res := g.Judge(context.Background(), req("GET", "/orders", nil))
	www := header(res.Response, "WWW-Authenticate")
	if len(www) != 2 || !strings.Contains(www[0], `resource_metadata="https://api.example.com/.well-known/oauth-protected-resource"`) {
		t.Fatalf("challenges %q", www)
	}
}

// TestStrictObject: JOSE members are case-sensitive and never repeated.
func TestStrictObject(t *testing.T) {
	for in, ok := range map[string]bool{
		`{"alg":"ES256","typ":"dpop+jwt"}`: true,
		`{"alg":"ES256","alg":"none"}`:     false,
		`{"alg":"ES256","ALG":"none"}`:     true, // another member, which no reader takes for alg
		`[1]`:                              false,
		`{"a":1} x`:                        false,
	} {
		m, err := strictObject([]byte(in))
		if (err == nil) != ok {
			t.Errorf("%s: %v", in, err)
		}
		if err == nil && string(m["alg"]) != `"ES256"` {
			t.Errorf("%s: alg %s", in, m["alg"])
		}
	}
}

// privateScalar is the client key's private scalar, base64url (a jwk "d").
func privateScalar(t *testing.T, c *dpoptest.Client) string {
	t.Helper()
	d, err := c.Key.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(d)
}

// TestDPoPReplayAcrossNodes: two gateway nodes sharing a real redis-server
// (store.redis) see each other's proofs: a proof used on one is refused on
// the other. Without the shared store each node sees only its own.
func TestDPoPReplayAcrossNodes(t *testing.T) {
	redis := redistest.Start(t)
	e := newEnv(t)
	cl := dpoptest.New(t)
	node := func() *Gate {
		keys := jwks.NewCache(jwks.Options{})
		s := Spec{Policy: policy.Config{Requirements: policy.Requirements{Issuers: []policy.Issuer{{Issuer: e.idp.Issuer()}}, Audiences: []string{"orders-api"}},
			Store: policy.StoreConfig{Redis: &store.RedisConfig{Address: redis.Addr, KeyPrefix: "dpop-test:"}}},
			Config: Config{PublicURL: "https://api.example.com", DPoP: DPoPConfig{Enabled: true}}}
		g, err := Compile(s, Options{Deps: policy.Deps{Keys: keys}})
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	a, b := node(), node()
	tok, err := e.idp.Token("orders-service", testidp.WithClaim("cnf", map[string]any{"jkt": cl.JKT}))
	if err != nil {
		t.Fatal(err)
	}
	proof := cl.Proof(t, "GET", "https://api.example.com/orders", tok, nil)
	r := func() *Request {
		return req("GET", "/orders", map[string][]string{"Authorization": {"DPoP " + tok}, "Dpop": {proof}})
	}
	if res := a.Judge(context.Background(), r()); !res.Allow {
		t.Fatalf("node a: %+v", res.Decision)
	}
	if res := b.Judge(context.Background(), r()); res.Allow || res.Decision.Reason != ReasonDPoPProof || !strings.Contains(res.Decision.Detail, "replayed") {
		t.Fatalf("node b accepted a proof node a used: %+v", res.Decision)
	}
	// Redis gone: replay checks fail closed.
	redis.Stop()
	fresh := cl.Proof(t, "GET", "https://api.example.com/orders", tok, nil)
	res := a.Judge(context.Background(), req("GET", "/orders", map[string][]string{"Authorization": {"DPoP " + tok}, "Dpop": {fresh}}))
	if res.Allow || res.Decision.Reason != ReasonDPoPProof {
		t.Fatalf("Redis down: %+v", res.Decision)
	}
}

// BenchmarkDPoPProofCheck: what a DPoP request costs beyond a bearer one —
// the proof's parse, jwk thumbprint, ES256 verify and replay mark — with
// the token itself served from the verified-token cache.
func BenchmarkDPoPProofCheck(b *testing.B) {
	e := newEnv(b)
	cl := dpoptest.New(b)
	g := e.gate(b, func(s *Spec) {
		s.Config.PublicURL = "https://api.example.com"
		s.Config.DPoP = DPoPConfig{Enabled: true, ReplayCacheSize: 10_000_000}
	}, Options{})
	tok, err := e.idp.Token("orders-service", testidp.WithClaim("cnf", map[string]any{"jkt": cl.JKT}))
	if err != nil {
		b.Fatal(err)
	}
	proofs := make([]string, b.N+1)
	for i := range proofs {
		proofs[i] = cl.Proof(b, "GET", "https://api.example.com/orders", tok, nil)
	}
	h := map[string][]string{"Authorization": {"DPoP " + tok}, "Dpop": {proofs[b.N]}}
	if res := g.Judge(context.Background(), req("GET", "/orders", h)); !res.Allow {
		b.Fatal(res.Decision.Detail)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h["Dpop"][0] = proofs[i]
		if res := g.Judge(context.Background(), req("GET", "/orders", h)); !res.Allow {
			b.Fatal(res.Decision.Detail)
		}
	}
}
