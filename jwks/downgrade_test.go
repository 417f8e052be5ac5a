package jwks

import (
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// keyServer is an httptest server (TLS or plain) whose handler can be set
// after it has started, so servers can name each other; it counts requests.
type keyServer struct {
	*httptest.Server
	handler atomic.Pointer[http.HandlerFunc]
	hits    atomic.Int64
}

func newKeyServer(t *testing.T, tls bool) *keyServer {
	t.Helper()
	ks := &keyServer{}
	ks.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ks.hits.Add(1)
		if h := ks.handler.Load(); h != nil {
			(*h)(w, r)
			return
		}
		http.NotFound(w, r)
	}))
	if tls {
		ks.StartTLS()
	} else {
		ks.Start()
	}
	t.Cleanup(ks.Close)
	return ks
}

func (ks *keyServer) handle(h http.HandlerFunc) { ks.handler.Store(&h) }

// serveDiscovery answers with a discovery document for issuer naming jwksURI.
func (ks *keyServer) serveDiscovery(issuer, jwksURI string) {
	doc, _ := json.Marshal(map[string]string{"issuer": issuer, "jwks_uri": jwksURI})
	ks.handle(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(doc) })
}

// serveJWKS answers with jwks.
func (ks *keyServer) serveJWKS(jwks []byte) {
	ks.handle(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(jwks) })
}

// redirectTo answers every request with a 302 to target.
func (ks *keyServer) redirectTo(target string) {
	ks.handle(func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, target, http.StatusFound) })
}

// redirectTimes answers the first n requests with a 302 to itself, then
// with body.
func (ks *keyServer) redirectTimes(n int64, body []byte) {
	var hops atomic.Int64
	ks.handle(func(w http.ResponseWriter, r *http.Request) {
		if hops.Add(1) <= n {
			http.Redirect(w, r, "/hop", http.StatusFound)
			return
		}
		_, _ = w.Write(body)
	})
}

// testCAFile writes the certificate every httptest TLS server presents.
func testCAFile(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestNoDowngradeToHTTP: keys are fetched over plain http only from a URL
// the operator configured as http (or discovered through an http discovery
// URL); nothing reached over https leads to http: not a discovery document,
// not a redirect. Redirects are bounded.
func TestNoDowngradeToHTTP(t *testing.T) {
	idp, _, _ := setup(t)
	jwks, err := idp.JWKS()
	if err != nil {
		t.Fatal(err)
	}
	kid := idp.CurrentKid()

	type servers struct{ tls, tls2, plain, plain2 *keyServer }
	refusedRedirect := []string{"refused the redirect from https://", "to http://", "plain http"}
	cases := []struct {
		name string
		// arrange sets the servers up and returns the spec to fetch with.
		arrange func(s servers) Spec
		// wantErr are substrings of the error (none: the keys load).
		wantErr []string
		// noPlainHits: no request may reach the plain servers.
		noPlainHits bool
	}{
		{
			name: "https discovery naming an http jwks_uri",
			arrange: func(s servers) Spec {
				s.tls.serveDiscovery(s.tls.URL, s.plain.URL+"/certs")
				s.plain.serveJWKS(jwks)
				return Spec{Issuer: s.tls.URL}
			},
			wantErr:     []string{"plain http", "issuer https://127.0.0.1:", "jwks_uri http://127.0.0.1:", "/certs"},
			noPlainHits: true,
		},
		{
			name: "http discovery naming an http jwks_uri",
			arrange: func(s servers) Spec {
				s.plain.serveDiscovery(s.plain.URL, s.plain2.URL+"/certs")
				s.plain2.serveJWKS(jwks)
				return Spec{Issuer: s.plain.URL}
			},
		},
		{
			name: "https issuer, operator's http discovery_url naming an http jwks_uri",
			arrange: func(s servers) Spec {
				s.plain.serveDiscovery("https://sso.example/realms/demo", s.plain2.URL+"/certs")
				s.plain2.serveJWKS(jwks)
				return Spec{Issuer: "https://sso.example/realms/demo", DiscoveryURL: s.plain.URL}
			},
		},
		{
			name: "https discovery naming a jwks_uri that is not an http(s) URL",
			arrange: func(s servers) Spec {
				s.tls.serveDiscovery(s.tls.URL, "file:///etc/passwd")
				return Spec{Issuer: s.tls.URL}
			},
			wantErr: []string{"not an absolute http(s) URL", "file:///etc/passwd"},
		},
		{
			name: "https jwks_uri redirecting to http",
			arrange: func(s servers) Spec {
				s.tls.redirectTo(s.plain.URL + "/certs")
				s.plain.serveJWKS(jwks)
				return Spec{Issuer: "https://sso.example", JWKSURI: s.tls.URL + "/certs"}
			},
			wantErr:     refusedRedirect,
			noPlainHits: true,
		},
		{
			name: "https discovery redirecting to http",
			arrange: func(s servers) Spec {
				s.tls.redirectTo(s.plain.URL + "/discovery")
				s.plain.serveDiscovery(s.tls.URL, s.tls2.URL+"/certs")
				s.tls2.serveJWKS(jwks)
				return Spec{Issuer: s.tls.URL}
			},
			wantErr:     refusedRedirect,
			noPlainHits: true,
		},
		{
			name: "https to https to http",
			arrange: func(s servers) Spec {
				s.tls.redirectTo(s.tls2.URL + "/certs")
				s.tls2.redirectTo(s.plain.URL + "/certs")
				s.plain.serveJWKS(jwks)
				return Spec{Issuer: "https://sso.example", JWKSURI: s.tls.URL + "/certs"}
			},
			wantErr:     refusedRedirect,
			noPlainHits: true,
		},
		{
			name: "http redirecting to https (an upgrade)",
			arrange: func(s servers) Spec {
				s.plain.redirectTo(s.tls.URL + "/certs")
				s.tls.serveJWKS(jwks)
				return Spec{Issuer: "http://sso.example", JWKSURI: s.plain.URL + "/certs"}
			},
		},
		{
			name: "http redirecting to http, as configured",
			arrange: func(s servers) Spec {
				s.plain.redirectTo(s.plain2.URL + "/certs")
				s.plain2.serveJWKS(jwks)
				return Spec{Issuer: "http://sso.example", JWKSURI: s.plain.URL + "/certs"}
			},
		},
		{
			name: "three redirects are followed",
			arrange: func(s servers) Spec {
				s.tls.redirectTimes(3, jwks)
				return Spec{Issuer: "https://sso.example", JWKSURI: s.tls.URL + "/certs"}
			},
		},
		{
			name: "a fourth redirect is not",
			arrange: func(s servers) Spec {
				s.tls.redirectTimes(4, jwks)
				return Spec{Issuer: "https://sso.example", JWKSURI: s.tls.URL + "/certs"}
			},
			wantErr: []string{"stopped after 3 redirects"},
		},
		{
			name: "redirect loop",
			arrange: func(s servers) Spec {
				s.tls.redirectTo(s.tls2.URL + "/certs")
				s.tls2.redirectTo(s.tls.URL + "/certs")
				return Spec{Issuer: "https://sso.example", JWKSURI: s.tls.URL + "/certs"}
			},
			wantErr: []string{"stopped after 3 redirects"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := servers{newKeyServer(t, true), newKeyServer(t, true), newKeyServer(t, false), newKeyServer(t, false)}
			spec := tc.arrange(s)
			spec.CAFile = testCAFile(t, s.tls.Server)
			src := mustSource(t, NewCache(Options{}), spec)
			_, err := src.Key(ctx, kid, "RS256")
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("keys not loaded: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrUnavailable) {
				t.Fatalf("want ErrUnavailable, got %v", err)
			}
			for _, want := range tc.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
			if plain := s.plain.hits.Load() + s.plain2.hits.Load(); tc.noPlainHits && plain != 0 {
				t.Errorf("%d requests went out over plain http", plain)
			}
			if total := s.tls.hits.Load() + s.tls2.hits.Load() + s.plain.hits.Load() + s.plain2.hits.Load(); total > 1+maxRedirects {
				t.Errorf("%d requests for one fetch", total)
			}
		})
	}
}
