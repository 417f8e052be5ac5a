package authz

import (
	"encoding/json"
	"net/http"
	"strings"
)

// MetadataPath is where the protected resource metadata is served (RFC
// 9728 §3): at the host's well-known path, and below it with the resource's
// own path when public_url has one.
const MetadataPath = "/.well-known/oauth-protected-resource"

// resourceMetadata is the RFC 9728 document.
type resourceMetadata struct {
	Resource                  string   `json:"resource"`
	AuthorizationServers      []string `json:"authorization_servers"`
	ScopesSupported           []string `json:"scopes_supported,omitempty"`
	BearerMethodsSupported    []string `json:"bearer_methods_supported"`
	DPoPAlgs                  []string `json:"dpop_signing_alg_values_supported,omitempty"`
	DPoPRequired              bool     `json:"dpop_bound_access_tokens_required,omitempty"`
	TLSClientCertificateBound bool     `json:"tls_client_certificate_bound_access_tokens,omitempty"`
}

// compileMetadata renders the document once, from the routes' policies.
func (g *Gate) compileMetadata(c Config) {
	if !c.ResourceMetadata || g.publicURL == nil {
		return
	}
	resource := strings.TrimSuffix(g.publicURL.String(), "/")
	m := resourceMetadata{Resource: resource, BearerMethodsSupported: []string{"header"},
		TLSClientCertificateBound: g.certified}
	if len(g.uriParams) > 0 {
		m.BearerMethodsSupported = append(m.BearerMethodsSupported, "query")
	}
	seen := map[string]bool{}
	for _, u := range g.policies {
		for _, iss := range u.Policy.Issuers() {
			if !seen["iss "+iss] {
				seen["iss "+iss] = true
				m.AuthorizationServers = append(m.AuthorizationServers, iss)
			}
		}
		for _, s := range u.Policy.RequiredScopes() {
			if !seen["scope "+s] {
				seen["scope "+s] = true
				m.ScopesSupported = append(m.ScopesSupported, s)
			}
		}
	}
	if g.dpop != nil {
		m.DPoPAlgs = g.dpop.algs
	}
	g.metadata, _ = json.Marshal(m)
	u := *g.publicURL
	u.Path = MetadataPath + strings.TrimSuffix(u.Path, "/")
	g.metadataURL = u.String()
}

// Metadata answers a request for the protected resource metadata: ok is
// false when path is not the metadata's (or it is off).
func (g *Gate) Metadata(path string) (Response, bool) {
	if g.metadata == nil || (path != MetadataPath && path != strings.TrimPrefix(g.metadataURL, g.publicURL.Scheme+"://"+g.publicURL.Host)) {
		return Response{}, false
	}
	return Response{Status: http.StatusOK, Body: g.metadata, Header: [][2]string{
		{"Content-Type", "application/json"}, {"Cache-Control", "public, max-age=300"}}}, true
}

// MetadataEnabled reports whether the adapter must route MetadataPath here.
func (g *Gate) MetadataEnabled() bool { return g.metadata != nil }

// NeedsRequestLine reports whether judging needs the request's method and
// path even where the adapter routed the request itself (Kong): a DPoP
// proof names them.
func (g *Gate) NeedsRequestLine() bool { return g.dpop != nil }
