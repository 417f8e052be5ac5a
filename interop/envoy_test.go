package interop

import (
	"os"
	"regexp"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	// The typed_config types of the documented configuration.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
)

// TestDocumentedEnvoyConfig decodes the Envoy configuration of CONFIG.md's
// grpc section into Envoy's bootstrap proto (unknown fields and types
// fail) and runs its validation rules: offline, no Envoy runs here.
func TestDocumentedEnvoyConfig(t *testing.T) {
	doc, err := os.ReadFile("../sidecar/CONFIG.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "\n## grpc\n")
	if !ok {
		t.Fatal(`CONFIG.md has no "## grpc" section`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	m := regexp.MustCompile("(?s)```yaml\n(static_resources:.*?)```").FindStringSubmatch(section)
	if m == nil {
		t.Fatal("the grpc section has no Envoy static_resources block")
	}
	js, err := yaml.YAMLToJSON([]byte(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	var b bootstrapv3.Bootstrap
	if err := protojson.Unmarshal(js, &b); err != nil {
		t.Fatalf("not an Envoy bootstrap: %v", err)
	}
	if err := b.ValidateAll(); err != nil {
		t.Fatalf("Envoy's validation rules: %v", err)
	}
	var authz, cluster bool
	for _, c := range b.GetStaticResources().GetClusters() {
		if c.GetName() == "keycloak-jwt" {
			hc := c.GetHealthChecks()
			cluster = len(hc) == 1 && hc[0].GetGrpcHealthCheck().GetServiceName() == "envoy.service.auth.v3.Authorization"
		}
	}
	authz = strings.Contains(string(js), "envoy.extensions.filters.http.ext_authz.v3.ExtAuthz") &&
		strings.Contains(string(js), `"failure_mode_allow":false`)
	if !authz || !cluster {
		t.Fatalf("ext_authz filter %v, cluster with the gRPC health check %v", authz, cluster)
	}
}
