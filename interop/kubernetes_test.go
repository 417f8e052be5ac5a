package interop

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	securityv1beta1 "istio.io/api/security/v1beta1"
	istiosecurityv1 "istio.io/client-go/pkg/apis/security/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"

	"github.com/keycloak-jwt/keycloak-jwt/authz"
	"github.com/keycloak-jwt/keycloak-jwt/internal/testkeys"
	"github.com/keycloak-jwt/keycloak-jwt/plugin"
	"github.com/keycloak-jwt/keycloak-jwt/policy"
	"github.com/keycloak-jwt/keycloak-jwt/sidecar"
)

// helmVersion is the Helm that renders the sidecar chart, built from its Go
// module (scripts/test.sh needs no other download) and cached.
const helmVersion = "v3.22.0"

const k8sDir = "deploy/kubernetes"

// kicPlugin is the Kong Ingress Controller's KongPlugin and
// KongClusterPlugin (configuration.konghq.com/v1), field for field as the
// controller's CRD declares them. Kong's Go module of these types
// (github.com/kong/kubernetes-configuration) does not resolve from the Go
// module proxy these checks use (403), so the fields are declared here; the
// decoding is as strict as with the real type.
type kicPlugin struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	ConsumerRef       string          `json:"consumerRef,omitempty"`
	Disabled          bool            `json:"disabled,omitempty"`
	Config            json.RawMessage `json:"config,omitempty"`
	ConfigFrom        *struct {
		SecretValue struct {
			Name      string `json:"name"`
			Key       string `json:"key"`
			Namespace string `json:"namespace,omitempty"` // KongClusterPlugin only
		} `json:"secretKeyRef"`
	} `json:"configFrom,omitempty"`
	ConfigPatches []struct {
		Path      string          `json:"path"`
		ValueFrom json.RawMessage `json:"valueFrom"`
	} `json:"configPatches,omitempty"`
	PluginName   string          `json:"plugin"`
	RunOn        string          `json:"run_on,omitempty"`
	Protocols    []string        `json:"protocols,omitempty"`
	Ordering     json.RawMessage `json:"ordering,omitempty"`
	InstanceName string          `json:"instance_name,omitempty"`
}

// kicConsumer is the controller's KongConsumer (configuration.konghq.com/v1).
type kicConsumer struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Username          string   `json:"username,omitempty"`
	CustomID          string   `json:"custom_id,omitempty"`
	Credentials       []string `json:"credentials,omitempty"`
	ConsumerGroups    []string `json:"consumerGroups,omitempty"`
}

// k8sObject is one decoded manifest.
type k8sObject struct {
	file string
	kind string
	meta metav1.ObjectMeta
	obj  any
}

// istioAuthz is security.istio.io/v1 AuthorizationPolicy: the envelope
// decoded strictly here, the spec with protojson (unknown fields are
// errors). Istio's own client-go type decodes its spec leniently.
type istioAuthz struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              json.RawMessage `json:"spec"`
}

var docSep = regexp.MustCompile(`(?m)^---[ \t]*$`)

// decodeManifests decodes every document of a multi-document YAML stream
// into the official Go type of its apiVersion and kind; unknown fields,
// duplicate fields and unknown kinds fail.
func decodeManifests(t *testing.T, file string, data []byte) []k8sObject {
	t.Helper()
	var out []k8sObject
	for i, doc := range docSep.Split(string(data), -1) {
		if strings.TrimSpace(stripComments(doc)) == "" {
			continue
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			t.Fatalf("%s: document %d: %v", file, i, err)
		}
		var obj any
		switch tm.APIVersion + " " + tm.Kind {
		case "v1 Secret":
			obj = &corev1.Secret{}
		case "v1 ConfigMap":
			obj = &corev1.ConfigMap{}
		case "v1 Service":
			obj = &corev1.Service{}
		case "v1 ServiceAccount":
			obj = &corev1.ServiceAccount{}
		case "apps/v1 Deployment":
			obj = &appsv1.Deployment{}
		case "networking.k8s.io/v1 Ingress":
			obj = &networkingv1.Ingress{}
		case "networking.k8s.io/v1 NetworkPolicy":
			obj = &networkingv1.NetworkPolicy{}
		case "gateway.networking.k8s.io/v1 GatewayClass":
			obj = &gatewayv1.GatewayClass{}
		case "gateway.networking.k8s.io/v1 Gateway":
			obj = &gatewayv1.Gateway{}
		case "gateway.networking.k8s.io/v1 HTTPRoute":
			obj = &gatewayv1.HTTPRoute{}
		case "configuration.konghq.com/v1 KongPlugin", "configuration.konghq.com/v1 KongClusterPlugin":
			obj = &kicPlugin{}
		case "configuration.konghq.com/v1 KongConsumer":
			obj = &kicConsumer{}
		case "security.istio.io/v1 AuthorizationPolicy":
			obj = &istioAuthz{}
		default:
			t.Fatalf("%s: document %d: %s %s is not a kind these checks know", file, i, tm.APIVersion, tm.Kind)
		}
		if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
			t.Fatalf("%s: document %d (%s): %v", file, i, tm.Kind, err)
		}
		o := k8sObject{file: file, kind: tm.Kind, obj: obj}
		switch v := obj.(type) {
		case *istioAuthz:
			var spec securityv1beta1.AuthorizationPolicy
			if err := (protojson.UnmarshalOptions{}).Unmarshal(v.Spec, &spec); err != nil {
				t.Fatalf("%s: AuthorizationPolicy %s spec: %v", file, v.Name, err)
			}
			// And Istio's own type reads it too.
			if err := yaml.Unmarshal([]byte(doc), &istiosecurityv1.AuthorizationPolicy{}); err != nil {
				t.Fatalf("%s: AuthorizationPolicy %s: %v", file, v.Name, err)
			}
			o.meta, o.obj = v.ObjectMeta, &spec
		default:
			js, _ := json.Marshal(obj)
			var m struct {
				Metadata metav1.ObjectMeta `json:"metadata"`
			}
			_ = json.Unmarshal(js, &m)
			o.meta = m.Metadata
		}
		if o.meta.Name == "" {
			t.Errorf("%s: document %d (%s) has no metadata.name", file, i, tm.Kind)
		}
		out = append(out, o)
	}
	return out
}

func stripComments(doc string) string {
	var b strings.Builder
	for line := range strings.SplitSeq(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// checkKeycloakJWTConfig passes a KongPlugin's config through the plugin's
// own check. A key file that exists only inside the gateway pod is the one
// problem tolerated.
func checkKeycloakJWTConfig(t *testing.T, where string, raw json.RawMessage) {
	t.Helper()
	_, err := plugin.ParseConfig(raw)
	for _, e := range authz.Errors(err) {
		var ce *policy.ConfigError
		if errors.As(e, &ce) && strings.HasPrefix(ce.Field, "upstream_jwt.private_key") {
			continue
		}
		t.Errorf("%s: %v", where, e)
	}
}

func readK8s(t *testing.T, rel string) []k8sObject {
	t.Helper()
	return decodeManifests(t, rel, readRepoFile(t, k8sDir+"/"+rel))
}

// TestKubernetesKong: the KongPlugin and KongClusterPlugin resources, the
// Ingresses and the Gateway API resources that use them, and the values
// for Kong's chart.
func TestKubernetesKong(t *testing.T) {
	plugins := readK8s(t, "kong/plugins.yaml")
	known := map[string]bool{} // "namespace/name" of KongPlugins, "/name" of KongClusterPlugins
	keycloak := 0
	var keySecret string
	for _, o := range plugins {
		switch o.kind {
		case "KongPlugin", "KongClusterPlugin":
			p := o.obj.(*kicPlugin)
			if o.kind == "KongClusterPlugin" && p.Namespace != "" {
				t.Errorf("KongClusterPlugin %s has a namespace", p.Name)
			}
			if o.kind == "KongClusterPlugin" && p.Annotations["kubernetes.io/ingress.class"] != "kong" {
				t.Errorf("KongClusterPlugin %s: the controller reads it only with kubernetes.io/ingress.class: kong", p.Name)
			}
			known[p.Namespace+"/"+p.Name] = true
			if p.PluginName == plugin.Name {
				keycloak++
				checkKeycloakJWTConfig(t, o.kind+" "+p.Name, p.Config)
			}
		case "Secret":
			keySecret = o.meta.Name
		case "KongConsumer":
			if c := o.obj.(*kicConsumer); c.Annotations["kubernetes.io/ingress.class"] != "kong" || c.Username == "" {
				t.Errorf("KongConsumer %s: needs kubernetes.io/ingress.class: kong and a username (the client id)", c.Name)
			}
		}
	}
	if keycloak < 3 {
		t.Errorf("%d keycloak-jwt plugin resources, want the two KongPlugins and the KongClusterPlugin", keycloak)
	}
	ref := func(where, ns, name string) {
		if !known[ns+"/"+name] && !known["/"+name] {
			t.Errorf("%s names plugin %q, which no KongPlugin in %s nor KongClusterPlugin defines", where, name, ns)
		}
	}
	for _, o := range readK8s(t, "kong/ingress.yaml") {
		ing := o.obj.(*networkingv1.Ingress)
		if ing.Spec.IngressClassName == nil || *ing.Spec.IngressClassName != "kong" {
			t.Errorf("Ingress %s: ingressClassName must be kong", ing.Name)
		}
		names := strings.Split(ing.Annotations["konghq.com/plugins"], ",")
		if !slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(n, "keycloak-jwt") }) {
			t.Errorf("Ingress %s uses no keycloak-jwt plugin", ing.Name)
		}
		for _, n := range names {
			ref("Ingress "+ing.Name, ing.Namespace, strings.TrimSpace(n))
		}
	}
	gw := readK8s(t, "kong/gateway.yaml")
	routes := 0
	for _, o := range gw {
		r, ok := o.obj.(*gatewayv1.HTTPRoute)
		if !ok {
			continue
		}
		routes++
		for i, rule := range r.Spec.Rules {
			jwt := false
			for _, f := range rule.Filters {
				if f.Type != gatewayv1.HTTPRouteFilterExtensionRef || f.ExtensionRef == nil {
					continue
				}
				if f.ExtensionRef.Group != "configuration.konghq.com" || f.ExtensionRef.Kind != "KongPlugin" {
					t.Errorf("HTTPRoute %s rule %d: ExtensionRef %s/%s", r.Name, i, f.ExtensionRef.Group, f.ExtensionRef.Kind)
				}
				ref(fmt.Sprintf("HTTPRoute %s rule %d", r.Name, i), r.Namespace, string(f.ExtensionRef.Name))
				jwt = jwt || strings.HasPrefix(string(f.ExtensionRef.Name), "keycloak-jwt")
			}
			if !jwt {
				t.Errorf("HTTPRoute %s rule %d is not protected by keycloak-jwt", r.Name, i)
			}
		}
	}
	if routes == 0 {
		t.Error("no HTTPRoute")
	}

	// The chart's values: the same plugin server as the Dockerfile's Kong
	// image, moved to the chart's prefix, and the key mounted where the
	// KongPlugin reads it.
	var values struct {
		Image struct {
			Repository, Tag string
		}
		Env           map[string]string `json:"env"`
		SecretVolumes []string          `json:"secretVolumes"`
	}
	if err := yaml.Unmarshal(readRepoFile(t, k8sDir+"/kong/values.yaml"), &values); err != nil {
		t.Fatal(err)
	}
	if values.Image.Tag == "" || values.Image.Tag == "latest" {
		t.Errorf("Kong image tag %q: pin it", values.Image.Tag)
	}
	kongPrefix := strings.TrimSuffix(values.Env["prefix"], "/")
	if kongPrefix == "" {
		t.Fatal("env.prefix must be set: the chart's Kong prefix is where the plugin server's socket goes")
	}
	var dockerEnv map[string]string
	for _, s := range parseDockerfile(t) {
		if s.Name == "kong" {
			dockerEnv = s.env()
		}
	}
	for k, want := range dockerEnv {
		if !strings.HasPrefix(k, "KONG_PLUGIN") {
			continue
		}
		key := strings.ToLower(strings.TrimPrefix(k, "KONG_"))
		want = strings.ReplaceAll(want, "/usr/local/kong", kongPrefix)
		if got := values.Env[key]; got != want {
			t.Errorf("values env.%s = %q, want %q (the Dockerfile's %s under the chart's prefix)", key, got, want, k)
		}
	}
	if !slices.Contains(values.SecretVolumes, keySecret) {
		t.Errorf("secretVolumes %v must mount the Secret %q", values.SecretVolumes, keySecret)
	}
	for _, o := range plugins {
		if p, ok := o.obj.(*kicPlugin); ok && p.PluginName == plugin.Name && bytes.Contains(p.Config, []byte("private_key_file")) {
			if !bytes.Contains(p.Config, []byte(`"/etc/secrets/`+keySecret+`/`)) {
				t.Errorf("%s %s reads its key outside /etc/secrets/%s/, where the chart mounts the Secret", o.kind, p.Name, keySecret)
			}
		}
	}
}

// TestKubernetesIstio: the AuthorizationPolicy names a provider that the
// mesh config defines, and that provider is the gRPC port of the sidecar
// chart rendered with values-istio.yaml.
func TestKubernetesIstio(t *testing.T) {
	var policies []*securityv1beta1.AuthorizationPolicy
	for _, o := range readK8s(t, "istio/authorizationpolicy.yaml") {
		policies = append(policies, o.obj.(*securityv1beta1.AuthorizationPolicy))
	}
	var values struct {
		MeshConfig json.RawMessage `json:"meshConfig"`
	}
	if err := yaml.UnmarshalStrict(readRepoFile(t, k8sDir+"/istio/meshconfig.yaml"), &values); err != nil {
		t.Fatal(err)
	}
	var mesh meshv1alpha1.MeshConfig
	if err := (protojson.UnmarshalOptions{}).Unmarshal(values.MeshConfig, &mesh); err != nil {
		t.Fatalf("meshConfig: %v", err)
	}
	providers := map[string]*meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyExternalAuthorizationGrpcProvider{}
	for _, p := range mesh.GetExtensionProviders() {
		if g := p.GetEnvoyExtAuthzGrpc(); g != nil {
			providers[p.GetName()] = g
		}
	}
	if len(policies) == 0 {
		t.Fatal("no AuthorizationPolicy")
	}
	for _, p := range policies {
		if p.GetAction() != securityv1beta1.AuthorizationPolicy_CUSTOM {
			t.Errorf("action %v, want CUSTOM", p.GetAction())
		}
		g := providers[p.GetProvider().GetName()]
		if g == nil {
			t.Fatalf("provider %q is not an envoyExtAuthzGrpc extension provider of the mesh config", p.GetProvider().GetName())
		}
		if g.GetFailOpen() {
			t.Error("failOpen: an unreachable keycloak-jwt would let every request through")
		}
		// The chart installed as README says: release keycloak-jwt-sidecar in namespace keycloak-jwt.
		objs := renderChart(t, "keycloak-jwt-sidecar", "keycloak-jwt", "-f", "values-istio.yaml")
		found := false
		for _, o := range objs {
			if s, ok := o.obj.(*corev1.Service); ok {
				host := s.Name + "." + "keycloak-jwt" + ".svc.cluster.local"
				for _, port := range s.Spec.Ports {
					found = found || (host == g.GetService() && int(port.Port) == int(g.GetPort()) && port.Name == "grpc")
				}
			}
		}
		if !found {
			t.Errorf("provider %s:%d is not the chart's gRPC service port", g.GetService(), g.GetPort())
		}
	}
}

// TestKubernetesSidecarChart renders the chart with helm template and
// decodes the output strictly; the rendered sidecar configuration passes
// the sidecar's own complete check.
func TestKubernetesSidecarChart(t *testing.T) {
	keyPEM := testECKeyPEM(t)
	keyFile := filepath.Join(t.TempDir(), "values-key.yaml")
	keyValues, _ := yaml.Marshal(map[string]any{"upstreamJWT": map[string]any{"enabled": true, "privateKey": keyPEM},
		"env": []map[string]string{{"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "http://otel-collector.monitoring.svc:4318"}}})
	if err := os.WriteFile(keyFile, keyValues, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		grpc bool
		key  bool
	}{
		{"defaults", nil, false, false},
		{"istio", []string{"-f", "values-istio.yaml"}, true, false},
		{"upstream JWT, tracing", []string{"-f", keyFile}, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs := renderChart(t, "kj", "orders", tc.args...)
			kinds := map[string]int{}
			for _, o := range objs {
				kinds[o.kind]++
			}
			want := map[string]int{"ConfigMap": 1, "Deployment": 1, "Service": 1, "ServiceAccount": 1, "NetworkPolicy": 1}
			if tc.key {
				want["Secret"] = 1
			}
			if fmt.Sprint(kinds) != fmt.Sprint(want) {
				t.Errorf("rendered %v, want %v", kinds, want)
			}
			for _, o := range objs {
				switch v := o.obj.(type) {
				case *appsv1.Deployment:
					checkSidecarDeployment(t, v, tc.grpc, tc.key)
				case *corev1.ConfigMap:
					checkRenderedConfig(t, v.Data["sidecar.yaml"], tc.grpc, tc.key, keyPEM)
				case *corev1.Secret:
					if !strings.Contains(v.StringData["private.pem"], "BEGIN PRIVATE KEY") {
						t.Error("the Secret does not carry the key")
					}
				case *networkingv1.NetworkPolicy:
					if len(v.Spec.PolicyTypes) != 2 || len(v.Spec.Egress) < 2 {
						t.Errorf("NetworkPolicy: types %v, %d egress rules (DNS, Keycloak, ...)", v.Spec.PolicyTypes, len(v.Spec.Egress))
					}
					ports := []int{}
					for _, r := range v.Spec.Ingress {
						for _, p := range r.Ports {
							ports = append(ports, p.Port.IntValue())
						}
					}
					if tc.grpc != slices.Contains(ports, 9001) || !slices.Contains(ports, 8080) {
						t.Errorf("NetworkPolicy ingress ports %v (gRPC %v)", ports, tc.grpc)
					}
				}
			}
		})
	}
	t.Run("upstream JWT without a key", func(t *testing.T) {
		out, err := helm(t, "template", "kj", repoPath(k8sDir+"/charts/keycloak-jwt-sidecar"), "--set", "upstreamJWT.enabled=true")
		if err == nil || !strings.Contains(string(out), "set upstreamJWT.privateKey") {
			t.Fatalf("helm template succeeded or said something else: %v\n%s", err, out)
		}
	})
}

func checkSidecarDeployment(t *testing.T, d *appsv1.Deployment, grpc, key bool) {
	t.Helper()
	pod := d.Spec.Template.Spec
	if pod.SecurityContext == nil || pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot {
		t.Error("pod: runAsNonRoot")
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("pod: the sidecar needs no service account token")
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers", len(pod.Containers))
	}
	c := pod.Containers[0]
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		t.Errorf("container securityContext %+v", sc)
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources %+v", c.Resources)
	}
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if ports["http"] != 8080 || ports["admin"] != 8081 || (ports["grpc"] == 9001) != grpc {
		t.Errorf("ports %v", ports)
	}
	for name, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		want := map[string]string{"liveness": "/healthz", "readiness": "/readyz"}[name]
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != want || p.HTTPGet.Port.String() != "admin" {
			t.Errorf("%s probe %+v, want GET %s on the admin port", name, p, want)
		}
	}
	if traced := slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "OTEL_EXPORTER_OTLP_ENDPOINT" }); traced != key {
		t.Errorf("env %v: the values' env must reach the container", c.Env)
	}
	mounted := false
	for _, m := range c.VolumeMounts {
		mounted = mounted || m.MountPath == "/etc/keycloak-jwt/upstream-jwt"
		if !m.ReadOnly {
			t.Errorf("mount %s is writable", m.MountPath)
		}
	}
	if mounted != key {
		t.Errorf("upstream-JWT key mounted %v, want %v", mounted, key)
	}
}

// checkRenderedConfig runs the sidecar's configuration, as the chart
// renders it, through the sidecar's complete check (every policy compiled,
// the key loaded).
func checkRenderedConfig(t *testing.T, cfgYAML string, grpc, key bool, keyPEM string) {
	t.Helper()
	if key {
		keyPath := filepath.Join(t.TempDir(), "private.pem")
		if err := os.WriteFile(keyPath, []byte(keyPEM), 0o600); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(cfgYAML, "/etc/keycloak-jwt/upstream-jwt/private.pem") {
			t.Fatalf("the config does not read the mounted key:\n%s", cfgYAML)
		}
		cfgYAML = strings.ReplaceAll(cfgYAML, "/etc/keycloak-jwt/upstream-jwt/private.pem", keyPath)
	}
	cfg, err := sidecar.ParseConfig([]byte(cfgYAML), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("rendered sidecar.yaml: %v\n%s", err, cfgYAML)
	}
	if cfg.AdminListen != ":8081" {
		t.Errorf("admin_listen %q: the probes and Prometheus reach it only on \":8081\"", cfg.AdminListen)
	}
	if (cfg.GRPC.Listen == ":9001") != grpc {
		t.Errorf("grpc.listen %q (gRPC %v)", cfg.GRPC.Listen, grpc)
	}
	if err := sidecar.Check(cfg); err != nil {
		t.Errorf("rendered sidecar.yaml: %v\n%s", err, cfgYAML)
	}
}

func testECKeyPEM(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(testkeys.WriteEC(t))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// renderChart runs helm template on the sidecar chart (in its directory,
// so that -f names its values files) and decodes the output.
func renderChart(t *testing.T, release, namespace string, args ...string) []k8sObject {
	t.Helper()
	out, err := helm(t, append([]string{"template", release, ".", "--namespace", namespace}, args...)...)
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, out)
	}
	return decodeManifests(t, "helm template "+strings.Join(args, " "), out)
}

func helm(t *testing.T, args ...string) ([]byte, error) {
	t.Helper()
	cmd := exec.Command(helmBinary(t), args...)
	cmd.Dir = repoPath(k8sDir + "/charts/keycloak-jwt-sidecar")
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	return buf.Bytes(), err
}

// helmBinary is Helm at helmVersion: $KEYCLOAK_JWT_HELM, else built once
// with go install from the Go module proxy into the cache
// (KEYCLOAK_JWT_CACHE, default ~/.cache/keycloak-jwt, as scripts/keycloak.sh).
func helmBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("KEYCLOAK_JWT_HELM"); p != "" {
		return p
	}
	cache := os.Getenv("KEYCLOAK_JWT_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			t.Fatal(err)
		}
		cache = filepath.Join(home, ".cache", "keycloak-jwt")
	}
	bin := filepath.Join(cache, "bin", "helm-"+helmVersion)
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	unlock, err := lockFile(bin + ".lock")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	gobin := t.TempDir()
	cmd := exec.Command("go", "install", "helm.sh/helm/v3/cmd/helm@"+helmVersion)
	cmd.Env = append(os.Environ(), "GOBIN="+gobin, "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building Helm %s from the Go module proxy: %v\n%s", helmVersion, err, out)
	}
	if err := os.Rename(filepath.Join(gobin, "helm"), bin); err != nil {
		t.Fatal(err)
	}
	return bin
}
