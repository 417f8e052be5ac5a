package extauthz

import (
	"context"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"go.opentelemetry.io/otel/propagation"
	"google.golang.org/grpc/metadata"

	"github.com/keycloak-jwt/keycloak-jwt/authz"
	"github.com/keycloak-jwt/keycloak-jwt/tracing"
)

// judgeTraced is the check inside a span. Its parent is the traceparent
// of the Check call's gRPC metadata (Envoy's own ext_authz span, when
// Envoy traces), else the one of the request Envoy describes. Nothing is
// written back: Envoy propagates its own trace to the upstream, and an
// authorization server that set traceparent would cut it.
func judgeTraced(ctx context.Context, g *authz.Gate, req *authz.Request, h *authv3.AttributeContext_HttpRequest) *authz.Result {
	var carrier propagation.TextMapCarrier = propagation.MapCarrier(h.GetHeaders())
	if md, ok := metadata.FromIncomingContext(ctx); ok && len(md.Get("traceparent")) > 0 {
		carrier = mdCarrier(md)
	}
	ctx, span := tracing.StartCheck(ctx, carrier, "grpc")
	res := g.Judge(ctx, req)
	tracing.EndCheck(span, res)
	return res
}

// mdCarrier reads gRPC metadata (lower-case keys) as a TextMapCarrier.
type mdCarrier metadata.MD

func (m mdCarrier) Get(key string) string {
	if v := metadata.MD(m).Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}

func (m mdCarrier) Set(key, value string) { metadata.MD(m).Set(key, value) }

func (m mdCarrier) Keys() []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	return keys
}
