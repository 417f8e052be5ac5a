package sidecar

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/keycloak-jwt/keycloak-jwt/authz"
	"github.com/keycloak-jwt/keycloak-jwt/jwks"
	"github.com/keycloak-jwt/keycloak-jwt/policy"
)

// Options are the process-level dependencies of a Server. The zero value is
// usable.
type Options struct {
	// Logger receives the server's logs; when nil one is built from the
	// configuration's log section (JSON or console on stderr).
	Logger *zap.Logger
	// Clock returns the current time; time.Now when nil. Policies, the key
	// cache and the upstream JWT signer share it.
	Clock func() time.Time
	// KeysTransport overrides the HTTP transport of key fetches (tests).
	KeysTransport http.RoundTripper
	// WarmRetry is the first delay between failed start-up key fetches
	// (doubling up to 30s); default 1s.
	WarmRetry time.Duration
	// ConfigFile is the file cfg was read from: ReloadFile re-reads it,
	// with Lookup (os.LookupEnv when nil) for its placeholders and the KJ_*
	// overrides, and /readyz reports its SHA-256.
	ConfigFile string
	Lookup     LookupEnv
}

// Server is a configured sidecar: the main handler (reverse proxy and
// forward auth) and the admin handler, sharing one key cache.
type Server struct {
	// c is the configuration the server started with: the listeners, the
	// server limits and the upstream transport, which only a restart
	// changes, come from it. Requests read live (see Reload).
	c         *compiled
	live      atomic.Pointer[compiled]
	reload    *reloader
	log       *zap.Logger
	now       func() time.Time
	keys      *jwks.Cache
	proxy     *httputil.ReverseProxy // nil without upstream.url
	transport *upstreamTransport
	metrics   *metrics
	limits    *limitMetrics
	admin     http.Handler
	warmRetry time.Duration

	draining    atomic.Bool
	ln, adminLn net.Listener
	grpcLn      net.Listener // nil without grpc.listen
	conns       *connLimiter // ln, bounded by server.max_connections
}

// Check validates cfg completely, as New does (every policy compiled, the
// upstream JWT key loaded), without fetching keys or listening. The error
// joins every problem found, each naming its field.
func Check(cfg *Config) error {
	keys := jwks.NewCache(jwks.Options{})
	_, err := compile(cfg, policy.Deps{Keys: keys, Logger: zap.NewNop()}, nil)
	return err
}

// New compiles cfg into a Server. It does not listen or fetch keys: Serve
// (or Listen) does.
func New(cfg *Config, o Options) (*Server, error) {
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.WarmRetry <= 0 {
		o.WarmRetry = time.Second
	}
	log := o.Logger
	if log == nil {
		// The log section is needed before the rest compiles: read it alone.
		var lc compiled
		if err := lc.compileLog(cfg.Log); err != nil {
			return nil, err
		}
		var err error
		if log, err = newLogger(lc.logLevel, lc.logFormat); err != nil {
			return nil, err
		}
	}
	keys := jwks.NewCache(jwks.Options{Logger: log.Named("jwks"), Clock: o.Clock, Transport: o.KeysTransport})
	// Policies get no logger: the server writes one line per request, with
	// the request id and the decision's reason and detail.
	deps := policy.Deps{Keys: keys, Clock: o.Clock, Logger: zap.NewNop(), TokenCaches: policy.NewTokenCaches()}
	c, err := compile(cfg, deps, o.Clock)
	if err != nil {
		return nil, err
	}
	s := &Server{c: c, log: log, now: o.Clock, keys: keys, warmRetry: o.WarmRetry}
	s.live.Store(c)
	s.reload = newReloader(deps, o.Clock, o.ConfigFile, o.Lookup)
	s.metrics = newMetrics(keys, func() []*authz.PolicyUse { return s.live.Load().gate.Policies() }, o.Clock)
	s.limits = newLimitMetrics()
	s.metrics.reg.MustRegister(s.limits.collectors()...)
	s.metrics.reg.MustRegister(s.reload.collectors()...)
	if c.upstreamURL != nil {
		s.proxy = s.newReverseProxy()
	}
	s.admin = s.newAdminHandler()
	return s, nil
}

// Handler is the main listener's handler (the Server itself).
func (s *Server) Handler() http.Handler { return s }

// Gate is the request layer of the live configuration: after a reload it
// is the new one. Call it per request (do not keep the result), so that a
// request is judged wholly by one configuration.
func (s *Server) Gate() *authz.Gate { return s.live.Load().gate }

// AdminHandler serves /healthz, /readyz, /metrics and the upstream JWKS.
func (s *Server) AdminHandler() http.Handler { return s.admin }

// Logger is the server's logger.
func (s *Server) Logger() *zap.Logger { return s.log }

// Listen binds the main and admin listeners (Serve calls it when needed).
// After it, Addr and AdminAddr report the bound addresses, which matters
// with port 0. The main listener keeps at most server.max_connections open.
func (s *Server) Listen() error {
	if s.ln != nil {
		return nil
	}
	ln, err := net.Listen("tcp", s.c.listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", s.c.listen, err)
	}
	adminLn, err := net.Listen("tcp", s.c.adminListen)
	if err != nil {
		_ = ln.Close()
		return fmt.Errorf("admin_listen %s: %w", s.c.adminListen, err)
	}
	if err := s.listenGRPC(); err != nil {
		_, _ = ln.Close(), adminLn.Close()
		return err
	}
	s.conns = newConnLimiter(ln, s.c.maxConnections, s.limits)
	s.ln, s.adminLn = s.conns, adminLn
	return nil
}

// allInterfaces reports whether a listen host is the wildcard address.
func allInterfaces(host string) bool {
	ip := net.ParseIP(host)
	return host == "" || ip != nil && ip.IsUnspecified()
}

// Addr is the main listener's address ("" before Listen).
func (s *Server) Addr() string { return addrOf(s.ln) }

// AdminAddr is the admin listener's address ("" before Listen).
func (s *Server) AdminAddr() string { return addrOf(s.adminLn) }

func addrOf(ln net.Listener) string {
	if ln == nil {
		return ""
	}
	return ln.Addr().String()
}

// Serve serves both listeners until ctx is done, then shuts down
// gracefully: /readyz turns 503, the main listener stops accepting and
// in-flight requests finish (within server.shutdown_timeout_seconds, after
// which their connections are closed), then the admin listener stops. Keys
// are fetched in the background from the start. Request bodies on both
// listeners have the idle timeout server.body_read_timeout_seconds. It
// returns nil after a clean shutdown.
func (s *Server) Serve(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	errLog := zap.NewStdLog(s.log.Named("http"))
	main := &http.Server{
		Handler:           limitBodyReads(s, s.c.bodyReadTimeout, s.limits.bodyTimeouts),
		ReadHeaderTimeout: s.c.readHeaderTimeout,
		IdleTimeout:       s.c.idleTimeout,
		MaxHeaderBytes:    s.c.maxHeaderBytes,
		ConnState:         s.conns.connState,
		ErrorLog:          errLog,
	}
	admin := &http.Server{
		Handler:           limitBodyReads(s.admin, s.c.bodyReadTimeout, s.limits.bodyTimeouts),
		ReadHeaderTimeout: s.c.readHeaderTimeout,
		IdleTimeout:       s.c.idleTimeout,
		MaxHeaderBytes:    s.c.maxHeaderBytes,
		ErrorLog:          errLog,
	}
	warmCtx, stopWarm := context.WithCancel(context.Background())
	defer stopWarm()
	go s.keepKeysWarm(warmCtx)

	errc := make(chan error, 3)
	go func() { errc <- main.Serve(s.ln) }()
	go func() { errc <- admin.Serve(s.adminLn) }()
	stopGRPC := s.serveGRPC(errc)
	s.log.Info("sidecar serving", zap.String("listen", s.Addr()), zap.String("admin_listen", s.AdminAddr()),
		zap.Stringer("upstream", urlStringer{s}), zap.Bool("forward_auth", s.c.fwdEnabled), zap.String("grpc_listen", s.GRPCAddr()))

	var failed error
	select {
	case <-ctx.Done():
	case err := <-errc:
		failed = fmt.Errorf("listener stopped: %w", err)
	}
	s.draining.Store(true)
	s.log.Info("shutting down: finishing in-flight requests", zap.Duration("timeout", s.c.shutdownTimeout))
	shCtx, cancel := context.WithTimeout(context.Background(), s.c.shutdownTimeout)
	defer cancel()
	var errs []error
	grpcStopped := make(chan error, 1)
	go func() { grpcStopped <- stopGRPC(shCtx) }()
	if err := main.Shutdown(shCtx); err != nil {
		_ = main.Close()
		errs = append(errs, fmt.Errorf("graceful shutdown of %s: %w", s.Addr(), err))
	}
	if err := <-grpcStopped; err != nil {
		errs = append(errs, err)
	}
	if err := admin.Shutdown(shCtx); err != nil {
		_ = admin.Close()
		errs = append(errs, fmt.Errorf("graceful shutdown of %s: %w", s.AdminAddr(), err))
	}
	if s.transport != nil {
		s.transport.CloseIdleConnections()
	}
	if failed != nil && !errors.Is(failed, http.ErrServerClosed) {
		errs = append(errs, failed)
	}
	err := errors.Join(errs...)
	if err == nil {
		s.log.Info("shut down cleanly")
	}
	return err
}

// urlStringer prints the upstream URL lazily (or "none").
type urlStringer struct{ s *Server }

func (u urlStringer) String() string {
	if u.s.c.upstreamURL == nil {
		return "none"
	}
	return u.s.c.upstreamURL.Redacted()
}

// keepKeysWarm fetches the keys of every configured realm until all are
// loaded (retrying with backoff: /readyz stays 503 meanwhile), then keeps
// them fresh every 30s even without traffic, so /readyz stays truthful.
func (s *Server) keepKeysWarm(ctx context.Context) {
	const steady = 30 * time.Second
	retry := s.warmRetry
	for {
		allReady := true
		for _, src := range s.live.Load().sources() {
			if src.Status().Ready {
				src.Fresh() // starts a background refresh when one is due
				continue
			}
			if err := src.Warm(ctx); err != nil {
				allReady = false
				if ctx.Err() != nil {
					return
				}
				s.log.Warn("fetching keys failed; retrying", zap.String("issuer", src.Issuer()),
					zap.Error(err), zap.Duration("retry_in", retry))
			}
		}
		wait := steady
		if !allReady {
			wait, retry = retry, min(retry*2, steady)
		} else {
			retry = s.warmRetry
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}
