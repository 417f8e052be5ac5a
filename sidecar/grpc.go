package sidecar

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"

	"github.com/keycloak-jwt/keycloak-jwt/extauthz"
)

// modeGRPC is the "mode" label of checks on the gRPC listener.
const modeGRPC = "grpc"

// grpcListener is the compiled grpc section (nil when off).
type grpcListener struct {
	listen string
	tls    *tls.Config // nil: plaintext
	files  string      // the TLS files, for settings
}

// settings identifies the section's values (a reload cannot change them).
func (g *grpcListener) settings() string {
	if g == nil {
		return ""
	}
	return g.listen + " " + g.files
}

// compileGRPC validates the grpc section. It runs after compileListeners.
func (o *compiled) compileGRPC(g GRPCConfig) error {
	listen := strings.TrimSpace(g.Listen)
	t := g.TLS
	if listen == "" {
		if t.CertFile != "" || t.KeyFile != "" || t.ClientCAFile != "" {
			return cfgErr("grpc.tls", "is set but grpc.listen is empty (the gRPC listener is off)")
		}
		return nil
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return cfgErr("grpc.listen", "%q is not a host:port address (e.g. \"127.0.0.1:9001\")", listen)
	}
	for _, other := range []struct{ field, addr string }{{"listen", o.listen}, {"admin_listen", o.adminListen}} {
		oh, op, err := net.SplitHostPort(other.addr)
		if err == nil && op == port && port != "0" && (oh == host || allInterfaces(oh) || allInterfaces(host)) {
			return cfgErr("grpc.listen", "%q overlaps %s %q; use another port", listen, other.field, other.addr)
		}
	}
	gl := &grpcListener{listen: listen, files: strings.Join([]string{t.CertFile, t.KeyFile, t.ClientCAFile}, " ")}
	var errs []error
	switch {
	case t.CertFile == "" && t.KeyFile == "" && t.ClientCAFile != "":
		errs = append(errs, cfgErr("grpc.tls.client_ca_file", "needs grpc.tls.cert_file and key_file (client certificates are verified over TLS)"))
	case (t.CertFile == "") != (t.KeyFile == ""):
		errs = append(errs, cfgErr("grpc.tls", "cert_file and key_file go together"))
	case t.CertFile != "":
		pair, err := loadKeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			errs = append(errs, cfgErr("grpc.tls.cert_file", "loading the certificate and key: %v", err))
			break
		}
		gl.tls = &tls.Config{GetCertificate: pair.get, MinVersion: tls.VersionTLS12}
		if t.ClientCAFile != "" {
			pem, err := os.ReadFile(t.ClientCAFile)
			pool := x509.NewCertPool()
			switch {
			case err != nil:
				errs = append(errs, cfgErr("grpc.tls.client_ca_file", "%v", err))
			case !pool.AppendCertsFromPEM(pem):
				errs = append(errs, cfgErr("grpc.tls.client_ca_file", "%s holds no PEM certificate", t.ClientCAFile))
			default:
				gl.tls.ClientCAs, gl.tls.ClientAuth = pool, tls.RequireAndVerifyClientCert
			}
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	o.grpc = gl
	return nil
}

// keyPair serves a certificate and key from files, read again at a
// handshake after either file changed (cert-manager and the kubelet replace
// mounted secrets in place). A pair that does not load keeps the last good
// one serving, and is tried again at the next handshake.
type keyPair struct {
	certFile, keyFile string

	mu    sync.Mutex
	cert  *tls.Certificate
	stamp string // the files' sizes and modification times when cert was read
}

func loadKeyPair(certFile, keyFile string) (*keyPair, error) {
	k := &keyPair{certFile: certFile, keyFile: keyFile, stamp: stamp(certFile, keyFile)}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	k.cert = &cert
	return k, nil
}

func (k *keyPair) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if st := stamp(k.certFile, k.keyFile); st != k.stamp {
		if cert, err := tls.LoadX509KeyPair(k.certFile, k.keyFile); err == nil {
			k.cert, k.stamp = &cert, st
		}
	}
	return k.cert, nil
}

// stamp identifies the current contents of files by size and modification
// time.
func stamp(files ...string) string {
	var b strings.Builder
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil {
			fmt.Fprintf(&b, "%d/%d;", fi.Size(), fi.ModTime().UnixNano())
		}
	}
	return b.String()
}

// listenGRPC binds the gRPC listener when configured.
func (s *Server) listenGRPC() error {
	if s.c.grpc == nil {
		return nil
	}
	ln, err := net.Listen("tcp", s.c.grpc.listen)
	if err != nil {
		return fmt.Errorf("grpc.listen %s: %w", s.c.grpc.listen, err)
	}
	s.grpcLn = ln
	return nil
}

// GRPCAddr is the gRPC listener's address ("" when off or before Listen).
func (s *Server) GRPCAddr() string { return addrOf(s.grpcLn) }

// serveGRPC serves Envoy's Authorization service and the gRPC health
// service on the gRPC listener, sending the listener's end to errc. The
// health service answers SERVING (for "" and the Authorization service)
// while /readyz would answer 200. It returns the graceful stop: health
// turns NOT_SERVING, new calls are refused, calls in flight finish until
// ctx is done, then the connections are closed.
func (s *Server) serveGRPC(errc chan<- error) (stop func(ctx context.Context) error) {
	if s.grpcLn == nil {
		return func(context.Context) error { return nil }
	}
	var opts []grpc.ServerOption
	if s.c.grpc.tls != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(s.c.grpc.tls)))
	}
	g := grpc.NewServer(opts...)
	extauthz.New(s.Gate, extauthz.Options{Observe: s.observeCheck}).Register(g)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(g, hs)
	setHealth := func(ready bool) {
		st := healthpb.HealthCheckResponse_NOT_SERVING
		if ready {
			st = healthpb.HealthCheckResponse_SERVING
		}
		hs.SetServingStatus("", st)
		hs.SetServingStatus(extauthz.ServiceName, st)
	}
	setHealth(s.Ready())
	done := make(chan struct{})
	go func() { // readiness follows the keys (and draining)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				setHealth(s.Ready())
			}
		}
	}()
	go func() { errc <- g.Serve(s.grpcLn) }()
	return func(ctx context.Context) error {
		close(done)
		hs.Shutdown() // NOT_SERVING, and it stays so
		stopped := make(chan struct{})
		go func() { g.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
			return nil
		case <-ctx.Done():
			g.Stop()
			<-stopped
			return fmt.Errorf("graceful shutdown of %s: %w", s.GRPCAddr(), ctx.Err())
		}
	}
}

// observeCheck records one Check's metrics and log line, as for an HTTP
// request.
func (s *Server) observeCheck(ctx context.Context, c *extauthz.Check) {
	ev := &event{rid: c.ID, mode: modeGRPC, method: c.Method, path: c.Path}
	ev.record(c.Result)
	remote := ""
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		remote = p.Addr.String()
	}
	s.done(ev, c.Status, time.Now().Add(-c.Elapsed), c.Elapsed, remote)
}
