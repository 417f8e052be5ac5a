package sidecar

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// grpcYAML is the pure auth server with the gRPC listener on.
const grpcYAML = authOnlyYAML + `
grpc:
  listen: 127.0.0.1:0
  tls:
    cert_file: "${GRPC_CERT:-}"
    key_file: "${GRPC_KEY:-}"
    client_ca_file: "${GRPC_CA:-}"
`

func dialGRPC(t testing.TB, addr string, creds credentials.TransportCredentials) *grpc.ClientConn {
	t.Helper()
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// envoyCheck is a CheckRequest as Envoy's ext_authz filter sends it.
func envoyCheck(method, target, bearer string) *authv3.CheckRequest {
	h := map[string]string{":authority": "api.example.com", ":method": method, ":path": target, ":scheme": "http",
		"x-request-id": "rid-1", "x-forwarded-proto": "http"}
	if bearer != "" {
		h["authorization"] = "Bearer " + bearer
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{Id: "rid-1", Method: method, Path: target, Host: "api.example.com",
			Scheme: "http", Protocol: "HTTP/1.1", Size: -1, Headers: h}}}}
}

func healthOf(t testing.TB, conn *grpc.ClientConn, service string) healthpb.HealthCheckResponse_ServingStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		return healthpb.HealthCheckResponse_UNKNOWN
	}
	return r.GetStatus()
}

func TestGRPCListener(t *testing.T) {
	idp := sharedIdP(t)
	h := start(t, harnessOpt{yaml: grpcYAML})
	conn := dialGRPC(t, h.srv.GRPCAddr(), nil)
	waitFor(t, "gRPC health SERVING", 10*time.Second, func() bool {
		return healthOf(t, conn, "envoy.service.auth.v3.Authorization") == healthpb.HealthCheckResponse_SERVING &&
			healthOf(t, conn, "") == healthpb.HealthCheckResponse_SERVING
	})
	c := authv3.NewAuthorizationClient(conn)
	for _, tc := range []struct {
		method, target, client string
		status                 int
	}{
		{"GET", "/orders/1?x=1", "reports-job", 200},
		{"POST", "/orders", "reports-job", 403},
		{"GET", "/orders", "", 401},
		{"GET", "/nowhere", "reports-job", 403},
		{"GET", "/orders/./1", "reports-job", 400},
		{"GET", "/orders/%zz", "reports-job", 400},
		{"GET", "/healthz", "", 200},
	} {
		bearer := ""
		if tc.client != "" {
			bearer = token(t, idp, tc.client)
		}
		resp, err := c.Check(context.Background(), envoyCheck(tc.method, tc.target, bearer))
		if err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.target, err)
		}
		got := 200
		if d := resp.GetDeniedResponse(); d != nil {
			got = int(d.GetStatus().GetCode())
		}
		if got != tc.status {
			t.Fatalf("%s %s: %d, want %d: %v", tc.method, tc.target, got, tc.status, resp)
		}
	}
	m := get(t, h.admin+"/metrics")
	for _, series := range []string{
		`keycloak_jwt_decisions_total{mode="grpc",outcome="allow",reason="ok",route="GET /orders"}`,
		`keycloak_jwt_decisions_total{mode="grpc",outcome="deny",reason="no_route",route="none"}`,
		`keycloak_jwt_decisions_total{mode="grpc",outcome="deny",reason="bad_path",route="none"}`,
		`keycloak_jwt_decisions_total{mode="grpc",outcome="deny",reason="bad_forward_auth",route="none"}`,
		`keycloak_jwt_decisions_total{mode="grpc",outcome="public",reason="public",route="* /healthz"}`,
		`keycloak_jwt_request_duration_seconds_count{code="403",mode="grpc"}`,
	} {
		if _, err := metricValue(string(m.body), series); err != nil {
			t.Errorf("%v in:\n%s", err, grepLines(string(m.body), "mode=\"grpc\""))
		}
	}
	// Graceful stop: the server returns cleanly and the listener is gone.
	if err := h.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := c.Check(ctx, envoyCheck("GET", "/orders", "")); err == nil {
		t.Fatal("Check answered after shutdown")
	}
}

func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// testPKI writes a CA, a server certificate for 127.0.0.1 and a client
// certificate, both signed by the CA.
type testPKI struct {
	dir                           string
	caFile, serverCert, serverKey string
	clientCert                    tls.Certificate
	pool                          *x509.CertPool
	otherClient                   tls.Certificate // signed by another CA
	ca                            *x509.Certificate
	caKey                         *ecdsa.PrivateKey
}

func newPKI(t *testing.T) *testPKI {
	t.Helper()
	p := &testPKI{dir: t.TempDir(), pool: x509.NewCertPool()}
	ca, caKey := selfSigned(t, "test CA")
	p.ca, p.caKey = ca, caKey
	p.pool.AddCert(ca)
	p.caFile = writePEM(t, p.dir, "ca.pem", "CERTIFICATE", ca.Raw)
	srvDER, srvKey := issue(t, ca, caKey, "sidecar", x509.ExtKeyUsageServerAuth)
	p.serverCert = writePEM(t, p.dir, "server.pem", "CERTIFICATE", srvDER)
	keyDER, err := x509.MarshalECPrivateKey(srvKey)
	if err != nil {
		t.Fatal(err)
	}
	p.serverKey = writePEM(t, p.dir, "server-key.pem", "EC PRIVATE KEY", keyDER)
	cliDER, cliKey := issue(t, ca, caKey, "envoy", x509.ExtKeyUsageClientAuth)
	p.clientCert = tls.Certificate{Certificate: [][]byte{cliDER}, PrivateKey: cliKey}
	other, otherKey := selfSigned(t, "other CA")
	oDER, oKey := issue(t, other, otherKey, "intruder", x509.ExtKeyUsageClientAuth)
	p.otherClient = tls.Certificate{Certificate: [][]byte{oDER}, PrivateKey: oKey}
	return p
}

func selfSigned(t *testing.T, cn string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c, key
}

func issue(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, cn string, usage x509.ExtKeyUsage) ([]byte, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return der, key
}

func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	f := filepath.Join(dir, name)
	if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestGRPCMutualTLS(t *testing.T) {
	p := newPKI(t)
	h := start(t, harnessOpt{yaml: grpcYAML, env: map[string]string{"GRPC_CERT": p.serverCert, "GRPC_KEY": p.serverKey, "GRPC_CA": p.caFile}})
	addr := h.srv.GRPCAddr()
	check := func(creds credentials.TransportCredentials) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := authv3.NewAuthorizationClient(dialGRPC(t, addr, creds)).Check(ctx, envoyCheck("GET", "/healthz", ""))
		return err
	}
	if err := check(credentials.NewTLS(&tls.Config{RootCAs: p.pool, Certificates: []tls.Certificate{p.clientCert}})); err != nil {
		t.Fatalf("client with a certificate of the CA: %v", err)
	}
	if err := check(credentials.NewTLS(&tls.Config{RootCAs: p.pool})); err == nil {
		t.Fatal("a client without a certificate was served")
	}
	if err := check(credentials.NewTLS(&tls.Config{RootCAs: p.pool, Certificates: []tls.Certificate{p.otherClient}})); err == nil {
		t.Fatal("a client with another CA's certificate was served")
	}
	if err := check(nil); err == nil {
		t.Fatal("a plaintext client was served")
	}
}

func TestGRPCConfigErrors(t *testing.T) {
	p := newPKI(t)
	for _, c := range []struct{ yaml, want string }{
		{"grpc: {tls: {cert_file: x}}", "grpc.tls: is set but grpc.listen is empty"},
		{"grpc: {listen: nowhere}", "grpc.listen"},
		{"grpc: {listen: \"127.0.0.1:9100\"}\nlisten: \":9100\"", "overlaps listen"},
		{"grpc: {listen: \":8081\"}", "overlaps admin_listen"},
		{"grpc: {listen: \"127.0.0.1:9001\", tls: {cert_file: " + p.serverCert + "}}", "cert_file and key_file go together"},
		{"grpc: {listen: \"127.0.0.1:9001\", tls: {client_ca_file: " + p.caFile + "}}", "grpc.tls.client_ca_file: needs"},
		{"grpc: {listen: \"127.0.0.1:9001\", tls: {cert_file: " + p.serverCert + ", key_file: /nonexistent}}", "grpc.tls.cert_file"},
		{"grpc: {listen: \"127.0.0.1:9001\", tls: {cert_file: " + p.serverCert + ", key_file: " + p.serverKey + ", client_ca_file: " + p.serverKey + "}}", "holds no PEM certificate"},
	} {
		yaml := "policy: {issuers: [{issuer: \"https://idp.example/realms/r\"}], audiences: [a]}\n" + c.yaml
		cfg, err := ParseConfig([]byte(yaml), mapEnv(nil))
		if err == nil {
			err = Check(cfg)
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.yaml, err, c.want)
		}
	}
}

// BenchmarkEnvoyCheck is the load figure: the same allowed check (warm
// token cache) against one sidecar, over loopback, as Envoy asks it over
// gRPC (ext_authz grpc_service) and over HTTP forward auth (ext_authz
// http_service without path_prefix), 16 callers at a time. Each caller
// alternates the two, so both see the same machine (it is noisy): compare
// grpc-ns/check and http-ns/check, or their ratio grpc/http.
func BenchmarkEnvoyCheck(b *testing.B) {
	h := start(b, harnessOpt{yaml: grpcYAML})
	tok := token(b, sharedIdP(b), "orders-service")
	c := authv3.NewAuthorizationClient(dialGRPC(b, h.srv.GRPCAddr(), nil))
	req := envoyCheck("GET", "/orders/42", tok)
	viaGRPC := func() error {
		r, err := c.Check(context.Background(), req)
		if err == nil && r.GetOkResponse() == nil {
			err = fmt.Errorf("denied: %v", r)
		}
		return err
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.Cleanup(client.CloseIdleConnections)
	viaHTTP := func() error {
		req, _ := http.NewRequest("GET", h.url+"/orders/42", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	for _, send := range []func() error{viaGRPC, viaHTTP} {
		if err := send(); err != nil {
			b.Fatal(err)
		}
	}
	var grpcNS, httpNS atomic.Int64
	timed := func(send func() error, total *atomic.Int64) bool {
		t0 := time.Now()
		if err := send(); err != nil {
			b.Error(err)
			return false
		}
		total.Add(int64(time.Since(t0)))
		return true
	}
	b.SetParallelism(8) // 8 × GOMAXPROCS callers
	b.RunParallel(func(pb *testing.PB) {
		for i := 0; pb.Next(); i++ {
			first, second, t1, t2 := viaGRPC, viaHTTP, &grpcNS, &httpNS
			if i%2 == 1 {
				first, second, t1, t2 = viaHTTP, viaGRPC, &httpNS, &grpcNS
			}
			if !timed(first, t1) || !timed(second, t2) {
				return
			}
		}
	})
	g, ht := float64(grpcNS.Load())/float64(b.N), float64(httpNS.Load())/float64(b.N)
	b.ReportMetric(g, "grpc-ns/check")
	b.ReportMetric(ht, "http-ns/check")
	b.ReportMetric(g/ht, "grpc/http")
}

// TestGRPCReload: the gRPC listener judges with the live gate after a
// reload; the grpc section itself is restart-only.
func TestGRPCReload(t *testing.T) {
	idp := sharedIdP(t)
	h, file := reloadHarness(t, grpcYAML)
	c := authv3.NewAuthorizationClient(dialGRPC(t, h.srv.GRPCAddr(), nil))
	status := func() int {
		resp, err := c.Check(context.Background(), envoyCheck("POST", "/orders", token(t, idp, "reports-job")))
		if err != nil {
			t.Fatal(err)
		}
		if d := resp.GetDeniedResponse(); d != nil {
			return int(d.GetStatus().GetCode())
		}
		return 200
	}
	if got := status(); got != 403 {
		t.Fatalf("before the reload: %d", got)
	}
	next := strings.Replace(grpcYAML, "methods: [POST]\n    scopes_required: [orders:write]", "methods: [POST]\n    scopes_required: [orders:read]", 1)
	next = strings.Replace(next, "  listen: 127.0.0.1:0\n  tls:", "  listen: 127.0.0.1:1\n  tls:", 1)
	writeFile(t, file, next)
	res := h.srv.ReloadFile()
	if !res.Applied || strings.Join(res.RestartRequired, ",") != "grpc" {
		t.Fatalf("reload: %+v", res)
	}
	if got := status(); got != 200 {
		t.Fatalf("after the reload: %d", got)
	}
}

// TestGRPCHealthFollowsReadiness: NOT_SERVING while the realm's keys cannot
// be fetched (as /readyz answers 503), and the checks fail closed.
func TestGRPCHealthFollowsReadiness(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + ln.Addr().String() + "/realms/down"
	_ = ln.Close()
	h := start(t, harnessOpt{yaml: grpcYAML, env: map[string]string{"ISSUER": down}})
	conn := dialGRPC(t, h.srv.GRPCAddr(), nil)
	time.Sleep(300 * time.Millisecond) // past one readiness poll
	if st := healthOf(t, conn, "envoy.service.auth.v3.Authorization"); st != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("health %v with no keys", st)
	}
	if r := get(t, h.admin+"/readyz"); r.status != http.StatusServiceUnavailable {
		t.Fatalf("/readyz %d", r.status)
	}
	resp, err := authv3.NewAuthorizationClient(conn).Check(context.Background(), envoyCheck("GET", "/orders", "x.y.z"))
	if err != nil || resp.GetDeniedResponse().GetStatus().GetCode() != 401 {
		t.Fatalf("check without keys: %v %v", resp, err)
	}
}

// TestGRPCCertificateRotation: a certificate replaced in place is served
// from the next handshake on; one that does not load leaves the last good
// one serving.
func TestGRPCCertificateRotation(t *testing.T) {
	p := newPKI(t)
	h := start(t, harnessOpt{yaml: grpcYAML, env: map[string]string{"GRPC_CERT": p.serverCert, "GRPC_KEY": p.serverKey}})
	served := func() string {
		t.Helper()
		c, err := tls.Dial("tcp", h.srv.GRPCAddr(), &tls.Config{RootCAs: p.pool, NextProtos: []string{"h2"}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	first := served()
	// A new pair from the same CA, written over the files.
	der, key := issue(t, p.ca, p.caKey, "sidecar-2", x509.ExtKeyUsageServerAuth)
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Minute)
	writePEM(t, p.dir, "server.pem", "CERTIFICATE", der)
	writePEM(t, p.dir, "server-key.pem", "EC PRIVATE KEY", keyDER)
	for _, f := range []string{p.serverCert, p.serverKey} {
		if err := os.Chtimes(f, later, later); err != nil {
			t.Fatal(err)
		}
	}
	second := served()
	if first != "sidecar" || second != "sidecar-2" {
		t.Fatalf("served %q, then %q after the files were replaced", first, second)
	}
	// A broken key file: the last good pair keeps serving.
	if err := os.WriteFile(p.serverKey, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := served(); got != second {
		t.Fatalf("%q served after a broken key file, want %q", got, second)
	}
}
