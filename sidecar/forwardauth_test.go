package sidecar

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keycloak-jwt/keycloak-jwt/upstream"

	"github.com/keycloak-jwt/keycloak-jwt/internal/testkeys"
)

// TestForwardAuth runs forward-auth requests shaped as nginx auth_request,
// Traefik ForwardAuth and Envoy ext_authz send them, over real sockets.
func TestForwardAuth(t *testing.T) {
	idp := sharedIdP(t)
	h := start(t, harnessOpt{yaml: authOnlyYAML, env: map[string]string{"JWT": "true", "JWT_KEY": testkeys.WriteEC(t)}})
	orders := token(t, idp, "orders-service")
	reports := token(t, idp, "reports-job")
	bearer := func(tok string) string { return "Bearer " + tok }

	tests := []struct {
		name      string
		method    string
		path      string
		header    http.Header
		status    int
		challenge string
		identity  bool
	}{
		{"traefik allow", "GET", "/auth", http.Header{"X-Forwarded-Method": {"GET"}, "X-Forwarded-Uri": {"/orders?page=2"}, "Authorization": {bearer(reports)}}, 200, "", true},
		{"traefik write denied", "GET", "/auth", http.Header{"X-Forwarded-Method": {"POST"}, "X-Forwarded-Uri": {"/orders"}, "Authorization": {bearer(reports)}}, 403, `error="insufficient_scope"`, false},
		{"traefik no token", "GET", "/auth", http.Header{"X-Forwarded-Method": {"GET"}, "X-Forwarded-Uri": {"/orders"}}, 401, `Bearer realm="test-api"`, false},
		{"traefik bad token", "GET", "/auth", http.Header{"X-Forwarded-Method": {"GET"}, "X-Forwarded-Uri": {"/orders"}, "Authorization": {"Bearer x.y.z"}}, 401, `error="invalid_token"`, false},
		{"traefik malformed header", "GET", "/auth", http.Header{"X-Forwarded-Method": {"GET"}, "X-Forwarded-Uri": {"/orders"}, "Authorization": {"Bearer"}}, 400, `error="invalid_request"`, false},
		{"traefik public", "GET", "/auth", http.Header{"X-Forwarded-Method": {"GET"}, "X-Forwarded-Uri": {"/healthz"}}, 200, "", false},
		{"traefik no route", "GET", "/auth", http.Header{"X-Forwarded-Method": {"DELETE"}, "X-Forwarded-Uri": {"/orders"}, "Authorization": {bearer(orders)}}, 403, "-", false},
		{"nginx allow", "GET", "/auth", http.Header{"X-Original-Method": {"POST"}, "X-Original-Uri": {"/orders/1"}, "Authorization": {bearer(orders)}}, 200, "", true},
		{"nginx uses the request method", "POST", "/auth", http.Header{"X-Original-Uri": {"/orders/1"}, "Authorization": {bearer(reports)}}, 403, `error="insufficient_scope"`, false},
		{"envoy with path_prefix", "POST", "/auth/orders/1", http.Header{"Authorization": {bearer(orders)}}, 200, "", true},
		{"envoy without path_prefix", "POST", "/orders/1", http.Header{"Authorization": {bearer(reports)}}, 403, `error="insufficient_scope"`, false},
		{"envoy root", "GET", "/orders", http.Header{"Authorization": {bearer(reports)}}, 200, "", true},
		// Hole 3: GET needs orders:read, POST orders:write; a POST that says
		// it is a GET is refused, not checked as a GET.
		{"envoy: method header contradicts the request", "POST", "/orders", http.Header{"X-Forwarded-Method": {"GET"}, "Authorization": {bearer(reports)}}, 400, "-", false},
		{"envoy prefix: method header contradicts the request", "POST", "/auth/orders", http.Header{"X-Original-Method": {"GET"}, "Authorization": {bearer(reports)}}, 400, "-", false},
		// The proxy forwards the original request itself: a forged identity
		// header cannot be removed, so the request is refused.
		{"forged identity header", "GET", "/auth", http.Header{"X-Forwarded-Method": {"GET"}, "X-Forwarded-Uri": {"/orders"}, "X.Client.Id": {"ops-admin"}, "Authorization": {bearer(reports)}}, 400, `error="invalid_request"`, false},
		{"agreeing sources", "GET", "/auth/orders", http.Header{"X-Forwarded-Uri": {"/orders?x"}, "X-Original-Uri": {"/%6frders?x"}, "Authorization": {bearer(reports)}}, 200, "", true},
		{"queries disagree", "GET", "/auth", http.Header{"X-Forwarded-Uri": {"/orders?access_token=x"}, "X-Original-Uri": {"/orders"}, "Authorization": {bearer(reports)}}, 400, "-", false},
		{"injected URI conflicts", "GET", "/auth", http.Header{"X-Forwarded-Uri": {"/healthz"}, "X-Original-Uri": {"/orders"}}, 400, "-", false},
		{"injected method conflicts", "GET", "/auth", http.Header{"X-Forwarded-Method": {"GET"}, "X-Original-Method": {"POST"}, "X-Original-Uri": {"/orders"}, "Authorization": {bearer(reports)}}, 400, "-", false},
		{"URI header vs path conflict", "GET", "/auth/orders", http.Header{"X-Forwarded-Uri": {"/healthz"}}, 400, "-", false},
		{"no original URI", "GET", "/auth", nil, 400, "-", false},
		{"non-canonical original URI", "GET", "/auth", http.Header{"X-Forwarded-Uri": {"/healthz/../orders"}}, 400, "-", false},
		{"absolute-form original URI", "GET", "/auth", http.Header{"X-Forwarded-Uri": {"http://evil/healthz"}}, 400, "-", false},
		{"bad original method", "GET", "/auth", http.Header{"X-Forwarded-Method": {"GET /x"}, "X-Forwarded-Uri": {"/healthz"}}, 400, "-", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, tc.method, h.url+tc.path, "", tc.header, nil)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d (body %s)", r.status, tc.status, r.body)
			}
			www := r.header.Get("WWW-Authenticate")
			switch {
			case tc.challenge == "-" && www != "":
				t.Errorf("WWW-Authenticate %q, want none", www)
			case tc.challenge != "-" && !strings.Contains(www, tc.challenge):
				t.Errorf("WWW-Authenticate %q, want %q", www, tc.challenge)
			}
			if tc.status != 200 {
				_ = r.message(t)
			} else if len(r.body) != 0 {
				t.Errorf("allowed answer has a body %q", r.body)
			}
			hasID := r.header.Get("X-Client-Id") != ""
			hasJWT := r.header.Get(upstream.DefaultJWTHeader) != ""
			if hasID != tc.identity || hasJWT != tc.identity {
				t.Errorf("identity header %v, JWT %v, want %v", hasID, hasJWT, tc.identity)
			}
		})
	}

	// The JWT handed to the proxy verifies against the admin JWKS.
	r := do(t, "GET", h.url+"/auth", "", http.Header{"X-Forwarded-Uri": {"/orders"}, "Authorization": {bearer(orders)}}, nil)
	if _, err := upstream.Verify(get(t, h.admin+JWKSPath).body, r.header.Get(upstream.DefaultJWTHeader), "test-sidecar", "orders-api", time.Now()); err != nil {
		t.Errorf("forward-auth upstream JWT: %v", err)
	}
}

// TestForwardAuthBesideProxy: with a reverse proxy, forward auth answers
// only at its path, and is off unless enabled.
func TestForwardAuthBesideProxy(t *testing.T) {
	tok := token(t, sharedIdP(t), "reports-job")
	hdr := http.Header{"X-Forwarded-Uri": {"/orders"}, "Authorization": {"Bearer " + tok}}

	off := start(t, harnessOpt{})
	if r := do(t, "GET", off.url+"/auth", "", hdr, nil); r.status != http.StatusForbidden || off.up.Hits() != 0 {
		t.Errorf("forward auth off: /auth got %d (upstream hits %d), want the no-route 403", r.status, off.up.Hits())
	}

	on := start(t, harnessOpt{env: map[string]string{"FWD": "true"}})
	r := do(t, "GET", on.url+"/auth", "", hdr, nil)
	if r.status != 200 || r.header.Get("X-Client-Id") != "reports-job" || on.up.Hits() != 0 {
		t.Errorf("forward auth on: %d %q hits %d", r.status, r.header.Get("X-Client-Id"), on.up.Hits())
	}
	if r := do(t, "GET", on.url+"/orders", tok, nil, nil); r.status != 200 || on.up.Hits() != 1 {
		t.Errorf("proxy beside forward auth: %d hits %d", r.status, on.up.Hits())
	}
}

// TestOriginalRequest covers the resolution rules without sockets.
func TestOriginalRequest(t *testing.T) {
	s := &compiled{fwdEnabled: true, fwdPath: "/auth", uriHeaders: DefaultURIHeaders, methodHeaders: DefaultMethodHeaders}
	tests := []struct {
		name, method, target string
		header               http.Header
		wantMethod, wantPath string
		wantErr              string
	}{
		// The request carries the original path (Envoy): its own method is
		// the original one, and a method header may not contradict it.
		{"envoy prefix, method header disagrees", "POST", "/auth/orders", http.Header{"X-Forwarded-Method": {"GET"}}, "", "", "carries the original path"},
		{"envoy no prefix, method header disagrees", "POST", "/orders", http.Header{"X-Original-Method": {"GET"}}, "", "", "carries the original path"},
		{"envoy, method header agrees", "POST", "/orders", http.Header{"X-Original-Method": {"POST"}}, "POST", "/orders", ""},
		{"traefik", "GET", "/auth", http.Header{"X-Forwarded-Method": {"PUT"}, "X-Forwarded-Uri": {"/a/b?c=d"}}, "PUT", "/a/b", ""},
		{"nginx", "HEAD", "/auth", http.Header{"X-Original-Uri": {"/a%20b"}}, "HEAD", "/a b", ""},
		{"envoy prefix", "DELETE", "/auth/x/y", nil, "DELETE", "/x/y", ""},
		{"envoy prefix root", "GET", "/auth/", nil, "GET", "/", ""},
		{"envoy no prefix", "GET", "/x", nil, "GET", "/x", ""},
		{"encoded slash stays a slash", "GET", "/auth", http.Header{"X-Forwarded-Uri": {"/a%2Fb"}}, "GET", "/a/b", ""},
		{"missing", "GET", "/auth", nil, "", "", "no original URI"},
		{"conflict", "GET", "/auth", http.Header{"X-Forwarded-Uri": {"/a", "/b"}}, "", "", "disagree"},
		{"method conflict", "GET", "/auth", http.Header{"X-Forwarded-Method": {"GET", "POST"}, "X-Forwarded-Uri": {"/a"}}, "", "", "disagree"},
		{"bad escape", "GET", "/auth", http.Header{"X-Forwarded-Uri": {"/a%zz"}}, "", "", "percent"},
		{"dot segment in path", "GET", "/auth/../x", nil, "", "", "dot segment"},
		{"relative", "GET", "/auth", http.Header{"X-Original-Uri": {"a/b"}}, "", "", "origin-form"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, "http://sidecar"+tc.target, nil)
			r.Header = tc.header
			if r.Header == nil {
				r.Header = http.Header{}
			}
			req, err := s.originalRequest(r)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || req.Method != tc.wantMethod || req.Path != tc.wantPath || !req.CannotStrip {
				t.Fatalf("got %+v %v, want %q %q", req, err, tc.wantMethod, tc.wantPath)
			}
		})
	}
	// The original query comes from the URI header, or from the request
	// itself when it carries the original path.
	r := httptest.NewRequest("GET", "http://sidecar/auth?x=1", nil)
	r.Header.Set("X-Forwarded-Uri", "/a/b?access_token=t&c=d#f")
	if req, err := s.originalRequest(r); err != nil || req.RawQuery != "access_token=t&c=d" {
		t.Errorf("query from the URI header: %+v %v", req, err)
	}
	r = httptest.NewRequest("GET", "http://sidecar/auth/a?q=2", nil)
	if req, err := s.originalRequest(r); err != nil || req.RawQuery != "q=2" {
		t.Errorf("query of an Envoy request: %+v %v", req, err)
	}
	// method_headers: [] means none: a method header is not read at all.
	none := &compiled{fwdEnabled: true, fwdPath: "/auth", uriHeaders: DefaultURIHeaders, methodHeaders: []string{}}
	r = httptest.NewRequest("POST", "http://sidecar/auth", nil)
	r.Header.Set("X-Forwarded-Method", "GET")
	r.Header.Set("X-Forwarded-Uri", "/orders")
	if req, err := none.originalRequest(r); err != nil || req.Method != "POST" {
		t.Errorf("method_headers []: %+v %v", req, err)
	}
}
