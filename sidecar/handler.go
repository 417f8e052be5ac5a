package sidecar

import (
	"net"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/keycloak-jwt/keycloak-jwt/authz"
	"github.com/keycloak-jwt/keycloak-jwt/policy"
	"github.com/keycloak-jwt/keycloak-jwt/tracing"
)

// Modes of a request (the "mode" label).
const (
	modeProxy       = "proxy"
	modeForwardAuth = "forward_auth"
)

// event is what one request did, for its log line and metrics.
type event struct {
	c        *compiled // the live configuration when the request arrived
	rid      string
	mode     string
	method   string // the checked method (forward auth: the original one)
	path     string // the checked path
	route    string
	outcome  string
	reason   string
	decision *policy.Decision
	upstream error // the reverse proxy's error, if any
}

// ServeHTTP is the main listener's handler: forward auth when the request is
// for forward_auth.path (or when there is no reverse proxy), else the
// reverse proxy.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	s.metrics.inFlight.Inc()
	defer s.metrics.inFlight.Dec()

	// One configuration serves the whole request, even if a reload swaps
	// in another meanwhile.
	ev := &event{c: s.live.Load(), rid: requestID(r.Header.Get(RequestIDHeader)), method: r.Method, path: r.URL.Path}
	w.Header().Set(RequestIDHeader, ev.rid)
	rec := &recorder{ResponseWriter: w}
	defer s.finish(rec, r, ev, start)

	if meta, ok := ev.c.gate.Metadata(r.URL.Path); ok && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		ev.mode = modeProxy // the protected resource metadata (RFC 9728), answered here
		writeResponse(rec, &meta)
		return
	}
	if s.isForwardAuth(ev.c, r.URL.Path) {
		ev.mode = modeForwardAuth
		s.serveForwardAuth(rec, r, ev)
		return
	}
	ev.mode = modeProxy
	s.serveProxy(rec, r, ev)
}

// judge asks the request layer about the request as checked (for forward
// auth: the original method, path and query) and records the outcome.
func (s *Server) judge(r *http.Request, req *authz.Request, ev *event) *authz.Result {
	ev.method, ev.path = req.Method, req.Path
	if tracing.Enabled() {
		return s.judgeTraced(r, req, ev)
	}
	res := ev.c.gate.Judge(r.Context(), req)
	ev.record(res)
	return res
}

// judgeTraced is judge inside a span, the child of the request's
// traceparent; the request's traceparent is then the span's, so that the
// reverse proxy passes it upstream.
func (s *Server) judgeTraced(r *http.Request, req *authz.Request, ev *event) *authz.Result {
	ctx, span := tracing.StartCheck(r.Context(), propagation.HeaderCarrier(r.Header), ev.mode)
	res := ev.c.gate.Judge(ctx, req)
	ev.record(res)
	tracing.EndCheck(span, res)
	tracing.Inject(ctx, propagation.HeaderCarrier(r.Header))
	return res
}

// record notes the result in the event.
func (ev *event) record(res *authz.Result) {
	ev.route, ev.reason, ev.decision = res.Route, res.Decision.Reason, &res.Decision
	switch {
	case res.Public:
		ev.outcome = outcomePublic
	case res.Allow:
		ev.outcome = outcomeAllow
	default:
		ev.outcome = outcomeDeny
	}
}

// finish records the request's metrics and writes its log line.
func (s *Server) finish(rec *recorder, r *http.Request, ev *event, start time.Time) {
	status := rec.status
	if status == 0 {
		status = http.StatusSwitchingProtocols // hijacked (upgrade) or nothing written
	}
	s.done(ev, status, start, time.Since(start), r.RemoteAddr)
}

// done records the metrics of a request (HTTP, or a gRPC check) and writes
// its log line: debug for allowed and public requests, info for denials,
// warn for upstream errors. The token and the query string are never
// logged. remoteAddr is the peer's host:port.
func (s *Server) done(ev *event, status int, start time.Time, elapsed time.Duration, remoteAddr string) {
	if ev.outcome != "" {
		route := ev.route
		if route == "" {
			route = "none"
		}
		s.metrics.decision(ev.mode, route, ev.outcome, ev.reason).Inc()
		if ev.outcome == outcomeDeny && s.c.statusPage {
			s.metrics.recent.add(start, ev.reason, route, status)
		}
	}
	s.metrics.observeDuration(ev.mode, status, elapsed.Seconds())

	lvl, msg := zapcore.DebugLevel, "request"
	switch {
	case ev.upstream != nil:
		lvl, msg = zapcore.WarnLevel, "upstream error"
	case ev.outcome == outcomeDeny && status >= 500:
		lvl, msg = zapcore.ErrorLevel, "request failed"
	case ev.outcome == outcomeDeny:
		lvl, msg = zapcore.InfoLevel, "request denied"
	}
	ce := s.log.Check(lvl, msg)
	if ce == nil {
		return
	}
	remote, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		remote = remoteAddr
	}
	fields := []zap.Field{
		zap.String("request_id", ev.rid), zap.String("mode", ev.mode),
		zap.String("method", ev.method), zap.String("path", ev.path),
		zap.String("route", ev.route), zap.Int("status", status),
		zap.String("outcome", ev.outcome), zap.String("reason", ev.reason),
		zap.Duration("duration", elapsed), zap.String("remote", remote),
	}
	if d := ev.decision; d != nil {
		if d.Detail != "" && !d.Allow {
			fields = append(fields, zap.String("detail", d.Detail))
		}
		if c := d.Claims; c != nil {
			fields = append(fields, zap.String("client_id", c.ClientID()), zap.String("jti", c.ID), zap.Bool("cached", d.CachedResult))
		}
	}
	if ev.upstream != nil {
		fields = append(fields, zap.Error(ev.upstream))
	}
	ce.Write(fields...)
}
