package nginx

import (
	"strings"
	"testing"

	"github.com/keycloak-jwt/keycloak-jwt/internal/sidecartest"
	"github.com/keycloak-jwt/keycloak-jwt/internal/testidp"
)

// permissive are the nginx settings that pass every header name on.
const permissive = "        underscores_in_headers on;\n        ignore_invalid_headers off;\n"

// setup is nginx in front of a sidecar: its base URL and the API behind.
type setup struct {
	base string
	api  *upstream
}

// authRequestSetup: nginx auth_request with CONFIG.md's snippet (the
// sidecar's address replaced), the sidecar a pure forward-auth server
// configured as the snippet says.
func authRequestSetup(t *testing.T, idp *testidp.IdP, serverExtra string) setup {
	api := newUpstream(t)
	side := sidecartest.Start(t, routes+"forward_auth: {uri_headers: [X-Original-URI], method_headers: [X-Original-Method]}\n",
		map[string]string{"ISSUER": idp.Issuer()}).Addr()
	snippet := configSnippet(t)
	if !strings.Contains(snippet, "http://127.0.0.1:8080/auth") {
		t.Fatal("CONFIG.md's nginx snippet no longer sends to http://127.0.0.1:8080/auth")
	}
	snippet = strings.ReplaceAll(snippet, "127.0.0.1:8080", side)
	base := startNginx(t, "    upstream api { server "+strings.TrimPrefix(api.URL, "http://")+"; }\n", serverExtra+snippet)
	return setup{base, api}
}

// proxySetup: nginx proxy_pass to the sidecar's reverse proxy, with the
// headers a typical nginx site sets.
func proxySetup(t *testing.T, idp *testidp.IdP, serverExtra string) setup {
	api := newUpstream(t)
	side := sidecartest.Start(t, routes+"upstream: {url: \""+api.URL+"\", trust_forwarded_headers: true}\n",
		map[string]string{"ISSUER": idp.Issuer()}).Addr()
	loc := `        location / {
            proxy_pass http://sidecar;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }
`
	base := startNginx(t, "    upstream sidecar { server "+side+"; }\n", serverExtra+loc)
	return setup{base, api}
}
