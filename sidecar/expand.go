package sidecar

import (
	"bytes"
	"fmt"
	"strings"
)

// LookupEnv is how configuration reads the environment (os.LookupEnv in
// production, a map in tests).
type LookupEnv func(name string) (string, bool)

// expandEnv replaces environment placeholders in a configuration file:
//
//	${NAME}            the value of NAME; an error if NAME is unset
//	${NAME:-default}   the value of NAME, or default when NAME is unset or empty
//	$${                a literal "${" (escape)
//
// NAME is [A-Za-z_][A-Za-z0-9_]*; default runs to the first '}'. Any other
// '$' is left alone, and so are whole-line comments (lines whose first
// non-blank character is '#'). Values are inserted as they are: quote a
// placeholder ("${NAME}") when its value may hold YAML syntax.
func expandEnv(data []byte, lookup LookupEnv) ([]byte, error) {
	if bytes.IndexByte(data, '$') < 0 {
		return data, nil
	}
	out := make([]byte, 0, len(data))
	line := 1
	for len(data) > 0 {
		end := bytes.IndexByte(data, '\n')
		if end < 0 {
			end = len(data) - 1
		}
		l := data[:end+1]
		data = data[end+1:]
		if t := bytes.TrimLeft(l, " \t"); len(t) > 0 && t[0] == '#' {
			out = append(out, l...)
		} else {
			var err error
			if out, err = expandLine(out, l, lookup); err != nil {
				return nil, fmt.Errorf("line %d: %w", line, err)
			}
		}
		line++
	}
	return out, nil
}

// expandLine appends line to out with its placeholders replaced.
func expandLine(out, line []byte, lookup LookupEnv) ([]byte, error) {
	for {
		i := bytes.IndexByte(line, '$')
		if i < 0 {
			return append(out, line...), nil
		}
		out = append(out, line[:i]...)
		rest := line[i:]
		switch {
		case bytes.HasPrefix(rest, []byte("$${")):
			out = append(out, "${"...)
			line = rest[3:]
			continue
		case !bytes.HasPrefix(rest, []byte("${")):
			out = append(out, '$')
			line = rest[1:]
			continue
		}
		closeAt := bytes.IndexByte(rest, '}')
		if closeAt < 0 {
			return nil, fmt.Errorf("unterminated placeholder %q (want ${NAME} or ${NAME:-default}; write $${ for a literal)", clip(rest))
		}
		body := string(rest[2:closeAt])
		name, def, hasDef := body, "", false
		if k := strings.Index(body, ":-"); k >= 0 {
			name, def, hasDef = body[:k], body[k+2:], true
		}
		if !validEnvName(name) {
			return nil, fmt.Errorf("placeholder ${%s}: %q is not a valid environment variable name", clip([]byte(body)), clip([]byte(name)))
		}
		v, ok := lookup(name)
		switch {
		case hasDef && v == "":
			v = def
		case !ok:
			n := clip([]byte(name))
			return nil, fmt.Errorf("environment variable %s is not set (referenced as ${%s}; use ${%s:-default} for a default)", n, n, n)
		}
		out = append(out, v...)
		line = rest[closeAt+1:]
	}
}

// validEnvName reports whether s is [A-Za-z_][A-Za-z0-9_]*.
func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9' {
			continue
		}
		return false
	}
	return true
}

// clip shortens b for an error message (which must never echo a whole line:
// it could hold a secret).
func clip(b []byte) string {
	const n = 40
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}
