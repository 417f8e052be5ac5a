package authz

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/keycloak-jwt/keycloak-jwt/internal/testidp"
	"github.com/keycloak-jwt/keycloak-jwt/internal/testkeys"
	"github.com/keycloak-jwt/keycloak-jwt/jwks"
	"github.com/keycloak-jwt/keycloak-jwt/policy"
	"github.com/keycloak-jwt/keycloak-jwt/upstream"
)

var clients = []testidp.Client{
	{ID: "orders-service", Secret: "s3cret", Scopes: []string{"orders:read", "orders:write"},
		RealmRoles: []string{"orders-admin"}, Audience: []string{"orders-api"}},
	{ID: "reports-job", Secret: "s3cret", Scopes: []string{"orders:read"}, Audience: []string{"orders-api"}},
}

type env struct {
	idp  *testidp.IdP
	keys *jwks.Cache
}

func newEnv(t testing.TB) *env {
	t.Helper()
	idp, err := testidp.New(testidp.Options{Clients: clients})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(idp.Close)
	return &env{idp: idp, keys: jwks.NewCache(jwks.Options{})}
}

func (e *env) token(t testing.TB, client string) string {
	t.Helper()
	tok, err := e.idp.Token(client)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// routes: GET needs orders:read, POST /orders orders:write, DELETE
// /orders the realm role orders-admin, /public is public, PUT /orders has
// no rule.
var testRoutes = []Route{
	{Prefix: "/", Requirements: policy.Requirements{ScopesRequired: []string{"orders:read"}}},
	{Prefix: "/orders", Methods: []string{"GET"}, Requirements: policy.Requirements{ScopesRequired: []string{"orders:read"}}},
	{Prefix: "/orders", Methods: []string{"POST"}, Requirements: policy.Requirements{ScopesRequired: []string{"orders:write"}}},
	{Prefix: "/orders", Methods: []string{"DELETE"}, Requirements: policy.Requirements{RealmRolesRequired: []string{"orders-admin"}}},
	{Prefix: "/public", Public: true},
}

func (e *env) gate(t testing.TB, edit func(*Spec), o Options) *Gate {
	t.Helper()
	s := Spec{
		Policy: policy.Config{Requirements: policy.Requirements{
			Issuers: []policy.Issuer{{Issuer: e.idp.Issuer()}}, Audiences: []string{"orders-api"}}},
		Routes: testRoutes,
	}
	if edit != nil {
		edit(&s)
	}
	o.Deps.Keys = e.keys
	g, err := Compile(s, o)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return g
}

func req(method, path string, h map[string][]string) *Request {
	if h == nil {
		h = map[string][]string{}
	}
	return &Request{Method: method, Path: path, Header: h}
}

func bearer(tok string) []string { return []string{"Bearer " + tok} }

// TestJudge is the table of the layer's rules, with real tokens.
func TestJudge(t *testing.T) {
	e := newEnv(t)
	g := e.gate(t, func(s *Spec) {
		s.Config.CookieNames = []string{"access_token"}
		s.Config.URIParamNames = []string{"access_token"}
	}, Options{})
	orders, reports := e.token(t, "orders-service"), e.token(t, "reports-job")
	cases := []struct {
		name   string
		r      *Request
		status int
		reason string
	}{
		{"allowed", req("GET", "/orders", map[string][]string{"Authorization": bearer(reports)}), 200, policy.ReasonOK},
		{"public", req("GET", "/public/x", nil), 200, ReasonPublic},
		{"no token", req("GET", "/orders", nil), 401, policy.ReasonNoToken},
		{"write needs the write scope", req("POST", "/orders", map[string][]string{"Authorization": bearer(reports)}), 403, policy.ReasonScope},
		{"no rule for PUT /orders", req("PUT", "/orders", map[string][]string{"Authorization": bearer(orders)}), 403, ReasonNoRoute},
		{"lower-case method", req("get", "/orders", map[string][]string{"Authorization": bearer(orders)}), 400, ReasonBadMethod},
		{"dot segment", req("GET", "/public/../orders", nil), 400, ReasonBadPath},
		{"path parameter", req("GET", "/public/..;/orders", nil), 400, ReasonBadPath},
		// Hole 4: Authorization is a single-value field.
		{"two Authorization lines", req("GET", "/orders", map[string][]string{"Authorization": {"Bearer\tforged", "Bearer " + reports}}), 400, policy.ReasonMultipleTokens},
		{"Bearer and a tab", req("GET", "/orders", map[string][]string{"Authorization": {"Bearer\t" + reports}}), 400, policy.ReasonMalformedHeader},
		{"Bearer and two spaces", req("GET", "/orders", map[string][]string{"Authorization": {"Bearer  " + reports}}), 400, policy.ReasonMalformedHeader},
		{"Bearer glued to the token", req("GET", "/orders", map[string][]string{"Authorization": {"Bearer" + reports}}), 400, policy.ReasonMalformedHeader},
		{"bearer in lower case", req("GET", "/orders", map[string][]string{"Authorization": {"bearer " + reports}}), 200, policy.ReasonOK},
		{"Basic is no token", req("GET", "/orders", map[string][]string{"Authorization": {"Basic b3JkZXJzOnM="}}), 401, policy.ReasonNoToken},
		// Hole 2: cookies spelled like the token cookie.
		{"token cookie", req("GET", "/orders", map[string][]string{"Cookie": {"a=1; access_token=" + reports}}), 200, policy.ReasonOK},
		{"dotted look-alike cookie", req("GET", "/orders", map[string][]string{"Cookie": {"access.token=FORGED; access_token=" + reports}}), 400, ReasonAmbiguous},
		{"spaced look-alike cookie", req("GET", "/orders", map[string][]string{"Cookie": {"access token=FORGED; access_token=" + reports}}), 400, ReasonAmbiguous},
		{"array look-alike cookie", req("GET", "/orders", map[string][]string{"Cookie": {"access_token[]=FORGED; access_token=" + reports}}), 400, ReasonAmbiguous},
		{"upper-case look-alike cookie", req("GET", "/orders", map[string][]string{"Cookie": {"ACCESS_TOKEN=FORGED; access_token=" + reports}}), 400, ReasonAmbiguous},
		{"encoded look-alike cookie", req("GET", "/orders", map[string][]string{"Cookie": {"access%5Ftoken=FORGED; access_token=" + reports}}), 400, ReasonAmbiguous},
		{"comma-separated look-alike cookie", req("GET", "/orders", map[string][]string{"Cookie": {"x=1, access.token=FORGED; access_token=" + reports}}), 400, ReasonAmbiguous},
		{"two token cookies", req("GET", "/orders", map[string][]string{"Cookie": {"access_token=" + reports, "access_token=" + orders}}), 400, policy.ReasonMultipleTokens},
		{"cookie and header", req("GET", "/orders", map[string][]string{"Cookie": {"access_token=" + reports}, "Authorization": bearer(orders)}), 400, policy.ReasonMultipleTokens},
		// Query parameters, as before, now for every adapter.
		{"token parameter", &Request{Method: "GET", Path: "/orders", RawQuery: "access_token=" + reports, Header: map[string][]string{}}, 200, policy.ReasonOK},
		{"look-alike parameter", &Request{Method: "GET", Path: "/orders", RawQuery: "access.token=x&access_token=" + reports, Header: map[string][]string{}}, 400, ReasonAmbiguous},
		{"unparsable query", &Request{Method: "GET", Path: "/orders", RawQuery: "access_token=" + reports + ";x", Header: map[string][]string{}}, 400, ReasonMalformedQuery},
		// Hole 5: method overrides, refused by default where methods decide.
		{"method override header", req("POST", "/orders", map[string][]string{"Authorization": bearer(orders), "X-Http-Method-Override": {"DELETE"}}), 400, ReasonMethodOverride},
		{"X-HTTP-Method", req("POST", "/orders", map[string][]string{"Authorization": bearer(orders), "X-Http-Method": {"DELETE"}}), 400, ReasonMethodOverride},
		{"X_Method_Override", req("POST", "/orders", map[string][]string{"Authorization": bearer(orders), "X_method_override": {"DELETE"}}), 400, ReasonMethodOverride},
		{"_method parameter", &Request{Method: "POST", Path: "/orders", RawQuery: "_method=DELETE", Header: map[string][]string{"Authorization": bearer(orders)}}, 400, ReasonMethodOverride},
		{".method parameter", &Request{Method: "POST", Path: "/orders", RawQuery: ".method=DELETE", Header: map[string][]string{"Authorization": bearer(orders)}}, 400, ReasonMethodOverride},
		{"truncated headers", &Request{Method: "GET", Path: "/orders", Header: map[string][]string{"Authorization": bearer(orders)}, HeadersTruncated: true}, 400, ReasonTooManyHeaders},
		// Forward auth cannot remove a forged identity header: refused.
		{"forged header, cannot strip", &Request{Method: "GET", Path: "/orders", Header: map[string][]string{"Authorization": bearer(orders), "X.client.id": {"ops-admin"}}, CannotStrip: true}, 400, ReasonForgedHeader},
		{"forged header on a public route, cannot strip", &Request{Method: "GET", Path: "/public", Header: map[string][]string{"X-Client-Id": {"ops-admin"}}, CannotStrip: true}, 400, ReasonForgedHeader},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := g.Judge(context.Background(), tc.r)
			if res.Decision.Status != tc.status || res.Decision.Reason != tc.reason {
				t.Fatalf("got %d %s (%s), want %d %s", res.Decision.Status, res.Decision.Reason, res.Decision.Detail, tc.status, tc.reason)
			}
			if res.Allow != (tc.status == 200) {
				t.Fatalf("allow %v with status %d", res.Allow, tc.status)
			}
			if !res.Allow && (res.Response.Status != tc.status || len(res.Response.Body) == 0) {
				t.Fatalf("response %+v", res.Response)
			}
		})
	}
}

// TestPlanLookalikes (hole 1): every spelling of an owned header that a
// CGI-style upstream reads as the owned one is deleted; the proxy's own
// headers keep their exact spelling.
func TestPlanLookalikes(t *testing.T) {
	e := newEnv(t)
	key := testkeys.WriteEC(t)
	g := e.gate(t, func(s *Spec) {
		s.JWT = upstream.JWTConfig{Enabled: true, Issuer: "gw", Audience: "up", PrivateKeyFile: key}
	}, Options{Owned: []string{"X-Request-Id"}})
	h := map[string][]string{
		"Authorization":    bearer(e.token(t, "orders-service")),
		"X-Client-Id":      {"ops-admin"},
		"X.Client.Id":      {"ops-admin"},
		"X_client.id":      {"ops-admin"},
		"X.Client.Roles":   {"orders-admin"},
		"X.Upstream.Jwt":   {"forged"},
		"X~Client~Subject": {"x"},
		"X.Forwarded.For":  {"10.0.0.1"},
		"X-Forwarded-For":  {"192.0.2.1"},
		"X_request_id":     {"r"},
		"X-Clientid":       {"not a look-alike"},
		"Accept":           {"*/*"},
	}
	res := g.Judge(context.Background(), req("GET", "/orders", h))
	if !res.Allow {
		t.Fatalf("denied: %+v", res.Decision)
	}
	want := []string{"X.Client.Id", "X_client.id", "X.Client.Roles", "X.Upstream.Jwt", "X~Client~Subject", "X.Forwarded.For", "X_request_id"}
	got := slices.Clone(res.Plan.Delete)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("delete %v, want %v", got, want)
	}
	set := map[string]string{}
	for _, kv := range res.Plan.Set {
		set[kv[0]] = kv[1]
	}
	if set["X-Client-Id"] != "orders-service" || set["X-Upstream-Jwt"] == "" || set["X-Client-Roles"] == "" {
		t.Fatalf("set %v", set)
	}
	// Denied: the deletions are there for an adapter that lets it through
	// anyway (Kong's anonymous), nothing is set.
	delete(h, "Authorization")
	res = g.Judge(context.Background(), req("GET", "/orders", h))
	if res.Allow || !res.CredentialRefused || len(res.Plan.Set) != 0 || !slices.Contains(res.Plan.Delete, "X-Client-Id") {
		t.Fatalf("denied plan %+v", res)
	}
}

// TestMethodOverrideModes: strip removes the header, allow lets it pass,
// and without method rules nothing is refused by default.
func TestMethodOverrideModes(t *testing.T) {
	e := newEnv(t)
	tok := e.token(t, "orders-service")
	h := func() map[string][]string {
		return map[string][]string{"Authorization": bearer(tok), "X-Http-Method-Override": {"DELETE"}}
	}
	strip := e.gate(t, func(s *Spec) { s.Config.MethodOverride = "strip" }, Options{})
	if res := strip.Judge(context.Background(), req("POST", "/orders", h())); !res.Allow || !slices.Contains(res.Plan.Delete, "X-Http-Method-Override") {
		t.Fatalf("strip: %+v", res)
	}
	if res := strip.Judge(context.Background(), &Request{Method: "POST", Path: "/orders", Header: h(), CannotStrip: true}); res.Allow || res.Decision.Reason != ReasonMethodOverride {
		t.Fatalf("strip without the means to strip: %+v", res.Decision)
	}
	allow := e.gate(t, func(s *Spec) { s.Config.MethodOverride = "allow" }, Options{})
	if res := allow.Judge(context.Background(), req("POST", "/orders", h())); !res.Allow || slices.Contains(res.Plan.Delete, "X-Http-Method-Override") {
		t.Fatalf("allow: %+v", res)
	}
	noMethods := e.gate(t, func(s *Spec) { s.Routes = nil }, Options{})
	if res := noMethods.Judge(context.Background(), req("POST", "/orders", h())); !res.Allow {
		t.Fatalf("no method rules: %+v", res.Decision)
	}
	elsewhere := e.gate(t, func(s *Spec) { s.Routes = nil }, Options{Routed: true, MethodRulesElsewhere: true})
	if res := elsewhere.Judge(context.Background(), &Request{Header: h()}); res.Allow || res.Decision.Reason != ReasonMethodOverride {
		t.Fatalf("method rules in the adapter (Kong): %+v", res.Decision)
	}
}

// TestTokenHeaderLookalike: with a custom token header, a spelling an
// upstream reads as it is refused (it could carry a second token).
func TestTokenHeaderLookalike(t *testing.T) {
	e := newEnv(t)
	g := e.gate(t, func(s *Spec) { s.Config.HeaderNames = []string{"X-Api-Token"} }, Options{})
	tok := e.token(t, "orders-service")
	if res := g.Judge(context.Background(), req("GET", "/orders", map[string][]string{"X-Api-Token": bearer(tok)})); !res.Allow {
		t.Fatalf("custom header: %+v", res.Decision)
	}
	res := g.Judge(context.Background(), req("GET", "/orders", map[string][]string{"X-Api-Token": bearer(tok), "X.Api.Token": {"Bearer forged"}}))
	if res.Allow || res.Decision.Reason != ReasonAmbiguous || res.Decision.Error != policy.ErrInvalidRequest {
		t.Fatalf("look-alike token header: %+v", res.Decision)
	}
	if res := g.Judge(context.Background(), req("GET", "/orders", map[string][]string{"Authorization": bearer(tok)})); res.Decision.Reason != policy.ReasonNoToken {
		t.Fatalf("Authorization is not a source here: %+v", res.Decision)
	}
}

// TestStrip: the plan for a request let through unchecked removes the
// layer's headers in every spelling, and only look-alikes of the adapter's.
func TestStrip(t *testing.T) {
	e := newEnv(t)
	g := e.gate(t, nil, Options{Owned: []string{"X-Consumer-Id"}})
	p := g.Strip(req("OPTIONS", "/orders", map[string][]string{"X-Client-Id": {"a"}, "X-Consumer-Id": {"set by key-auth"}, "X_Consumer_Id": {"forged"}}))
	got := slices.Clone(p.Delete)
	slices.Sort(got)
	if !slices.Equal(got, []string{"X-Client-Id", "X_Consumer_Id"}) {
		t.Fatalf("strip %v", got)
	}
}

// TestRender: the challenge appears only where the denial is about the
// credential; every denial has a JSON body and no-store.
func TestRender(t *testing.T) {
	e := newEnv(t)
	g := e.gate(t, func(s *Spec) { s.Config.Realm = "orders" }, Options{})
	header := func(r Response, name string) string {
		for _, kv := range r.Header {
			if kv[0] == name {
				return kv[1]
			}
		}
		return ""
	}
	for _, tc := range []struct {
		r         *Request
		challenge string
	}{
		{req("GET", "/orders", nil), `Bearer realm="orders"`},
		{req("GET", "/orders", map[string][]string{"Authorization": {"Bearer a", "Bearer b"}}), `Bearer realm="orders", error="invalid_request"`},
		{req("GET", "/orders", map[string][]string{"Authorization": {"Bearer a.b.c"}}), `Bearer realm="orders", error="invalid_token"`},
		{req("PUT", "/orders", nil), ""},
		{req("GET", "//orders", nil), ""},
	} {
		res := g.Judge(context.Background(), tc.r)
		www := header(res.Response, "WWW-Authenticate")
		if tc.challenge == "" && www != "" || !strings.HasPrefix(www, tc.challenge) {
			t.Errorf("%s %s: challenge %q, want %q", tc.r.Method, tc.r.Path, www, tc.challenge)
		}
		if header(res.Response, "Cache-Control") != "no-store" || !strings.HasPrefix(header(res.Response, "Content-Type"), "application/json") ||
			!strings.HasPrefix(string(res.Response.Body), `{"message":`) {
			t.Errorf("%s %s: response %+v", tc.r.Method, tc.r.Path, res.Response)
		}
	}
	m := Misconfigured(errors.New("secret detail"))
	if m.Status != http.StatusInternalServerError || strings.Contains(string(m.Body), "secret") || header(m, "WWW-Authenticate") != "" {
		t.Errorf("misconfigured: %+v", m)
	}
}

// TestCompileErrors: every problem is reported at once, each under the
// operator's field name, routes' own requirement errors under the route.
func TestCompileErrors(t *testing.T) {
	e := newEnv(t)
	s := Spec{
		Config: Config{HeaderNames: []string{"X-Client-Id"}, CookieNames: []string{"a=b"}, MethodOverride: "sometimes", Realm: `a"b`},
		Policy: policy.Config{Requirements: policy.Requirements{Issuers: []policy.Issuer{{Issuer: e.idp.Issuer()}}, Audiences: []string{"orders-api"}}},
		Routes: []Route{
			{Prefix: "/a", Requirements: policy.Requirements{ScopesMatch: "some"}},
			{Prefix: "/b", Public: true, Requirements: policy.Requirements{Audiences: []string{"x"}}},
			{Prefix: "c"},
		},
	}
	_, err := Compile(s, Options{Deps: policy.Deps{Keys: e.keys}, PolicyField: "policy"})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"realm:", "header_names:", "cookie_names[0]:", "method_override:",
		"routes[0].scopes_match:", "routes[1].public:", "routes[2].prefix:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q lacks %q", err, want)
		}
	}
	s.Routes, s.Config = nil, Config{}
	s.Policy.Audiences = nil
	_, err = Compile(s, Options{Deps: policy.Deps{Keys: e.keys}, PolicyField: "policy"})
	if err == nil || !strings.Contains(err.Error(), "policy.audiences:") {
		t.Errorf("shared policy error: %v", err)
	}
}

// BenchmarkJudgeWarm: the request layer's whole work for an allowed request
// whose token is in the verified-token cache, with typical headers.
func BenchmarkJudgeWarm(b *testing.B) {
	e := newEnv(b)
	g := e.gate(b, nil, Options{Owned: []string{"X-Request-Id"}})
	h := map[string][]string{
		"Authorization": bearer(e.token(b, "orders-service")), "Accept": {"application/json"},
		"User-Agent": {"orders-client/1.0"}, "Accept-Encoding": {"gzip"}, "X-Forwarded-For": {"10.0.0.1"},
	}
	r := req("GET", "/orders/7", h)
	if res := g.Judge(context.Background(), r); !res.Allow {
		b.Fatal(res.Decision.Detail)
	}
	b.ReportAllocs()
	for b.Loop() {
		if res := g.Judge(context.Background(), r); !res.Allow {
			b.Fatal(res.Decision.Detail)
		}
	}
}

// TestExplainRequest: the layer's explanation has Judge's verdict and says
// where a request failed before its token was checked.
func TestExplainRequest(t *testing.T) {
	e := newEnv(t)
	g := e.gate(t, nil, Options{})
	tok := e.token(t, "reports-job")
	for _, tc := range []struct {
		r          *Request
		lastCheck  string
		lastResult string
	}{
		{req("PUT", "/orders", map[string][]string{"Authorization": bearer(tok)}), "route", policy.StepFail},
		{req("GET", "/public", nil), "token", policy.StepPass},
		{req("GET", "/orders", map[string][]string{"Authorization": {"Bearer a", "Bearer b"}}), "token", policy.StepFail},
		{req("POST", "/orders", map[string][]string{"Authorization": bearer(tok)}), "client roles", policy.StepPass},
		{req("GET", "/orders", map[string][]string{"Authorization": bearer(tok)}), "client roles", policy.StepPass},
	} {
		ex := g.Explain(context.Background(), tc.r)
		res := g.Judge(context.Background(), tc.r)
		if ex.Allow != res.Allow || ex.Status != res.Decision.Status || ex.Reason != res.Decision.Reason {
			t.Errorf("%s %s: explain %+v, judge %+v", tc.r.Method, tc.r.Path, ex, res.Decision)
		}
		last := ex.Steps[len(ex.Steps)-1]
		if last.Check != tc.lastCheck || last.Result != tc.lastResult {
			t.Errorf("%s %s: last step %+v", tc.r.Method, tc.r.Path, last)
		}
	}
}

// TestCannotStripKeepsAdapterHeaders: where nothing can be removed (forward
// auth), the adapter sets none of its own headers upstream either, so a
// client's request id is no forgery; a copy of an identity header is.
func TestCannotStripKeepsAdapterHeaders(t *testing.T) {
	e := newEnv(t)
	g := e.gate(t, nil, Options{Owned: []string{"X-Request-Id"}})
	tok := e.token(t, "orders-service")
	r := &Request{Method: "GET", Path: "/orders", CannotStrip: true,
		Header: map[string][]string{"Authorization": bearer(tok), "X-Request-Id": {"abc"}}}
	if res := g.Judge(context.Background(), r); !res.Allow {
		t.Fatalf("request id refused: %+v", res.Decision)
	}
	r.Header["X-Client-Id"] = []string{"ops-admin"}
	if res := g.Judge(context.Background(), r); res.Allow || res.Decision.Reason != ReasonForgedHeader {
		t.Fatalf("forged identity header: %+v", res.Decision)
	}
}

// TestRenderServiceUnavailable: a 503 (the gateway could not check, e.g.
// introspection down) says when to retry, and carries no challenge.
func TestRenderServiceUnavailable(t *testing.T) {
	d := policy.Decision{Status: http.StatusServiceUnavailable, Reason: policy.ReasonIntrospection, Message: "The token could not be checked"}
	r := (*Gate)(nil).Render(&d)
	var retry, www string
	for _, kv := range r.Header {
		switch kv[0] {
		case "Retry-After":
			retry = kv[1]
		case "WWW-Authenticate":
			www = kv[1]
		}
	}
	if r.Status != 503 || retry != "5" || www != "" {
		t.Fatalf("%+v", r)
	}
}

// TestKeepAdapterHeaders: an adapter whose proxy sets its own copy of an
// adapter header (Envoy's x-request-id) keeps the exact spelling; the
// look-alikes and the layer's own headers still go.
func TestKeepAdapterHeaders(t *testing.T) {
	e := newEnv(t)
	g := e.gate(t, nil, Options{Owned: []string{"X-Request-Id"}})
	r := req("GET", "/public", map[string][]string{"X-Request-Id": {"r"}, "X_request_id": {"f"}, "X-Client-Id": {"f"}})
	r.KeepAdapterHeaders = true
	got := slices.Clone(g.Judge(context.Background(), r).Plan.Delete)
	slices.Sort(got)
	if !slices.Equal(got, []string{"X-Client-Id", "X_request_id"}) {
		t.Fatalf("delete %v", got)
	}
}
