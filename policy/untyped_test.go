package policy

import (
	"strings"
	"testing"
)

// TestUntypedTokens: token_types "untyped" accepts access tokens that
// declare no type (no typ claim, header typ JWT or none) and still refuses
// every token that says, by its typ or its claims, that it is something else.
func TestUntypedTokens(t *testing.T) {
	e := newEnv(t, "RS256")
	untyped := func(c *Config) { c.TokenTypes = []string{TypeUntyped} }
	all := func(c *Config) { c.TokenTypes = []string{TypeBearer, TypeATJWT, "Untyped"} }
	noTyp := map[string]any{"typ": nil}
	with := func(k string, v any) map[string]any { return map[string]any{"typ": nil, k: v} }
	cases := []struct {
		name   string
		edit   func(*Config)
		claims map[string]any
		hdr    map[string]any
		allow  bool
		detail string // a substring of the deny detail
	}{
		{name: "default: no typ claim, header JWT refused", claims: noTyp},
		{name: "no typ claim, header JWT", edit: untyped, claims: noTyp, allow: true},
		{name: "no typ claim, no header typ", edit: untyped, claims: noTyp, hdr: map[string]any{"typ": nil}, allow: true},
		{name: "header typ lower case jwt", edit: untyped, claims: noTyp, hdr: map[string]any{"typ": "jwt"}, allow: true},
		{name: "header typ application/jwt", edit: untyped, claims: noTyp, hdr: map[string]any{"typ": "application/jwt"}, allow: true},
		{name: "untyped only: Keycloak Bearer refused", edit: untyped},
		{name: "untyped only: at+jwt refused", edit: untyped, claims: noTyp, hdr: map[string]any{"typ": "at+jwt"}},
		{name: "all three: Bearer", edit: all, allow: true},
		{name: "all three: at+jwt", edit: all, claims: noTyp, hdr: map[string]any{"typ": "at+jwt"}, allow: true},
		{name: "all three: untyped", edit: all, claims: noTyp, allow: true},
		{name: "typ Refresh", edit: all, claims: map[string]any{"typ": "Refresh"}},
		{name: "typ Offline", edit: all, claims: map[string]any{"typ": "Offline"}},
		{name: "typ ID", edit: all, claims: map[string]any{"typ": "ID"}},
		{name: "typ id, any case", edit: all, claims: map[string]any{"typ": "id"}},
		{name: "typ Serialized-ID", edit: all, claims: map[string]any{"typ": "Serialized-ID"}},
		{name: "typ Logout", edit: all, claims: map[string]any{"typ": "Logout"}},
		{name: "typ Refresh with header at+jwt", edit: all, claims: map[string]any{"typ": "Refresh"}, hdr: map[string]any{"typ": "at+jwt"}},
		{name: "an unknown typ claim is a type", edit: all, claims: map[string]any{"typ": "Custom"}},
		{name: "empty typ claim", edit: all, claims: map[string]any{"typ": ""}, allow: true},
		{name: "header logout+jwt", edit: all, claims: noTyp, hdr: map[string]any{"typ": "logout+jwt"}},
		{name: "header secevent+jwt", edit: all, claims: noTyp, hdr: map[string]any{"typ": "secevent+jwt"}},
		{name: "header id_token+jwt", edit: all, claims: noTyp, hdr: map[string]any{"typ": "id_token+jwt"}},
		{name: "ID token: nonce", edit: all, claims: with("nonce", "n-0S6"), detail: `"nonce"`},
		{name: "ID token: at_hash", edit: all, claims: with("at_hash", "77QmUPtjPfzWtF2AnpK9RQ"), detail: `"at_hash"`},
		{name: "ID token: c_hash", edit: all, claims: with("c_hash", "LDktKdoQak3Pk0cnXxCltA"), detail: `"c_hash"`},
		{name: "logout token: events", edit: all, claims: with("events", map[string]any{"http://schemas.openid.net/event/backchannel-logout": map[string]any{}}), detail: `"events"`},
		{name: "nonce null is no nonce", edit: all, claims: with("nonce", nil), allow: true},
		{name: "Keycloak Bearer with nonce still accepted (typ says access)", edit: all, claims: map[string]any{"nonce": "x"}, allow: true},
		{name: "untyped token still needs the audience", edit: all, claims: map[string]any{"typ": nil, "aud": "my-client"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := e.compile(t, c.edit)
			d := check(p, signRaw(t, e, hdrFor(e, c.hdr), claimsWith(e, c.claims)))
			if d.Allow != c.allow {
				t.Fatalf("allow=%v (%s: %s), want %v", d.Allow, d.Reason, d.Detail, c.allow)
			}
			if c.allow {
				return
			}
			want := ReasonType
			if c.name == "untyped token still needs the audience" {
				want = ReasonAudience
			}
			if d.Reason != want || d.Status != 401 {
				t.Fatalf("got %d %s (%s), want 401 %s", d.Status, d.Reason, d.Detail, want)
			}
			if !strings.Contains(d.Detail, c.detail) {
				t.Fatalf("detail %q does not name %s", d.Detail, c.detail)
			}
		})
	}
}
