package testidp

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// newIdP starts an IdP with two clients and registers its cleanup.
func newIdP(t *testing.T, opts Options) *IdP {
	t.Helper()
	if opts.Clients == nil {
		opts.Clients = []Client{
			{
				ID:          "orders-service",
				Secret:      "s3cret",
				Scopes:      []string{"orders:read", "orders:write"},
				RealmRoles:  []string{"reader"},
				ClientRoles: map[string][]string{"orders-api": {"admin", "viewer"}},
				Audience:    []string{"orders-api"},
			},
			{ID: "weird client:1", Secret: "p@ss:w+rd/%é", Scopes: []string{"a"}},
		}
	}
	idp, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(idp.Close)
	return idp
}

// getJSON fetches url and decodes the JSON body into v.
func getJSON(t *testing.T, url string, v any) *http.Response {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s: %v", url, err)
	}
	if v != nil {
		if err := json.Unmarshal(body, v); err != nil {
			t.Fatalf("decode %s: %v\n%s", url, err, body)
		}
	}
	return resp
}

// fetchJWKS returns the published keys by kid.
func fetchJWKS(t *testing.T, idp *IdP) map[string]JWK {
	t.Helper()
	var set JWKSet
	getJSON(t, idp.JWKSURL(), &set)
	out := make(map[string]JWK, len(set.Keys))
	for _, k := range set.Keys {
		if _, dup := out[k.Kid]; dup {
			t.Fatalf("duplicate kid %q in JWKS", k.Kid)
		}
		out[k.Kid] = k
	}
	return out
}

// parseJWT splits a compact JWS and decodes its parts.
func parseJWT(t *testing.T, token string) (header, payload map[string]any, signingInput, sig []byte) {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	decode := func(s string) []byte {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			t.Fatalf("base64url %q: %v", s, err)
		}
		return b
	}
	for n, dst := range []*map[string]any{&header, &payload} {
		dec := json.NewDecoder(bytes.NewReader(decode(parts[n])))
		dec.UseNumber()
		if err := dec.Decode(dst); err != nil {
			t.Fatalf("decode part %d: %v", n, err)
		}
	}
	return header, payload, []byte(parts[0] + "." + parts[1]), decode(parts[2])
}

// publicKeyFromJWK builds a public key from a JWK with the standard library.
func publicKeyFromJWK(t *testing.T, j JWK) crypto.PublicKey {
	t.Helper()
	b := func(s string) []byte {
		out, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			t.Fatalf("JWK member %q: %v", s, err)
		}
		return out
	}
	switch j.Kty {
	case "RSA":
		return &rsa.PublicKey{N: new(big.Int).SetBytes(b(j.N)), E: int(new(big.Int).SetBytes(b(j.E)).Int64())}
	case "EC":
		curves := map[string]elliptic.Curve{"P-256": elliptic.P256(), "P-384": elliptic.P384(), "P-521": elliptic.P521()}
		curve, ok := curves[j.Crv]
		if !ok {
			t.Fatalf("unknown curve %q", j.Crv)
		}
		raw := append([]byte{4}, append(b(j.X), b(j.Y)...)...)
		pub, err := ecdsa.ParseUncompressedPublicKey(curve, raw)
		if err != nil {
			t.Fatalf("EC JWK: %v", err)
		}
		return pub
	case "OKP":
		if j.Crv != "Ed25519" {
			t.Fatalf("unknown OKP curve %q", j.Crv)
		}
		return ed25519.PublicKey(b(j.X))
	}
	t.Fatalf("unknown kty %q", j.Kty)
	return nil
}

// verifySig checks a JWS signature with the standard library only.
func verifySig(t *testing.T, alg string, pub crypto.PublicKey, input, sig []byte) {
	t.Helper()
	hashes := map[string]crypto.Hash{"256": crypto.SHA256, "384": crypto.SHA384, "512": crypto.SHA512}
	digest := func() (crypto.Hash, []byte) {
		h := hashes[alg[2:]]
		hh := h.New()
		hh.Write(input)
		return h, hh.Sum(nil)
	}
	var err error
	switch {
	case alg == "EdDSA":
		if !ed25519.Verify(pub.(ed25519.PublicKey), input, sig) {
			err = errors.New("ed25519 verification failed")
		}
	case strings.HasPrefix(alg, "RS"):
		h, d := digest()
		err = rsa.VerifyPKCS1v15(pub.(*rsa.PublicKey), h, d, sig)
	case strings.HasPrefix(alg, "PS"):
		h, d := digest()
		err = rsa.VerifyPSS(pub.(*rsa.PublicKey), h, d, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	case strings.HasPrefix(alg, "ES"):
		_, d := digest()
		k := pub.(*ecdsa.PublicKey)
		size := (k.Curve.Params().BitSize + 7) / 8
		if len(sig) != 2*size {
			t.Fatalf("ECDSA signature is %d bytes, want %d", len(sig), 2*size)
		}
		r, s := new(big.Int).SetBytes(sig[:size]), new(big.Int).SetBytes(sig[size:])
		if !ecdsa.Verify(k, d, r, s) {
			err = errors.New("ecdsa verification failed")
		}
	default:
		t.Fatalf("unexpected alg %q", alg)
	}
	if err != nil {
		t.Fatalf("signature (%s): %v", alg, err)
	}
}

// verify checks the token's signature against the key the JWKS publishes
// under its kid and returns the decoded header and payload.
func verify(t *testing.T, idp *IdP, token string) (header, payload map[string]any) {
	t.Helper()
	header, payload, input, sig := parseJWT(t, token)
	kid, _ := header["kid"].(string)
	j, ok := fetchJWKS(t, idp)[kid]
	if !ok {
		t.Fatalf("kid %q not published", kid)
	}
	if j.Use != "sig" {
		t.Fatalf("kid %q has use %q", kid, j.Use)
	}
	alg, _ := header["alg"].(string)
	if alg != j.Alg {
		t.Fatalf("header alg %q, JWK alg %q", alg, j.Alg)
	}
	verifySig(t, alg, publicKeyFromJWK(t, j), input, sig)
	return header, payload
}

// postToken sends a token request and decodes the JSON response.
func postToken(t *testing.T, idp *IdP, form url.Values, basicUser, basicPass string) (int, http.Header, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, idp.TokenURL(), strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basicUser != "" || basicPass != "" {
		req.SetBasicAuth(basicUser, basicPass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST token: %v", err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("decode token response: %v", err)
	}
	return resp.StatusCode, resp.Header, body
}

func num(t *testing.T, v any) int64 {
	t.Helper()
	n, ok := v.(json.Number)
	if !ok {
		t.Fatalf("%v (%T) is not a JSON number", v, v)
	}
	i, err := n.Int64()
	if err != nil {
		t.Fatalf("%v is not an integer: %v", n, err)
	}
	return i
}

func strs(v any) []string {
	arr, _ := v.([]any)
	out := make([]string, 0, len(arr))
	for _, x := range arr {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

var (
	kidRE  = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)
	uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
)

func TestURLsAndDiscovery(t *testing.T) {
	idp := newIdP(t, Options{Realm: "shop"})
	if !strings.HasPrefix(idp.URL(), "http://127.0.0.1:") {
		t.Errorf("URL() = %q", idp.URL())
	}
	if want := idp.URL() + "/realms/shop"; idp.Issuer() != want {
		t.Errorf("Issuer() = %q, want %q", idp.Issuer(), want)
	}
	for got, want := range map[string]string{
		idp.DiscoveryURL(): idp.Issuer() + "/.well-known/openid-configuration",
		idp.JWKSURL():      idp.Issuer() + "/protocol/openid-connect/certs",
		idp.TokenURL():     idp.Issuer() + "/protocol/openid-connect/token",
	} {
		if got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}

	var doc map[string]any
	resp := getJSON(t, idp.DiscoveryURL(), &doc)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("discovery: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if doc["issuer"] != idp.Issuer() || doc["jwks_uri"] != idp.JWKSURL() || doc["token_endpoint"] != idp.TokenURL() {
		t.Errorf("discovery endpoints: %v", doc)
	}
	if got := strs(doc["token_endpoint_auth_methods_supported"]); !slices.Equal(got, []string{"client_secret_basic", "client_secret_post"}) {
		t.Errorf("token_endpoint_auth_methods_supported = %v", got)
	}
	if !slices.Contains(strs(doc["grant_types_supported"]), "client_credentials") {
		t.Errorf("grant_types_supported lacks client_credentials")
	}
	if algs := strs(doc["id_token_signing_alg_values_supported"]); !slices.Contains(algs, "RS256") || !slices.Contains(algs, "EdDSA") {
		t.Errorf("id_token_signing_alg_values_supported = %v", algs)
	}

	// Other realms and paths are not served.
	resp, err := http.Get(idp.URL() + "/realms/other/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("other realm: %d", resp.StatusCode)
	}

	// Handler serves the same routes.
	rec := &recorder{header: http.Header{}}
	idp.Handler().ServeHTTP(rec, mustRequest(t, http.MethodGet, idp.JWKSURL()))
	if rec.status != http.StatusOK || !json.Valid(rec.body.Bytes()) {
		t.Errorf("Handler JWKS: %d %s", rec.status, rec.body.String())
	}
}

// recorder is a minimal http.ResponseWriter.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}
func (r *recorder) WriteHeader(s int) { r.status = s }

func mustRequest(t *testing.T, method, u string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func TestNewValidation(t *testing.T) {
	for name, opts := range map[string]Options{
		"bad alg":          {Alg: "HS256"},
		"bad realm":        {Realm: "a/b"},
		"empty client id":  {Clients: []Client{{Secret: "x"}}},
		"duplicate client": {Clients: []Client{{ID: "a"}, {ID: "a"}}},
		"bad addr":         {Addr: "256.0.0.1:99999"},
	} {
		if idp, err := New(opts); err == nil {
			idp.Close()
			t.Errorf("%s: New succeeded", name)
		}
	}
}

func TestTokenEndpointClientSecretBasic(t *testing.T) {
	idp := newIdP(t, Options{})
	// RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic.
	status, hdr, body := postToken(t, idp, url.Values{"grant_type": {"client_credentials"}},
		url.QueryEscape("weird client:1"), url.QueryEscape("p@ss:w+rd/%é"))
	if status != http.StatusOK {
		t.Fatalf("status %d: %v", status, body)
	}
	if cc := hdr.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q", cc)
	}
	if ct := hdr.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	want := map[string]any{"expires_in": 300.0, "refresh_expires_in": 0.0, "token_type": "Bearer", "not-before-policy": 0.0, "scope": "profile email a"}
	for k, v := range want {
		if body[k] != v {
			t.Errorf("%s = %v, want %v", k, body[k], v)
		}
	}
	tok, _ := body["access_token"].(string)
	_, claims := verify(t, idp, tok)
	if claims["azp"] != "weird client:1" || claims["clientAddress"] != "127.0.0.1" || claims["clientHost"] != "127.0.0.1" {
		t.Errorf("claims: %v", claims)
	}

	// The same credentials without URL-encoding are different credentials.
	status, _, body = postToken(t, idp, url.Values{"grant_type": {"client_credentials"}}, "orders-service", "s3cret%zz")
	if status != http.StatusUnauthorized || body["error"] != "unauthorized_client" {
		t.Errorf("undecodable secret: %d %v", status, body)
	}
}

func TestTokenEndpointClientSecretPost(t *testing.T) {
	idp := newIdP(t, Options{})
	status, _, body := postToken(t, idp, url.Values{
		"grant_type": {"client_credentials"}, "client_id": {"orders-service"}, "client_secret": {"s3cret"},
	}, "", "")
	if status != http.StatusOK {
		t.Fatalf("status %d: %v", status, body)
	}
	if body["scope"] != "profile email orders:read orders:write" {
		t.Errorf("scope = %v", body["scope"])
	}
	_, claims := verify(t, idp, body["access_token"].(string))
	if claims["azp"] != "orders-service" || claims["scope"] != body["scope"] {
		t.Errorf("claims: %v", claims)
	}
}

func TestTokenEndpointScopes(t *testing.T) {
	idp := newIdP(t, Options{})
	for _, tc := range []struct {
		req, want string
	}{
		{"", "profile email orders:read orders:write"},
		{"orders:read", "profile email orders:read"},
		{"orders:write profile", "profile email orders:write"},
		{"openid orders:read orders:read", "openid profile email orders:read"},
	} {
		form := url.Values{"grant_type": {"client_credentials"}, "scope": {tc.req}}
		status, _, body := postToken(t, idp, form, "orders-service", "s3cret")
		if status != http.StatusOK || body["scope"] != tc.want {
			t.Errorf("scope %q: %d %v, want %q", tc.req, status, body["scope"], tc.want)
			continue
		}
		_, claims := verify(t, idp, body["access_token"].(string))
		if claims["scope"] != tc.want {
			t.Errorf("scope %q: claim %v", tc.req, claims["scope"])
		}
	}

	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"orders:read admin"}}
	status, _, body := postToken(t, idp, form, "orders-service", "s3cret")
	if status != http.StatusBadRequest || body["error"] != "invalid_scope" {
		t.Errorf("invalid scope: %d %v", status, body)
	}

	// Token applies the same rules.
	tok, err := idp.Token("orders-service", WithScope("orders:write"))
	if err != nil {
		t.Fatal(err)
	}
	if _, claims := verify(t, idp, tok); claims["scope"] != "profile email orders:write" {
		t.Errorf("Token scope = %v", claims["scope"])
	}
	var se *ScopeError
	if _, err := idp.Token("orders-service", WithScope("nope")); !errors.As(err, &se) {
		t.Errorf("Token with invalid scope: %v", err)
	}
}

func TestTokenEndpointErrors(t *testing.T) {
	idp := newIdP(t, Options{})
	cc := url.Values{"grant_type": {"client_credentials"}}
	withCreds := func(id, secret string) url.Values {
		return url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {secret}}
	}
	unauthorized := map[string]any{"error": "unauthorized_client", "error_description": "Invalid client or Invalid client credentials"}
	for _, tc := range []struct {
		name        string
		form        url.Values
		user, pass  string
		status      int
		error, desc string
	}{
		{"basic wrong secret", cc, "orders-service", "nope", 401, "unauthorized_client", unauthorized["error_description"].(string)},
		{"basic unknown client", cc, "ghost", "s3cret", 401, "unauthorized_client", ""},
		{"post wrong secret", withCreds("orders-service", "nope"), "", "", 401, "unauthorized_client", ""},
		{"post unknown client", withCreds("ghost", "s3cret"), "", "", 401, "unauthorized_client", ""},
		{"no credentials", cc, "", "", 401, "unauthorized_client", ""},
		{"basic and different form client_id", url.Values{"grant_type": {"client_credentials"}, "client_id": {"weird client:1"}}, "orders-service", "s3cret", 401, "unauthorized_client", ""},
		{"wrong grant", url.Values{"grant_type": {"password"}}, "orders-service", "s3cret", 400, "unsupported_grant_type", "Unsupported grant_type"},
		{"missing grant", url.Values{}, "orders-service", "s3cret", 400, "invalid_request", "Missing form parameter: grant_type"},
		{"duplicated parameter", url.Values{"grant_type": {"client_credentials", "client_credentials"}}, "orders-service", "s3cret", 400, "invalid_request", ""},
	} {
		status, hdr, body := postToken(t, idp, tc.form, tc.user, tc.pass)
		if status != tc.status || body["error"] != tc.error {
			t.Errorf("%s: %d %v, want %d %s", tc.name, status, body, tc.status, tc.error)
		}
		if tc.desc != "" && body["error_description"] != tc.desc {
			t.Errorf("%s: error_description %v, want %q", tc.name, body["error_description"], tc.desc)
		}
		if hdr.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: Cache-Control %q", tc.name, hdr.Get("Cache-Control"))
		}
	}

	resp, err := http.Get(idp.TokenURL())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" {
		t.Errorf("GET token: %d Allow=%q", resp.StatusCode, resp.Header.Get("Allow"))
	}

	// A client without a secret cannot authenticate.
	if err := idp.AddClient(Client{ID: "public"}); err != nil {
		t.Fatal(err)
	}
	if status, _, _ := postToken(t, idp, withCreds("public", ""), "", ""); status != http.StatusUnauthorized {
		t.Errorf("public client: %d", status)
	}
}

func TestTokenClaimsShape(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	idp := newIdP(t, Options{Clock: func() time.Time { return now }, TokenTTL: 90 * time.Second})
	tok, err := idp.Token("orders-service")
	if err != nil {
		t.Fatal(err)
	}
	header, claims := verify(t, idp, tok)

	// Header: alg, typ, kid in Keycloak's order and nothing else.
	rawHeader, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
	if want := `{"alg":"RS256","typ":"JWT","kid":"` + idp.CurrentKid() + `"}`; string(rawHeader) != want {
		t.Errorf("header = %s, want %s", rawHeader, want)
	}
	if !kidRE.MatchString(header["kid"].(string)) {
		t.Errorf("kid %q is not Keycloak-like", header["kid"])
	}

	if iat, exp := num(t, claims["iat"]), num(t, claims["exp"]); iat != now.Unix() || exp != now.Unix()+90 {
		t.Errorf("iat=%d exp=%d", iat, exp)
	}
	if !uuidRE.MatchString(claims["jti"].(string)) || !uuidRE.MatchString(claims["sub"].(string)) {
		t.Errorf("jti=%v sub=%v", claims["jti"], claims["sub"])
	}
	for k, v := range map[string]any{
		"iss":                idp.Issuer(),
		"typ":                "Bearer",
		"azp":                "orders-service",
		"acr":                "1",
		"scope":              "profile email orders:read orders:write",
		"email_verified":     false,
		"clientHost":         "127.0.0.1",
		"clientAddress":      "127.0.0.1",
		"clientId":           "orders-service",
		"preferred_username": "service-account-orders-service",
	} {
		if claims[k] != v {
			t.Errorf("%s = %#v, want %#v", k, claims[k], v)
		}
	}
	if aud := strs(claims["aud"]); !slices.Equal(aud, []string{"orders-api", "account"}) {
		t.Errorf("aud = %v", claims["aud"])
	}
	if ao := strs(claims["allowed-origins"]); !slices.Equal(ao, []string{"/*"}) {
		t.Errorf("allowed-origins = %v", claims["allowed-origins"])
	}
	realm := strs(claims["realm_access"].(map[string]any)["roles"])
	if !slices.Equal(realm, []string{"default-roles-demo", "offline_access", "uma_authorization", "reader"}) {
		t.Errorf("realm roles = %v", realm)
	}
	ra := claims["resource_access"].(map[string]any)
	if len(ra) != 2 {
		t.Errorf("resource_access = %v", ra)
	}
	if roles := strs(ra["account"].(map[string]any)["roles"]); !slices.Equal(roles, []string{"manage-account", "manage-account-links", "view-profile"}) {
		t.Errorf("account roles = %v", roles)
	}
	if roles := strs(ra["orders-api"].(map[string]any)["roles"]); !slices.Equal(roles, []string{"admin", "viewer"}) {
		t.Errorf("orders-api roles = %v", roles)
	}
	wantKeys := []string{"exp", "iat", "jti", "iss", "aud", "sub", "typ", "azp", "acr", "allowed-origins", "realm_access", "resource_access", "scope", "email_verified", "clientHost", "preferred_username", "clientAddress", "clientId"}
	if len(claims) != len(wantKeys) {
		t.Errorf("claims have %d members, want %d: %v", len(claims), len(wantKeys), claims)
	}

	// sub is stable per client, jti is not; a single audience is a string.
	tok2, _ := idp.Token("orders-service")
	_, claims2 := verify(t, idp, tok2)
	if claims2["sub"] != claims["sub"] || claims2["jti"] == claims["jti"] {
		t.Errorf("sub %v/%v jti %v/%v", claims["sub"], claims2["sub"], claims["jti"], claims2["jti"])
	}
	tok3, _ := idp.Token("weird client:1")
	_, claims3 := verify(t, idp, tok3)
	if claims3["aud"] != "account" || claims3["sub"] == claims["sub"] {
		t.Errorf("aud=%v sub=%v", claims3["aud"], claims3["sub"])
	}
	if _, err := idp.Token("ghost"); err == nil {
		t.Error("Token for unknown client succeeded")
	}
}

func TestAlgorithms(t *testing.T) {
	for _, tc := range []struct{ alg, kty, crv string }{
		{"RS256", "RSA", ""}, {"PS256", "RSA", ""}, {"ES256", "EC", "P-256"},
		{"ES384", "EC", "P-384"}, {"EdDSA", "OKP", "Ed25519"}, {"RS512", "RSA", ""}, {"ES512", "EC", "P-521"},
	} {
		t.Run(tc.alg, func(t *testing.T) {
			idp := newIdP(t, Options{Alg: tc.alg})
			tok, err := idp.Token("orders-service")
			if err != nil {
				t.Fatal(err)
			}
			header, _ := verify(t, idp, tok)
			if header["alg"] != tc.alg || header["typ"] != "JWT" || header["kid"] != idp.CurrentKid() {
				t.Errorf("header = %v", header)
			}
			j := fetchJWKS(t, idp)[idp.CurrentKid()]
			if j.Kty != tc.kty || j.Crv != tc.crv || j.Use != "sig" || j.Alg != tc.alg {
				t.Errorf("JWK = %+v", j)
			}
			if tc.kty == "RSA" {
				if n, _ := base64.RawURLEncoding.DecodeString(j.N); len(n) != 256 || j.E != "AQAB" {
					t.Errorf("RSA JWK modulus %d bytes, e=%q", len(n), j.E)
				}
			}
			pub := publicKeyFromJWK(t, j)
			if !pub.(interface{ Equal(crypto.PublicKey) bool }).Equal(idp.PublicKey(idp.CurrentKid())) {
				t.Error("JWK differs from PublicKey")
			}
		})
	}
}

func TestEncKey(t *testing.T) {
	idp := newIdP(t, Options{Alg: "ES256"})
	keys := fetchJWKS(t, idp)
	if len(keys) != 2 {
		t.Fatalf("JWKS has %d keys", len(keys))
	}
	enc, ok := keys[idp.EncKid()]
	if !ok || enc.Use != "enc" || enc.Alg != "RSA-OAEP" || enc.Kty != "RSA" || !kidRE.MatchString(enc.Kid) {
		t.Fatalf("enc JWK = %+v", enc)
	}
	if idp.EncKid() == idp.CurrentKid() {
		t.Fatal("enc key is the signing key")
	}
	priv, ok := idp.PrivateKey(idp.EncKid()).(*rsa.PrivateKey)
	if !ok || !priv.PublicKey.Equal(publicKeyFromJWK(t, enc)) {
		t.Fatal("PrivateKey(EncKid) does not match the published enc key")
	}

	// Signing with the enc key yields a token whose kid names a use:"enc" key.
	tok, err := idp.Token("orders-service", WithKid(idp.EncKid()))
	if err != nil {
		t.Fatal(err)
	}
	header, _, input, sig := parseJWT(t, tok)
	if header["kid"] != idp.EncKid() || header["alg"] != "RS256" {
		t.Errorf("header = %v", header)
	}
	verifySig(t, "RS256", &priv.PublicKey, input, sig)
}

func TestRotationAndRemoval(t *testing.T) {
	idp := newIdP(t, Options{})
	old := idp.CurrentKid()
	oldTok, _ := idp.Token("orders-service")

	kid, err := idp.RotateKey()
	if err != nil {
		t.Fatal(err)
	}
	if kid == old || idp.CurrentKid() != kid || !kidRE.MatchString(kid) {
		t.Fatalf("rotate: old %q new %q current %q", old, kid, idp.CurrentKid())
	}
	keys := fetchJWKS(t, idp)
	if _, ok := keys[old]; !ok {
		t.Error("old key no longer published after rotation")
	}
	if _, ok := keys[kid]; !ok || len(keys) != 3 {
		t.Errorf("JWKS after rotation: %v", keys)
	}
	newTok, _ := idp.Token("orders-service")
	if h, _ := verify(t, idp, newTok); h["kid"] != kid {
		t.Errorf("new token kid %v", h["kid"])
	}
	verify(t, idp, oldTok) // old tokens still verify

	idp.RemoveKey(old)
	keys = fetchJWKS(t, idp)
	if _, ok := keys[old]; ok || len(keys) != 2 {
		t.Errorf("JWKS after removal: %v", keys)
	}
	if idp.PublicKey(old) == nil || idp.PrivateKey(old) == nil {
		t.Error("removed key no longer available to tests")
	}
	if idp.PublicKey("nope") != nil || idp.PrivateKey("nope") != nil {
		t.Error("unknown kid returned a key")
	}
	// WithKid can still sign with the removed (now unpublished) key.
	tok, err := idp.Token("orders-service", WithKid(old))
	if err != nil {
		t.Fatal(err)
	}
	if h, _, _, _ := parseJWT(t, tok); h["kid"] != old {
		t.Errorf("kid = %v", h["kid"])
	}
	if _, err := idp.Token("orders-service", WithKid("nope")); err == nil {
		t.Error("WithKid(unknown) succeeded")
	}

	// AddKey: an extra key, unpublished or of another algorithm.
	hidden, err := idp.AddKey("RS256", false)
	if err != nil {
		t.Fatal(err)
	}
	ec, err := idp.AddKey("ES256", true)
	if err != nil {
		t.Fatal(err)
	}
	keys = fetchJWKS(t, idp)
	if _, ok := keys[hidden]; ok {
		t.Error("unpublished key in JWKS")
	}
	if keys[ec].Alg != "ES256" || idp.CurrentKid() != kid {
		t.Errorf("AddKey ES256: %+v current %q", keys[ec], idp.CurrentKid())
	}
	tok, _ = idp.Token("orders-service", WithKid(ec))
	if h, _ := verify(t, idp, tok); h["alg"] != "ES256" {
		t.Errorf("alg = %v", h["alg"])
	}
	if _, err := idp.AddKey("none", true); err == nil {
		t.Error("AddKey(none) succeeded")
	}
}

func TestMintOptions(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	idp := newIdP(t, Options{Clock: func() time.Time { return now }})
	tok, err := idp.Token("orders-service",
		WithClaim("iss", "https://evil.example"),
		WithClaim("extra", map[string]int{"n": 1}),
		WithClaim("nbf", json.RawMessage(`1.5`)),
		WithoutClaim("azp"),
		WithHeader("cty", "x"),
		WithoutHeader("typ"),
		WithTTL(-time.Minute),
	)
	if err != nil {
		t.Fatal(err)
	}
	header, claims := verify(t, idp, tok)
	if _, ok := header["typ"]; ok || header["cty"] != "x" {
		t.Errorf("header = %v", header)
	}
	if claims["iss"] != "https://evil.example" || claims["azp"] != nil || claims["nbf"].(json.Number) != "1.5" {
		t.Errorf("claims = %v", claims)
	}
	if num(t, claims["exp"]) != now.Unix()-60 {
		t.Errorf("exp = %v", claims["exp"])
	}

	// Last option wins.
	tok, _ = idp.Token("orders-service", WithoutClaim("sub"), WithClaim("sub", "x"))
	if _, c := verify(t, idp, tok); c["sub"] != "x" {
		t.Errorf("sub = %v", c["sub"])
	}

	// WithHeader("alg") lies about the algorithm; the signature is still RS256.
	tok, _ = idp.Token("orders-service", WithHeader("alg", "HS256"))
	h, _, input, sig := parseJWT(t, tok)
	if h["alg"] != "HS256" {
		t.Errorf("alg = %v", h["alg"])
	}
	verifySig(t, "RS256", idp.PublicKey(idp.CurrentKid()), input, sig)
}

func TestSign(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	idp := newIdP(t, Options{Clock: func() time.Time { return now }})
	tok, err := idp.Sign(map[string]any{"sub": "alice", "iss": "me"})
	if err != nil {
		t.Fatal(err)
	}
	header, claims := verify(t, idp, tok)
	if len(header) != 3 || header["typ"] != "JWT" || header["alg"] != "RS256" || header["kid"] != idp.CurrentKid() {
		t.Errorf("header = %v", header)
	}
	if len(claims) != 2 || claims["sub"] != "alice" || claims["iss"] != "me" {
		t.Errorf("claims = %v", claims)
	}

	tok, _ = idp.Sign(map[string]any{"sub": "bob"}, WithTTL(time.Hour), WithScope("a b"), WithClaim("x", true))
	_, claims = verify(t, idp, tok)
	if num(t, claims["iat"]) != now.Unix() || num(t, claims["exp"]) != now.Unix()+3600 || claims["scope"] != "a b" || claims["x"] != true {
		t.Errorf("claims = %v", claims)
	}

	// Sign does not modify its argument.
	in := map[string]any{"a": 1}
	if _, err := idp.Sign(in, WithClaim("b", 2), WithoutClaim("a")); err != nil || len(in) != 1 || in["a"] != 1 {
		t.Errorf("input modified: %v %v", in, err)
	}
}

func TestSignRaw(t *testing.T) {
	idp := newIdP(t, Options{Alg: "ES256"})
	header := []byte(`{"alg":"ES256","kid":"` + idp.CurrentKid() + `","kid":"dup"}`)
	payload := []byte(`{"sub":"x", "exp":1e99}`)
	tok, err := idp.SignRaw(header, payload)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("%d parts", len(parts))
	}
	gotH, _ := base64.RawURLEncoding.DecodeString(parts[0])
	gotP, _ := base64.RawURLEncoding.DecodeString(parts[1])
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	if !bytes.Equal(gotH, header) || !bytes.Equal(gotP, payload) {
		t.Errorf("header/payload altered: %s %s", gotH, gotP)
	}
	verifySig(t, "ES256", idp.PublicKey(idp.CurrentKid()), []byte(parts[0]+"."+parts[1]), sig)

	// Not even valid JSON is required.
	if _, err := idp.SignRaw([]byte("{"), []byte("not json")); err != nil {
		t.Error(err)
	}
}

func TestRefreshToken(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	idp := newIdP(t, Options{Clock: func() time.Time { return now }})
	tok, err := idp.RefreshToken("orders-service")
	if err != nil {
		t.Fatal(err)
	}
	header, claims, input, sig := parseJWT(t, tok)
	if header["alg"] != "HS512" || header["typ"] != "JWT" || header["kid"] != idp.hmacKid {
		t.Errorf("header = %v", header)
	}
	mac := hmac.New(sha512.New, idp.hmacSecret)
	mac.Write(input)
	if !hmac.Equal(mac.Sum(nil), sig) {
		t.Error("HS512 signature does not verify")
	}
	if claims["typ"] != "Refresh" || claims["azp"] != "orders-service" || claims["iss"] != idp.Issuer() || claims["aud"] != idp.Issuer() {
		t.Errorf("claims = %v", claims)
	}
	if num(t, claims["exp"]) != now.Unix()+1800 {
		t.Errorf("exp = %v", claims["exp"])
	}
	access, _ := idp.Token("orders-service")
	if _, ac := verify(t, idp, access); ac["sub"] != claims["sub"] {
		t.Errorf("refresh sub %v, access sub %v", claims["sub"], ac["sub"])
	}
	if _, ok := fetchJWKS(t, idp)[idp.hmacKid]; ok {
		t.Error("HMAC key published")
	}
	if _, err := idp.RefreshToken("ghost"); err == nil {
		t.Error("RefreshToken for unknown client succeeded")
	}
}

func TestCacheControlAndIssuerOverride(t *testing.T) {
	idp := newIdP(t, Options{})
	resp := getJSON(t, idp.JWKSURL(), nil)
	if cc := resp.Header.Get("Cache-Control"); cc != "max-age=300" {
		t.Errorf("default Cache-Control = %q", cc)
	}
	idp.SetCacheControl("no-cache")
	if cc := getJSON(t, idp.JWKSURL(), nil).Header.Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("Cache-Control = %q", cc)
	}
	idp.SetCacheControl("")
	if cc, ok := getJSON(t, idp.JWKSURL(), nil).Header["Cache-Control"]; ok {
		t.Errorf("Cache-Control present: %q", cc)
	}

	idp.SetIssuerOverride("https://other.example/realms/demo")
	var doc map[string]any
	getJSON(t, idp.DiscoveryURL(), &doc)
	if doc["issuer"] != "https://other.example/realms/demo" || doc["jwks_uri"] != idp.JWKSURL() {
		t.Errorf("overridden discovery: %v %v", doc["issuer"], doc["jwks_uri"])
	}
	tok, _ := idp.Token("orders-service")
	if _, c := verify(t, idp, tok); c["iss"] != idp.Issuer() {
		t.Errorf("token iss = %v", c["iss"])
	}
	idp.SetIssuerOverride("")
	getJSON(t, idp.DiscoveryURL(), &doc)
	if doc["issuer"] != idp.Issuer() {
		t.Errorf("issuer = %v", doc["issuer"])
	}
}

// get performs a GET with ctx and returns the response with its body read.
func get(ctx context.Context, u string) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

func TestFaults(t *testing.T) {
	idp := newIdP(t, Options{})
	ctx := context.Background()
	for _, u := range []string{idp.DiscoveryURL(), idp.JWKSURL()} {
		t.Run(u[strings.LastIndex(u, "/")+1:], func(t *testing.T) {
			idp.SetFault(Fault{Down: true})
			if resp, _, err := get(ctx, u); err != nil || resp.StatusCode != http.StatusServiceUnavailable {
				t.Errorf("Down: %v %v", resp, err)
			}

			idp.SetFault(Fault{BadJSON: true})
			resp, body, err := get(ctx, u)
			if err != nil || resp.StatusCode != http.StatusOK || json.Valid(body) || len(body) == 0 {
				t.Errorf("BadJSON: %v %q %v", resp, body, err)
			}

			idp.SetFault(Fault{HugeBytes: 3 << 20})
			resp, body, err = get(ctx, u)
			if err != nil || resp.StatusCode != http.StatusOK || len(body) != 3<<20 || !json.Valid(body) {
				t.Errorf("HugeBytes: %v len=%d valid=%v %v", resp, len(body), json.Valid(body), err)
			}

			idp.SetFault(Fault{Reset: true})
			if _, _, err := get(ctx, u); err == nil {
				t.Error("Reset: request succeeded")
			}

			idp.SetFault(Fault{Slow: 300 * time.Millisecond})
			start := time.Now()
			resp, body, err = get(ctx, u)
			if err != nil || resp.StatusCode != http.StatusOK || !json.Valid(body) || time.Since(start) < 300*time.Millisecond {
				t.Errorf("Slow: %v %v after %v", resp, err, time.Since(start))
			}

			idp.SetFault(Fault{Slow: time.Hour})
			tctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			start = time.Now()
			_, _, err = get(tctx, u)
			cancel()
			if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
				t.Errorf("Slow with deadline: %v after %v", err, time.Since(start))
			}

			idp.SetFault(Fault{Slow: 50 * time.Millisecond, Down: true})
			if resp, _, err := get(ctx, u); err != nil || resp.StatusCode != http.StatusServiceUnavailable {
				t.Errorf("Slow+Down: %v %v", resp, err)
			}

			idp.SetFault(Fault{})
			if resp, body, err := get(ctx, u); err != nil || resp.StatusCode != http.StatusOK || !json.Valid(body) {
				t.Errorf("recovered: %v %v", resp, err)
			}
		})
	}

	// The token endpoint ignores faults.
	idp.SetFault(Fault{Down: true, Reset: true})
	if status, _, body := postToken(t, idp, url.Values{"grant_type": {"client_credentials"}}, "orders-service", "s3cret"); status != http.StatusOK {
		t.Errorf("token endpoint under fault: %d %v", status, body)
	}

	// Per-endpoint faults.
	idp.SetFault(Fault{})
	idp.SetJWKSFault(Fault{Down: true})
	if resp, _, _ := get(ctx, idp.DiscoveryURL()); resp.StatusCode != http.StatusOK {
		t.Errorf("discovery with JWKS fault: %d", resp.StatusCode)
	}
	if resp, _, _ := get(ctx, idp.JWKSURL()); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("JWKS fault: %d", resp.StatusCode)
	}
	idp.SetJWKSFault(Fault{})
	idp.SetDiscoveryFault(Fault{Down: true})
	if resp, _, _ := get(ctx, idp.DiscoveryURL()); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("discovery fault: %d", resp.StatusCode)
	}
	if resp, _, _ := get(ctx, idp.JWKSURL()); resp.StatusCode != http.StatusOK {
		t.Errorf("JWKS with discovery fault: %d", resp.StatusCode)
	}
}

func TestFetchCounters(t *testing.T) {
	idp := newIdP(t, Options{})
	if d, j := idp.Fetches(); d != 0 || j != 0 {
		t.Fatalf("initial fetches %d %d", d, j)
	}
	getJSON(t, idp.DiscoveryURL(), nil)
	for range 3 {
		getJSON(t, idp.JWKSURL(), nil)
	}
	idp.SetFault(Fault{Down: true})
	getJSON(t, idp.JWKSURL(), nil)
	postToken(t, idp, url.Values{"grant_type": {"client_credentials"}}, "orders-service", "s3cret")
	if d, j := idp.Fetches(); d != 1 || j != 4 {
		t.Errorf("fetches = %d, %d; want 1, 4", d, j)
	}
}

func TestConcurrency(t *testing.T) {
	idp := newIdP(t, Options{Alg: "ES256"})
	var wg sync.WaitGroup
	errs := make(chan error, 256)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range 10 {
				switch (g + n) % 5 {
				case 0:
					form := url.Values{"grant_type": {"client_credentials"}, "client_id": {"orders-service"}, "client_secret": {"s3cret"}}
					resp, err := http.PostForm(idp.TokenURL(), form)
					if err != nil {
						errs <- err
						continue
					}
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						errs <- errors.New(resp.Status)
					}
				case 1:
					if _, _, err := get(context.Background(), idp.JWKSURL()); err != nil {
						errs <- err
					}
				case 2:
					if _, err := idp.RotateKey(); err != nil {
						errs <- err
					}
				case 3:
					if _, err := idp.Token("orders-service"); err != nil {
						errs <- err
					}
					idp.SetCacheControl("max-age=1")
					idp.SetIssuerOverride("")
				case 4:
					idp.SetFault(Fault{})
					idp.RemoveKey(idp.CurrentKid())
					idp.Fetches()
					if _, _, err := get(context.Background(), idp.DiscoveryURL()); err != nil {
						errs <- err
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestClose(t *testing.T) {
	idp, err := New(Options{Clients: []Client{{ID: "c", Secret: "s"}}})
	if err != nil {
		t.Fatal(err)
	}
	idp.SetFault(Fault{Slow: time.Hour})
	done := make(chan error, 1)
	go func() {
		_, _, err := get(context.Background(), idp.JWKSURL())
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	idp.Close()
	idp.Close() // idempotent
	select {
	case err := <-done:
		if err == nil {
			t.Error("slow request succeeded after Close")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end a slow request")
	}
	if _, _, err := get(context.Background(), idp.JWKSURL()); err == nil {
		t.Error("request after Close succeeded")
	}
}

func TestMarshalOrderedNoHTMLEscape(t *testing.T) {
	b, err := marshalOrdered(map[string]any{"z": 1, "b": "<&>", "a": []string{"/*"}}, []string{"z"})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"z":1,"a":["/*"],"b":"<&>"}`; string(b) != want {
		t.Errorf("got %s, want %s", b, want)
	}
	sum := sha256.Sum256(b)
	if b2, _ := marshalOrdered(map[string]any{"b": "<&>", "a": []string{"/*"}, "z": 1}, []string{"z"}); sha256.Sum256(b2) != sum {
		t.Error("encoding is not deterministic")
	}
}
