package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// The clients of the independent server (oidc-server/server.js), the same as
// in examples/keycloak/realm-demo.json.
const (
	// OrdersService may read and write: scopes orders:read orders:write,
	// realm roles api-client and orders-admin, client roles
	// orders-api:reader and orders-api:writer.
	OrdersService = "orders-service"
	// ReportsJob may only read: scope orders:read, realm role api-client,
	// client role orders-api:reader.
	ReportsJob = "reports-job"
	// NoAudienceClient gets tokens for aud "account" instead of "orders-api",
	// like a Keycloak client without an audience mapper.
	NoAudienceClient = "no-audience-client"
)

// DemoSecret is the client secret of a demo client.
func DemoSecret(client string) string { return client + "-demo-secret" }

// Resource indicators (RFC 8707) the server knows, and the aud of their tokens.
const (
	// ResourceOrdersAPI is the default resource of OrdersService and
	// ReportsJob; its tokens carry aud "orders-api".
	ResourceOrdersAPI = "urn:keycloak-jwt:orders-api"
	// ResourceOtherAPI gives tokens with aud "other-api".
	ResourceOtherAPI = "urn:keycloak-jwt:other-api"
)

// Client authentication methods at the token endpoint (RFC 6749 2.3.1).
const (
	AuthBasic = "client_secret_basic"
	AuthPost  = "client_secret_post"
)

// startTimeout bounds the server's start (Node.js start, two RSA keys).
const startTimeout = 30 * time.Second

// OIDCServer is a running oidc-server/server.js: an OAuth 2.0 authorization
// server independent of this project (oidc-provider), shaped like a Keycloak
// realm, on a loopback port. It issues RFC 9068 JWT access tokens (header
// typ "at+jwt", claim client_id instead of Keycloak's azp) with the client
// credentials grant. Its methods are safe for concurrent use.
type OIDCServer struct {
	issuer string
	admin  string
	client *http.Client
	out    *lineBuffer
}

// StartOIDCServer installs the server's npm dependencies (once, cached in
// oidc-server/node_modules), starts it, and stops it when t ends. It skips t
// when Node.js or npm is missing.
func StartOIDCServer(t testing.TB) *OIDCServer {
	t.Helper()
	node := RequireNode(t)
	dir := filepath.Join(Dir(), "oidc-server")
	NPMInstall(t, dir)

	out := newLineBuffer()
	cmd := exec.Command(node, "server.js", "0")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOST=127.0.0.1", "OIDC_EXIT_ON_STDIN_EOF=1")
	cmd.Stdout, cmd.Stderr = out, out
	// The server exits when this pipe closes, so it does not outlive a test
	// binary that is killed.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("interop: start oidc-server: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		_ = stdin.Close()
	}

	var ready struct {
		Event  string `json:"event"`
		Issuer string `json:"issuer"`
		Admin  string `json:"admin"`
	}
	deadline := time.After(startTimeout)
	for ready.Event != "listening" {
		select {
		case line := <-out.lines:
			if strings.HasPrefix(line, "{") {
				_ = json.Unmarshal([]byte(line), &ready)
			}
		case <-exited:
			t.Fatalf("interop: oidc-server exited before listening:\n%s", out.String())
		case <-deadline:
			stop()
			t.Fatalf("interop: oidc-server did not listen within %s:\n%s", startTimeout, out.String())
		}
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("oidc-server output:\n%s", out.String())
		}
	})
	return &OIDCServer{
		issuer: ready.Issuer,
		admin:  ready.Admin,
		client: &http.Client{Timeout: 10 * time.Second},
		out:    out,
	}
}

// Issuer is the realm's issuer, http://127.0.0.1:<port>/realms/demo: the
// "iss" of its tokens and the base of its discovery document.
func (s *OIDCServer) Issuer() string { return s.issuer }

// DiscoveryURL is the OpenID discovery document of the realm.
func (s *OIDCServer) DiscoveryURL() string {
	return s.issuer + "/.well-known/openid-configuration"
}

// TokenURL is the token endpoint (Keycloak's path).
func (s *OIDCServer) TokenURL() string { return s.issuer + "/protocol/openid-connect/token" }

// JWKSURI is the key set (Keycloak's "certs" path).
func (s *OIDCServer) JWKSURI() string { return s.issuer + "/protocol/openid-connect/certs" }

// Output is what the server printed so far (stdout and stderr).
func (s *OIDCServer) Output() string { return s.out.String() }

// Token gets an access token with the client-credentials grant, client_secret_basic,
// for the client's default resource. scope may be empty.
func (s *OIDCServer) Token(client, secret, scope string) (string, error) {
	tok, err := s.RequestToken(context.Background(), TokenRequest{ClientID: client, ClientSecret: secret, Scope: scope})
	if err != nil {
		return "", err
	}
	return tok.AccessToken, nil
}

// TokenRequest is one client-credentials token request.
type TokenRequest struct {
	ClientID, ClientSecret string
	// Scope is space-separated; empty asks for none.
	Scope string
	// Resource is a resource indicator (ResourceOrdersAPI, ResourceOtherAPI);
	// empty means the client's default.
	Resource string
	// Auth is AuthBasic (default) or AuthPost.
	Auth string
}

// RequestToken runs the client-credentials grant with golang.org/x/oauth2.
// A refusal of the server is an *oauth2.RetrieveError (ErrorCode
// "invalid_client", "invalid_scope", ...).
func (s *OIDCServer) RequestToken(ctx context.Context, r TokenRequest) (*oauth2.Token, error) {
	cfg := clientcredentials.Config{
		ClientID:     r.ClientID,
		ClientSecret: r.ClientSecret,
		TokenURL:     s.TokenURL(),
		Scopes:       strings.Fields(r.Scope),
		AuthStyle:    oauth2.AuthStyleInHeader,
	}
	switch r.Auth {
	case "", AuthBasic:
	case AuthPost:
		cfg.AuthStyle = oauth2.AuthStyleInParams
	default:
		return nil, fmt.Errorf("interop: unknown client authentication %q", r.Auth)
	}
	if r.Resource != "" {
		cfg.EndpointParams = url.Values{"resource": {r.Resource}}
	}
	return cfg.Token(context.WithValue(ctx, oauth2.HTTPClient, s.client))
}

// Rotate makes a new RS256 key the signing key and returns its kid. The
// previous signing key stays published (as a passive key does in Keycloak),
// so tokens it signed stay valid.
func (s *OIDCServer) Rotate() (string, error) { return s.rotate(false) }

// RotateRetiringOld is Rotate, but unpublishes every older signing key.
func (s *OIDCServer) RotateRetiringOld() (string, error) { return s.rotate(true) }

func (s *OIDCServer) rotate(retire bool) (string, error) {
	u := s.admin + "/rotate"
	if retire {
		u += "?retire=true"
	}
	var res struct {
		Kid string `json:"kid"`
	}
	if err := s.adminCall(http.MethodPost, u, &res); err != nil {
		return "", err
	}
	return res.Kid, nil
}

// Keys returns the kid of the signing key and every published signing kid.
func (s *OIDCServer) Keys() (current string, published []string, err error) {
	var res struct {
		Kid       string   `json:"kid"`
		Published []string `json:"published"`
	}
	err = s.adminCall(http.MethodGet, s.admin+"/keys", &res)
	return res.Kid, res.Published, err
}

func (s *OIDCServer) adminCall(method, u string, v any) error {
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		return err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("interop: oidc-server admin %s: %w", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("interop: oidc-server admin %s: HTTP %d: %s", u, resp.StatusCode, body)
	}
	return json.Unmarshal(body, v)
}

// lineBuffer collects a process's output and hands out its complete lines.
type lineBuffer struct {
	mu      sync.Mutex
	all     bytes.Buffer
	partial []byte
	lines   chan string
}

func newLineBuffer() *lineBuffer { return &lineBuffer{lines: make(chan string, 64)} }

func (b *lineBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.all.Write(p)
	b.partial = append(b.partial, p...)
	for {
		i := bytes.IndexByte(b.partial, '\n')
		if i < 0 {
			break
		}
		line := string(b.partial[:i])
		b.partial = b.partial[i+1:]
		select {
		case b.lines <- line:
		default: // nobody is waiting for lines any more
		}
	}
	return len(p), nil
}

func (b *lineBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.all.String()
}

// IsOAuthError reports whether err is a token endpoint refusal with the
// given RFC 6749 error code.
func IsOAuthError(err error, code string) bool {
	var re *oauth2.RetrieveError
	return errors.As(err, &re) && re.ErrorCode == code
}
