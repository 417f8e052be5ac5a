package sidecar

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keycloak-jwt/keycloak-jwt/internal/testidp"
	"github.com/keycloak-jwt/keycloak-jwt/internal/testkeys"
	"github.com/keycloak-jwt/keycloak-jwt/upstream"
)

// TestProxyDecisions runs every status through the reverse proxy over real
// sockets: route rules, longest prefix, methods, and the engine's denials.
func TestProxyDecisions(t *testing.T) {
	idp := sharedIdP(t)
	h := start(t, harnessOpt{})
	orders := token(t, idp, "orders-service")
	reports := token(t, idp, "reports-job")
	admin := token(t, idp, "ops-admin")
	otherAud := token(t, idp, "other-api-client")
	expired := token(t, idp, "orders-service", testidp.WithTTL(-5*time.Minute))

	tests := []struct {
		name       string
		method     string
		path       string
		bearer     string
		header     http.Header
		status     int
		challenge  string // substring of WWW-Authenticate; "-" means no header
		reason     string // substring of the message
		reachesApp bool
	}{
		{"read allowed", "GET", "/orders", orders, nil, 200, "", "", true},
		{"below the prefix", "GET", "/orders/42", reports, nil, 200, "", "", true},
		{"HEAD follows GET", "HEAD", "/orders", reports, nil, 200, "", "", true},
		{"write allowed", "POST", "/orders", orders, nil, 200, "", "", true},
		{"write needs orders:write", "DELETE", "/orders/42", reports, nil, 403,
			`error="insufficient_scope", error_description="The access token lacks a required scope", scope="orders:write"`, "", false},
		{"no token", "GET", "/orders", "", nil, 401, `Bearer realm="test-api"`, "Unauthorized", false},
		{"malformed header", "GET", "/orders", "", http.Header{"Authorization": {"Bearer a b"}}, 400, `error="invalid_request"`, "", false},
		{"two tokens", "GET", "/orders", "", http.Header{"Authorization": {"Bearer " + orders, "Bearer " + reports}}, 400, `error="invalid_request"`, "more than one", false},
		{"basic is no bearer", "GET", "/orders", "", http.Header{"Authorization": {"Basic b3JkZXJzOnNlY3JldA=="}}, 401, "Bearer", "", false},
		{"garbage token", "GET", "/orders", "not.a.jwt", nil, 401, `error="invalid_token"`, "", false},
		{"expired", "GET", "/orders", expired, nil, 401, `error="invalid_token"`, "expired", false},
		{"wrong audience", "GET", "/orders", otherAud, nil, 401, `error="invalid_token"`, "not meant for this API", false},
		{"longest prefix: allow-list", "GET", "/orders/reports/7", orders, nil, 401, `error="invalid_token"`, "client is not allowed", false},
		{"longest prefix: allow-list ok", "GET", "/orders/reports/7", reports, nil, 200, "", "", true},
		{"longest prefix: no fall-through to /orders", "POST", "/orders/reports", orders, nil, 403, "-", "No route", false},
		{"role required", "GET", "/admin/users", orders, nil, 403, `error="insufficient_scope"`, "role", false},
		{"role present", "PUT", "/admin/users", admin, nil, 200, "", "", true},
		{"method without rule", "PATCH", "/orders", orders, nil, 403, "-", "No route", false},
		{"path without rule", "GET", "/billing", orders, nil, 403, "-", "No route", false},
		{"segment boundary", "GET", "/ordersX", orders, nil, 403, "-", "No route", false},
		{"public route", "GET", "/healthz", "", nil, 200, "", "", true},
		{"public route ignores tokens", "GET", "/healthz/live", "garbage", nil, 200, "", "", true},
		{"dot segments refused", "GET", "/healthz/../orders", "", nil, 400, "-", "canonical", false},
		{"encoded dot segments refused", "GET", "/healthz/%2e%2e/admin", "", nil, 400, "-", "canonical", false},
		{"encoded slash dot segments refused", "GET", "/healthz%2F..%2Fadmin", "", nil, 400, "-", "canonical", false},
		{"empty segment refused", "GET", "//orders", orders, nil, 400, "-", "canonical", false},
		{"backslash refused", "GET", "/healthz%5C..%5Cadmin", "", nil, 400, "-", "canonical", false},
		// Tomcat, Jetty and Spring serve /admin for these.
		{"path parameter dot segment refused", "GET", "/healthz/..;/admin", "", nil, 400, "-", "canonical", false},
		{"encoded path parameter refused", "GET", "/healthz/%2e%2e%3Bx/admin", "", nil, 400, "-", "canonical", false},
		{"path parameter on a prefix refused", "GET", "/admin;x", admin, nil, 400, "-", "canonical", false},
		// Upstreams disagree on "delete" (Django runs it as DELETE, Go and
		// Spring as another method): refused, whatever the rules say.
		{"lower-case method refused", "delete", "/orders/7", orders, nil, 400, "-", "upper case", false},
		{"mixed-case method refused", "Get", "/orders", orders, nil, 400, "-", "upper case", false},
		{"lower-case method on a public route refused", "get", "/healthz", "", nil, 400, "-", "upper case", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := h.up.Hits()
			r := do(t, tc.method, h.url+tc.path, tc.bearer, tc.header, nil)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d (body %s)", r.status, tc.status, r.body)
			}
			www := r.header.Get("WWW-Authenticate")
			switch {
			case tc.challenge == "-" && www != "":
				t.Errorf("WWW-Authenticate %q, want none", www)
			case tc.challenge != "-" && !strings.Contains(www, tc.challenge):
				t.Errorf("WWW-Authenticate %q, want it to contain %q", www, tc.challenge)
			}
			if tc.status >= 400 {
				if ct := r.header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
					t.Errorf("Content-Type %q", ct)
				}
				if msg := r.message(t); !strings.Contains(msg, tc.reason) {
					t.Errorf("message %q, want it to contain %q", msg, tc.reason)
				}
			}
			if got := h.up.Hits() > before; got != tc.reachesApp {
				t.Errorf("reached the upstream: %v, want %v", got, tc.reachesApp)
			}
			if r.header.Get(RequestIDHeader) == "" {
				t.Error("no X-Request-Id on the response")
			}
		})
	}
}

// TestProxyHeaders checks what reaches the upstream: identity headers from
// the decision, client-supplied copies removed on every request (allowed and
// public), forwarded headers set by the sidecar, hop-by-hop headers dropped,
// request id passed on.
func TestProxyHeaders(t *testing.T) {
	idp := sharedIdP(t)
	key := testkeys.WriteEC(t)
	h := start(t, harnessOpt{env: map[string]string{"JWT": "true", "JWT_KEY": key}})
	spoofed := http.Header{
		"X-Client-Id":       {"root"},
		"X-Client-Subject":  {"root"},
		"X-Client-Scopes":   {"orders:write admin"},
		"X-Client-Roles":    {"admin"},
		"X-Client-Host":     {"10.0.0.1"},
		"X-Upstream-Jwt":    {"forged"},
		"X-Forwarded-For":   {"6.6.6.6"},
		"X-Forwarded-Host":  {"evil.example"},
		"X-Forwarded-Proto": {"https"},
		"Forwarded":         {"for=6.6.6.6"},
		"Connection":        {"X-Hop"},
		"X-Hop":             {"must not pass"},
		"X-Request-Id":      {"req-123.abc"},
		"X-Custom":          {"kept"},
		// Underscore spellings, read as the real headers by CGI, WSGI and
		// Rack upstreams.
		"X_Client_Id":     {"root"},
		"x_upstream_jwt":  {"forged"},
		"X_Forwarded_For": {"6.6.6.6"},
		"X_Request_Id":    {"forged"},
		"X_Custom":        {"kept"},
	}
	// lookalikes asserts that no underscore spelling of an identity header
	// reached the upstream, while other underscore headers did.
	lookalikes := func(t *testing.T, got http.Header) {
		t.Helper()
		for _, k := range []string{"X_Client_Id", "x_upstream_jwt", "X_Forwarded_For", "X_Request_Id"} {
			if v := got.Values(k); len(v) > 0 {
				t.Errorf("upstream saw %s %q", k, v)
			}
		}
		if v := got.Get("X_Custom"); v != "kept" {
			t.Errorf("upstream saw X_Custom %q, want kept", v)
		}
	}
	t.Run("allowed", func(t *testing.T) {
		r := do(t, "GET", h.url+"/orders?x=1", token(t, idp, "orders-service"), spoofed, nil)
		if r.status != 200 {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		got := r.echo(t).Headers
		want := map[string]string{
			"X-Client-Id":       "orders-service",
			"X-Client-Scopes":   "profile email orders:read orders:write",
			"X-Client-Host":     "127.0.0.1",
			"X-Forwarded-For":   "127.0.0.1",
			"X-Forwarded-Proto": "http",
			"X-Forwarded-Host":  strings.TrimPrefix(h.url, "http://"),
			"X-Request-Id":      "req-123.abc",
			"X-Custom":          "kept",
		}
		for k, v := range want {
			if vals := got.Values(k); len(vals) != 1 || vals[0] != v {
				t.Errorf("upstream saw %s = %q, want [%q]", k, vals, v)
			}
		}
		if !strings.Contains(got.Get("X-Client-Roles"), "reader") || strings.Contains(got.Get("X-Client-Roles"), "admin") {
			t.Errorf("X-Client-Roles %q", got.Get("X-Client-Roles"))
		}
		if sub := got.Get("X-Client-Subject"); sub == "" || sub == "root" {
			t.Errorf("X-Client-Subject %q", sub)
		}
		for _, k := range []string{"X-Hop", "Forwarded"} {
			if v := got.Values(k); len(v) > 0 {
				t.Errorf("upstream saw %s %q", k, v)
			}
		}
		if jwt := got.Values("X-Upstream-Jwt"); len(jwt) != 1 || jwt[0] == "forged" {
			t.Errorf("X-Upstream-Jwt %q", jwt)
		}
		if got.Get("Authorization") == "" {
			t.Error("Authorization was removed although strip_authorization is off")
		}
		lookalikes(t, got)
		if r.header.Get(RequestIDHeader) != "req-123.abc" {
			t.Errorf("response X-Request-Id %q", r.header.Get(RequestIDHeader))
		}
	})
	t.Run("public", func(t *testing.T) {
		r := do(t, "GET", h.url+"/healthz", "", spoofed, nil)
		if r.status != 200 {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		got := r.echo(t).Headers
		for _, k := range []string{"X-Client-Id", "X-Client-Subject", "X-Client-Scopes", "X-Client-Roles", "X-Client-Host", "X-Upstream-Jwt"} {
			if v := got.Values(k); len(v) > 0 {
				t.Errorf("public route: upstream saw spoofed %s %q", k, v)
			}
		}
		lookalikes(t, got)
	})
	t.Run("insane request id replaced", func(t *testing.T) {
		r := do(t, "GET", h.url+"/healthz", "", http.Header{"X-Request-Id": {"bad id\twith spaces"}}, nil)
		id := r.header.Get(RequestIDHeader)
		if id == "" || strings.Contains(id, " ") || r.echo(t).Headers.Get("X-Request-Id") != id {
			t.Errorf("request id %q, upstream %q", id, r.echo(t).Headers.Get("X-Request-Id"))
		}
	})
}

func TestProxyStripAuthorization(t *testing.T) {
	h := start(t, harnessOpt{env: map[string]string{"STRIP": "true"}})
	r := do(t, "GET", h.url+"/orders", token(t, sharedIdP(t), "orders-service"), nil, nil)
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if v := r.echo(t).Headers.Values("Authorization"); len(v) > 0 {
		t.Errorf("upstream saw Authorization %q", v)
	}
	// Public routes are stripped too.
	r = do(t, "GET", h.url+"/healthz", "whatever", nil, nil)
	if v := r.echo(t).Headers.Values("Authorization"); len(v) > 0 {
		t.Errorf("public route: upstream saw Authorization %q", v)
	}
}

// TestUpstreamJWT verifies the upstream JWT with the JWKS the admin listener
// serves, at both paths.
func TestUpstreamJWT(t *testing.T) {
	h := start(t, harnessOpt{env: map[string]string{"JWT": "true", "JWT_KEY": testkeys.WriteEC(t)}})
	r := do(t, "GET", h.url+"/orders", token(t, sharedIdP(t), "reports-job"), nil, nil)
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	jwt := r.echo(t).Headers.Get(upstream.DefaultJWTHeader)
	for _, path := range []string{JWKSPath, upstream.DefaultJWKSPath} {
		set := get(t, h.admin+path)
		if set.status != 200 || set.header.Get("Content-Type") != "application/jwk-set+json" {
			t.Fatalf("%s: status %d, type %q", path, set.status, set.header.Get("Content-Type"))
		}
		claims, err := upstream.Verify(set.body, jwt, "test-sidecar", "orders-api", time.Now())
		if err != nil {
			t.Fatalf("Verify with %s: %v", path, err)
		}
		if claims["sub"] != "reports-job" || claims["client_id"] != "reports-job" {
			t.Errorf("claims %v", claims)
		}
	}
	if _, err := upstream.Verify(get(t, h.admin+JWKSPath).body, jwt, "test-sidecar", "billing-api", time.Now()); err == nil {
		t.Error("the upstream JWT verified for another audience")
	}
}

func TestNoJWKSWithoutSigner(t *testing.T) {
	h := start(t, harnessOpt{})
	if r := get(t, h.admin+JWKSPath); r.status != http.StatusNotFound {
		t.Errorf("JWKS without a signer: status %d", r.status)
	}
}

// TestPreserveHostAndBasePath: the upstream URL's path is prepended, the
// Host is the upstream's unless preserve_host.
func TestPreserveHostAndBasePath(t *testing.T) {
	for _, preserve := range []bool{false, true} {
		yaml := strings.Replace(baseYAML, `url: "${UPSTREAM}"`, `url: "${UPSTREAM}/base"`+"\n  preserve_host: "+map[bool]string{false: "false", true: "true"}[preserve], 1)
		h := start(t, harnessOpt{yaml: yaml})
		r := do(t, "GET", h.url+"/healthz/a%2Fb", "", nil, nil)
		e := r.echo(t)
		if e.Path != "/base/healthz/a/b" || e.RawPath != "/base/healthz/a%2Fb" {
			t.Errorf("upstream path %q raw %q", e.Path, e.RawPath)
		}
		wantHost := strings.TrimPrefix(h.up.URL, "http://")
		if preserve {
			wantHost = strings.TrimPrefix(h.url, "http://")
		}
		if e.Host != wantHost {
			t.Errorf("preserve_host=%v: upstream Host %q, want %q", preserve, e.Host, wantHost)
		}
	}
}

func TestTrustForwardedHeaders(t *testing.T) {
	yaml := strings.Replace(baseYAML, "  timeout_seconds:", "  trust_forwarded_headers: true\n  timeout_seconds:", 1)
	h := start(t, harnessOpt{yaml: yaml})
	r := do(t, "GET", h.url+"/healthz", "", http.Header{
		"X-Forwarded-For": {"203.0.113.9"}, "X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"api.example.com"},
	}, nil)
	got := r.echo(t).Headers
	if v := got.Get("X-Forwarded-For"); v != "203.0.113.9, 127.0.0.1" {
		t.Errorf("X-Forwarded-For %q", v)
	}
	if got.Get("X-Forwarded-Proto") != "https" || got.Get("X-Forwarded-Host") != "api.example.com" {
		t.Errorf("forwarded proto %q host %q", got.Get("X-Forwarded-Proto"), got.Get("X-Forwarded-Host"))
	}
}
