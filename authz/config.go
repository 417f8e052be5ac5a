// Package authz is the request layer of keycloak-jwt: it judges one HTTP
// request, whatever the adapter that received it (the Kong plugin, the
// sidecar's reverse proxy and forward-auth endpoint). It owns the route
// table, reads the token from every configured source with the hardening
// that goes with each, calls the engine (package policy), and returns a
// Result: allow with an output plan (header keys to delete, in every
// spelling an upstream reads as an owned name; headers to set; the signed
// upstream JWT), or deny with the whole response (status, challenge, body).
// Adapters only translate a request into a Request and a Result into their
// own calls.
package authz

import (
	"github.com/keycloak-jwt/keycloak-jwt/policy"
)

// Defaults of Config.
const (
	DefaultHeaderName = "authorization"
)

// Method override modes (Config.MethodOverride).
const (
	MethodOverrideRefuse = "refuse"
	MethodOverrideStrip  = "strip"
	MethodOverrideAllow  = "allow"
)

// Config is the request layer's part of an adapter's configuration: where
// tokens are read, the challenge's realm and what happens to method
// overrides. The Kong plugin's configuration and the sidecar's YAML both
// hold these fields, flat, under these names.
type Config struct {
	// Realm is the realm parameter of WWW-Authenticate challenges.
	Realm string `json:"realm"`
	// HeaderNames are the request headers that may carry "Bearer <token>".
	// Default ["authorization"]. Each may appear on one line only.
	HeaderNames []string `json:"header_names"`
	// URIParamNames are query parameters that may carry the bare token.
	// Default none.
	URIParamNames []string `json:"uri_param_names"`
	// CookieNames are cookies that may carry the bare token. Default none.
	CookieNames []string `json:"cookie_names"`
	// MethodOverride is what happens to a request that carries a method
	// override (X-HTTP-Method-Override, X-HTTP-Method, X-Method-Override, or
	// a _method query parameter), which frameworks such as Rails, Laravel,
	// Symfony and Spring's HiddenHttpMethodFilter may run as another method
	// than the one checked: "refuse" (400, the default where method rules
	// exist), "strip" (the headers are removed; a _method parameter is still
	// refused) or "allow".
	MethodOverride string `json:"method_override"`
	// PublicURL is the API's public base URL as its clients call it, e.g.
	// "https://api.example.com" (a path prefix allowed): a DPoP proof's htu
	// is checked against it (the gateway sits behind other proxies, so the
	// request's own Host cannot tell), and it is the resource of the
	// protected resource metadata.
	PublicURL string `json:"public_url"`
	// DPoP accepts DPoP-bound tokens (RFC 9449). Without it, a token bound
	// to a key (a cnf claim) is refused: it is not a bearer token.
	DPoP DPoPConfig `json:"dpop"`
	// CertificateHeader names the header in which the TLS-terminating proxy
	// in front passes the client certificate (URL-encoded PEM, as nginx's
	// $ssl_client_escaped_cert or Envoy's), for certificate-bound tokens
	// (RFC 8705, cnf.x5t#S256). The proxy must always overwrite it: a client
	// copy cannot be told apart. It is removed before forwarding. Default
	// none: certificate-bound tokens are refused.
	CertificateHeader string `json:"certificate_header"`
	// ResourceMetadata serves the protected resource metadata (RFC 9728)
	// at /.well-known/oauth-protected-resource and names it in challenges
	// (resource_metadata), for clients that discover how to get a token
	// from the API itself (the Model Context Protocol requires it). Needs
	// public_url.
	ResourceMetadata bool `json:"resource_metadata"`
}

// Route is one access rule of a route table. A request is matched in two
// steps: first the longest prefix that matches its path (whole segments:
// "/orders" matches "/orders" and "/orders/1", not "/ordersX"; "/" matches
// everything), then, among the rules of that prefix, the one listing the
// method (a rule without methods takes the rest). A request for which no
// rule is found is denied with 403 (fail closed). Requirements not set on a
// route are inherited from the shared ones; a list set to [] requires
// nothing of that kind.
type Route struct {
	// Prefix is the path prefix, starting with "/". Required. Case-sensitive.
	Prefix string `json:"prefix"`
	// Methods this rule applies to, e.g. ["GET"]. Empty: every method not
	// claimed by another rule of the same prefix. A rule for GET also
	// applies to HEAD unless a rule of the prefix lists HEAD.
	Methods []string `json:"methods"`
	// Public lets requests through without a token. No identity headers are
	// set; requirements must not be set on a public route.
	Public bool `json:"public"`
	// Requirements replace the shared ones field by field (policy.Requirements.Over).
	policy.Requirements
}
