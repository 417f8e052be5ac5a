package keycloak

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/keycloak-jwt/keycloak-jwt/policy"
)

// signedJWTClient is the demo client that authenticates with a JWT signed
// by its own key (clientAuthenticatorType client-jwt, the certificate of
// examples/jwt-client/demo-cert.pem registered in the realm export).
const signedJWTClient = "orders-signed-jwt"

// TestExampleJWTClient: examples/jwt-client gets tokens from real Keycloak
// with private_key_jwt (no secret) and calls the API behind the sidecar.
// The assertion's aud may be the realm issuer (the default) or the token
// endpoint; without a kid Keycloak uses the one registered key; a kid it
// does not know, or a foreign aud, gets no token.
func TestExampleJWTClient(t *testing.T) {
	k := keycloak(t)
	g := startSidecar(t, k, nil)
	bin := filepath.Join(t.TempDir(), "jwt-client")
	if out, err := exec.Command("go", "build", "-o", bin, filepath.Join(repoRoot, "examples/jwt-client")).CombinedOutput(); err != nil {
		t.Fatalf("go build examples/jwt-client: %v\n%s", err, out)
	}
	env := []string{"TOKEN_URL=" + k.tokenURL(), "API_URL=" + g.url + "/orders", "COUNT=2",
		"CLIENT_ID=", "AUDIENCE=", "KEY_ID=", "SCOPE=", "METHOD=", "PRIVATE_KEY_FILE=", "CERT_FILE="}
	cases := []struct {
		env  []string
		code int
		log  string
	}{
		{nil, 0, "GET " + g.url + "/orders -> 200"},
		{[]string{"AUDIENCE=" + k.tokenURL()}, 0, "-> 200"},
		{[]string{"KEY_ID=-"}, 0, "-> 200"},
		{[]string{"METHOD=POST"}, 1, "-> 403"},
		{[]string{"KEY_ID=not-the-registered-key"}, 1, "invalid_client"},
		{[]string{"AUDIENCE=https://api.example.com/"}, 1, "invalid_client"},
		{[]string{"CLIENT_ID=" + ordersService}, 1, "unauthorized_client"}, // a client-secret client
	}
	for _, tc := range cases {
		code, _, errOut := runExample(t, append(env[:len(env):len(env)], tc.env...), bin)
		if code != tc.code || !strings.Contains(errOut, tc.log) {
			t.Errorf("jwt-client %v: exit %d, want %d with %q in:\n%s", tc.env, code, tc.code, tc.log, errOut)
		}
	}
}

// TestSignedJWTAuthentication: the token endpoint's answers to client
// assertions of orders-signed-jwt (RFC 7523), and its token through both
// gateways.
func TestSignedJWTAuthentication(t *testing.T) {
	k := keycloak(t)
	key := readTestKey(t, filepath.Join(repoRoot, "examples/jwt-client/demo-key.pem"))
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	claims := func(edit func(map[string]any)) map[string]any {
		c := map[string]any{"iss": signedJWTClient, "sub": signedJWTClient, "aud": k.issuer,
			"jti": randomID() + randomID(), "iat": now.Unix(), "exp": now.Add(time.Minute).Unix()}
		if edit != nil {
			edit(c)
		}
		return c
	}
	replayed := signAssertion(t, key, claims(nil))
	cases := []struct {
		name      string
		assertion string
		ok        bool
	}{
		{"aud the issuer", signAssertion(t, key, claims(nil)), true},
		{"aud the token endpoint", signAssertion(t, key, claims(func(c map[string]any) { c["aud"] = k.tokenURL() })), true},
		{"aud an array with the issuer", signAssertion(t, key, claims(func(c map[string]any) { c["aud"] = []string{k.issuer} })), true},
		{"first use of an assertion", replayed, true},
		{"the same assertion again (jti seen)", replayed, false},
		{"another key under the registered kid", signAssertion(t, other, claims(nil), keycloakKid(t, key)), false},
		{"expired", signAssertion(t, key, claims(func(c map[string]any) { c["exp"] = now.Add(-time.Minute).Unix() })), false},
		{"no exp", signAssertion(t, key, claims(func(c map[string]any) { delete(c, "exp") })), false},
		{"iss another client", signAssertion(t, key, claims(func(c map[string]any) { c["iss"] = ordersService })), false},
		{"aud another realm", signAssertion(t, key, claims(func(c map[string]any) { c["aud"] = k.base + "/realms/master" })), false},
	}
	var tok string
	for _, tc := range cases {
		status, tr := k.assertionToken(t, tc.assertion)
		if got := status == http.StatusOK && tr.AccessToken != ""; got != tc.ok {
			t.Errorf("%s: status %d %s (%s), want a token: %t", tc.name, status, tr.Error, tr.ErrorDescription, tc.ok)
		}
		if tc.ok && tok == "" {
			tok = tr.AccessToken
		}
		t.Logf("%s: %d %s %s", tc.name, status, tr.Error, tr.ErrorDescription)
	}
	// A client-jwt client has no secret to fall back on.
	if status, tr := k.requestToken(t, signedJWTClient, "", secretPost, ""); status == http.StatusOK {
		t.Errorf("orders-signed-jwt without an assertion got a token (%s)", tr.TokenType)
	}
	if tok == "" {
		t.Fatal("no token to call the gateways with")
	}
	_, payload := jwtParts(t, tok)
	if payload["azp"] != signedJWTClient {
		t.Errorf("azp %v, want %s", payload["azp"], signedJWTClient)
	}

	sc := startSidecar(t, k, nil)
	for _, tc := range []struct {
		method, path string
		status       int
		reason       string
	}{
		{"GET", "/orders", 200, policy.ReasonOK},
		{"POST", "/orders", 403, policy.ReasonScope},
	} {
		if a := sc.call(t, tc.method, tc.path, tok); a.status != tc.status || a.reason != tc.reason {
			t.Errorf("sidecar %s %s → %d %s, want %d %s", tc.method, tc.path, a.status, a.reason, tc.status, tc.reason)
		}
	}
	kong := startKong(t, k, nil)
	for _, tc := range []struct {
		route, method string
		status        int
	}{{"orders-read", "GET", 200}, {"orders-write", "POST", 403}, {"orders-admin", "GET", 401}} {
		if a := kong.call(t, tc.route, tc.method, tok); a.status != tc.status {
			t.Errorf("kong %s %s → %d %s, want %d", tc.route, tc.method, a.status, a.reason, tc.status)
		}
	}
}

// assertionToken asks for a client-credentials token with a client
// assertion (client_assertion_type jwt-bearer) and no secret.
func (k *kc) assertionToken(t *testing.T, assertion string) (int, tokenResponse) {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {signedJWTClient},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion}}
	resp, err := k.client.PostForm(k.tokenURL(), form)
	if err != nil {
		t.Fatalf("token request with an assertion: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var tr tokenResponse
	if err := json.Unmarshal(body, &tr); err != nil {
		t.Fatalf("token response (status %d): %v: %.200s", resp.StatusCode, err, body)
	}
	return resp.StatusCode, tr
}

// signAssertion signs claims with RS256 under kid (none given: no kid).
func signAssertion(t *testing.T, key *rsa.PrivateKey, claims map[string]any, kid ...string) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	hdr := jws.NewHeaders()
	_ = hdr.Set(jws.TypeKey, "JWT")
	for _, id := range kid {
		_ = hdr.Set(jws.KeyIDKey, id)
	}
	out, err := jws.Sign(payload, jws.WithKey(jwa.RS256(), key, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func readTestKey(t *testing.T, file string) *rsa.PrivateKey {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(raw)
	if b == nil {
		t.Fatalf("%s: no PEM", file)
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		t.Fatalf("%s: %T", file, k)
	}
	return rk
}

// keycloakKid is the kid Keycloak gives a client's certificate key.
func keycloakKid(t *testing.T, key *rsa.PrivateKey) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
