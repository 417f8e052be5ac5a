package keycloak

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keycloak-jwt/keycloak-jwt/internal/kongsim"
)

// EnvURL names the variable holding Keycloak's base URL
// (scripts/keycloak.sh env prints it).
const EnvURL = "KEYCLOAK_E2E_URL"

const (
	realmName = "demo"
	repoRoot  = "../.."
)

// Demo clients of examples/keycloak/realm-demo.json and their secrets.
const (
	ordersService = "orders-service"
	reportsJob    = "reports-job"
	noAudience    = "no-audience-client"
)

func demoSecret(client string) string { return client + "-demo-secret" }

func TestMain(m *testing.M) {
	code := m.Run()
	kongsim.CleanupBuilds()
	os.Exit(code)
}

// kc is the running Keycloak.
type kc struct {
	base, issuer         string
	adminUser, adminPass string
	client               *http.Client

	adminMu  sync.Mutex
	adminTok string
	adminAt  time.Time
}

var (
	kcOnce sync.Once
	kcInst *kc
	kcErr  error
)

// keycloak returns the Keycloak under test. Without KEYCLOAK_E2E_URL it skips
// the test, except on CI where it fails it; an unreachable Keycloak always
// fails the test.
func keycloak(t *testing.T) *kc {
	t.Helper()
	base := strings.TrimSuffix(os.Getenv(EnvURL), "/")
	if base == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set on CI: scripts/test.sh starts Keycloak (scripts/keycloak.sh start) and exports it", EnvURL)
		}
		t.Skipf("%s is not set: run `scripts/keycloak.sh start && eval \"$(scripts/keycloak.sh env)\"` to run the tests against real Keycloak", EnvURL)
	}
	kcOnce.Do(func() {
		k := &kc{
			base: base, issuer: base + "/realms/" + realmName,
			adminUser: envOr("KEYCLOAK_E2E_ADMIN_USER", "admin"), adminPass: envOr("KEYCLOAK_E2E_ADMIN_PASSWORD", "admin"),
			client: &http.Client{Timeout: 20 * time.Second},
		}
		resp, err := k.client.Get(k.issuer + "/.well-known/openid-configuration")
		if err != nil {
			kcErr = fmt.Errorf("Keycloak at %s is not reachable: %w", base, err)
			return
		}
		var doc struct {
			Issuer string `json:"issuer"`
		}
		err = json.NewDecoder(resp.Body).Decode(&doc)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			kcErr = fmt.Errorf("discovery of realm %s at %s: status %d, %v", realmName, base, resp.StatusCode, err)
			return
		}
		if doc.Issuer != k.issuer {
			kcErr = fmt.Errorf("realm issuer %q, want %q (is Keycloak started with a fixed hostname?)", doc.Issuer, k.issuer)
			return
		}
		kcInst = k
	})
	if kcErr != nil {
		t.Fatal(kcErr)
	}
	return kcInst
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func (k *kc) tokenURL() string { return k.issuer + "/protocol/openid-connect/token" }
func (k *kc) jwksURL() string  { return k.issuer + "/protocol/openid-connect/certs" }

// tokenResponse is the token endpoint's answer, success or error.
type tokenResponse struct {
	AccessToken      string `json:"access_token"`
	RefreshToken     string `json:"refresh_token"`
	IDToken          string `json:"id_token"`
	TokenType        string `json:"token_type"`
	Scope            string `json:"scope"`
	ExpiresIn        int    `json:"expires_in"`
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
}

// authMethod is how a client authenticates at the token endpoint.
type authMethod int

const (
	secretPost  authMethod = iota // client_secret_post: id and secret in the form
	secretBasic                   // client_secret_basic: HTTP Basic
)

func (m authMethod) String() string {
	if m == secretBasic {
		return "client_secret_basic"
	}
	return "client_secret_post"
}

// requestToken asks for a client-credentials token; scope "" requests none.
func (k *kc) requestToken(t *testing.T, client, secret string, m authMethod, scope string) (int, tokenResponse) {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}}
	if scope != "" {
		form.Set("scope", scope)
	}
	if m == secretPost {
		form.Set("client_id", client)
		form.Set("client_secret", secret)
	}
	req, _ := http.NewRequest(http.MethodPost, k.tokenURL(), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if m == secretBasic {
		req.SetBasicAuth(url.QueryEscape(client), url.QueryEscape(secret))
	}
	resp, err := k.client.Do(req)
	if err != nil {
		t.Fatalf("token request for %s: %v", client, err)
	}
	defer resp.Body.Close()
	var tr tokenResponse
	body, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(body, &tr); err != nil {
		t.Fatalf("token response for %s (status %d): %v: %.200s", client, resp.StatusCode, err, body)
	}
	return resp.StatusCode, tr
}

// token returns an access token for client or fails the test.
func (k *kc) token(t *testing.T, client, secret string, m authMethod, scope string) string {
	t.Helper()
	status, tr := k.requestToken(t, client, secret, m, scope)
	if status != http.StatusOK || tr.AccessToken == "" {
		t.Fatalf("token for %s (%s, scope %q): status %d, %s: %s", client, m, scope, status, tr.Error, tr.ErrorDescription)
	}
	return tr.AccessToken
}

// adminToken returns a master-realm admin token (they live 60 s: renewed
// after 30).
func (k *kc) adminToken(t *testing.T) string {
	t.Helper()
	k.adminMu.Lock()
	defer k.adminMu.Unlock()
	if k.adminTok != "" && time.Since(k.adminAt) < 30*time.Second {
		return k.adminTok
	}
	form := url.Values{"grant_type": {"password"}, "client_id": {"admin-cli"}, "username": {k.adminUser}, "password": {k.adminPass}}
	resp, err := k.client.PostForm(k.base+"/realms/master/protocol/openid-connect/token", form)
	if err != nil {
		t.Fatalf("admin token: %v", err)
	}
	defer resp.Body.Close()
	var tr tokenResponse
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil || tr.AccessToken == "" {
		t.Fatalf("admin token: status %d, %v %s", resp.StatusCode, err, tr.Error)
	}
	k.adminTok, k.adminAt = tr.AccessToken, time.Now()
	return k.adminTok
}

// admin calls the admin REST API of the demo realm (path relative to
// /admin/realms/demo; "" is the realm itself). in is sent as JSON, out
// decoded from JSON when non-nil. It fails the test on a status >= 300.
func (k *kc) admin(t *testing.T, method, path string, in, out any) http.Header {
	t.Helper()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		body = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, k.base+"/admin/realms/"+realmName+path, body)
	req.Header.Set("Authorization", "Bearer "+k.adminToken(t))
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := k.client.Do(req)
	if err != nil {
		t.Fatalf("admin %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		t.Fatalf("admin %s %s: status %d: %.300s", method, path, resp.StatusCode, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("admin %s %s: %v: %.300s", method, path, err, raw)
		}
	}
	return resp.Header
}

// createClient creates a confidential service-account client like the demo
// ones (the audience scope, orders:read) with the given extra attributes and
// representation fields, and deletes it when the test ends. A client left
// by an earlier run is deleted first.
func (k *kc) createClient(t *testing.T, clientID, secret string, attrs map[string]string, extra map[string]any) string {
	t.Helper()
	var old []struct {
		ID string `json:"id"`
	}
	k.admin(t, http.MethodGet, "/clients?clientId="+url.QueryEscape(clientID), nil, &old)
	for _, o := range old {
		k.admin(t, http.MethodDelete, "/clients/"+o.ID, nil, nil)
	}
	a := map[string]string{"access.token.lifespan": "300"}
	for key, v := range attrs {
		a[key] = v
	}
	rep := map[string]any{
		"clientId": clientID, "enabled": true, "protocol": "openid-connect",
		"publicClient": false, "bearerOnly": false, "clientAuthenticatorType": "client-secret", "secret": secret,
		"serviceAccountsEnabled": true, "standardFlowEnabled": false, "implicitFlowEnabled": false,
		"directAccessGrantsEnabled": false, "attributes": a,
		"defaultClientScopes": []string{"basic", "roles", "acr", "profile", "service_account", "orders-api-audience", "orders:read"},
	}
	for key, v := range extra {
		rep[key] = v
	}
	hdr := k.admin(t, http.MethodPost, "/clients", rep, nil)
	loc := hdr.Get("Location")
	id := loc[strings.LastIndex(loc, "/")+1:]
	if id == "" {
		t.Fatalf("create client %s: no Location", clientID)
	}
	t.Cleanup(func() { k.admin(t, http.MethodDelete, "/clients/"+id, nil, nil) })
	return id
}

// countingProxy sits between a gateway and Keycloak and counts the JWKS and
// discovery requests that pass.
type countingProxy struct {
	srv             *httptest.Server
	jwks, discovery atomic.Int64
}

func newCountingProxy(t *testing.T, k *kc) *countingProxy {
	t.Helper()
	target, _ := url.Parse(k.base)
	rp := httputil.NewSingleHostReverseProxy(target)
	p := &countingProxy{}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/protocol/openid-connect/certs"):
			p.jwks.Add(1)
		case strings.HasSuffix(r.URL.Path, "/.well-known/openid-configuration"):
			p.discovery.Add(1)
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *countingProxy) jwksURL() string {
	return p.srv.URL + "/realms/" + realmName + "/protocol/openid-connect/certs"
}

func (p *countingProxy) fetches() int64 { return p.jwks.Load() }

// jwtParts decodes the JOSE header and the payload of a compact JWT.
func jwtParts(t *testing.T, tok string) (header, payload map[string]any) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %d parts", len(parts))
	}
	dec := func(s string) map[string]any {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			t.Fatalf("base64url: %v", err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("JSON: %v", err)
		}
		return m
	}
	return dec(parts[0]), dec(parts[1])
}

func kidOf(t *testing.T, tok string) string {
	t.Helper()
	h, _ := jwtParts(t, tok)
	kid, _ := h["kid"].(string)
	return kid
}

// decodeJSON decodes a 200 response's JSON body into out.
func decodeJSON(resp *http.Response, out any) error {
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: status %d", resp.Request.URL, resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}
