package authz

import "testing"

func TestLookalike(t *testing.T) {
	names := []string{"access_token", "jwt"}
	tests := []struct {
		key, want string
	}{
		{"access_token", ""},
		{"jwt", ""},
		{"other", ""},
		{"access", ""},
		{"access_tokens", ""},
		{"token", ""},
		{"ACCESS_TOKEN", "access_token"}, // ASP.NET
		{"Jwt", "jwt"},
		{"access.token", "access_token"},      // PHP: '.' → '_'
		{"access token", "access_token"},      // PHP: ' ' → '_'
		{" access_token", "access_token"},     // PHP: leading spaces dropped
		{"access[token", "access_token"},      // PHP: unmatched '[' → '_'
		{"access_token[]", "access_token"},    // PHP: an array named access_token
		{"access_token[0]", "access_token"},   // same
		{"access_token\x00x", "access_token"}, // PHP: NUL ends the name
		{"jwt\x00", "jwt"},
	}
	for _, tc := range tests {
		got, ok := lookalike(tc.key, names)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("lookalike(%q) = %q, %v; want %q", tc.key, got, ok, tc.want)
		}
	}
}
