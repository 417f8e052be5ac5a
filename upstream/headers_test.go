package upstream

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/keycloak-jwt/keycloak-jwt/policy"
)

func mustCompile(t *testing.T, c HeadersConfig) *Headers {
	t.Helper()
	h, err := CompileHeaders(c)
	if err != nil {
		t.Fatalf("CompileHeaders: %v", err)
	}
	return h
}

func TestCompileHeadersErrors(t *testing.T) {
	tests := []struct {
		name  string
		cfg   HeadersConfig
		field string // the field the error must name
		want  string // a fragment of the message
	}{
		{"space in name", HeadersConfig{ClientIDHeader: "X Client"}, "upstream_headers.client_id_header", "RFC 7230"},
		{"colon in name", HeadersConfig{SubjectHeader: "X-Sub:"}, "upstream_headers.subject_header", "RFC 7230"},
		{"CRLF in name", HeadersConfig{ScopesHeader: "X-Scopes\r\nX-Evil"}, "upstream_headers.scopes_header", "RFC 7230"},
		{"non-ASCII name", HeadersConfig{RolesHeader: "X-Rôles"}, "upstream_headers.roles_header", "RFC 7230"},
		{"underscore in name", HeadersConfig{ClientIDHeader: "X_Client_Id"}, "upstream_headers.client_id_header", "use '-'"},
		{"underscore in a claim header", HeadersConfig{ClaimHeaders: map[string]string{"clientHost": "X_Client_Host"}}, `upstream_headers.claim_headers["clientHost"]`, "use '-'"},
		{"too long", HeadersConfig{RolesHeader: "X-" + strings.Repeat("a", 300)}, "upstream_headers.roles_header", "longer than"},
		{"Host", HeadersConfig{ClientIDHeader: "host"}, "upstream_headers.client_id_header", "may not be set"},
		{"Content-Length", HeadersConfig{SubjectHeader: "Content-Length"}, "upstream_headers.subject_header", "may not be set"},
		{"Authorization", HeadersConfig{ScopesHeader: "AUTHORIZATION"}, "upstream_headers.scopes_header", "may not be set"},
		{"Connection", HeadersConfig{RolesHeader: "Connection"}, "upstream_headers.roles_header", "may not be set"},
		{"Transfer-Encoding", HeadersConfig{ClaimHeaders: map[string]string{"x": "transfer-encoding"}}, `upstream_headers.claim_headers["x"]`, "may not be set"},
		{"TE", HeadersConfig{ClaimHeaders: map[string]string{"x": "TE"}}, `upstream_headers.claim_headers["x"]`, "may not be set"},
		{"X-Forwarded-For", HeadersConfig{ClaimHeaders: map[string]string{"clientAddress": "X-Forwarded-For"}}, `upstream_headers.claim_headers["clientAddress"]`, "may not be set"},
		{"Cookie", HeadersConfig{ClaimHeaders: map[string]string{"x": "cookie"}}, `upstream_headers.claim_headers["x"]`, "may not be set"},
		{"empty claim header", HeadersConfig{ClaimHeaders: map[string]string{"x": ""}}, `upstream_headers.claim_headers["x"]`, "empty"},
		{"empty claim name", HeadersConfig{ClaimHeaders: map[string]string{"": "X-A"}}, `upstream_headers.claim_headers[""]`, "empty"},
		{"empty path segment", HeadersConfig{ClaimHeaders: map[string]string{"a..b": "X-A"}}, `upstream_headers.claim_headers["a..b"]`, "empty segment"},
		{"trailing dot", HeadersConfig{ClaimHeaders: map[string]string{"a.": "X-A"}}, `upstream_headers.claim_headers["a."]`, "empty segment"},
		{"duplicate identity", HeadersConfig{ClientIDHeader: "X-Who", SubjectHeader: "x-who"}, "upstream_headers.subject_header", "already set by upstream_headers.client_id_header"},
		{"claim duplicates default", HeadersConfig{ClaimHeaders: map[string]string{"azp": "x-client-id"}}, `upstream_headers.claim_headers["azp"]`, "already set by upstream_headers.client_id_header"},
		{"two claims one header", HeadersConfig{ClaimHeaders: map[string]string{"a": "X-A", "b": "x-a"}}, `upstream_headers.claim_headers["b"]`, `already set by upstream_headers.claim_headers["a"]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := CompileHeaders(tt.cfg)
			if err == nil {
				t.Fatalf("CompileHeaders = %v, want an error", h.Names())
			}
			var ce *policy.ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("error %T is not a *policy.ConfigError: %v", err, err)
			}
			if ce.Field != tt.field {
				t.Errorf("field = %q, want %q (error %q)", ce.Field, tt.field, err)
			}
			if !strings.HasPrefix(err.Error(), tt.field+": ") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %q, want %q prefix and %q", err, tt.field, tt.want)
			}
		})
	}
}

func TestCompileHeadersDefaultsAndNames(t *testing.T) {
	tests := []struct {
		name string
		cfg  HeadersConfig
		want []string
	}{
		{"defaults", HeadersConfig{}, []string{"X-Client-Id", "X-Client-Subject", "X-Client-Scopes", "X-Client-Roles", "X-Tenant"}},
		{"all disabled", HeadersConfig{ClientIDHeader: "-", SubjectHeader: "-", ScopesHeader: "-", RolesHeader: "-", TenantHeader: "-"}, nil},
		{"custom and canonical", HeadersConfig{ClientIDHeader: "x-caller", SubjectHeader: "-", ScopesHeader: " x-scope ", RolesHeader: "-",
			TenantHeader: "x-org", ClaimHeaders: map[string]string{"zeta": "x-a-zeta", "alpha": "X-Z-Alpha", "off": "-"}},
			[]string{"X-Caller", "X-Scope", "X-Org", "X-A-Zeta", "X-Z-Alpha"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := mustCompile(t, tt.cfg)
			if got := h.Names(); !slices.Equal(got, tt.want) {
				t.Errorf("Names() = %q, want %q", got, tt.want)
			}
			// Names returns a copy.
			if n := h.Names(); len(n) > 0 {
				n[0] = "mutated"
				if h.Names()[0] == "mutated" {
					t.Error("Names() exposes internal state")
				}
			}
		})
	}
	if !mustCompile(t, HeadersConfig{StripAuthorization: true}).StripAuthorization() {
		t.Error("StripAuthorization() = false, want true")
	}
	if mustCompile(t, HeadersConfig{}).StripAuthorization() {
		t.Error("StripAuthorization() = true, want false")
	}
}

const fullPayload = `{
	"iss": "https://kc.example/realms/demo", "sub": "9b2c4e1a", "azp": "orders-client",
	"exp": 4102444800, "iat": 1700000000, "jti": "orig-jti",
	"scope": "openid orders:read orders:write",
	"realm_access": {"roles": ["offline_access", "uma_authorization"]},
	"resource_access": {"orders-api": {"roles": ["reader", "writer"]}, "account": {"roles": ["view-profile"]}},
	"clientHost": "10.0.0.7",
	"count": 42, "big": 12345678901234, "ratio": 0.25, "neg": -3, "tiny": 1e-7, "huge": 1e21,
	"flag": true, "off": false,
	"tags": ["a", "b", "c"], "nums": [1, 2.5, 3], "mixed": ["a", {"k": 1}], "empty": [],
	"obj": {"b": 2, "a": "x<y>&z"},
	"nul": null,
	"evil": "line1\r\nX-Injected: yes\u0000\u0007\t\u007f\u0085end",
	"spaced": "  padded  ",
	"only_ctl": "\r\n",
	"a.b": "dotted-top-level",
	"a": {"b": "nested-shadowed", "c": {"d": "deep"}},
	"long": "` + "LONG" + `",
	"utf8long": "` + "UTF8LONG" + `"
}`

func fullDecision(t testing.TB) *policy.Decision {
	p := strings.Replace(fullPayload, `"LONG"`, `"`+strings.Repeat("x", 5000)+`"`, 1)
	// 4095 ASCII bytes then 2-byte runes: the cap falls inside a rune.
	p = strings.Replace(p, `"UTF8LONG"`, `"`+strings.Repeat("y", 4095)+strings.Repeat("é", 10)+`"`, 1)
	return allowed(t, p)
}

func TestValuesRendering(t *testing.T) {
	d := fullDecision(t)
	claim := func(c string) HeadersConfig {
		return HeadersConfig{ClientIDHeader: "-", SubjectHeader: "-", ScopesHeader: "-", RolesHeader: "-",
			ClaimHeaders: map[string]string{c: "X-Claim"}}
	}
	tests := []struct {
		name string
		cfg  HeadersConfig
		want [][2]string
	}{
		{"identity defaults", HeadersConfig{}, [][2]string{
			{"X-Client-Id", "orders-client"},
			{"X-Client-Subject", "9b2c4e1a"},
			{"X-Client-Scopes", "openid orders:read orders:write"},
			{"X-Client-Roles", "offline_access,uma_authorization,account:view-profile,orders-api:reader,orders-api:writer"},
		}},
		{"identity disabled", HeadersConfig{ClientIDHeader: "-", SubjectHeader: "-", ScopesHeader: "-", RolesHeader: "-"}, [][2]string{}},
		{"some disabled", HeadersConfig{SubjectHeader: "-", RolesHeader: "-", ScopesHeader: "X-Scope"}, [][2]string{
			{"X-Client-Id", "orders-client"}, {"X-Scope", "openid orders:read orders:write"},
		}},
		{"string", claim("clientHost"), [][2]string{{"X-Claim", "10.0.0.7"}}},
		{"integer", claim("count"), [][2]string{{"X-Claim", "42"}}},
		{"big integer no exponent", claim("big"), [][2]string{{"X-Claim", "12345678901234"}}},
		{"exp no exponent", claim("exp"), [][2]string{{"X-Claim", "4102444800"}}},
		{"huge integral", claim("huge"), [][2]string{{"X-Claim", "1000000000000000000000"}}},
		{"fraction", claim("ratio"), [][2]string{{"X-Claim", "0.25"}}},
		{"negative", claim("neg"), [][2]string{{"X-Claim", "-3"}}},
		{"tiny", claim("tiny"), [][2]string{{"X-Claim", "1e-7"}}},
		{"true", claim("flag"), [][2]string{{"X-Claim", "true"}}},
		{"false", claim("off"), [][2]string{{"X-Claim", "false"}}},
		{"array of strings", claim("tags"), [][2]string{{"X-Claim", "a,b,c"}}},
		{"array of numbers", claim("nums"), [][2]string{{"X-Claim", "1,2.5,3"}}},
		{"mixed array as JSON", claim("mixed"), [][2]string{{"X-Claim", `["a",{"k":1}]`}}},
		{"empty array not set", claim("empty"), [][2]string{}},
		{"object as compact JSON", claim("obj"), [][2]string{{"X-Claim", `{"a":"x<y>&z","b":2}`}}},
		{"realm_access object", claim("realm_access"), [][2]string{{"X-Claim", `{"roles":["offline_access","uma_authorization"]}`}}},
		{"null not set", claim("nul"), [][2]string{}},
		{"missing not set", claim("nope"), [][2]string{}},
		{"control characters removed", claim("evil"), [][2]string{{"X-Claim", "line1X-Injected: yesend"}}},
		{"spaces trimmed", claim("spaced"), [][2]string{{"X-Claim", "padded"}}},
		{"only controls not set", claim("only_ctl"), [][2]string{}},
		{"truncated", claim("long"), [][2]string{{"X-Claim", strings.Repeat("x", MaxValueBytes)}}},
		{"truncated at rune boundary", claim("utf8long"), [][2]string{{"X-Claim", strings.Repeat("y", 4095)}}},
		{"nested path", claim("resource_access.orders-api.roles"), [][2]string{{"X-Claim", "reader,writer"}}},
		{"top-level dotted name wins", claim("a.b"), [][2]string{{"X-Claim", "dotted-top-level"}}},
		{"deep path", claim("a.c.d"), [][2]string{{"X-Claim", "deep"}}},
		{"nested object", claim("a.c"), [][2]string{{"X-Claim", `{"d":"deep"}`}}},
		{"nested missing", claim("a.c.x"), [][2]string{}},
		{"path through scalar", claim("clientHost.x"), [][2]string{}},
		{"claim order by header name", HeadersConfig{ClientIDHeader: "-", SubjectHeader: "-", ScopesHeader: "-", RolesHeader: "-",
			ClaimHeaders: map[string]string{"count": "X-C", "clientHost": "X-A", "flag": "X-B"}},
			[][2]string{{"X-A", "10.0.0.7"}, {"X-B", "true"}, {"X-C", "42"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := mustCompile(t, tt.cfg)
			got := h.Values(d)
			if len(got) == 0 && len(tt.want) == 0 {
				return
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Values() =\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

func TestValuesClientIDFallbackAndEmpty(t *testing.T) {
	h := mustCompile(t, HeadersConfig{})
	tests := []struct {
		name    string
		payload string
		want    [][2]string
	}{
		{"client_id claim", `{"exp":1,"sub":"s","client_id":"c"}`, [][2]string{{"X-Client-Id", "c"}, {"X-Client-Subject", "s"}}},
		{"sub fallback", `{"exp":1,"sub":"s"}`, [][2]string{{"X-Client-Id", "s"}, {"X-Client-Subject", "s"}}},
		{"scp array", `{"exp":1,"azp":"a","scp":["x","y"]}`, [][2]string{{"X-Client-Id", "a"}, {"X-Client-Scopes", "x y"}}},
		{"client roles only", `{"exp":1,"azp":"a","resource_access":{"b":{"roles":["r2"]},"a":{"roles":["r1"]}}}`,
			[][2]string{{"X-Client-Id", "a"}, {"X-Client-Roles", "a:r1,b:r2"}}},
		{"nothing", `{"exp":1}`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := h.Values(allowed(t, tt.payload))
			if len(got) == 0 && len(tt.want) == 0 {
				return
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Values() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestValuesDeniedDecision(t *testing.T) {
	h := mustCompile(t, HeadersConfig{})
	d := fullDecision(t)
	for name, dec := range map[string]*policy.Decision{
		"nil":       nil,
		"denied":    {Allow: false, Status: 403, Claims: d.Claims},
		"no claims": {Allow: true, Status: 200},
	} {
		if got := h.Values(dec); got != nil {
			t.Errorf("%s: Values() = %q, want nil", name, got)
		}
	}
}

// TestNamesCoverValues checks that every header Values can emit is listed by
// Names (so the adapters delete client-supplied copies), and that values are
// safe and stable.
func TestNamesCoverValues(t *testing.T) {
	d := fullDecision(t)
	all := map[string]string{}
	for _, c := range []string{"clientHost", "count", "big", "ratio", "flag", "tags", "nums", "mixed", "obj",
		"evil", "long", "utf8long", "realm_access", "resource_access.orders-api.roles", "a.c", "a.b", "nope"} {
		all[c] = "X-" + strings.NewReplacer(".", "-", "_", "-").Replace(c)
	}
	configs := []HeadersConfig{
		{},
		{ClaimHeaders: all},
		{ClientIDHeader: "x-id", SubjectHeader: "-", ClaimHeaders: all},
		{ClientIDHeader: "-", SubjectHeader: "-", ScopesHeader: "-", RolesHeader: "-", ClaimHeaders: all},
	}
	for i, cfg := range configs {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			h := mustCompile(t, cfg)
			names := h.Names()
			got := h.Values(d)
			if len(got) == 0 {
				t.Fatal("no values")
			}
			seen := map[string]bool{}
			for _, kv := range got {
				if !slices.Contains(names, kv[0]) {
					t.Errorf("Values() emits %q which Names() %q does not list", kv[0], names)
				}
				if seen[kv[0]] {
					t.Errorf("header %q emitted twice", kv[0])
				}
				seen[kv[0]] = true
				if len(kv[1]) > MaxValueBytes || !utf8.ValidString(kv[1]) || kv[1] == "" {
					t.Errorf("header %q: unsafe value (len %d)", kv[0], len(kv[1]))
				}
				for _, r := range kv[1] {
					if r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f) {
						t.Errorf("header %q: control character %U in value", kv[0], r)
					}
				}
			}
			for range 5 {
				if again := h.Values(d); !slices.Equal(again, got) {
					t.Fatalf("Values() is not stable:\n%q\n%q", got, again)
				}
			}
		})
	}
}

func BenchmarkValues(b *testing.B) {
	h, err := CompileHeaders(HeadersConfig{ClaimHeaders: map[string]string{"clientHost": "X-Client-Host", "realm_access": "X-Realm-Access"}})
	if err != nil {
		b.Fatal(err)
	}
	d := allowed(b, `{"exp":4102444800,"sub":"s","azp":"orders-client","scope":"openid orders:read",
		"realm_access":{"roles":["a","b"]},"resource_access":{"orders-api":{"roles":["reader"]}},"clientHost":"10.0.0.7"}`)
	b.ReportAllocs()
	for b.Loop() {
		_ = h.Values(d)
	}
}

// TestTenantHeaderAndClaim: the tenant an issuer pattern matched reaches
// the upstream as a header and as a claim of the upstream JWT; a decision
// without one sets neither.
func TestTenantHeaderAndClaim(t *testing.T) {
	h := mustCompile(t, HeadersConfig{})
	c := &policy.Claims{Issuer: "https://sso/realms/acme", Subject: "s", AuthorizedParty: "svc", Expiry: 2_000_000_000}
	d := &policy.Decision{Allow: true, Claims: c, Tenant: "acme"}
	if !slices.Contains(h.Values(d), [2]string{"X-Tenant", "acme"}) {
		t.Fatalf("no tenant header in %q", h.Values(d))
	}
	for _, kv := range h.Values(&policy.Decision{Allow: true, Claims: c}) {
		if kv[0] == "X-Tenant" {
			t.Fatalf("tenant header without a tenant: %q", kv)
		}
	}
	if _, err := CompileHeaders(HeadersConfig{TenantHeader: "X-Client-Id"}); err == nil {
		t.Fatal("tenant_header may not repeat another header")
	}
	s := newSigner(t, "ES256")
	p, err := s.payload(d)
	if err != nil || !strings.Contains(string(p), `"tenant":"acme"`) {
		t.Fatalf("upstream JWT payload %s: %v", p, err)
	}
	if p, _ := s.payload(&policy.Decision{Allow: true, Claims: c}); strings.Contains(string(p), `"tenant"`) {
		t.Fatalf("tenant claim without a tenant: %s", p)
	}
	cfg := baseConfig("ES256", writeFile(t, pemOf(t, testKey(t, "ES256"), "pkcs8")))
	cfg.Claims = []string{"tenant"}
	if _, err := NewSigner(cfg, nil); err == nil {
		t.Fatal("tenant may not be copied from the token")
	}
}
