package sidecar

import (
	"bytes"
	"strings"
	"testing"
)

func TestExpandEnv(t *testing.T) {
	env := mapEnv(map[string]string{"HOST": "sso.example.com", "EMPTY": "", "PORT": "8443"})
	tests := []struct {
		in, want, err string
	}{
		{"plain: text\n", "plain: text\n", ""},
		{"url: https://${HOST}:${PORT}/x", "url: https://sso.example.com:8443/x", ""},
		{"a: ${MISSING:-fallback}", "a: fallback", ""},
		{"a: ${EMPTY:-fallback}", "a: fallback", ""},
		{"a: ${EMPTY}", "a: ", ""},
		{"a: ${MISSING:-}", "a: ", ""},
		{"a: ${HOST:-other}", "a: sso.example.com", ""},
		{"a: ${MISSING:-x:-y}", "a: x:-y", ""},
		{"a: $$HOST and $${HOST}", "a: $$HOST and ${HOST}", ""},
		{"price: $5 and $", "price: $5 and $", ""},
		{"  # comment with ${MISSING}\nb: 1", "  # comment with ${MISSING}\nb: 1", ""},
		{"a: x # trailing ${HOST}", "a: x # trailing sso.example.com", ""},
		{"a: 1\nb: ${MISSING}", "", "line 2: environment variable MISSING is not set"},
		{"a: ${HOST", "", "unterminated"},
		{"a: ${1BAD}", "", "not a valid environment variable name"},
		{"a: ${}", "", "not a valid environment variable name"},
		{"a: ${A-B}", "", "not a valid"},
		// A long unset name is clipped in the message, which must stay short.
		{"a: ${" + strings.Repeat("LONG_NAME_", 30) + "}", "", "environment variable LONG_NAME_LONG_NAME_LONG_NAME_LONG_NAME_... is not set"},
	}
	for _, tc := range tests {
		got, err := expandEnv([]byte(tc.in), env)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || string(got) != tc.want {
			t.Errorf("%q: got %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// FuzzExpandEnv: no panic; input without "${" is returned unchanged; an
// error never echoes more than a short excerpt of the input.
func FuzzExpandEnv(f *testing.F) {
	for _, s := range []string{"a: ${X}", "${X:-d}", "$${X}", "# ${Y}\n${X}", "${", "$", "${X:-${Y}}", "a\n\n${X}\r\n", "${" + strings.Repeat("N", 150) + "}"} {
		f.Add([]byte(s))
	}
	env := mapEnv(map[string]string{"X": "value", "Y": ""})
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := expandEnv(in, env)
		if !bytes.Contains(in, []byte("${")) && (err != nil || !bytes.Equal(out, in)) {
			t.Fatalf("input without placeholders changed: %q -> %q, %v", in, out, err)
		}
		if err != nil && len(err.Error()) > 400 {
			t.Fatalf("error too long (%d bytes)", len(err.Error()))
		}
	})
}
