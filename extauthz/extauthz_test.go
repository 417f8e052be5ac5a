package extauthz

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/keycloak-jwt/keycloak-jwt/authz"
	"github.com/keycloak-jwt/keycloak-jwt/internal/testidp"
	"github.com/keycloak-jwt/keycloak-jwt/jwks"
	"github.com/keycloak-jwt/keycloak-jwt/policy"
)

var clients = []testidp.Client{
	{ID: "orders-service", Secret: "s", Scopes: []string{"orders:read", "orders:write"}, Audience: []string{"orders-api"}},
	{ID: "reports-job", Secret: "s", Scopes: []string{"orders:read"}, Audience: []string{"orders-api"}},
}

// fixture is a gate behind a real gRPC server on loopback, and a client.
type fixture struct {
	idp    *testidp.IdP
	client authv3.AuthorizationClient
	mu     sync.Mutex
	checks []*Check
}

func newFixture(t *testing.T, edit func(*authz.Spec)) *fixture {
	t.Helper()
	idp, err := testidp.New(testidp.Options{Clients: clients})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(idp.Close)
	spec := authz.Spec{
		Config: authz.Config{Realm: "orders-api"},
		Policy: policy.Config{Requirements: policy.Requirements{
			Issuers: []policy.Issuer{{Issuer: idp.Issuer()}}, Audiences: []string{"orders-api"}}},
		Routes: []authz.Route{
			{Prefix: "/orders", Methods: []string{"GET"}, Requirements: policy.Requirements{ScopesRequired: []string{"orders:read"}}},
			{Prefix: "/orders", Methods: []string{"POST"}, Requirements: policy.Requirements{ScopesRequired: []string{"orders:write"}}},
			{Prefix: "/public", Public: true},
		},
	}
	if edit != nil {
		edit(&spec)
	}
	gate, err := authz.Compile(spec, authz.Options{Deps: policy.Deps{Keys: jwks.NewCache(jwks.Options{})}, Owned: []string{"X-Request-Id"}})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{idp: idp}
	srv := New(func() *authz.Gate { return gate }, Options{Observe: func(_ context.Context, c *Check) {
		f.mu.Lock()
		f.checks = append(f.checks, c)
		f.mu.Unlock()
	}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	srv.Register(g)
	go func() { _ = g.Serve(ln) }()
	t.Cleanup(g.Stop)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	f.client = authv3.NewAuthorizationClient(conn)
	return f
}

func (f *fixture) token(t *testing.T, client string) string {
	t.Helper()
	tok, err := f.idp.Token(client)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// envoyRequest is a CheckRequest as Envoy's ext_authz filter builds it by
// default: method and path (with the query) as attributes, and the headers
// lower-cased, pseudo-headers included, repeated lines joined with ",".
func envoyRequest(method, target string, h map[string]string) *authv3.CheckRequest {
	headers := map[string]string{":authority": "api.example.com", ":method": method, ":path": target,
		":scheme": "https", "x-request-id": "4f5c2a1e-rid", "user-agent": "curl/8.5.0"}
	for k, v := range h {
		headers[k] = v
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:      &authv3.AttributeContext_Peer{Address: &corev3.Address{}},
		Destination: &authv3.AttributeContext_Peer{Address: &corev3.Address{}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: "4f5c2a1e-rid", Method: method, Path: target, Host: "api.example.com", Scheme: "https",
			Protocol: "HTTP/1.1", Size: -1, Headers: headers,
		}},
	}}
}

// rawRequest is the same with encode_raw_headers: one header_map entry per
// line, raw_value only, headers empty.
func rawRequest(method, target string, lines [][2]string) *authv3.CheckRequest {
	r := envoyRequest(method, target, nil)
	hr := r.Attributes.Request.Http
	var hm corev3.HeaderMap
	for _, k := range []string{":authority", ":path", ":method", ":scheme"} {
		hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: k, RawValue: []byte(hr.Headers[k])})
	}
	for _, kv := range lines {
		hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: kv[0], RawValue: []byte(kv[1])})
	}
	hr.Headers, hr.HeaderMap = nil, &hm
	return r
}

// answer is a CheckResponse flattened for assertions.
type answer struct {
	code     codes.Code
	status   int               // denied: the HTTP status; allowed: 200
	set      map[string]string // allowed: headers to set; denied: response headers
	overwrit bool              // every header overwrites
	remove   []string
	body     string
}

func (f *fixture) check(t *testing.T, r *authv3.CheckRequest) answer {
	t.Helper()
	resp, err := f.client.Check(context.Background(), r)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	a := answer{code: codes.Code(resp.GetStatus().GetCode()), set: map[string]string{}, overwrit: true}
	var hs []*corev3.HeaderValueOption
	switch hr := resp.HttpResponse.(type) {
	case *authv3.CheckResponse_OkResponse:
		a.status, hs, a.remove = 200, hr.OkResponse.GetHeaders(), hr.OkResponse.GetHeadersToRemove()
	case *authv3.CheckResponse_DeniedResponse:
		a.status, hs, a.body = int(hr.DeniedResponse.GetStatus().GetCode()), hr.DeniedResponse.GetHeaders(), hr.DeniedResponse.GetBody()
	default:
		t.Fatalf("no http_response in %v", resp)
	}
	for _, h := range hs {
		a.set[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
		// The deprecated append field is unset (read through reflection).
		m := h.ProtoReflect()
		if m.Has(m.Descriptor().Fields().ByName("append")) || h.GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
			a.overwrit = false
		}
	}
	return a
}

func (a answer) message(t *testing.T) string {
	t.Helper()
	var m struct {
		Message string `json:"message"`
	}
	if err := json.Unmarshal([]byte(a.body), &m); err != nil {
		t.Fatalf("body %q: %v", a.body, err)
	}
	return m.Message
}

func TestCheckAllowSetsIdentityHeaders(t *testing.T) {
	f := newFixture(t, nil)
	tok := f.token(t, "orders-service")
	a := f.check(t, envoyRequest("GET", "/orders/42?expand=items", map[string]string{"authorization": "Bearer " + tok}))
	if a.code != codes.OK || a.status != 200 {
		t.Fatalf("got %+v", a)
	}
	if a.set["X-Client-Id"] != "orders-service" || a.set["X-Client-Scopes"] == "" || !a.overwrit {
		t.Fatalf("headers to set %v (overwrite %v)", a.set, a.overwrit)
	}
	if len(a.remove) != 0 {
		t.Fatalf("headers to remove %v", a.remove)
	}
	f.mu.Lock()
	c := f.checks[len(f.checks)-1]
	f.mu.Unlock()
	if c.ID != "4f5c2a1e-rid" || c.Method != "GET" || c.Path != "/orders/42" || c.Status != 200 || c.Result.Route != "GET /orders" {
		t.Fatalf("observed %+v", c)
	}
}

func TestCheckRawHeaders(t *testing.T) {
	f := newFixture(t, nil)
	tok := f.token(t, "orders-service")
	a := f.check(t, rawRequest("GET", "/orders", [][2]string{{"authorization", "Bearer " + tok}, {"x-client-id", "ops-admin"}}))
	if a.status != 200 || a.set["X-Client-Id"] != "orders-service" {
		t.Fatalf("got %+v", a)
	}
	// Two Authorization lines, as encode_raw_headers sends them: refused.
	a = f.check(t, rawRequest("GET", "/orders", [][2]string{{"authorization", "Bearer " + tok}, {"authorization", "Bearer forged"}}))
	if a.status != 400 || a.code != codes.InvalidArgument {
		t.Fatalf("two Authorization lines: %+v", a)
	}
}

func TestCheckDenials(t *testing.T) {
	f := newFixture(t, nil)
	tok := f.token(t, "reports-job") // orders:read only
	bearer := map[string]string{"authorization": "Bearer " + tok}
	for _, c := range []struct {
		name      string
		req       *authv3.CheckRequest
		status    int
		code      codes.Code
		challenge string // a substring of WWW-Authenticate; "" means none
	}{
		{"no token", envoyRequest("GET", "/orders", nil), 401, codes.Unauthenticated, `Bearer realm="orders-api"`},
		{"bad token", envoyRequest("GET", "/orders", map[string]string{"authorization": "Bearer x.y.z"}), 401, codes.Unauthenticated, `error="invalid_token"`},
		{"missing scope", envoyRequest("POST", "/orders", bearer), 403, codes.PermissionDenied, `error="insufficient_scope"`},
		{"no route", envoyRequest("GET", "/admin", bearer), 403, codes.PermissionDenied, ""},
		{"no route for the method", envoyRequest("DELETE", "/orders", bearer), 403, codes.PermissionDenied, ""},
		// Envoy joins repeated lines with ",": still two tokens.
		{"joined Authorization lines", envoyRequest("GET", "/orders", map[string]string{"authorization": "Bearer " + tok + ",Bearer forged"}), 400, codes.InvalidArgument, `error="invalid_request"`},
		{"dot segment", envoyRequest("GET", "/public/../orders", bearer), 400, codes.InvalidArgument, ""},
		{"encoded dot segment", envoyRequest("GET", "/public/%2e%2e/orders", bearer), 400, codes.InvalidArgument, ""},
		{"lower-case method", envoyRequest("get", "/orders", bearer), 400, codes.InvalidArgument, ""},
		{"method override", envoyRequest("GET", "/orders", map[string]string{"authorization": "Bearer " + tok, "x-http-method-override": "POST"}), 400, codes.InvalidArgument, ""},
		{"underscore method override", envoyRequest("GET", "/orders", map[string]string{"authorization": "Bearer " + tok, "x_http_method_override": "POST"}), 400, codes.InvalidArgument, ""},
		{"_method parameter", envoyRequest("GET", "/orders?_method=POST", bearer), 400, codes.InvalidArgument, ""},
		{"no http attributes", &authv3.CheckRequest{}, 400, codes.InvalidArgument, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := f.check(t, c.req)
			if a.status != c.status || a.code != c.code {
				t.Fatalf("status %d code %v, want %d %v: %s", a.status, a.code, c.status, c.code, a.body)
			}
			if a.message(t) == "" || a.set["Content-Type"] != "application/json; charset=utf-8" || a.set["Cache-Control"] != "no-store" {
				t.Fatalf("denial %+v", a)
			}
			www, has := a.set["WWW-Authenticate"]
			if c.challenge == "" && has && c.status == 403 {
				t.Fatalf("unexpected challenge %q", www)
			}
			if c.challenge != "" && !strings.Contains(www, c.challenge) {
				t.Fatalf("WWW-Authenticate %q, want %q in it", www, c.challenge)
			}
		})
	}
}

// TestCheckPseudoHeaders: the pseudo-headers describe the request; they
// must agree with the attributes, and never count as header lines.
func TestCheckPseudoHeaders(t *testing.T) {
	f := newFixture(t, nil)
	tok := f.token(t, "orders-service")
	r := envoyRequest("GET", "/orders", map[string]string{"authorization": "Bearer " + tok, ":path": "/admin"})
	if a := f.check(t, r); a.status != 400 || !strings.Contains(a.message(t), "does not describe") {
		t.Fatalf(":path disagreeing: %+v", a)
	}
	r = envoyRequest("POST", "/orders", map[string]string{"authorization": "Bearer " + tok, ":method": "GET"})
	if a := f.check(t, r); a.status != 400 {
		t.Fatalf(":method disagreeing: %+v", a)
	}
	// Only the pseudo-headers (an Envoy that fills no attribute): they decide.
	r = envoyRequest("GET", "/orders", map[string]string{"authorization": "Bearer " + tok})
	r.Attributes.Request.Http.Method, r.Attributes.Request.Http.Path = "", ""
	if a := f.check(t, r); a.status != 200 {
		t.Fatalf("pseudo-headers alone: %+v", a)
	}
	req, err := translate(envoyRequest("GET", "/orders?a=1", map[string]string{"x-one": "1"}).Attributes.Request.Http)
	if err != nil {
		t.Fatal(err)
	}
	for k := range req.Header {
		if strings.HasPrefix(k, ":") {
			t.Errorf("pseudo-header %s passed as a header line", k)
		}
	}
	if req.Path != "/orders" || req.RawQuery != "a=1" || req.CannotStrip {
		t.Fatalf("translated %+v", req)
	}
}

// TestCheckOriginalPath: x-envoy-original-path (a rewrite in front, or a
// client) does not decide; the path this Envoy forwards does.
func TestCheckOriginalPath(t *testing.T) {
	f := newFixture(t, nil)
	tok := f.token(t, "reports-job")
	a := f.check(t, envoyRequest("GET", "/orders/7", map[string]string{"authorization": "Bearer " + tok, "x-envoy-original-path": "/admin/7"}))
	if a.status != 200 || slices.Contains(a.remove, "x-envoy-original-path") {
		t.Fatalf("got %+v", a)
	}
	a = f.check(t, envoyRequest("GET", "/admin/7", map[string]string{"authorization": "Bearer " + tok, "x-envoy-original-path": "/orders/7"}))
	if a.status != 403 {
		t.Fatalf("a forged original path let /admin through: %+v", a)
	}
}

// TestCheckRemovesForgedHeaders: copies of the identity headers in every
// spelling go into headers_to_remove (Envoy can remove them, unlike a
// forward-auth proxy), the exact spelling is overwritten.
func TestCheckRemovesForgedHeaders(t *testing.T) {
	f := newFixture(t, nil)
	tok := f.token(t, "orders-service")
	a := f.check(t, envoyRequest("GET", "/orders", map[string]string{"authorization": "Bearer " + tok,
		"x-client-id": "ops-admin", "x_client_id": "ops-admin", "x.client.id": "ops-admin", "x-client-roles": "admin",
		"x_forwarded_for": "6.6.6.6", "x-forwarded-for": "10.0.0.1", "x_request_id": "forged"}))
	if a.status != 200 || a.set["X-Client-Id"] != "orders-service" || !a.overwrit {
		t.Fatalf("got %+v", a)
	}
	slices.Sort(a.remove)
	// x-client-id and x-client-roles are overwritten; Envoy's own
	// x-request-id stays (authz.Request.KeepAdapterHeaders), its look-alike goes.
	want := []string{"x.client.id", "x_client_id", "x_forwarded_for", "x_request_id"}
	if !slices.Equal(a.remove, want) {
		t.Fatalf("headers_to_remove %q, want %q", a.remove, want)
	}
}

func TestCheckPublicAndStrip(t *testing.T) {
	f := newFixture(t, func(s *authz.Spec) {
		s.Config.MethodOverride = authz.MethodOverrideStrip
		s.Headers.StripAuthorization = true
	})
	tok := f.token(t, "orders-service")
	a := f.check(t, envoyRequest("GET", "/public/x", map[string]string{"x_client_id": "forged"}))
	if a.status != 200 || len(a.set) != 0 || !slices.Equal(a.remove, []string{"x_client_id"}) {
		t.Fatalf("public: %+v", a)
	}
	a = f.check(t, envoyRequest("GET", "/orders", map[string]string{"authorization": "Bearer " + tok, "x-http-method-override": "DELETE"}))
	slices.Sort(a.remove)
	if a.status != 200 || !slices.Equal(a.remove, []string{"authorization", "x-http-method-override"}) {
		t.Fatalf("strip: %+v", a)
	}
}

func TestGRPCCodes(t *testing.T) {
	for s, c := range map[int]codes.Code{http.StatusBadRequest: codes.InvalidArgument, http.StatusUnauthorized: codes.Unauthenticated,
		http.StatusForbidden: codes.PermissionDenied, http.StatusInternalServerError: codes.Internal} {
		if got := grpcCode(s); got != c {
			t.Errorf("%d: %v, want %v", s, got, c)
		}
	}
}
