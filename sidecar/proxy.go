package sidecar

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/keycloak-jwt/keycloak-jwt/authz"
)

// forward is what the Rewrite of one allowed (or public) request needs.
type forward struct {
	ev  *event
	res *authz.Result
}

type forwardKey struct{}

// bufferPool recycles the 32 KiB buffers ReverseProxy copies bodies with.
// Without one it allocates a fresh buffer per request, which the profile
// showed as a third of the sidecar's garbage under load.
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if buf, ok := b.p.Get().(*[]byte); ok {
		return *buf
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(buf []byte) { b.p.Put(&buf) }

var copyBuffers = &bufferPool{}

// upstreamIdleTimeout closes kept-alive upstream connections idle this long.
const upstreamIdleTimeout = 90 * time.Second

// newReverseProxy builds the reverse proxy to the upstream URL.
func (s *Server) newReverseProxy() *httputil.ReverseProxy {
	dial := (&net.Dialer{
		Timeout:   s.c.connectTimeout,
		KeepAlive: 30 * time.Second,
	}).DialContext
	std := &http.Transport{
		Proxy:                 nil, // the upstream is addressed directly, never through HTTP_PROXY
		DialContext:           dial,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          s.c.maxIdlePerHost * 2,
		MaxIdleConnsPerHost:   s.c.maxIdlePerHost,
		IdleConnTimeout:       upstreamIdleTimeout,
		TLSHandshakeTimeout:   s.c.connectTimeout,
		ResponseHeaderTimeout: s.c.upstreamTimeout,
		ExpectContinueTimeout: time.Second,
	}
	s.transport = newUpstreamTransport(std, dial, s.c.upstreamTimeout, s.c.maxIdlePerHost, upstreamIdleTimeout)
	return &httputil.ReverseProxy{
		Rewrite:      s.rewrite,
		Transport:    s.transport,
		BufferPool:   copyBuffers,
		ErrorHandler: s.proxyError,
		ErrorLog:     log.New(zapWriter{s.log.Named("proxy")}, "", 0),
	}
}

// serveProxy checks a request and forwards it when allowed or public.
func (s *Server) serveProxy(w http.ResponseWriter, r *http.Request, ev *event) {
	if s.proxy == nil { // unreachable: without a proxy every request is forward auth
		writeMessage(w, http.StatusNotFound, "Not Found")
		return
	}
	res := s.judge(r, &authz.Request{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Header: r.Header}, ev)
	if !res.Allow {
		writeResponse(w, &res.Response)
		return
	}
	s.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), forwardKey{}, &forward{ev: ev, res: res})))
}

// rewrite builds the outbound request. ReverseProxy has already removed the
// hop-by-hop headers and Forwarded / X-Forwarded-*; the request layer's plan
// then removes client copies of every header the gateway sets (in every
// spelling) and sets the identity headers and the upstream JWT.
func (s *Server) rewrite(pr *httputil.ProxyRequest) {
	fw, _ := pr.In.Context().Value(forwardKey{}).(*forward)
	if fw == nil { // unreachable; fail closed: an unroutable URL makes the transport fail (502)
		pr.Out.URL.Host = ""
		return
	}
	in, out, c := pr.In.Header, pr.Out.Header, fw.ev.c
	if c.trustForwarded {
		if prior := in.Values("X-Forwarded-For"); len(prior) > 0 {
			out["X-Forwarded-For"] = append([]string(nil), prior...)
		}
	}
	pr.SetURL(c.upstreamURL)
	if c.preserveHost {
		pr.Out.Host = pr.In.Host
	}
	pr.SetXForwarded()
	if c.trustForwarded {
		for _, h := range []string{"X-Forwarded-Host", "X-Forwarded-Proto"} {
			if v := in.Get(h); v != "" {
				out.Set(h, v)
			}
		}
	}
	for _, k := range fw.res.Plan.Delete {
		delete(out, k)
	}
	for _, kv := range fw.res.Plan.Set {
		out.Set(kv[0], kv[1])
	}
	out.Set(RequestIDHeader, fw.ev.rid)
}

// proxyError answers a failed upstream exchange: 504 when the upstream did
// not answer within upstream.timeout_seconds, 502 otherwise.
func (s *Server) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	if fw, _ := r.Context().Value(forwardKey{}).(*forward); fw != nil {
		fw.ev.upstream = err
	}
	if r.Context().Err() != nil { // the client went away: nobody reads this
		s.metrics.upstreamErrors.WithLabelValues("client_gone").Inc()
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	if isTimeout(err) {
		s.metrics.upstreamErrors.WithLabelValues("timeout").Inc()
		writeMessage(w, http.StatusGatewayTimeout, "The upstream service did not respond in time")
		return
	}
	s.metrics.upstreamErrors.WithLabelValues("unavailable").Inc()
	writeMessage(w, http.StatusBadGateway, "The upstream service is unavailable")
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// zapWriter adapts the standard logger of httputil.ReverseProxy (body copy
// errors, suppressed panics) to zap at debug level.
type zapWriter struct{ l *zap.Logger }

func (z zapWriter) Write(p []byte) (int, error) {
	if ce := z.l.Check(zapcore.DebugLevel, "reverse proxy"); ce != nil {
		ce.Write(zap.ByteString("detail", p))
	}
	return len(p), nil
}

var _ io.Writer = zapWriter{}
