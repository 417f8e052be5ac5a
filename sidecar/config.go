package sidecar

import (
	"github.com/keycloak-jwt/keycloak-jwt/authz"
	"github.com/keycloak-jwt/keycloak-jwt/policy"
	"github.com/keycloak-jwt/keycloak-jwt/upstream"
)

// Defaults of Config. CONFIG.md documents the same values.
const (
	DefaultListen                   = ":8080"
	DefaultAdminListen              = "127.0.0.1:8081"
	DefaultUpstreamTimeoutSeconds   = 30
	DefaultConnectTimeoutSeconds    = 5
	DefaultMaxIdleConnsPerHost      = 64
	DefaultForwardAuthPath          = "/auth"
	DefaultReadHeaderTimeoutSeconds = 10
	DefaultIdleTimeoutSeconds       = 120
	DefaultMaxHeaderBytes           = 64 << 10
	DefaultShutdownTimeoutSeconds   = 30
	DefaultBodyReadTimeoutSeconds   = 60
	DefaultMaxConnections           = 10000
	DefaultLogLevel                 = "info"
	DefaultLogFormat                = "json"
)

// Default original-request headers read by forward auth, in the order the
// proxies that send them are listed in CONFIG.md (Traefik, nginx).
var (
	DefaultURIHeaders    = []string{"X-Forwarded-Uri", "X-Original-URI"}
	DefaultMethodHeaders = []string{"X-Forwarded-Method", "X-Original-Method"}
)

// Config is the sidecar's YAML configuration file. The YAML is converted to
// JSON before decoding (sigs.k8s.io/yaml), so the json tags are the YAML
// names, and unknown fields are errors. Zero values mean "default"; the
// defaults are the Default* constants of this package. Before decoding,
// ${NAME} and ${NAME:-default} are replaced with environment variables, and
// after decoding the KJ_* environment overrides apply (see ParseConfig).
type Config struct {
	// Listen is the main listener's address (reverse proxy and forward
	// auth). Default ":8080". Env override: KJ_LISTEN.
	Listen string `json:"listen"`
	// AdminListen is the admin listener's address: /healthz, /readyz,
	// /metrics and the upstream JWT's JWKS. Default "127.0.0.1:8081"
	// (loopback only: set ":8081" where probes or Prometheus come from
	// outside, e.g. in a container). It must differ from Listen. Env
	// override: KJ_ADMIN_LISTEN.
	AdminListen string `json:"admin_listen"`
	// Upstream is where allowed requests are forwarded. Without a URL the
	// sidecar is a forward-auth server only.
	Upstream UpstreamConfig `json:"upstream"`
	// ForwardAuth is the endpoint for nginx auth_request, Traefik
	// ForwardAuth and Envoy ext_authz (HTTP).
	ForwardAuth ForwardAuthConfig `json:"forward_auth"`
	// Config holds the request layer's fields, flat at the top level:
	// realm (the realm parameter of WWW-Authenticate challenges, e.g.
	// "orders-api"; default none), header_names (default
	// ["Authorization"]), uri_param_names, cookie_names (token sources;
	// default none) and method_override. The fields are those of
	// authz.Config.
	authz.Config
	// Policy holds the token rules shared by every route: issuers (with
	// where their keys come from), audiences, algorithms, leeway, JWKS
	// settings, and the default requirements (scopes, roles, clients) that
	// routes may override. The fields are those of policy.Config; issuers and
	// audiences are required. Env overrides for policy.issuers[0]:
	// KJ_ISSUER_URL, KJ_DISCOVERY_URL, KJ_JWKS_URI.
	Policy policy.Config `json:"policy"`
	// Routes are the rules by path prefix and method. Omitted: one rule for
	// "/" that requires what Policy requires. See authz.Route for the
	// matching; a route may set any of the requirement fields (issuers,
	// audiences, allowed_clients, token_types, scopes_*, realm_roles_*,
	// client_roles_*).
	Routes []Route `json:"routes"`
	// UpstreamHeaders configures the identity headers set for allowed
	// requests (client id, subject, scopes, roles, claim headers) and
	// whether Authorization is removed before forwarding. The fields are
	// those of upstream.HeadersConfig.
	UpstreamHeaders upstream.HeadersConfig `json:"upstream_headers"`
	// UpstreamJWT configures the short-lived JWT the sidecar signs for the
	// upstream (off unless enabled). The fields are those of
	// upstream.JWTConfig; its public JWKS is served on the admin listener.
	UpstreamJWT upstream.JWTConfig `json:"upstream_jwt"`
	// Server holds the listener limits and the graceful shutdown timeout.
	Server ServerConfig `json:"server"`
	// GRPC is the optional gRPC listener for Envoy's and Istio's external
	// authorization (envoy.service.auth.v3.Authorization/Check). Off
	// unless listen is set.
	GRPC GRPCConfig `json:"grpc"`
	// Log configures the structured (zap) logs on stderr.
	Log LogConfig `json:"log"`
	// StatusPage serves a status page and the explain form and API on the
	// admin listener. Off by default.
	StatusPage StatusPageConfig `json:"status_page"`
}

// StatusPageConfig is the admin listener's status page: the live routes,
// each realm's keys, the token cache's hit rate, recent denials by reason,
// and the explain form (POST /explain: why a token is allowed or refused on
// a route). It answers only peers on loopback, whatever admin_listen is.
type StatusPageConfig struct {
	// Enabled turns the page (GET /) and POST /explain on. Default false.
	Enabled bool `json:"enabled"`
}

// UpstreamConfig is the reverse proxy's target.
type UpstreamConfig struct {
	// URL is the upstream's base URL, http or https, e.g.
	// "http://127.0.0.1:3000". A path in it is prepended to request paths.
	// Empty: no reverse proxy (forward auth only). Env override:
	// KJ_UPSTREAM_URL.
	URL string `json:"url"`
	// TimeoutSeconds bounds the wait for the upstream's response headers;
	// past it the client gets 504. Streaming bodies are not cut. Default 30.
	TimeoutSeconds int `json:"timeout_seconds"`
	// ConnectTimeoutSeconds bounds the TCP connect and TLS handshake; a
	// refused connection is a 502, one that runs out of time a 504 (as from
	// nginx). Default 5.
	ConnectTimeoutSeconds int `json:"connect_timeout_seconds"`
	// MaxIdleConnsPerHost is the size of the keep-alive pool. Default 64.
	MaxIdleConnsPerHost int `json:"max_idle_conns_per_host"`
	// PreserveHost forwards the client's Host header instead of the
	// upstream URL's host. Default false.
	PreserveHost bool `json:"preserve_host"`
	// TrustForwardedHeaders keeps the X-Forwarded-For chain and the
	// X-Forwarded-Host and X-Forwarded-Proto a client (a load balancer in
	// front) sent. Default false: they are replaced with what the sidecar
	// sees, so a client cannot forge them.
	TrustForwardedHeaders bool `json:"trust_forwarded_headers"`
}

// ForwardAuthConfig is the forward-auth endpoint.
type ForwardAuthConfig struct {
	// Enabled turns the endpoint on. Default: on when upstream.url is empty
	// (a pure auth server), off otherwise (so that clients of the proxy do
	// not obtain signed upstream JWTs from it).
	Enabled *bool `json:"enabled"`
	// Path is the endpoint: a request to Path, or below Path + "/", is a
	// forward-auth request. Default "/auth". Below it, the rest of the path
	// is the original path (Envoy ext_authz with path_prefix). With no
	// reverse proxy, a request outside Path is checked as the original
	// request itself (Envoy ext_authz without path_prefix).
	Path string `json:"path"`
	// URIHeaders name the request headers that may carry the original
	// request URI. Default ["X-Forwarded-Uri", "X-Original-URI"]. When
	// several carry (different) values the request is refused with 400.
	// List only the one your proxy sets.
	URIHeaders []string `json:"uri_headers"`
	// MethodHeaders name the request headers that may carry the original
	// method. Default (omitted) ["X-Forwarded-Method", "X-Original-Method"];
	// [] means none: the request's own method is used. Conflicting values
	// are refused, and so is a value that disagrees with the request's own
	// method when the request itself carries the original path (Envoy).
	MethodHeaders []string `json:"method_headers"`
}

// Route is one access rule: a path prefix, methods, and the requirements
// that replace the shared policy's. The fields are those of authz.Route.
type Route = authz.Route

// GRPCConfig is the gRPC external authorization listener.
type GRPCConfig struct {
	// Listen is its address, e.g. "127.0.0.1:9001". Empty: off. It must
	// differ from listen and admin_listen.
	Listen string `json:"listen"`
	// TLS serves it over TLS (plaintext when cert_file is empty).
	TLS GRPCTLSConfig `json:"tls"`
}

// GRPCTLSConfig is the gRPC listener's TLS: its certificate and key
// (PEM files, read at start-up), and the CA whose client certificates it
// requires (mutual TLS; empty: none required).
type GRPCTLSConfig struct {
	CertFile     string `json:"cert_file"`
	KeyFile      string `json:"key_file"`
	ClientCAFile string `json:"client_ca_file"`
}

// ServerConfig holds the listeners' limits.
type ServerConfig struct {
	// ReadHeaderTimeoutSeconds bounds reading a request's headers (slowloris
	// protection). Default 10.
	ReadHeaderTimeoutSeconds int `json:"read_header_timeout_seconds"`
	// IdleTimeoutSeconds closes idle keep-alive connections. Default 120.
	IdleTimeoutSeconds int `json:"idle_timeout_seconds"`
	// MaxHeaderBytes bounds the request line and headers; larger requests
	// get 431. Default 65536.
	MaxHeaderBytes int `json:"max_header_bytes"`
	// ShutdownTimeoutSeconds is how long SIGTERM/SIGINT waits for in-flight
	// requests before closing their connections. Default 30.
	ShutdownTimeoutSeconds int `json:"shutdown_timeout_seconds"`
	// BodyReadTimeoutSeconds is the idle timeout of request bodies: every
	// read of a body must receive data within it, else the connection is
	// closed (with 408 when no response has started). A body that keeps
	// arriving is never cut, however long it takes. 1–3600; default 60, as
	// nginx's client_body_timeout.
	BodyReadTimeoutSeconds int `json:"body_read_timeout_seconds"`
	// MaxConnections bounds the main listener's open connections (idle
	// keep-alive and upgraded ones included). At the limit a new connection
	// waits until one closes, and idle keep-alive connections are closed to
	// make room. 1–1000000; default 10000.
	MaxConnections int `json:"max_connections"`
}

// LogConfig configures logging.
type LogConfig struct {
	// Level is "debug", "info" (default), "warn" or "error". Allowed
	// requests are logged at debug, denied ones at info, upstream failures
	// at warn. Env override: KJ_LOG_LEVEL.
	Level string `json:"level"`
	// Format is "json" (default) or "console".
	Format string `json:"format"`
}
