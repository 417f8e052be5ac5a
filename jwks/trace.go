package jwks

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// tracerScope is keycloak-jwt's instrumentation scope (tracing.Scope).
const tracerScope = "github.com/keycloak-jwt/keycloak-jwt"

// startFetchSpan starts the span of one key fetch (discovery when needed,
// then the JWKS). A fetch serves every request waiting for it and runs
// detached from them, so it is a trace of its own. Without a tracer
// provider (tracing off, or the Kong plugin) it is a no-op span.
func (s *Source) startFetchSpan() trace.Span {
	_, span := otel.Tracer(tracerScope).Start(context.Background(), "keycloak-jwt key fetch",
		trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("keycloak_jwt.issuer", s.spec.Issuer)))
	return span
}

func endFetchSpan(span trace.Span, set *KeySet, err error) {
	if !span.IsRecording() {
		span.End()
		return
	}
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "key fetch failed")
	} else {
		span.SetAttributes(attribute.StringSlice("keycloak_jwt.kids", set.IDs()),
			attribute.Int("keycloak_jwt.skipped_keys", len(set.Skipped)))
	}
	span.End()
}
