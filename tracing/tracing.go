// Package tracing lets the sidecar and its gRPC adapter take part in
// OpenTelemetry traces: W3C traceparent in (and out of the reverse proxy),
// one span around each check with the decision's reason and client id as
// attributes (never the token), and the key fetches of jwks as spans of
// their own. Export is OTLP over HTTP/protobuf, configured by the standard
// OTEL_* variables, and off unless an OTLP endpoint is set: until Setup
// turns it on, Enabled is false and the request paths skip tracing with
// one atomic load.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/keycloak-jwt/keycloak-jwt/authz"
)

// Scope is the instrumentation scope of every span keycloak-jwt starts.
const Scope = "github.com/keycloak-jwt/keycloak-jwt"

var enabled atomic.Bool

// Enabled reports whether Setup turned tracing on.
func Enabled() bool { return enabled.Load() }

// propagator reads and writes W3C traceparent and tracestate only.
var propagator = propagation.TraceContext{}

// Setup turns tracing on when the environment asks for it, the way the
// OpenTelemetry SDKs read it: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or
// OTEL_EXPORTER_OTLP_ENDPOINT set, OTEL_TRACES_EXPORTER unset or "otlp",
// OTEL_SDK_DISABLED not "true". The exporter then reads the other
// OTEL_EXPORTER_OTLP_* variables (headers, timeout, certificate,
// compression), the SDK OTEL_TRACES_SAMPLER(_ARG) (default: parentbased_always_on)
// and OTEL_BSP_*, the resource OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES
// (service.name defaults to service). Only OTEL_EXPORTER_OTLP_PROTOCOL
// http/protobuf is supported. It returns whether tracing is on and the
// function that flushes and stops it.
func Setup(ctx context.Context, service string, lookup func(string) (string, bool)) (bool, func(context.Context) error, error) {
	noop := func(context.Context) error { return nil }
	get := func(k string) string { v, _ := lookup(k); return strings.TrimSpace(v) }
	if strings.EqualFold(get("OTEL_SDK_DISABLED"), "true") {
		return false, noop, nil
	}
	switch exp := get("OTEL_TRACES_EXPORTER"); exp {
	case "", "otlp":
	case "none":
		return false, noop, nil
	default:
		return false, noop, fmt.Errorf("OTEL_TRACES_EXPORTER=%q: only otlp (or none) is supported", exp)
	}
	if get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" && get("OTEL_EXPORTER_OTLP_ENDPOINT") == "" {
		return false, noop, nil // off by default
	}
	proto := get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if proto == "" {
		proto = get("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	if proto != "" && proto != "http/protobuf" {
		return false, noop, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL=%q: only http/protobuf is supported", proto)
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return false, noop, fmt.Errorf("OTLP trace exporter: %w", err)
	}
	res, err := resource.New(ctx, resource.WithFromEnv(), resource.WithTelemetrySDK(),
		resource.WithAttributes(attribute.String("service.name", service)))
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return false, noop, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	if name := get("OTEL_SERVICE_NAME"); name != "" {
		res, _ = resource.Merge(res, resource.NewSchemaless(attribute.String("service.name", name)))
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagator)
	enabled.Store(true)
	return true, func(ctx context.Context) error {
		enabled.Store(false)
		return tp.Shutdown(ctx)
	}, nil
}

// Tracer is keycloak-jwt's tracer (a no-op one until Setup).
func Tracer() trace.Tracer { return otel.Tracer(Scope) }

// Attribute keys of the check span.
const (
	AttrOutcome  = "keycloak_jwt.outcome" // allow, deny or public
	AttrReason   = "keycloak_jwt.reason"  // the decision's reason code
	AttrClientID = "keycloak_jwt.client_id"
	AttrRoute    = "keycloak_jwt.route"
	AttrMode     = "keycloak_jwt.mode" // proxy, forward_auth or grpc
)

// StartCheck starts the span around one check, as a child of the
// traceparent carrier holds (a new trace without one). Call only when
// Enabled.
func StartCheck(ctx context.Context, carrier propagation.TextMapCarrier, mode string) (context.Context, trace.Span) {
	ctx = propagator.Extract(ctx, carrier)
	return Tracer().Start(ctx, "keycloak-jwt check",
		trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attribute.String(AttrMode, mode)))
}

// EndCheck records the result on the span and ends it: outcome, reason,
// route, client id and status; never the token or a claim besides the
// client id.
func EndCheck(span trace.Span, res *authz.Result) {
	outcome := "deny"
	switch {
	case res.Public:
		outcome = "public"
	case res.Allow:
		outcome = "allow"
	}
	attrs := []attribute.KeyValue{attribute.String(AttrOutcome, outcome), attribute.String(AttrRoute, res.Route)}
	if res.Decision.Reason != "" {
		attrs = append(attrs, attribute.String(AttrReason, res.Decision.Reason))
	}
	if id := res.Decision.ClientID(); id != "" {
		attrs = append(attrs, attribute.String(AttrClientID, id))
	}
	status := 200
	if !res.Allow {
		status = res.Response.Status
	}
	attrs = append(attrs, attribute.Int("http.response.status_code", status))
	span.SetAttributes(attrs...)
	if status >= 500 {
		span.SetStatus(codes.Error, res.Decision.Reason)
	}
	span.End()
}

// Inject writes the traceparent (and tracestate) of ctx's span into
// carrier, replacing what was there: the upstream sees the check's span as
// its parent.
func Inject(ctx context.Context, carrier propagation.TextMapCarrier) {
	propagator.Inject(ctx, carrier)
}
