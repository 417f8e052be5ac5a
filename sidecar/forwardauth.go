package sidecar

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/keycloak-jwt/keycloak-jwt/policy"
)

// isForwardAuth reports whether a request on the main listener is a
// forward-auth request: it is for forward_auth.path (or below it), or there
// is no reverse proxy at all.
func (s *Server) isForwardAuth(path string) bool {
	if !s.c.fwdEnabled {
		return false
	}
	return s.proxy == nil || prefixMatch(s.c.fwdPath, path)
}

// serveForwardAuth answers a forward-auth request: 200 with the identity
// headers (and the upstream JWT) when the original request is allowed, 200
// without them for a public route, else the decision's status, challenge
// and JSON body. The body of an allowed answer is empty.
func (s *Server) serveForwardAuth(w http.ResponseWriter, r *http.Request, ev *event) {
	method, path, err := s.originalRequest(r)
	if err != nil {
		d := sidecarDeny(http.StatusBadRequest, ReasonBadForwardAuth,
			"The forward-auth request does not identify the original request", err.Error())
		ev.record(nil, d)
		s.writeDecision(w, d)
		return
	}
	allowed, jwt, denied := s.decide(r, method, path, ev)
	if denied != nil {
		s.writeDecision(w, denied)
		return
	}
	h := w.Header()
	if allowed != nil {
		for _, kv := range s.c.headers.Values(allowed) {
			h.Set(kv[0], kv[1])
		}
		if jwt != "" {
			h.Set(s.c.signer.Header(), jwt)
		}
	}
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
}

// sign returns the upstream JWT for an allowed decision ("" when there is no
// signer or the route is public), or a 500 decision when signing fails
// (fail closed: the upstream would not trust the request without it).
func (s *Server) sign(allowed *policy.Decision) (string, *policy.Decision) {
	if s.c.signer == nil || allowed == nil {
		return "", nil
	}
	tok, err := s.c.signer.Sign(allowed)
	if err != nil {
		return "", sidecarDeny(http.StatusInternalServerError, ReasonSignFailed, "An unexpected error occurred", err.Error())
	}
	return tok, nil
}

// originalRequest works out the method and the canonical path of the
// request a proxy asks about:
//
//   - the method is in one of forward_auth.method_headers (Traefik:
//     X-Forwarded-Method; nginx: X-Original-Method as configured), else it
//     is the request's own method (nginx auth_request, Envoy ext_authz);
//   - the URI is in one of forward_auth.uri_headers (Traefik:
//     X-Forwarded-Uri; nginx: X-Original-URI), and/or it is the request
//     path itself: below forward_auth.path (Envoy with path_prefix), or any
//     path when there is no reverse proxy (Envoy without path_prefix).
//
// Every source present must agree; a conflict (for instance a client adding
// X-Forwarded-Uri to a request that nginx describes with X-Original-URI) is
// an error, and so is a request that names no original URI at all.
func (s *Server) originalRequest(r *http.Request) (method, path string, err error) {
	method, err = agree(r.Header, s.c.methodHeaders, func(v string) (string, error) {
		if !validMethod(v) {
			return "", errors.New("not an HTTP method")
		}
		return v, nil
	})
	if err != nil {
		return "", "", err
	}
	if method == "" {
		method = r.Method
	}
	path, err = agree(r.Header, s.c.uriHeaders, parseOriginalURI)
	if err != nil {
		return "", "", err
	}
	own := ""
	switch {
	case prefixMatch(s.c.fwdPath, r.URL.Path):
		own = strings.TrimPrefix(r.URL.Path, s.c.fwdPath) // "" when the request is for the endpoint itself
	default:
		own = r.URL.Path // no reverse proxy: the request is the original one
	}
	if own != "" {
		if err := checkPath(own); err != nil {
			return "", "", fmt.Errorf("request path: %w", err)
		}
		if path != "" && path != own {
			return "", "", fmt.Errorf("the original URI header names %q but the request path names %q", path, own)
		}
		path = own
	}
	if path == "" {
		return "", "", fmt.Errorf("no original URI: send one of %s, or the original path below %s",
			strings.Join(s.c.uriHeaders, ", "), s.c.fwdPath)
	}
	return method, path, nil
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
