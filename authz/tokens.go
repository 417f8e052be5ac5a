package authz

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/keycloak-jwt/keycloak-jwt/policy"
)

func denial(status int, code, reason, msg, detail string) *policy.Decision {
	return &policy.Decision{Status: status, Error: code, Reason: reason, Message: msg, Detail: detail}
}

func badRequest(reason, msg, detail string) *policy.Decision {
	return denial(http.StatusBadRequest, policy.ErrInvalidRequest, reason, msg, detail)
}

// extract returns the one token of a request, or the denial (RFC 6750):
// none at all → 401 without an error code (§3.1); a malformed credential,
// an ambiguous one, or more than one token → 400 invalid_request.
//
// A token header is a single-value field: two lines of it are refused
// (PHP joins them, other upstreams take the first or the last). A value
// whose scheme is Bearer must be exactly "Bearer", one space and a b64token;
// other schemes count as no bearer token.
func (g *Gate) extract(s *scan, q url.Values) (string, *policy.Decision) {
	s.dpopScheme = false
	var found []string
	if len(s.tokenLines) > 1 {
		return "", badRequest(policy.ReasonMultipleTokens, "The request carries more than one authorization header",
			fmt.Sprintf("%d lines of the token header %v; it is a single-value field", len(s.tokenLines), s.tokenKeys))
	}
	for _, v := range s.tokenLines {
		tok, bearer, ok := parseBearer(v)
		if !bearer && g.dpop != nil {
			// RFC 9449 §7.1: the DPoP scheme, with the same syntax.
			if tok, bearer, ok = parseScheme(v, "dpop"); bearer {
				s.dpopScheme = true
			}
		}
		if !bearer {
			continue
		}
		if !ok {
			return "", badRequest(policy.ReasonMalformedHeader, "The authorization header is malformed",
				"credentials are not the scheme, one space and a b64token")
		}
		found = append(found, tok)
	}
	var params []string // bare tokens from the query and cookies
	if len(g.uriParams) > 0 {
		for key := range q {
			if n, ok := lookalike(key, g.uriParams); ok {
				return "", badRequest(ReasonAmbiguous, "The query string is ambiguous",
					fmt.Sprintf("query parameter %q is read by some upstreams as %q", key, n))
			}
		}
		for _, n := range g.uriParams {
			params = append(params, q[n]...)
		}
	}
	if len(g.cookies) > 0 {
		var ambiguous *policy.Decision
		splitCookies(s.cookieLines, func(raw, decoded, value string) bool {
			for _, n := range g.cookies {
				if raw == n {
					params = append(params, value)
					return true
				}
			}
			n, ok := lookalike(decoded, g.cookies)
			if !ok && decoded != raw {
				for _, c := range g.cookies {
					if decoded == c {
						n, ok = c, true
					}
				}
			}
			if ok {
				ambiguous = badRequest(ReasonAmbiguous, "The cookies are ambiguous",
					fmt.Sprintf("cookie %q is read by some upstreams as %q", raw, n))
				return false
			}
			return true
		})
		if ambiguous != nil {
			return "", ambiguous
		}
	}
	for _, v := range params {
		if v == "" {
			continue
		}
		if !isB64Token(v) {
			return "", badRequest(policy.ReasonMalformedHeader, "The access token parameter is malformed",
				"query or cookie token is not a b64token")
		}
		found = append(found, v)
	}
	switch len(found) {
	case 0:
		return "", denial(http.StatusUnauthorized, "", policy.ReasonNoToken, "Unauthorized", "no bearer token in the request")
	case 1:
		return found[0], nil
	}
	return "", badRequest(policy.ReasonMultipleTokens, "The request carries more than one access token",
		fmt.Sprintf("%d tokens found (header, query, cookie); RFC 6750 allows one", len(found)))
}

// parseBearer reads one token header value. bearer reports whether its
// scheme is Bearer (any case, or a scheme starting with it: "Bearerx" is
// refused rather than read as another scheme, since some upstreams find
// the token with a pattern); ok whether it is well-formed.
func parseBearer(v string) (token string, bearer, ok bool) { return parseScheme(v, "bearer") }

// parseScheme reads a token header value of the given scheme (lower case):
// see parseBearer.
func parseScheme(v, scheme string) (token string, matched, ok bool) {
	v = strings.Trim(v, " \t")
	if len(v) < len(scheme) || !strings.EqualFold(v[:len(scheme)], scheme) {
		return "", false, false
	}
	if len(v) < len(scheme)+2 || v[len(scheme)] != ' ' {
		return "", true, false
	}
	token = v[len(scheme)+1:]
	return token, true, isB64Token(token)
}

// b64tokenChar marks the characters of RFC 6750's b64token before padding:
// ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/". A table lookup keeps
// the scan of a 1-2 KB token well under a microsecond.
var b64tokenChar = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "-._~+/" {
		t[c] = true
	}
	return t
}()

// isB64Token checks RFC 6750's b64token syntax:
// 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isB64Token(s string) bool {
	i := 0
	for i < len(s) && b64tokenChar[s[i]] {
		i++
	}
	if i == 0 {
		return false
	}
	for ; i < len(s); i++ {
		if s[i] != '=' {
			return false
		}
	}
	return true
}
