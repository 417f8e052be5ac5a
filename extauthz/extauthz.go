// Package extauthz serves Envoy's external authorization gRPC service
// (envoy.service.auth.v3.Authorization/Check, the default of Envoy's
// ext_authz filter and of Istio's CUSTOM authorization) on the request
// layer. It only translates: the CheckRequest's method, path and headers
// become an authz.Request, and the gate's Result becomes an OkHttpResponse
// (the headers to set, overwriting, and the headers to remove) or a
// DeniedHttpResponse (status, WWW-Authenticate, body).
//
// What Envoy sends: attributes.request.http carries the method, the path as
// it appears in the request line (query included, not decoded) and the
// headers with lower-case names, repeated lines joined with ","; with
// encode_raw_headers the headers come one line per entry in header_map
// instead. The pseudo-headers :method, :path, :authority and :scheme are
// among the headers; they describe the request, they are not header lines,
// so they are checked against the method and path and never reach the
// request layer as headers.
//
// The checked path is the path this Envoy received, which is the path the
// protected service receives (unless this Envoy's own route rewrites it
// after the check). x-envoy-original-path, set by an Envoy in front that
// rewrote the path (or by a client, as Envoy does not sanitize it), is not
// what the service serves and is not used for the decision.
//
// Every answer is a CheckResponse, never a gRPC error: Envoy lets a request
// through on an error when failure_mode_allow is set.
package extauthz

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/keycloak-jwt/keycloak-jwt/authz"
	"github.com/keycloak-jwt/keycloak-jwt/tracing"
)

// Check is what one Check call did, for the caller's logs and metrics.
type Check struct {
	// ID is Envoy's request id (x-request-id), "" when absent.
	ID string
	// Method and Path are the checked method and decoded path ("" when the
	// request could not be read).
	Method, Path string
	// Result is the request layer's judgement.
	Result *authz.Result
	// Status is the HTTP status Envoy answers with on a denial, 200 when
	// allowed.
	Status int
	// Elapsed is the time spent in Check.
	Elapsed time.Duration
}

// Options are the adapter's hooks.
type Options struct {
	// Observe, when set, is called once per Check after the answer is built.
	Observe func(context.Context, *Check)
}

// Server implements authv3.AuthorizationServer.
type Server struct {
	authv3.UnimplementedAuthorizationServer
	gate    func() *authz.Gate
	observe func(context.Context, *Check)
}

// New returns a Server that asks gate() for the gate of every request (so
// a caller can swap the gate, e.g. on a configuration reload).
func New(gate func() *authz.Gate, o Options) *Server {
	return &Server{gate: gate, observe: o.Observe}
}

// Register registers the Authorization service on g.
func (s *Server) Register(g *grpc.Server) { authv3.RegisterAuthorizationServer(g, s) }

// ServiceName is the gRPC service name, for the health service.
const ServiceName = "envoy.service.auth.v3.Authorization"

// Check judges one request.
func (s *Server) Check(ctx context.Context, in *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	start := time.Now()
	g := s.gate()
	httpReq := in.GetAttributes().GetRequest().GetHttp()
	c := &Check{ID: requestID(httpReq)}
	req, err := translate(httpReq)
	if err != nil {
		c.Result = g.Refuse(http.StatusBadRequest, authz.ReasonBadForwardAuth,
			"The authorization request does not describe the request", err.Error())
	} else {
		c.Method, c.Path = req.Method, req.Path
		if tracing.Enabled() {
			c.Result = judgeTraced(ctx, g, req, httpReq)
		} else {
			c.Result = g.Judge(ctx, req)
		}
	}
	out := s.response(c.Result)
	c.Status = http.StatusOK
	if !c.Result.Allow {
		c.Status = c.Result.Response.Status
	}
	c.Elapsed = time.Since(start)
	if s.observe != nil {
		s.observe(ctx, c)
	}
	return out, nil
}

// requestID is Envoy's request id: the id attribute, else x-request-id.
func requestID(h *authv3.AttributeContext_HttpRequest) string {
	if id := h.GetId(); id != "" {
		return id
	}
	return h.GetHeaders()["x-request-id"]
}

// translate turns Envoy's view of the request into the request layer's.
func translate(h *authv3.AttributeContext_HttpRequest) (*authz.Request, error) {
	if h == nil {
		return nil, errors.New("no attributes.request.http")
	}
	header, pseudo, err := headers(h)
	if err != nil {
		return nil, err
	}
	method, err := agree("method", h.GetMethod(), ":method", pseudo[":method"])
	if err != nil {
		return nil, err
	}
	target, err := agree("path", h.GetPath(), ":path", pseudo[":path"])
	if err != nil {
		return nil, err
	}
	if method == "" {
		return nil, errors.New("no method")
	}
	if target == "" {
		return nil, errors.New("no path")
	}
	rawPath, query, _ := strings.Cut(target, "?")
	rawPath, _, _ = strings.Cut(rawPath, "#")
	query, _, _ = strings.Cut(query, "#")
	// Decoded as the service will decode it; the request layer refuses a
	// path that is not canonical (dot segments, "//", ';', ...).
	path, err := url.PathUnescape(rawPath)
	if err != nil {
		return nil, errors.New("the path has an invalid percent-encoding")
	}
	// Envoy sets its own request id upstream: the sidecar's request-id
	// header is not the adapter's to set here (KeepAdapterHeaders).
	return &authz.Request{Method: method, Path: path, RawQuery: query, Header: header, KeepAdapterHeaders: true}, nil
}

// headers are the request's header lines by name as Envoy sent them
// (lower case), and its pseudo-headers apart. From header_map (with
// encode_raw_headers) each entry is one line; from headers each name is one
// value, repeated lines already joined with ",".
func headers(h *authv3.AttributeContext_HttpRequest) (map[string][]string, map[string]string, error) {
	pseudo := map[string]string{}
	if hm := h.GetHeaderMap(); hm != nil && len(hm.GetHeaders()) > 0 {
		out := make(map[string][]string, len(hm.GetHeaders()))
		for _, hv := range hm.GetHeaders() {
			v := string(hv.GetRawValue())
			if len(hv.GetRawValue()) == 0 {
				v = hv.GetValue()
			}
			if strings.HasPrefix(hv.GetKey(), ":") {
				if _, dup := pseudo[hv.GetKey()]; dup {
					return nil, nil, fmt.Errorf("pseudo-header %s appears twice", hv.GetKey())
				}
				pseudo[hv.GetKey()] = v
				continue
			}
			out[hv.GetKey()] = append(out[hv.GetKey()], v)
		}
		return out, pseudo, nil
	}
	out := make(map[string][]string, len(h.GetHeaders()))
	for k, v := range h.GetHeaders() {
		if strings.HasPrefix(k, ":") {
			pseudo[k] = v
			continue
		}
		out[k] = []string{v}
	}
	return out, pseudo, nil
}

// agree returns the attribute, or the pseudo-header when the attribute is
// empty; both present and different is an error.
func agree(attr, a, pseudoName, p string) (string, error) {
	switch {
	case a == "":
		return p, nil
	case p != "" && p != a:
		return "", fmt.Errorf("%s %q and %s %q disagree: refusing to guess which describes the request", attr, a, pseudoName, p)
	}
	return a, nil
}

// response renders the request layer's result as Envoy's answer.
func (s *Server) response(res *authz.Result) *authv3.CheckResponse {
	if res.Allow {
		ok := &authv3.OkHttpResponse{HeadersToRemove: res.Plan.Delete}
		for _, kv := range res.Plan.Set {
			ok.Headers = append(ok.Headers, overwrite(kv[0], kv[1]))
		}
		return &authv3.CheckResponse{
			Status:       &status.Status{Code: int32(codes.OK)},
			HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: ok},
		}
	}
	r := &res.Response
	denied := &authv3.DeniedHttpResponse{
		Status: &typev3.HttpStatus{Code: typev3.StatusCode(r.Status)},
		Body:   string(r.Body),
	}
	for _, kv := range r.Header {
		denied.Headers = append(denied.Headers, overwrite(kv[0], kv[1]))
	}
	return &authv3.CheckResponse{
		Status:       &status.Status{Code: int32(grpcCode(r.Status)), Message: res.Decision.Reason},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: denied},
	}
}

// overwrite is a header that replaces every value of its name. The
// deprecated append field stays unset, which Envoys from before
// append_action read as overwrite too.
func overwrite(name, value string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: name, Value: value},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}
}

// grpcCode is the CheckResponse status of a denial (Envoy denies on any
// code but OK; the code tells its logs why).
func grpcCode(httpStatus int) codes.Code {
	switch httpStatus {
	case http.StatusBadRequest:
		return codes.InvalidArgument
	case http.StatusUnauthorized:
		return codes.Unauthenticated
	case http.StatusForbidden:
		return codes.PermissionDenied
	}
	return codes.Internal
}
