package policy

import (
	"fmt"
	"net/http"
	"strings"
)

// Credentials are the places a request may carry its token. Adapters fill
// them from the request; ExtractToken applies the RFC 6750 rules.
type Credentials struct {
	// Authorization holds every value of the configured authorization
	// header (normally "Authorization").
	Authorization []string
	// Query holds every value of the token query parameter, when enabled.
	Query []string
	// Cookie holds every value of the token cookie, when enabled.
	Cookie []string
}

// ExtractToken returns the one bearer token of a request, or a deny decision:
// no token at all → 401 without an error code (RFC 6750 §3.1); a malformed
// Bearer header, or more than one token → 400 invalid_request. A header with
// another scheme (Basic, ...) counts as no bearer token.
func ExtractToken(c Credentials) (string, *Decision) {
	var found []string
	for _, v := range c.Authorization {
		scheme, rest, _ := strings.Cut(strings.TrimSpace(v), " ")
		if !strings.EqualFold(scheme, "Bearer") {
			continue
		}
		tok := strings.TrimLeft(rest, " ")
		if !isB64Token(tok) {
			d := deny(http.StatusBadRequest, ErrInvalidRequest, ReasonMalformedHeader,
				"The authorization header is malformed", "Bearer credentials are not a single b64token")
			return "", &d
		}
		found = append(found, tok)
	}
	for _, v := range append(c.Query, c.Cookie...) {
		if v == "" {
			continue
		}
		if !isB64Token(v) {
			d := deny(http.StatusBadRequest, ErrInvalidRequest, ReasonMalformedHeader,
				"The access token parameter is malformed", "query or cookie token is not a b64token")
			return "", &d
		}
		found = append(found, v)
	}
	switch len(found) {
	case 0:
		d := deny(http.StatusUnauthorized, "", ReasonNoToken, "Unauthorized", "no bearer token in the request")
		return "", &d
	case 1:
		return found[0], nil
	}
	d := deny(http.StatusBadRequest, ErrInvalidRequest, ReasonMultipleTokens,
		"The request carries more than one access token",
		fmt.Sprintf("%d tokens found (header, query, cookie); RFC 6750 allows one", len(found)))
	return "", &d
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
