package sidecar

import (
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap/zapcore"

	"github.com/keycloak-jwt/keycloak-jwt/authz"
	"github.com/keycloak-jwt/keycloak-jwt/policy"
)

// compiled is a validated Config with every default applied, ready to serve.
type compiled struct {
	listen, adminListen string

	upstreamURL     *url.URL // nil: no reverse proxy
	upstreamSet     bool     // upstream.url is set (even if invalid)
	upstreamTimeout time.Duration
	connectTimeout  time.Duration
	maxIdlePerHost  int
	preserveHost    bool
	trustForwarded  bool

	fwdEnabled    bool
	fwdPath       string
	uriHeaders    []string // canonical
	methodHeaders []string // canonical

	// gate judges every request: routes, token sources, the engine, the
	// output plan and the rendered denials.
	gate *authz.Gate

	readHeaderTimeout time.Duration
	idleTimeout       time.Duration
	shutdownTimeout   time.Duration
	maxHeaderBytes    int
	bodyReadTimeout   time.Duration // idle timeout of each request body read
	maxConnections    int           // open connections on the main listener

	grpc *grpcListener // nil: no gRPC listener

	logLevel  zapcore.Level
	logFormat string

	statusPage bool // status_page.enabled
}

// compile validates c and builds everything the server needs. Every section
// is checked, and every problem found is returned (errors.Join), each naming
// its field. Policies register their key sources in deps.Keys without
// fetching.
func compile(c *Config, deps policy.Deps, clock func() time.Time) (*compiled, error) {
	out := &compiled{}
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	add(out.compileListeners(c))
	add(out.compileGRPC(c.GRPC))
	add(out.compileUpstream(c.Upstream))
	add(out.compileForwardAuth(c.ForwardAuth))
	add(out.compileServer(c.Server))
	add(out.compileLog(c.Log))
	out.statusPage = c.StatusPage.Enabled
	add(out.compileGate(c, deps, clock))
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

func (o *compiled) compileListeners(c *Config) error {
	o.listen = orDefault(c.Listen, DefaultListen)
	o.adminListen = orDefault(c.AdminListen, DefaultAdminListen)
	var errs []error
	var hosts, ports [2]string
	for i, l := range []struct{ field, addr string }{{"listen", o.listen}, {"admin_listen", o.adminListen}} {
		var err error
		if hosts[i], ports[i], err = net.SplitHostPort(l.addr); err != nil {
			errs = append(errs, cfgErr(l.field, "%q is not a host:port address (e.g. \":8080\" or \"127.0.0.1:8080\")", l.addr))
		}
	}
	// The same port on the same host, or on all interfaces and one of them
	// (":8081" and the default "127.0.0.1:8081"), cannot both be bound.
	if len(errs) == 0 && ports[0] == ports[1] && ports[0] != "0" &&
		(hosts[0] == hosts[1] || allInterfaces(hosts[0]) || allInterfaces(hosts[1])) {
		errs = append(errs, cfgErr("admin_listen", "%q overlaps the main listener's address %q; use another port", o.adminListen, o.listen))
	}
	return errors.Join(errs...)
}

func (o *compiled) compileUpstream(u UpstreamConfig) error {
	var errs []error
	if s := strings.TrimSpace(u.URL); s != "" {
		o.upstreamSet = true
		pu, err := url.Parse(s)
		switch {
		case err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "":
			errs = append(errs, cfgErr("upstream.url", "%q is not an absolute http(s) URL", s))
		case pu.User != nil || pu.RawQuery != "" || pu.Fragment != "":
			errs = append(errs, cfgErr("upstream.url", "must not have user info, a query or a fragment"))
		default:
			o.upstreamURL = pu
		}
	}
	var err error
	if o.upstreamTimeout, err = seconds("upstream.timeout_seconds", u.TimeoutSeconds, DefaultUpstreamTimeoutSeconds, 3600); err != nil {
		errs = append(errs, err)
	}
	if o.connectTimeout, err = seconds("upstream.connect_timeout_seconds", u.ConnectTimeoutSeconds, DefaultConnectTimeoutSeconds, 300); err != nil {
		errs = append(errs, err)
	}
	switch {
	case u.MaxIdleConnsPerHost == 0:
		o.maxIdlePerHost = DefaultMaxIdleConnsPerHost
	case u.MaxIdleConnsPerHost < 0 || u.MaxIdleConnsPerHost > 10000:
		errs = append(errs, cfgErr("upstream.max_idle_conns_per_host", "must be between 1 and 10000, got %d", u.MaxIdleConnsPerHost))
	default:
		o.maxIdlePerHost = u.MaxIdleConnsPerHost
	}
	o.preserveHost, o.trustForwarded = u.PreserveHost, u.TrustForwardedHeaders
	return errors.Join(errs...)
}

func (o *compiled) compileForwardAuth(f ForwardAuthConfig) error {
	o.fwdEnabled = !o.upstreamSet
	if f.Enabled != nil {
		o.fwdEnabled = *f.Enabled
	}
	var errs []error
	if !o.fwdEnabled && !o.upstreamSet && o.grpc == nil {
		errs = append(errs, cfgErr("forward_auth.enabled", "is false and neither upstream.url nor grpc.listen is set: the sidecar would have nothing to serve"))
	}
	o.fwdPath = orDefault(f.Path, DefaultForwardAuthPath)
	if err := authz.CheckPrefix(o.fwdPath); err != nil {
		errs = append(errs, cfgErr("forward_auth.path", "%v", err))
	} else if o.fwdPath == "/" || strings.HasSuffix(o.fwdPath, "/") {
		errs = append(errs, cfgErr("forward_auth.path", "%q must not be \"/\" nor end with \"/\" (e.g. \"/auth\")", o.fwdPath))
	}
	var err error
	if o.uriHeaders, err = headerList("forward_auth.uri_headers", f.URIHeaders, DefaultURIHeaders); err != nil {
		errs = append(errs, err)
	}
	if o.methodHeaders, err = headerList("forward_auth.method_headers", f.MethodHeaders, DefaultMethodHeaders); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// headerList validates header names, or returns def when names is nil
// (omitted); an empty list stays empty.
func headerList(field string, names, def []string) ([]string, error) {
	if names == nil {
		names = def
	}
	out := make([]string, 0, len(names))
	for i, n := range names {
		n = strings.TrimSpace(n)
		if n == "" || !authz.ValidMethod(n) { // a header name is a token, like a method
			return nil, cfgErr(fmt.Sprintf("%s[%d]", field, i), "%q is not a header name", names[i])
		}
		out = append(out, textproto.CanonicalMIMEHeaderKey(n))
	}
	return out, nil
}

func (o *compiled) compileServer(s ServerConfig) error {
	var errs []error
	var err error
	if o.readHeaderTimeout, err = seconds("server.read_header_timeout_seconds", s.ReadHeaderTimeoutSeconds, DefaultReadHeaderTimeoutSeconds, 600); err != nil {
		errs = append(errs, err)
	}
	if o.idleTimeout, err = seconds("server.idle_timeout_seconds", s.IdleTimeoutSeconds, DefaultIdleTimeoutSeconds, 3600); err != nil {
		errs = append(errs, err)
	}
	if o.shutdownTimeout, err = seconds("server.shutdown_timeout_seconds", s.ShutdownTimeoutSeconds, DefaultShutdownTimeoutSeconds, 3600); err != nil {
		errs = append(errs, err)
	}
	if o.bodyReadTimeout, err = seconds("server.body_read_timeout_seconds", s.BodyReadTimeoutSeconds, DefaultBodyReadTimeoutSeconds, 3600); err != nil {
		errs = append(errs, err)
	}
	if o.maxConnections, err = count("server.max_connections", s.MaxConnections, DefaultMaxConnections, 1, maxMaxConnections); err != nil {
		errs = append(errs, err)
	}
	if o.maxHeaderBytes, err = count("server.max_header_bytes", s.MaxHeaderBytes, DefaultMaxHeaderBytes, 4096, 16<<20); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (o *compiled) compileLog(l LogConfig) error {
	var errs []error
	lvl := strings.ToLower(orDefault(l.Level, DefaultLogLevel))
	switch lvl {
	case "debug", "info", "warn", "error":
		o.logLevel, _ = zapcore.ParseLevel(lvl)
	default:
		errs = append(errs, cfgErr("log.level", "must be debug, info, warn or error, got %q", l.Level))
	}
	o.logFormat = strings.ToLower(orDefault(l.Format, DefaultLogFormat))
	if o.logFormat != "json" && o.logFormat != "console" {
		errs = append(errs, cfgErr("log.format", "must be json or console, got %q", l.Format))
	}
	return errors.Join(errs...)
}

func cfgErr(field, format string, a ...any) error {
	return &policy.ConfigError{Field: field, Msg: fmt.Sprintf(format, a...)}
}

// compileGate compiles the request layer: routes over the shared policy,
// token sources, identity headers and the upstream JWT signer.
func (o *compiled) compileGate(c *Config, deps policy.Deps, clock func() time.Time) error {
	deps.Clock = clock
	if deps.Clock == nil {
		deps.Clock = time.Now
	}
	g, err := CompileGate(c, deps)
	if err != nil {
		return err
	}
	if s := g.Signer(); s != nil {
		switch p := s.JWKSPath(); p {
		case "/healthz", "/readyz", "/metrics":
			return cfgErr("upstream_jwt.jwks_path", "%q is already served by the admin listener", p)
		}
	}
	o.gate = g
	return nil
}

// CompileGate compiles the request layer of a sidecar configuration, as the
// sidecar runs it (keycloak-jwt-explain judges requests with it).
func CompileGate(c *Config, deps policy.Deps) (*authz.Gate, error) {
	return authz.Compile(authz.Spec{Config: c.Config, Policy: c.Policy, Routes: c.Routes,
		Headers: c.UpstreamHeaders, JWT: c.UpstreamJWT},
		authz.Options{Deps: deps, PolicyField: "policy", Owned: []string{RequestIDHeader}})
}

// seconds converts a *_seconds field (0 = default) to a duration.
func seconds(field string, v, def, maxV int) (time.Duration, error) {
	switch {
	case v == 0:
		v = def
	case v < 0 || v > maxV:
		return 0, cfgErr(field, "must be between 1 and %d, got %d", maxV, v)
	}
	return time.Duration(v) * time.Second, nil
}

func orDefault(v, def string) string {
	if v = strings.TrimSpace(v); v == "" {
		return def
	}
	return v
}
