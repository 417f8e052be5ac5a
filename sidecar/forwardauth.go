package sidecar

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/keycloak-jwt/keycloak-jwt/authz"
)

// isForwardAuth reports whether a request on the main listener is a
// forward-auth request: it is for forward_auth.path (or below it), or there
// is no reverse proxy at all.
func (s *Server) isForwardAuth(c *compiled, path string) bool {
	if !c.fwdEnabled {
		return false
	}
	return s.proxy == nil || authz.PrefixMatch(c.fwdPath, path)
}

// serveForwardAuth answers a forward-auth request: 200 with the identity
// headers (and the upstream JWT) when the original request is allowed, 200
// without them for a public route, else the request layer's denial. The
// body of an allowed answer is empty. The proxy forwards the original
// request itself, so nothing can be removed from it: the request layer
// refuses a request that carries copies of the headers the gateway sets.
func (s *Server) serveForwardAuth(w http.ResponseWriter, r *http.Request, ev *event) {
	req, err := ev.c.originalRequest(r)
	if err != nil {
		res := ev.c.gate.Refuse(http.StatusBadRequest, authz.ReasonBadForwardAuth,
			"The forward-auth request does not identify the original request", err.Error())
		ev.record(res)
		writeResponse(w, &res.Response)
		return
	}
	res := s.judge(r, req, ev)
	if !res.Allow {
		writeResponse(w, &res.Response)
		return
	}
	h := w.Header()
	for _, kv := range res.Plan.Set {
		h.Set(kv[0], kv[1])
	}
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
}

// originalRequest works out the method, the canonical path and the query of
// the request a proxy asks about:
//
//   - the URI is in one of forward_auth.uri_headers (Traefik:
//     X-Forwarded-Uri; nginx: X-Original-URI), and/or it is the request
//     path itself: below forward_auth.path (Envoy with path_prefix), or any
//     path when there is no reverse proxy (Envoy without path_prefix);
//   - when the request itself carries the original path (Envoy), its own
//     method is the original one, and a method header that disagrees is
//     refused; otherwise the method is in one of forward_auth.method_headers
//     (Traefik: X-Forwarded-Method; nginx: X-Original-Method as configured),
//     else it is the request's own method (nginx auth_request).
//
// Every source present must agree; a conflict (for instance a client adding
// X-Forwarded-Uri to a request that nginx describes with X-Original-URI) is
// an error, and so is a request that names no original URI at all.
func (c *compiled) originalRequest(r *http.Request) (*authz.Request, error) {
	method, err := agree(r.Header, c.methodHeaders, func(v string) (string, error) {
		if !authz.ValidMethod(v) {
			return "", errors.New("not an HTTP method")
		}
		return v, nil
	})
	if err != nil {
		return nil, err
	}
	// Sources agree on the canonical path and the raw query.
	uri, err := agree(r.Header, c.uriHeaders, func(v string) (string, error) {
		p, err := authz.ParseOriginalURI(v)
		if _, q, ok := strings.Cut(v, "?"); ok {
			q, _, _ = strings.Cut(q, "#")
			p += "?" + q
		}
		return p, err
	})
	if err != nil {
		return nil, err
	}
	path, query, _ := strings.Cut(uri, "?")
	own := r.URL.Path // no reverse proxy: the request is the original one
	if authz.PrefixMatch(c.fwdPath, r.URL.Path) {
		own = strings.TrimPrefix(r.URL.Path, c.fwdPath) // "" when the request is for the endpoint itself
	}
	if own != "" {
		if err := authz.CheckPath(own); err != nil {
			return nil, fmt.Errorf("request path: %w", err)
		}
		if path != "" && path != own {
			return nil, fmt.Errorf("the original URI header names %q but the request path names %q", path, own)
		}
		if method != "" && method != r.Method {
			return nil, fmt.Errorf("a method header names %s but the request, which carries the original path, is %s", method, r.Method)
		}
		if uri == "" {
			query = r.URL.RawQuery
		}
		path, method = own, r.Method
	}
	if path == "" {
		return nil, fmt.Errorf("no original URI: send one of %s, or the original path below %s",
			strings.Join(c.uriHeaders, ", "), c.fwdPath)
	}
	if method == "" {
		method = r.Method
	}
	return &authz.Request{Method: method, Path: path, RawQuery: query, Header: r.Header, CannotStrip: true}, nil
}

// agree reads every value of the named headers through parse and returns
// the one value they agree on ("" when none is present).
func agree(h http.Header, names []string, parse func(string) (string, error)) (string, error) {
	var got, from string
	for _, name := range names {
		for _, raw := range h.Values(name) {
			raw = strings.TrimSpace(raw)
			if raw == "" {
				continue
			}
			v, err := parse(raw)
			if err != nil {
				return "", fmt.Errorf("%s: %w", name, err)
			}
			switch {
			case from == "":
				got, from = v, name
			case v != got:
				return "", fmt.Errorf("%s and %s disagree (%q, %q): refusing to guess which describes the request", from, name, got, v)
			}
		}
	}
	return got, nil
}
