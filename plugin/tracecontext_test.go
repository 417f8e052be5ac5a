package plugin_test

import (
	"strings"
	"testing"

	"github.com/keycloak-jwt/keycloak-jwt/internal/kongsim"
)

// TestTraceContextPassesUnchanged: the plugin neither reads nor writes the
// W3C trace context; Kong's own tracing (or none) decides what the
// upstream gets. docs/tracing.md says so.
func TestTraceContextPassesUnchanged(t *testing.T) {
	h := start(t)
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	const ts = "vendor=opaque,other=1"
	for _, strip := range []bool{false, true} {
		id := h.instance(t, func(c map[string]any) {
			c["upstream_headers"] = map[string]any{"strip_authorization": strip}
		})
		req := kongsim.Request{Headers: map[string][]string{
			"Authorization": {"Bearer " + h.token(t, "orders-service")},
			"Traceparent":   {tp},
			"Tracestate":    {ts},
		}}
		res := access(t, h, id, req)
		if res.Exited {
			t.Fatalf("denied: %s", res.Body)
		}
		up := h.srv.UpstreamHeaders(res, req)
		if got := strings.Join(up.Values("Traceparent"), ","); got != tp {
			t.Errorf("strip %v: upstream traceparent %q, want %q", strip, got, tp)
		}
		if got := strings.Join(up.Values("Tracestate"), ","); got != ts {
			t.Errorf("strip %v: upstream tracestate %q, want %q", strip, got, ts)
		}
	}
}
