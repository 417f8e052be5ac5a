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
)

// forward is what the Rewrite of one allowed (or public) request adds.
type forward struct {
	ev     *event
	values [][2]string // identity headers
	jwt    string      // signed upstream JWT, "" when none
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

// newReverseProxy builds the reverse proxy to the upstream URL.
func (s *Server) newReverseProxy() *httputil.ReverseProxy {
	s.transport = &http.Transport{
		Proxy: nil, // the upstream is addressed directly, never through HTTP_PROXY
		DialContext: (&net.Dialer{
			Timeout:   s.c.connectTimeout,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          s.c.maxIdlePerHost * 2,
		MaxIdleConnsPerHost:   s.c.maxIdlePerHost,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   s.c.connectTimeout,
		ResponseHeaderTimeout: s.c.upstreamTimeout,
		ExpectContinueTimeout: time.Second,
	}
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
	allowed, jwt, denied := s.decide(r, r.Method, r.URL.Path, ev)
	if denied != nil {
		s.writeDecision(w, denied)
		return
	}
	fw := &forward{ev: ev, jwt: jwt}
	if allowed != nil {
		fw.values = s.c.headers.Values(allowed)
	}
	s.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), forwardKey{}, fw)))
}

// rewrite builds the outbound request. ReverseProxy has already removed the
// hop-by-hop headers and Forwarded / X-Forwarded-*; client-supplied copies
// of every identity header (and of the upstream JWT header) are removed
// here, on every request, before the allowed values are set.
func (s *Server) rewrite(pr *httputil.ProxyRequest) {
	fw, _ := pr.In.Context().Value(forwardKey{}).(*forward)
	if fw == nil { // unreachable; fail closed: an unroutable URL makes the transport fail (502)
		pr.Out.URL.Host = ""
		return
	}
	in, out := pr.In.Header, pr.Out.Header
	if s.c.trustForwarded {
		if prior := in.Values("X-Forwarded-For"); len(prior) > 0 {
			out["X-Forwarded-For"] = append([]string(nil), prior...)
		}
	}
	pr.SetURL(s.c.upstreamURL)
	if s.c.preserveHost {
		pr.Out.Host = pr.In.Host
	}
	pr.SetXForwarded()
	if s.c.trustForwarded {
		for _, h := range []string{"X-Forwarded-Host", "X-Forwarded-Proto"} {
			if v := in.Get(h); v != "" {
				out.Set(h, v)
			}
		}
	}
	for _, name := range s.c.strip {
		out.Del(name)
	}
	for name := range out {
		if s.c.lookalikes.Match(name) {
			delete(out, name)
		}
	}
	if s.c.headers.StripAuthorization() {
		out.Del("Authorization")
	}
	for _, kv := range fw.values {
		out.Set(kv[0], kv[1])
	}
	if fw.jwt != "" {
		out.Set(s.c.signer.Header(), fw.jwt)
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
