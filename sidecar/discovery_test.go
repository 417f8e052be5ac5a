package sidecar

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/keycloak-jwt/keycloak-jwt/internal/dpoptest"
	"github.com/keycloak-jwt/keycloak-jwt/internal/testidp"
)

// TestClientDiscoversHowToGetAToken (RFC 9728): a client that knows only
// the API's URL and its own client credentials calls the API, reads the
// challenge, fetches the protected resource metadata it names, finds the
// realm, reads the realm's discovery document, gets a token by client
// credentials, and succeeds.
func TestClientDiscoversHowToGetAToken(t *testing.T) {
	sharedIdP(t)
	h := start(t, harnessOpt{yaml: baseYAML + "public_url: \"${PUBLIC}\"\nresource_metadata: true\n",
		env: map[string]string{"PUBLIC": "http://api.example.test"}})
	// The public URL is what clients call; here the test calls the listener
	// itself and maps the metadata's URLs onto it.
	local := func(u string) string { return strings.Replace(u, "http://api.example.test", h.url, 1) }

	r := get(t, h.url+"/orders")
	if r.status != 401 {
		t.Fatalf("first call: %d", r.status)
	}
	m := regexp.MustCompile(`resource_metadata="([^"]+)"`).FindStringSubmatch(r.header.Get("WWW-Authenticate"))
	if m == nil {
		t.Fatalf("challenge %q names no resource_metadata", r.header.Get("WWW-Authenticate"))
	}
	r = get(t, local(m[1]))
	var meta struct {
		Resource             string   `json:"resource"`
		AuthorizationServers []string `json:"authorization_servers"`
		Scopes               []string `json:"scopes_supported"`
	}
	if r.status != 200 || json.Unmarshal(r.body, &meta) != nil || len(meta.AuthorizationServers) != 1 || meta.Resource != "http://api.example.test" {
		t.Fatalf("metadata: %d %s", r.status, r.body)
	}
	r = get(t, meta.AuthorizationServers[0]+"/.well-known/openid-configuration")
	var disco struct {
		TokenEndpoint string `json:"token_endpoint"`
	}
	if r.status != 200 || json.Unmarshal(r.body, &disco) != nil || disco.TokenEndpoint == "" {
		t.Fatalf("discovery: %d %s", r.status, r.body)
	}
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {strings.Join(meta.Scopes, " ")}}
	req, _ := http.NewRequest("POST", disco.TokenEndpoint, strings.NewReader(form.Encode()))
	req.SetBasicAuth("orders-service", "orders-secret")
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	err = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if err != nil || tok.AccessToken == "" {
		t.Fatalf("token: %d %v", resp.StatusCode, err)
	}
	if r := do(t, "GET", h.url+"/orders", tok.AccessToken, nil, nil); r.status != 200 {
		t.Fatalf("call with the discovered token: %d %s", r.status, r.body)
	}
}

// TestDPoPThroughTheProxy: a DPoP-bound token with its proof passes the
// proxy; replayed, for another URL, as Bearer or without a proof it does
// not.
func TestDPoPThroughTheProxy(t *testing.T) {
	idp := sharedIdP(t)
	h := start(t, harnessOpt{yaml: baseYAML + "public_url: http://api.example.test\ndpop: {enabled: true}\n"})
	cl := dpoptest.New(t)
	tok := token(t, idp, "orders-service", testidp.WithClaim("cnf", map[string]any{"jkt": cl.JKT}))
	proof := cl.Proof(t, "GET", "http://api.example.test/orders", tok, nil)
	send := func(scheme, proof string) result {
		hdr := http.Header{"Authorization": {scheme + " " + tok}}
		if proof != "" {
			hdr["Dpop"] = []string{proof}
		}
		return do(t, "GET", h.url+"/orders", "", hdr, nil)
	}
	r := send("DPoP", proof)
	if r.status != 200 {
		t.Fatalf("valid proof: %d %s", r.status, r.body)
	}
	if got := r.echo(t).Headers.Get("X-Client-Id"); got != "orders-service" {
		t.Fatalf("X-Client-Id %q", got)
	}
	for name, tc := range map[string]struct {
		scheme, proof, challenge string
	}{
		"replayed":  {"DPoP", proof, `error="invalid_dpop_proof"`},
		"other URL": {"DPoP", cl.Proof(t, "GET", "http://api.example.test/admin", tok, nil), `error="invalid_dpop_proof"`},
		"as Bearer": {"Bearer", "", `error="invalid_token"`},
		"no proof":  {"DPoP", "", `error="invalid_dpop_proof"`},
	} {
		r := send(tc.scheme, tc.proof)
		if r.status != 401 || !strings.Contains(strings.Join(r.header.Values("WWW-Authenticate"), " | "), tc.challenge) {
			t.Errorf("%s: %d %q", name, r.status, r.header.Values("WWW-Authenticate"))
		}
	}
}
