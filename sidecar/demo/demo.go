// Package demo runs the sidecar end to end in one process, without Docker:
// the demo realm of examples/keycloak/realm-demo.json served by a
// Keycloak-shaped issuer (internal/testidp: same clients, secrets, scopes,
// roles and audience mappers as the Keycloak that imports the file), an echo
// upstream, and the sidecar configured with the example file
// (examples/sidecar/sidecar.yaml, embedded here as sidecar.yaml) with the
// URLs filled in. cmd/keycloak-jwt-demo runs it; the production sidecar
// binary does not link it.
package demo

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	_ "embed"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/keycloak-jwt/keycloak-jwt/internal/testidp"
	"github.com/keycloak-jwt/keycloak-jwt/sidecar"
	"github.com/keycloak-jwt/keycloak-jwt/upstream"
)

// ConfigYAML is the example configuration the demo runs (a copy of
// examples/sidecar/sidecar.yaml; a test keeps the two identical).
//
//go:embed sidecar.yaml
var ConfigYAML []byte

// Default addresses of the interactive demo. They avoid the ports that
// docker-compose.yml publishes (8080 Keycloak, 8000/8001 Kong, 8081/8082
// the sidecar), so the demo and the compose stack can run side by side. The
// realm's port is the one examples/sidecar/sidecar.yaml names by default.
const (
	DefaultIdPAddr      = "127.0.0.1:8180"
	DefaultAddr         = "127.0.0.1:8181"
	DefaultAdminAddr    = "127.0.0.1:8182"
	DefaultUpstreamAddr = "127.0.0.1:8190"
)

// The demo realm's clients (examples/keycloak/realm-demo.json).
const (
	Realm            = "demo"
	Audience         = "orders-api"
	OrdersClient     = "orders-service"
	OrdersSecret     = "orders-service-demo-secret"
	ReportsClient    = "reports-job"
	ReportsSecret    = "reports-job-demo-secret"
	NoAudienceClient = "no-audience-client"
	NoAudienceSecret = "no-audience-client-demo-secret"
	UpstreamIssuer   = "keycloak-jwt-sidecar" // upstream_jwt.issuer of the example file
)

// Options are the demo's listen addresses; an empty one means port 0 (an
// ephemeral port on 127.0.0.1).
type Options struct {
	IdPAddr, Addr, AdminAddr, UpstreamAddr string
	// ConfigYAML replaces the example configuration (ConfigYAML of this
	// package), e.g. an edited copy of examples/sidecar/sidecar.yaml. The
	// demo fills in the same environment: ORDERS_API_URL, KEYCLOAK_ISSUER,
	// UPSTREAM_JWT_ENABLED, UPSTREAM_JWT_KEY_FILE and the listen addresses.
	ConfigYAML []byte
	// ConfigName names ConfigYAML in the printed instructions.
	ConfigName string
	// Logger receives the sidecar's logs; nil discards them.
	Logger *zap.Logger
}

// Env is a running demo.
type Env struct {
	IdP       *testidp.IdP
	Sidecar   *sidecar.Server
	URL       string // the sidecar's main listener, e.g. http://127.0.0.1:8080
	AdminURL  string // the sidecar's admin listener
	EchoURL   string // the echo upstream
	JWTHeader string // the header carrying the upstream JWT

	configName string // where the configuration came from, for the instructions

	echo    *http.Server
	keyDir  string
	cancel  context.CancelFunc
	stopped chan error
}

// Start starts the realm, the echo upstream and the sidecar, and returns once
// all three listen. Close stops them.
func Start(o Options) (*Env, error) {
	e := &Env{stopped: make(chan error, 1)}
	ok := false
	defer func() {
		if !ok {
			e.closeParts()
		}
	}()
	realm, err := testidp.DemoRealm()
	if err != nil {
		return nil, fmt.Errorf("demo realm: %w", err)
	}
	ro := realm.Options()
	ro.Addr = orEphemeral(o.IdPAddr)
	e.IdP, err = testidp.New(ro)
	if err != nil {
		return nil, fmt.Errorf("demo realm on %s: %w%s", ro.Addr, err, busy(err, "--idp-addr"))
	}
	ln, err := net.Listen("tcp", orEphemeral(o.UpstreamAddr))
	if err != nil {
		return nil, fmt.Errorf("demo echo upstream: %w%s", err, busy(err, "--upstream-addr"))
	}
	e.EchoURL = "http://" + ln.Addr().String()
	e.echo = &http.Server{Handler: http.HandlerFunc(Echo), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = e.echo.Serve(ln) }()

	if e.keyDir, err = os.MkdirTemp("", "keycloak-jwt-demo-"); err != nil {
		return nil, fmt.Errorf("demo: temporary directory for the upstream JWT key: %w", err)
	}
	keyFile := filepath.Join(e.keyDir, "upstream-jwt.pem")
	if err := writeKey(keyFile); err != nil {
		return nil, err
	}
	env := map[string]string{
		"ORDERS_API_URL":        e.EchoURL,
		"KEYCLOAK_ISSUER":       e.IdP.Issuer(),
		"UPSTREAM_JWT_ENABLED":  "true",
		"UPSTREAM_JWT_KEY_FILE": keyFile,
		sidecar.EnvListen:       orEphemeral(o.Addr),
		sidecar.EnvAdminListen:  orEphemeral(o.AdminAddr),
	}
	yaml := ConfigYAML
	if o.ConfigYAML != nil {
		yaml = o.ConfigYAML
	}
	cfg, err := sidecar.ParseConfig(yaml, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		return nil, fmt.Errorf("demo config: %w", err)
	}
	log := o.Logger
	if log == nil {
		log = zap.NewNop()
	}
	if e.Sidecar, err = sidecar.New(cfg, sidecar.Options{Logger: log}); err != nil {
		return nil, fmt.Errorf("demo config: %w", err)
	}
	if err := e.Sidecar.Listen(); err != nil {
		return nil, fmt.Errorf("%w%s", err, busy(err, "--addr or --admin-addr"))
	}
	e.JWTHeader = upstream.DefaultJWTHeader
	e.configName = "examples/sidecar/sidecar.yaml"
	if o.ConfigName != "" {
		e.configName = o.ConfigName
	}
	e.URL, e.AdminURL = "http://"+e.Sidecar.Addr(), "http://"+e.Sidecar.AdminAddr()
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	go func() { e.stopped <- e.Sidecar.Serve(ctx) }()
	ok = true
	return e, nil
}

// Close shuts the sidecar down gracefully, then the upstream and the realm.
func (e *Env) Close() error {
	var err error
	if e.cancel != nil {
		e.cancel()
		err = <-e.stopped
		e.cancel = nil
	}
	e.closeParts()
	return err
}

func (e *Env) closeParts() {
	if e.echo != nil {
		_ = e.echo.Close()
	}
	if e.IdP != nil {
		e.IdP.Close()
	}
	if e.keyDir != "" {
		_ = os.RemoveAll(e.keyDir)
	}
}

// TokenURL is the realm's token endpoint.
func (e *Env) TokenURL() string { return e.IdP.TokenURL() }

// Run starts the demo, prints how to call it, and serves until ctx is done.
func Run(ctx context.Context, o Options, w io.Writer) error {
	if o.IdPAddr == "" {
		o.IdPAddr = DefaultIdPAddr
	}
	if o.Addr == "" {
		o.Addr = DefaultAddr
	}
	if o.AdminAddr == "" {
		o.AdminAddr = DefaultAdminAddr
	}
	if o.UpstreamAddr == "" {
		o.UpstreamAddr = DefaultUpstreamAddr
	}
	e, err := Start(o)
	if err != nil {
		return err
	}
	e.PrintInstructions(w)
	<-ctx.Done()
	fmt.Fprintln(w, "\nstopping: finishing in-flight requests ...")
	return e.Close()
}

// PrintInstructions prints the curl commands that get tokens and call the API.
func (e *Env) PrintInstructions(w io.Writer) {
	extract := `sed -E 's/.*"access_token":"([^"]+)".*/\1/'`
	fmt.Fprintf(w, `keycloak-jwt sidecar demo is running (Ctrl-C to stop)

  realm "%[1]s"       %[2]s   (Keycloak-compatible: discovery, JWKS, token endpoint)
  echo upstream      %[3]s   (answers with the method, path and headers it received)
  sidecar            %[4]s   (config: %[13]s)
  sidecar admin      %[5]s   (/healthz /readyz /metrics /.well-known/jwks.json)

Clients of examples/keycloak/realm-demo.json (client_credentials, audience %[6]q):
  %[7]s / %[8]s   scopes orders:read orders:write
  %[9]s    / %[10]s  scope  orders:read (optional: orders:export)

The example scripts work unchanged with:
  export KEYCLOAK_URL=%[2]s API_URL=%[4]s
  TOKEN=$(examples/get-token.sh); examples/call-api.sh GET /orders

# 1. Get a token (client_secret_post) ...
TOKEN=$(curl -s -d grant_type=client_credentials -d client_id=%[7]s -d client_secret=%[8]s \
  %[11]s | %[12]s)
# ... or with HTTP Basic (client_secret_basic):
REPORTS=$(curl -s -u %[9]s:%[10]s -d grant_type=client_credentials \
  %[11]s | %[12]s)

# 2. Call the API through the sidecar
curl -i -H "Authorization: Bearer $TOKEN" %[4]s/orders            # 200, identity headers at the upstream
curl -i -X POST -H "Authorization: Bearer $TOKEN" %[4]s/orders    # 200 (orders:write)
curl -i -X POST -H "Authorization: Bearer $REPORTS" %[4]s/orders  # 403 insufficient_scope
curl -i %[4]s/orders                                                # 401, WWW-Authenticate: Bearer
curl -i %[4]s/healthz                                               # 200, public route

# 3. Operate it
curl -s %[5]s/readyz
curl -s %[5]s/metrics | grep keycloak_jwt_
curl -s %[5]s/.well-known/jwks.json   # verifies the X-Upstream-Jwt the upstream receives
`, Realm, e.IdP.URL(), e.EchoURL, e.URL, e.AdminURL, Audience,
		OrdersClient, OrdersSecret, ReportsClient, ReportsSecret, e.TokenURL(), extract, e.configName)
}

// writeKey writes a fresh ES256 (P-256) private key as PKCS#8 PEM, mode 0600.
func writeKey(path string) error {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("demo: generating the upstream JWT key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return fmt.Errorf("demo: encoding the upstream JWT key: %w", err)
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if err := os.WriteFile(path, pemBytes, 0o600); err != nil {
		return fmt.Errorf("demo: writing the upstream JWT key: %w", err)
	}
	return nil
}

// busy suggests the flag that moves the demo off a port in use.
func busy(err error, flag string) string {
	if errors.Is(err, syscall.EADDRINUSE) {
		return " (the port is taken: choose another with " + flag + ", e.g. 127.0.0.1:0 for any free port)"
	}
	return ""
}

func orEphemeral(addr string) string {
	if addr == "" {
		return "127.0.0.1:0"
	}
	return addr
}

// errFailed is returned by Selftest when a step did not behave.
var errFailed = errors.New("demo selftest failed")
