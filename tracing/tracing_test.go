package tracing_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/keycloak-jwt/keycloak-jwt/internal/sidecartest"
	"github.com/keycloak-jwt/keycloak-jwt/internal/testidp"
	"github.com/keycloak-jwt/keycloak-jwt/tracing"
)

func TestSetupOffByDefault(t *testing.T) {
	for _, env := range []map[string]string{
		{},
		{"OTEL_SERVICE_NAME": "x", "OTEL_TRACES_SAMPLER": "always_on"},
		{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_TRACES_EXPORTER": "none"},
		{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_SDK_DISABLED": "true"},
	} {
		on, stop, err := tracing.Setup(context.Background(), "test", func(k string) (string, bool) { v, ok := env[k]; return v, ok })
		if err != nil || on || tracing.Enabled() {
			t.Errorf("%v: on %v, enabled %v, err %v", env, on, tracing.Enabled(), err)
		}
		_ = stop(context.Background())
	}
	for _, env := range []map[string]string{
		{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_TRACES_EXPORTER": "zipkin"},
		{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
	} {
		if _, _, err := tracing.Setup(context.Background(), "test", func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err == nil {
			t.Errorf("%v: accepted", env)
		}
	}
}

// collector is an OTLP/HTTP trace receiver.
type collector struct {
	mu    sync.Mutex
	spans []*tracev1.Span
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var req collectortrace.ExportTraceServiceRequest
	if r.URL.Path != "/v1/traces" || proto.Unmarshal(body, &req) != nil {
		http.Error(w, "bad export", http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			c.spans = append(c.spans, ss.Spans...)
		}
	}
	c.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-protobuf")
	b, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
	_, _ = w.Write(b)
}

func attrs(s *tracev1.Span) map[string]string {
	m := map[string]string{}
	for _, kv := range s.Attributes {
		m[kv.Key] = kv.Value.GetStringValue()
	}
	return m
}

const (
	traceID  = "4bf92f3577b34da6a3ce929d0e0e4736"
	parentID = "00f067aa0ba902b7"
)

// TestTraces: a request through the sidecar's proxy and a Check through
// its gRPC adapter, each with a traceparent, are spans of that trace with
// the decision as attributes; the upstream gets the check's span as its
// parent; the key fetch is a span; no span carries the token.
func TestTraces(t *testing.T) {
	col := &collector{}
	cs := httptest.NewServer(col)
	defer cs.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", cs.URL)
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "20")
	on, stop, err := tracing.Setup(context.Background(), "keycloak-jwt-sidecar", os.LookupEnv)
	if err != nil || !on {
		t.Fatalf("Setup: %v %v", on, err)
	}
	defer func() { _ = stop(context.Background()) }()

	idp, err := testidp.New(testidp.Options{Clients: []testidp.Client{
		{ID: "orders-service", Secret: "s", Scopes: []string{"orders:read"}, Audience: []string{"orders-api"}}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(idp.Close)
	var upstreamTP string
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { upstreamTP = r.Header.Get("Traceparent") }))
	defer api.Close()
	side := sidecartest.Start(t, `
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
upstream: {url: "${API}"}
grpc: {listen: 127.0.0.1:0}
policy:
  issuers: [{issuer: "${ISSUER}"}]
  audiences: [orders-api]
routes:
  - prefix: /orders
    scopes_required: [orders:read]
`, map[string]string{"API": api.URL, "ISSUER": idp.Issuer()})
	tok, err := idp.Token("orders-service")
	if err != nil {
		t.Fatal(err)
	}

	req, _ := http.NewRequest(http.MethodGet, "http://"+side.Addr()+"/orders/1", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Traceparent", "00-"+traceID+"-"+parentID+"-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(upstreamTP, "00-"+traceID+"-") || strings.Contains(upstreamTP, parentID) {
		t.Fatalf("status %d, upstream traceparent %q: want trace %s with the check's span as parent", resp.StatusCode, upstreamTP, traceID)
	}
	checkSpanID := strings.Split(upstreamTP, "-")[2]

	// A denied request without a traceparent: a trace of its own.
	resp, err = http.Get("http://" + side.Addr() + "/orders/1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	// gRPC: the parent from the call's metadata (Envoy's span).
	conn, err := grpc.NewClient(side.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	grpcParent := "1111111111111111"
	ctx := metadata.AppendToOutgoingContext(context.Background(), "traceparent", "00-"+traceID+"-"+grpcParent+"-01")
	if _, err := authv3.NewAuthorizationClient(conn).Check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: "GET", Path: "/orders/2", Host: "api", Scheme: "http", Protocol: "HTTP/1.1",
			Headers: map[string]string{":method": "GET", ":path": "/orders/2", ":authority": "api", "authorization": "Bearer " + tok},
		}}}}); err != nil {
		t.Fatal(err)
	}

	if err := stop(context.Background()); err != nil { // flushes
		t.Fatal(err)
	}
	if tracing.Enabled() {
		t.Error("still enabled after stop")
	}
	col.mu.Lock()
	defer col.mu.Unlock()
	var sawProxy, sawDeny, sawGRPC, sawFetch bool
	for _, s := range col.spans {
		a := attrs(s)
		for _, v := range a {
			if strings.Contains(v, tok) || strings.Contains(v, tok[strings.LastIndexByte(tok, '.')+1:]) {
				t.Errorf("span %s carries the token", s.Name)
			}
		}
		tid, sid, pid := hexOf(s.TraceId), hexOf(s.SpanId), hexOf(s.ParentSpanId)
		switch {
		case s.Name == "keycloak-jwt check" && a[tracing.AttrMode] == "proxy" && a[tracing.AttrOutcome] == "allow":
			sawProxy = tid == traceID && pid == parentID && sid == checkSpanID && a[tracing.AttrClientID] == "orders-service" && a[tracing.AttrRoute] != ""
		case s.Name == "keycloak-jwt check" && a[tracing.AttrMode] == "proxy":
			sawDeny = tid != traceID && a[tracing.AttrReason] == "no_token" && a[tracing.AttrOutcome] == "deny"
		case s.Name == "keycloak-jwt check" && a[tracing.AttrMode] == "grpc":
			sawGRPC = tid == traceID && pid == grpcParent && a[tracing.AttrClientID] == "orders-service"
		case s.Name == "keycloak-jwt key fetch":
			sawFetch = a["keycloak_jwt.issuer"] == idp.Issuer()
		}
	}
	if !sawProxy || !sawDeny || !sawGRPC || !sawFetch {
		for _, s := range col.spans {
			t.Logf("%s trace %s span %s parent %s %v", s.Name, hexOf(s.TraceId), hexOf(s.SpanId), hexOf(s.ParentSpanId), attrs(s))
		}
		t.Fatalf("proxy allow %v, proxy deny %v, grpc %v, key fetch %v", sawProxy, sawDeny, sawGRPC, sawFetch)
	}
}

func hexOf(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}
