package authz

import (
	"net/url"
	"strings"
)

// Header names as upstreams read them. PHP (CGI, FPM, mod_php, php -S),
// Python's WSGI, Rack and other CGI-style servers turn a request header into
// a variable "HTTP_" + the name in upper case with every character that is
// not a letter or a digit replaced by '_': "X-Client-Id", "X_Client_Id",
// "X.Client.Id" and "x.client_id" are one variable, and the last one written
// wins. Two names are therefore the same header to some upstream when they
// fold to the same string; foldHeader is that fold (lower case, every other
// character '_').

// maxFoldBytes: longer names are folded on the heap (no owned name is that long).
const maxFoldBytes = 128

// foldHeader writes the fold of name into buf and returns it (or a fresh
// string for long names).
func foldHeader(name string, buf *[maxFoldBytes]byte) []byte {
	var b []byte
	if len(name) <= maxFoldBytes {
		b = buf[:len(name)]
	} else {
		b = make([]byte, len(name))
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		default:
			c = '_'
		}
		b[i] = c
	}
	return b
}

// FoldHeader is the fold of a header name (see foldHeader): two names with
// the same fold are one header to a CGI-style upstream.
func FoldHeader(name string) string {
	var buf [maxFoldBytes]byte
	return string(foldHeader(name, &buf))
}

// Parameter and cookie names as upstreams read them. PHP's $_GET and $_COOKIE
// (php_register_variable_ex) end a name at NUL, drop leading spaces, turn ' '
// and '.' into '_', and read "name[...]" as name (an unmatched '[' becomes
// '_'); PHP also percent-decodes cookie names ("+" is a space). ASP.NET
// compares names without case. A name that one of them reads as a token
// parameter or cookie but that is not spelled exactly like it would carry a
// second token past the check.

var (
	phpFold        = strings.NewReplacer(" ", "_", ".", "_")
	phpFoldBracket = strings.NewReplacer(" ", "_", ".", "_", "[", "_")
)

// lookalike reports whether key is not one of names but an upstream may
// read it as one (returned).
func lookalike(key string, names []string) (string, bool) {
	for _, n := range names {
		if key == n {
			return "", false
		}
	}
	k := strings.ToLower(key)
	if i := strings.IndexByte(k, 0); i >= 0 {
		k = k[:i]
	}
	k = strings.TrimLeft(k, " ")
	forms := []string{phpFoldBracket.Replace(k)}
	if i := strings.IndexByte(k, '['); i > 0 {
		forms = append(forms, phpFold.Replace(k[:i]))
	}
	for _, n := range names {
		fn := phpFold.Replace(strings.ToLower(n))
		for _, f := range forms {
			if f == fn {
				return n, true
			}
		}
	}
	return "", false
}

// splitCookies splits Cookie header lines the way the most lenient upstream
// does: on ';' and ',' (older Rack), with surrounding spaces removed; a part
// without '=' is a name with an empty value. Names are returned raw and,
// where they differ, percent-decoded (PHP decodes cookie names).
func splitCookies(lines []string, yield func(raw, decoded, value string) bool) {
	for _, line := range lines {
		for len(line) > 0 {
			var part string
			if i := strings.IndexAny(line, ";,"); i >= 0 {
				part, line = line[:i], line[i+1:]
			} else {
				part, line = line, ""
			}
			part = strings.Trim(part, " \t")
			if part == "" {
				continue
			}
			name, value, _ := strings.Cut(part, "=")
			name = strings.TrimRight(name, " \t")
			value = strings.Trim(value, " \t")
			if len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"' {
				value = value[1 : len(value)-1]
			}
			decoded := name
			if strings.ContainsAny(name, "%+") {
				if d, err := url.QueryUnescape(name); err == nil {
					decoded = d
				}
			}
			if !yield(name, decoded, value) {
				return
			}
		}
	}
}
