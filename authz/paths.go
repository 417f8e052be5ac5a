package authz

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// maxURIBytes bounds an original URI read from a forward-auth header.
const maxURIBytes = 8 << 10

// checkPath reports why p, a percent-decoded URL path, is not canonical.
// Routes are matched on the path the sidecar sees; an upstream that
// normalises "/public/../admin" to "/admin" (or that does not) would see
// another resource than the one checked, so such paths are refused rather
// than rewritten: dot segments, empty segments ("//", except a trailing
// slash), backslashes, control characters, and ';': Tomcat, Jetty and
// Spring cut ";params" off each segment before resolving dot segments, so
// "/public/..;/admin" is "/admin" to them, while "/admin;x" is not under
// "/admin" to a prefix match (Spring Security's strict firewall refuses
// ';' for the same reasons).
func checkPath(p string) error {
	if p == "" || p[0] != '/' {
		return errors.New("the path does not start with '/'")
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c < 0x20 || c == 0x7f || c == '\\' {
			return errors.New("the path holds a control character or a backslash")
		} else if c == ';' {
			return errors.New("the path holds ';' (path parameters, which upstreams resolve differently)")
		}
	}
	rest := p[1:]
	for rest != "" {
		seg := rest
		i := strings.IndexByte(rest, '/')
		if i >= 0 {
			seg, rest = rest[:i], rest[i+1:]
		} else {
			rest = ""
		}
		switch {
		case seg == "" && i >= 0:
			return errors.New("the path holds an empty segment (\"//\")")
		case seg == "." || seg == "..":
			return errors.New("the path holds a dot segment (\".\" or \"..\")")
		}
	}
	return nil
}

// parseOriginalURI turns the original request URI a proxy sends to forward
// auth (origin form: path, optional query) into its canonical, decoded path.
func parseOriginalURI(v string) (string, error) {
	if len(v) > maxURIBytes {
		return "", fmt.Errorf("longer than %d bytes", maxURIBytes)
	}
	if v == "" || v[0] != '/' {
		return "", errors.New("not an origin-form request URI (it must start with '/')")
	}
	if i := strings.IndexAny(v, "?#"); i >= 0 {
		v = v[:i]
	}
	p, err := url.PathUnescape(v)
	if err != nil {
		return "", errors.New("the path has an invalid percent-encoding")
	}
	if err := checkPath(p); err != nil {
		return "", err
	}
	return p, nil
}

// validMethod reports whether m is an HTTP method token (RFC 9110 §9.1).
func validMethod(m string) bool {
	if m == "" || len(m) > 32 {
		return false
	}
	for i := 0; i < len(m); i++ {
		if !isTChar(m[i]) {
			return false
		}
	}
	return true
}

// hasLower reports whether s holds an ASCII lower-case letter.
func hasLower(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'a' && c <= 'z' {
			return true
		}
	}
	return false
}

// isTChar reports whether c is an RFC 9110 tchar.
func isTChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// CheckPath reports why p, a percent-decoded request path, is not in the
// canonical form routes are matched on (see checkPath).
func CheckPath(p string) error { return checkPath(p) }

// ParseOriginalURI turns an origin-form request URI that a proxy reports
// (forward auth's X-Forwarded-Uri, Envoy's original path) into its canonical,
// decoded path, or says why it cannot.
func ParseOriginalURI(v string) (string, error) { return parseOriginalURI(v) }

// ValidMethod reports whether m is an HTTP method token (RFC 9110 §9.1).
func ValidMethod(m string) bool { return validMethod(m) }
