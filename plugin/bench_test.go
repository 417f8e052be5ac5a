package plugin_test

import (
	"encoding/json"
	"sort"
	"testing"
	"time"

	"github.com/keycloak-jwt/keycloak-jwt/internal/kongsim"
	"github.com/keycloak-jwt/keycloak-jwt/internal/testidp"
)

// BenchmarkPluginSocket drives the real plugin binary through the
// plugin-server socket protocol, as Kong does, and reports PDK calls per
// request and the p99 of one access event. "baseline" is a plugin making
// the same two PDK calls without checking anything, so the difference is
// what keycloak-jwt adds:
//
//	go test -run '^$' -bench PluginSocket -benchtime 3s ./plugin/
func BenchmarkPluginSocket(b *testing.B) {
	idp, err := testidp.New(testidp.Options{Clients: clients})
	if err != nil {
		b.Fatal(err)
	}
	defer idp.Close()
	tok, _ := idp.Token("orders-service")
	base := map[string]any{"issuers": []map[string]any{{"issuer": idp.Issuer()}}, "audiences": []string{"orders-api"},
		"scopes_required": []string{"orders:read"}}
	noCache := map[string]any{"token_cache_size": 0}
	for k, v := range base {
		noCache[k] = v
	}
	cases := []struct {
		name, pkg, plugin string
		cfg               map[string]any
	}{
		{"baseline", "github.com/keycloak-jwt/keycloak-jwt/plugin/testdata/baseline", "baseline", map[string]any{}},
		{"keycloak-jwt-warm", "github.com/keycloak-jwt/keycloak-jwt/cmd/keycloak-jwt", "keycloak-jwt", base},
		{"keycloak-jwt-nocache", "github.com/keycloak-jwt/keycloak-jwt/cmd/keycloak-jwt", "keycloak-jwt", noCache},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			srv, err := kongsim.Start(kongsim.Build(b, tc.pkg))
			if err != nil {
				b.Fatal(err)
			}
			defer srv.Close()
			raw, _ := json.Marshal(tc.cfg)
			id, err := srv.StartInstance(tc.plugin, raw)
			if err != nil {
				b.Fatal(err)
			}
			req := kongsim.Request{Path: "/orders", Headers: bearer(tok)}
			if res, err := srv.HandleEvent(id, "access", req); err != nil || res.Exited {
				b.Fatalf("warm-up: %v %+v", err, res)
			}
			lat := make([]time.Duration, 0, b.N)
			calls := 0
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				start := time.Now()
				res, err := srv.HandleEvent(id, "access", req)
				lat = append(lat, time.Since(start))
				if err != nil || res.Exited {
					b.Fatalf("denied: %v", err)
				}
				calls += len(res.Calls)
			}
			b.StopTimer()
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			b.ReportMetric(float64(calls)/float64(b.N), "pdk-calls/op")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}
