package plugin_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"

	"github.com/keycloak-jwt/keycloak-jwt/internal/kongsim"
	"github.com/keycloak-jwt/keycloak-jwt/internal/testidp"
	"github.com/keycloak-jwt/keycloak-jwt/plugin"
	"github.com/keycloak-jwt/keycloak-jwt/upstream"
)

// These tests build the real plugin binary and play Kong's side of the
// plugin-server protocol over its Unix socket (internal/kongsim).

func TestMain(m *testing.M) {
	code := m.Run()
	kongsim.CleanupBuilds()
	os.Exit(code)
}

type harness struct {
	idp *testidp.IdP
	srv *kongsim.Server
}

var clients = []testidp.Client{
	{ID: "orders-service", Secret: "x", Scopes: []string{"orders:read", "orders:write"},
		ClientRoles: map[string][]string{"orders-api": {"reader", "writer"}}, Audience: []string{"orders-api"}},
	{ID: "reports-job", Secret: "x", Scopes: []string{"orders:read"}, Audience: []string{"orders-api"}},
}

func start(t *testing.T, opts ...kongsim.Option) *harness {
	t.Helper()
	idp, err := testidp.New(testidp.Options{Clients: clients})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(idp.Close)
	bin := kongsim.Build(t, "github.com/keycloak-jwt/keycloak-jwt/cmd/keycloak-jwt")
	srv, err := kongsim.Start(bin, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return &harness{idp: idp, srv: srv}
}

// config is a base plugin config; edit receives it as a generic map.
func (h *harness) instance(t *testing.T, edit func(map[string]any)) int {
	t.Helper()
	cfg := map[string]any{
		"issuers":   []map[string]any{{"issuer": h.idp.Issuer()}},
		"audiences": []string{"orders-api"},
	}
	if edit != nil {
		edit(cfg)
	}
	b, _ := json.Marshal(cfg)
	id, err := h.srv.StartInstance("keycloak-jwt", b)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func (h *harness) token(t *testing.T, client string, opts ...testidp.MintOption) string {
	t.Helper()
	tok, err := h.idp.Token(client, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func access(t *testing.T, h *harness, id int, req kongsim.Request) *kongsim.Result {
	t.Helper()
	if req.Path == "" {
		req.Path = "/orders"
	}
	res, err := h.srv.HandleEvent(id, "access", req)
	if err != nil {
		t.Fatalf("handle event: %v", err)
	}
	if len(res.Unhandled) > 0 {
		t.Fatalf("plugin called PDK methods Kong does not have: %v", res.Unhandled)
	}
	return res
}

func bearer(tok string) map[string][]string {
	return map[string][]string{"Authorization": {"Bearer " + tok}}
}

func TestDump(t *testing.T) {
	bin := kongsim.Build(t, "github.com/keycloak-jwt/keycloak-jwt/cmd/keycloak-jwt")
	info, err := kongsim.DumpInfo(bin)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := kongsim.Dump(bin)
	for _, want := range []string{`"name":"keycloak-jwt"`, `"scopes_required"`, `"upstream_jwt"`, `"issuers"`} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("schema lacks %s", want)
		}
	}
	if strings.Contains(string(raw), "omitempty") || strings.Contains(string(raw), `"once"`) {
		t.Error("schema leaks tag options or internal fields")
	}
	if len(info.Plugins) != 1 || info.Plugins[0].Name != plugin.Name || info.Plugins[0].Priority != plugin.Priority ||
		info.Plugins[0].Version != plugin.Version || len(info.Plugins[0].Phases) != 1 || info.Plugins[0].Phases[0] != "access" {
		t.Errorf("dump info %+v", info.Plugins)
	}
}

func TestStatuses(t *testing.T) {
	h := start(t)
	read := h.instance(t, func(c map[string]any) { c["scopes_required"] = []string{"orders:read"} })
	write := h.instance(t, func(c map[string]any) {
		c["scopes_required"] = []string{"orders:write"}
		c["realm"] = "orders"
	})
	good := h.token(t, "orders-service")
	reports := h.token(t, "reports-job")

	cases := []struct {
		name      string
		id        int
		headers   map[string][]string
		status    int // 0: passes to the upstream
		challenge string
	}{
		{"allow", read, bearer(good), 0, ""},
		{"missing token", read, nil, 401, `Bearer realm="kong"`},
		{"basic scheme only", read, map[string][]string{"Authorization": {"Basic eDp5"}}, 401, `Bearer realm="kong"`},
		{"malformed header", read, map[string][]string{"Authorization": {"Bearer a b"}}, 400, `Bearer realm="kong", error="invalid_request"`},
		{"two tokens", read, map[string][]string{"Authorization": {"Bearer " + good, "Bearer " + good}}, 400, `error="invalid_request"`},
		{"bad token", read, bearer(good[:len(good)-4] + "AAAA"), 401, `error="invalid_token"`},
		{"garbage token", read, bearer("abc"), 401, `error="invalid_token"`},
		{"missing scope", write, bearer(reports), 403, `Bearer realm="orders", error="insufficient_scope", error_description="The access token lacks a required scope", scope="orders:write"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := access(t, h, tc.id, kongsim.Request{Headers: tc.headers})
			if tc.status == 0 {
				if res.Exited {
					t.Fatalf("denied %d %s", res.Status, res.Body)
				}
				if len(res.Calls) != 2 {
					t.Fatalf("allow path made %d PDK calls (%v), want 2 (budget 3)", len(res.Calls), res.Calls)
				}
				return
			}
			if !res.Exited || res.Status != tc.status {
				t.Fatalf("status %d (exited %v), want %d; body %s", res.Status, res.Exited, tc.status, res.Body)
			}
			got := strings.Join(res.ExitHeaders["WWW-Authenticate"], "")
			if !strings.Contains(got, tc.challenge) {
				t.Fatalf("WWW-Authenticate %q, want %q", got, tc.challenge)
			}
			var body struct{ Message string }
			if err := json.Unmarshal(res.Body, &body); err != nil || body.Message == "" {
				t.Fatalf("body %s is not {\"message\":...}", res.Body)
			}
			if strings.Contains(string(res.Body), "kid") || strings.Contains(string(res.Body), h.idp.Issuer()) {
				t.Fatalf("body reveals internals: %s", res.Body)
			}
		})
	}
}

func TestIdentityHeadersAndSpoofing(t *testing.T) {
	h := start(t)
	id := h.instance(t, func(c map[string]any) {
		c["upstream_headers"] = map[string]any{"claim_headers": map[string]string{"clientHost": "X-Client-Host"}, "strip_authorization": true}
	})
	req := kongsim.Request{Headers: map[string][]string{
		"Authorization":        {"Bearer " + h.token(t, "orders-service")},
		"X-Client-Id":          {"admin"},
		"X-Client-Roles":       {"superuser"},
		"X-Consumer-Username":  {"admin"},
		"X-Anonymous-Consumer": {"false"},
		"X-Other":              {"kept"},
		// Underscore spellings, which CGI/WSGI/Rack upstreams read as the
		// real headers (they reach Kong's upstream with underscores_in_headers on).
		"X_Client_Id":         {"admin"},
		"x_consumer_username": {"admin"},
		"X_Other":             {"kept"},
	}}
	res := access(t, h, id, req)
	if res.Exited {
		t.Fatalf("denied: %s", res.Body)
	}
	up := h.srv.UpstreamHeaders(res, req)
	want := map[string]string{
		"X-Client-Id": "orders-service", "X-Client-Scopes": "profile email orders:read orders:write",
		"X-Client-Host": "127.0.0.1", "X-Other": "kept",
		"X-Consumer-Username": "", "X-Anonymous-Consumer": "", "Authorization": "",
		"X_Client_Id": "", "x_consumer_username": "", "X_Other": "kept",
	}
	for k, v := range want {
		if got := strings.Join(up.Values(k), ","); got != v {
			t.Errorf("upstream %s = %q, want %q", k, got, v)
		}
	}
	if r := up.Get("X-Client-Roles"); strings.Contains(r, "superuser") || !strings.Contains(r, "orders-api:writer") {
		t.Errorf("roles header %q", r)
	}
	// Denied requests never reach the upstream, so spoofed headers there do not matter;
	// the allow path must stay within budget even with clears: set_headers is one call.
	if n := countCalls(res, "kong.service.request.set_headers"); n != 1 {
		t.Fatalf("set_headers called %d times", n)
	}
}

// kong.request.get_headers stops at 1000 header lines without an error: a
// second token or a forged identity header could hide past the cut. A
// request with that many is refused with 400, also where anonymous applies;
// one line fewer is checked as usual.
func TestTooManyHeaders(t *testing.T) {
	h := start(t)
	anon := kongsim.Consumer{ID: "8a1e2c3d-0000-4000-8000-000000000001", Username: "anonymous"}
	id := h.instance(t, func(c map[string]any) { c["anonymous"] = "anonymous" })
	// lines counts every header line Kong sees: Authorization,
	// X-Consumer-Username, the padding and the Host header kongsim adds.
	request := func(lines int) kongsim.Request {
		hdrs := bearer(h.token(t, "orders-service"))
		hdrs["X-Consumer-Username"] = []string{"admin"}
		for i := range lines - 3 {
			hdrs[fmt.Sprintf("Pad-%04d", i)] = []string{"x"}
		}
		return kongsim.Request{Headers: hdrs, Consumers: []kongsim.Consumer{anon}}
	}
	res := access(t, h, id, request(1000))
	if !res.Exited || res.Status != 400 || !strings.Contains(strings.Join(res.ExitHeaders["WWW-Authenticate"], ""), `error="invalid_request"`) {
		t.Fatalf("1000 header lines: exited=%v %d %q %s", res.Exited, res.Status, strings.Join(res.ExitHeaders["WWW-Authenticate"], ""), res.Body)
	}
	// Same for a query string the plugin cannot parse when it reads tokens there.
	qid := h.instance(t, func(c map[string]any) { c["anonymous"] = "anonymous"; c["uri_param_names"] = []string{"jwt"} })
	if res := access(t, h, qid, kongsim.Request{RawQuery: "jwt=x&y=%zz", Consumers: []kongsim.Consumer{anon}}); !res.Exited || res.Status != 400 {
		t.Fatalf("unparsable query with anonymous: exited=%v %d %s", res.Exited, res.Status, res.Body)
	}
	req := request(999)
	res = access(t, h, id, req)
	if res.Exited {
		t.Fatalf("999 header lines: %d %s", res.Status, res.Body)
	}
	up := h.srv.UpstreamHeaders(res, req)
	if up.Get("X-Client-Id") != "orders-service" || up.Get("X-Consumer-Username") != "" {
		t.Errorf("999 header lines: X-Client-Id %q, X-Consumer-Username %q", up.Get("X-Client-Id"), up.Get("X-Consumer-Username"))
	}
}

func countCalls(res *kongsim.Result, m string) int {
	n := 0
	for _, c := range res.Calls {
		if c == m {
			n++
		}
	}
	return n
}

func TestAnonymous(t *testing.T) {
	h := start(t)
	anon := kongsim.Consumer{ID: "8a1e2c3d-0000-4000-8000-000000000001", Username: "anonymous"}
	id := h.instance(t, func(c map[string]any) { c["anonymous"] = "anonymous"; c["scopes_required"] = []string{"orders:write"} })
	for name, hdrs := range map[string]map[string][]string{
		"no token":  nil,
		"bad token": bearer("a.b.c"),
		"malformed": {"Authorization": {"Bearer a b"}},
	} {
		t.Run(name, func(t *testing.T) {
			req := kongsim.Request{Headers: hdrs, Consumers: []kongsim.Consumer{anon}}
			res := access(t, h, id, req)
			if res.Exited {
				t.Fatalf("anonymous not applied: %d %s", res.Status, res.Body)
			}
			if res.AuthenticatedConsumer == nil || res.AuthenticatedConsumer.ID != anon.ID {
				t.Fatalf("consumer %+v", res.AuthenticatedConsumer)
			}
			up := h.srv.UpstreamHeaders(res, req)
			if up.Get("X-Anonymous-Consumer") != "true" || up.Get("X-Consumer-Username") != "anonymous" || up.Get("X-Client-Id") != "" {
				t.Fatalf("headers %v", up)
			}
		})
	}
	// A valid token without the scope is authenticated: anonymous does not apply.
	res := access(t, h, id, kongsim.Request{Headers: bearer(h.token(t, "reports-job")), Consumers: []kongsim.Consumer{anon}})
	if !res.Exited || res.Status != 403 {
		t.Fatalf("403 expected, got %d", res.Status)
	}
	// The anonymous consumer missing: fail closed with 500.
	res = access(t, h, id, kongsim.Request{})
	if !res.Exited || res.Status != 500 {
		t.Fatalf("missing anonymous consumer: %d", res.Status)
	}
}

func TestConsumerMapping(t *testing.T) {
	h := start(t)
	consumer := kongsim.Consumer{ID: "8a1e2c3d-0000-4000-8000-000000000002", Username: "orders-service", CustomID: "ext-42"}
	id := h.instance(t, func(c map[string]any) { c["consumer_mapping"] = true })
	tok := h.token(t, "orders-service")
	req := kongsim.Request{Headers: bearer(tok), Consumers: []kongsim.Consumer{consumer}}
	res := access(t, h, id, req)
	if res.Exited || res.AuthenticatedConsumer == nil || res.AuthenticatedConsumer.ID != consumer.ID {
		t.Fatalf("exited=%v status=%d consumer=%+v", res.Exited, res.Status, res.AuthenticatedConsumer)
	}
	if res.AuthenticatedCredential == nil || res.AuthenticatedCredential.ID != "orders-service" {
		t.Fatalf("credential %+v", res.AuthenticatedCredential)
	}
	up := h.srv.UpstreamHeaders(res, req)
	for k, v := range map[string]string{"X-Consumer-Id": consumer.ID, "X-Consumer-Username": "orders-service",
		"X-Consumer-Custom-Id": "ext-42", "X-Credential-Identifier": "orders-service"} {
		if up.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, up.Get(k), v)
		}
	}
	if len(res.Calls) != 4 {
		t.Fatalf("mapping path made %d PDK calls (%v), want 4 (budget 5)", len(res.Calls), res.Calls)
	}
	// No matching consumer: 401.
	res = access(t, h, id, kongsim.Request{Headers: bearer(tok)})
	if !res.Exited || res.Status != 401 {
		t.Fatalf("unmapped client: %d", res.Status)
	}
	// consumer_optional: passes without a consumer.
	opt := h.instance(t, func(c map[string]any) { c["consumer_mapping"] = true; c["consumer_optional"] = true })
	res = access(t, h, opt, kongsim.Request{Headers: bearer(tok)})
	if res.Exited || res.AuthenticatedConsumer != nil {
		t.Fatalf("optional mapping: exited=%v consumer=%+v", res.Exited, res.AuthenticatedConsumer)
	}
}

func TestUpstreamJWT(t *testing.T) {
	h := start(t)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	keyFile := filepath.Join(t.TempDir(), "gw.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	id := h.instance(t, func(c map[string]any) {
		c["upstream_jwt"] = map[string]any{"enabled": true, "issuer": "https://gw.example", "audience": "orders-backend",
			"private_key_file": keyFile, "claims": []string{"scope"}}
	})
	jwksRes := access(t, h, id, kongsim.Request{Path: "/.well-known/keycloak-jwt/jwks.json"})
	if !jwksRes.Exited || jwksRes.Status != 200 {
		t.Fatalf("JWKS path: %d %s", jwksRes.Status, jwksRes.Body)
	}
	if strings.Contains(string(jwksRes.Body), `"d"`) {
		t.Fatal("JWKS leaks the private key")
	}
	tok := h.token(t, "orders-service")
	req := kongsim.Request{Headers: bearer(tok)}
	res := access(t, h, id, req)
	if res.Exited {
		t.Fatalf("denied: %s", res.Body)
	}
	up := h.srv.UpstreamHeaders(res, req)
	claims, err := upstream.Verify(jwksRes.Body, up.Get("X-Upstream-Jwt"), "https://gw.example", "orders-backend", time.Now())
	if err != nil {
		t.Fatalf("upstream JWT does not verify against the served JWKS: %v", err)
	}
	if claims["sub"] != "orders-service" || claims["scope"] != "profile email orders:read orders:write" {
		t.Fatalf("claims %v", claims)
	}
	if len(res.Calls) != 3 {
		t.Fatalf("allow path with upstream JWT made %d PDK calls (%v), want 3", len(res.Calls), res.Calls)
	}
	// A spoofed upstream JWT from the client is replaced.
	req.Headers["X-Upstream-Jwt"] = []string{"forged"}
	res = access(t, h, id, req)
	if got := h.srv.UpstreamHeaders(res, req).Values("X-Upstream-Jwt"); len(got) != 1 || got[0] == "forged" {
		t.Fatalf("spoofed upstream JWT kept: %v", got)
	}
}

func TestInvalidConfigFailsClosed(t *testing.T) {
	h := start(t)
	for name, edit := range map[string]func(map[string]any){
		"no audience": func(c map[string]any) { delete(c, "audiences") },
		"HS256":       func(c map[string]any) { c["algorithms"] = []string{"HS256"} },
		"bad match":   func(c map[string]any) { c["scopes_match"] = "most" },
		"bad header":  func(c map[string]any) { c["upstream_headers"] = map[string]any{"client_id_header": "Bad Header"} },
		"jwt w/o key": func(c map[string]any) {
			c["upstream_jwt"] = map[string]any{"enabled": true, "issuer": "a", "audience": "b"}
		},
		"empty issuer": func(c map[string]any) { c["issuers"] = []map[string]any{{"issuer": ""}} },
	} {
		t.Run(name, func(t *testing.T) {
			id := h.instance(t, edit)
			for i := 0; i < 2; i++ {
				res := access(t, h, id, kongsim.Request{Headers: bearer(h.token(t, "orders-service"))})
				if !res.Exited || res.Status != 500 {
					t.Fatalf("request %d: status %d exited %v", i, res.Status, res.Exited)
				}
				// Kong's own log gets the error once, naming the problem.
				switch logs := strings.Join(res.Logs, "\n"); {
				case i == 0 && (len(res.Logs) != 1 || !strings.HasPrefix(logs, "[err] keycloak-jwt: invalid configuration")):
					t.Errorf("first request: Kong log %q", logs)
				case i == 1 && len(res.Logs) != 0:
					t.Errorf("second request: Kong log %q, want nothing (logged once)", logs)
				}
				if strings.Contains(string(res.Body), "audience") || strings.Contains(string(res.Body), "HS256") {
					t.Fatalf("500 body reveals the config: %s", res.Body)
				}
			}
		})
	}
}

// The log level comes from -log-level in the start command, or from
// KEYCLOAK_JWT_LOG_LEVEL where the environment reaches the plugin (kongsim,
// like Kong's nginx, passes only what is named); the default is info.
func TestLogLevel(t *testing.T) {
	for _, tc := range []struct {
		name  string
		opt   kongsim.Option
		debug bool
	}{
		{"default", nil, false},
		{"flag", kongsim.WithArgs("-log-level", "debug"), true},
		{"environment", kongsim.WithEnv("KEYCLOAK_JWT_LOG_LEVEL=debug"), true},
		{"flag over environment", kongsim.WithArgs("-log-level", "warn"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var opts []kongsim.Option
			if tc.opt != nil {
				opts = append(opts, tc.opt)
			}
			if tc.name == "flag over environment" {
				opts = append(opts, kongsim.WithEnv("KEYCLOAK_JWT_LOG_LEVEL=debug"))
			}
			h := start(t, opts...)
			id := h.instance(t, nil)
			if res := access(t, h, id, kongsim.Request{Headers: bearer(h.token(t, "orders-service"))}); res.Exited {
				t.Fatalf("denied: %s", res.Body)
			}
			// An allowed decision is logged at debug; stderr arrives asynchronously.
			seen := func() bool { return strings.Contains(h.srv.Output(), `"msg":"token allowed"`) }
			if tc.debug {
				for deadline := time.Now().Add(5 * time.Second); !seen() && time.Now().Before(deadline); {
					time.Sleep(10 * time.Millisecond)
				}
				if !seen() {
					t.Fatalf("no debug line; output:\n%s", h.srv.Output())
				}
			} else {
				time.Sleep(200 * time.Millisecond)
				if seen() {
					t.Fatalf("debug line logged at the default level; output:\n%s", h.srv.Output())
				}
			}
		})
	}
}

func TestInstancesShareOneRealmFetch(t *testing.T) {
	h := start(t, kongsim.WithArgs("-log-level", "debug"))
	a := h.instance(t, func(c map[string]any) { c["scopes_required"] = []string{"orders:read"} })
	b := h.instance(t, func(c map[string]any) { c["scopes_required"] = []string{"orders:write"} })
	tok := h.token(t, "orders-service")
	for i := 0; i < 3; i++ {
		for _, id := range []int{a, b} {
			if res := access(t, h, id, kongsim.Request{Headers: bearer(tok)}); res.Exited {
				t.Fatalf("instance %d denied: %s", id, res.Body)
			}
		}
	}
	if d, j := h.idp.Fetches(); d != 1 || j != 1 {
		t.Fatalf("two instances for one realm made %d discovery and %d JWKS fetches, want 1 and 1", d, j)
	}
	// They share the verified-token cache too: the token was verified once,
	// on instance a's first request; every later decision was a cache hit.
	// The plugin's stderr reaches the harness asynchronously: wait for the
	// six decision lines before counting.
	var verified, cached int
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		verified, cached = 0, 0
		for _, line := range strings.Split(h.srv.Output(), "\n") {
			if strings.Contains(line, `"msg":"token allowed"`) {
				if strings.Contains(line, `"cached":true`) {
					cached++
				} else {
					verified++
				}
			}
		}
		if verified+cached >= 6 || time.Now().After(deadline) {
			break
		}
	}
	if verified != 1 || cached != 5 {
		t.Fatalf("%d verifications and %d cache hits over 6 requests on two instances, want 1 and 5:\n%s", verified, cached, h.srv.Output())
	}
}

func TestTokenSources(t *testing.T) {
	h := start(t)
	id := h.instance(t, func(c map[string]any) {
		c["uri_param_names"] = []string{"jwt"}
		c["cookie_names"] = []string{"kc_token"}
		c["header_names"] = []string{"X-Api-Token"}
	})
	tok := h.token(t, "orders-service")
	cases := []struct {
		name   string
		req    kongsim.Request
		status int
	}{
		{"query parameter", kongsim.Request{RawQuery: "a=1&jwt=" + tok}, 0},
		{"cookie", kongsim.Request{Headers: map[string][]string{"Cookie": {"x=1; kc_token=" + tok}}}, 0},
		{"custom header", kongsim.Request{Headers: map[string][]string{"X-Api-Token": {"Bearer " + tok}}}, 0},
		{"Authorization is not a configured source", kongsim.Request{Headers: bearer(tok)}, 401},
		{"two sources", kongsim.Request{RawQuery: "jwt=" + tok, Headers: map[string][]string{"X-Api-Token": {"Bearer " + tok}}}, 400},
		{"two query tokens", kongsim.Request{RawQuery: "jwt=" + tok + "&jwt=forged"}, 400},
		// get_query(100) would have stopped before the second token.
		{"second query token after 150 arguments", kongsim.Request{RawQuery: "jwt=" + tok + strings.Repeat("&p=x", 150) + "&jwt=forged"}, 400},
		{"malformed query", kongsim.Request{RawQuery: "jwt=" + tok + "&x=%zz"}, 400},
		{"semicolon in query", kongsim.Request{RawQuery: "jwt=" + tok + ";jwt=forged"}, 400},
		// Names an upstream may read as jwt (PHP, ASP.NET): a second token
		// under them would pass unchecked.
		{"token parameter in capitals", kongsim.Request{RawQuery: "jwt=" + tok + "&JWT=forged"}, 400},
		{"token parameter as a PHP array", kongsim.Request{RawQuery: "jwt=" + tok + "&jwt%5B%5D=forged"}, 400},
		{"token parameter cut by NUL", kongsim.Request{RawQuery: "jwt%00x=forged", Headers: map[string][]string{"X-Api-Token": {"Bearer " + tok}}}, 400},
		{"unrelated parameters pass", kongsim.Request{RawQuery: "jwt=" + tok + "&jwtx=1&page=2"}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := access(t, h, id, tc.req)
			if tc.status == 0 && res.Exited {
				t.Fatalf("denied %d %s", res.Status, res.Body)
			}
			if tc.status != 0 && (!res.Exited || res.Status != tc.status) {
				t.Fatalf("status %d, want %d", res.Status, tc.status)
			}
		})
	}
}
