package extauthz

import (
	"context"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/keycloak-jwt/keycloak-jwt/authz"
	"github.com/keycloak-jwt/keycloak-jwt/jwks"
	"github.com/keycloak-jwt/keycloak-jwt/policy"
)

// FuzzCheck: whatever Envoy (or a client through it) puts in a
// CheckRequest, Check answers with a CheckResponse: allowed (there is no
// token here, so only by the public route) with headers to remove that are
// header lines of the request, never a pseudo-header, or denied with a
// 4xx/5xx and a non-OK status.
func FuzzCheck(f *testing.F) {
	f.Add("GET", "/public/x", ":path", "/public/x", "x_client_id", "forged", false)
	f.Add("GET", "/orders?_method=DELETE", "authorization", "Bearer a,Bearer b", "x-http-method-override", "PUT", true)
	f.Add("get", "/a/%2e%2e/b", ":method", "POST", "x.client.id", "1", false)
	f.Add("", "", ":path", "/public/%zz", "cookie", "a=b", true)
	gate, err := authz.Compile(authz.Spec{
		Policy: policy.Config{Requirements: policy.Requirements{
			Issuers: []policy.Issuer{{Issuer: "https://idp.example/realms/r"}}, Audiences: []string{"api"}}},
		Routes: []authz.Route{{Prefix: "/orders", Methods: []string{"GET"}}, {Prefix: "/public", Public: true}},
	}, authz.Options{Deps: policy.Deps{Keys: jwks.NewCache(jwks.Options{})}, Owned: []string{"X-Request-Id"}})
	if err != nil {
		f.Fatal(err)
	}
	var last *Check // the fuzz function runs one input at a time per process
	s := New(func() *authz.Gate { return gate }, Options{
		Observe: func(_ context.Context, c *Check) { last = c }})
	f.Fuzz(func(t *testing.T, method, path, k1, v1, k2, v2 string, raw bool) {
		hr := &authv3.AttributeContext_HttpRequest{Method: method, Path: path}
		if raw {
			hr.HeaderMap = &corev3.HeaderMap{Headers: []*corev3.HeaderValue{{Key: k1, RawValue: []byte(v1)}, {Key: k2, RawValue: []byte(v2)}}}
		} else {
			hr.Headers = map[string]string{k1: v1, k2: v2}
		}
		resp, err := s.Check(context.Background(), &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
			Request: &authv3.AttributeContext_Request{Http: hr}}})
		if err != nil || resp == nil {
			t.Fatalf("Check: %v %v", resp, err)
		}
		if ok := resp.GetOkResponse(); ok != nil {
			if resp.GetStatus().GetCode() != 0 || !strings.HasPrefix(last.Path, "/public") {
				t.Fatalf("allowed %q with status %v", last.Path, resp.GetStatus())
			}
			for _, h := range ok.GetHeadersToRemove() {
				if strings.HasPrefix(h, ":") || (h != k1 && h != k2) {
					t.Fatalf("removes %q, not a header line of the request", h)
				}
			}
			return
		}
		d := resp.GetDeniedResponse()
		if code := int(d.GetStatus().GetCode()); code < 400 || code > 599 || resp.GetStatus().GetCode() == 0 {
			t.Fatalf("denied with %d, status %v", code, resp.GetStatus())
		}
	})
}
