package policy

import (
	"encoding/base64"
	"encoding/json"
	"reflect"
	"slices"
	"testing"
	"unicode/utf8"

	"github.com/keycloak-jwt/keycloak-jwt/internal/testidp"
)

// getClaims are Claims as decodeClaims leaves them (payload decoded) and as
// the token cache keeps them (payload segment only).
func getClaims(payload []byte) [2]*Claims {
	return [2]*Claims{{raw: payload}, {enc: base64.RawURLEncoding.EncodeToString(payload)}}
}

// Get answers as json.Unmarshal of the whole payload into a map would.
func TestClaimsGetMatchesEncodingJSON(t *testing.T) {
	for _, payload := range []string{
		`{"exp":1,"a":"x","n":1.5e3,"b":true,"z":null,"l":[1,"two",{"k":[]}],"o":{"p":{"q":"r"}}}`,
		` {"a":1}`[1:],
		`{ "a" : "first" , "a" : "second" }`,
		`{"\u0061":"escaped name","b\"c":"quote in name","d\\":"backslash"}`,
		`{"s":"a \"quoted\" \\ ] } , string","t":"é\u00e9\ud83d\ude00"}`,
		"{\n\t\"a\"\r\n:\n[ 1 ,\t2 ]\n}",
		`{"o":{"a":1,"a":2},"o":{"b":3}}`,
		`{"deep":[[[[{"x":"]"}]]]],"after":"yes"}`,
		`{}`,
	} {
		var want map[string]any
		if err := json.Unmarshal([]byte(payload), &want); err != nil {
			t.Fatalf("%s: %v", payload, err)
		}
		for i, c := range getClaims([]byte(payload)) {
			for name, w := range want {
				if got, ok := c.Get(name); !ok || !reflect.DeepEqual(got, w) {
					t.Errorf("%s (form %d): Get(%q) = %#v, %v; want %#v", payload, i, name, got, ok, w)
				}
			}
			for _, name := range []string{"missing", "A", "a ", "o.a", ""} {
				if _, ok := want[name]; ok {
					continue
				}
				if got, ok := c.Get(name); ok {
					t.Errorf("%s (form %d): Get(%q) = %#v, want missing", payload, i, name, got)
				}
			}
		}
	}
}

// A payload that encoding/json refuses yields no claim (fastjson, which
// decodeClaims uses, lets some of these through).
func TestClaimsGetInvalidJSON(t *testing.T) {
	for _, payload := range []string{`{"a":01,"b":"x"}`, `{"a":nan,"b":"x"}`, `{"b":"x\q"}`, `{"b":"x"}trailing`, `{"b":"x"`} {
		for i, c := range getClaims([]byte(payload)) {
			for range 2 { // the verdict is remembered
				if got, ok := c.Get("b"); ok {
					t.Errorf("%s (form %d): Get = %#v", payload, i, got)
				}
			}
		}
	}
	if v, ok := (&Claims{}).Get("a"); ok {
		t.Errorf("claims without a payload: %v", v)
	}
	c := &Claims{enc: "e30!"} // not base64url
	if v, ok := c.Get("a"); ok {
		t.Errorf("bad segment: %v", v)
	}
}

// A number encoding/json cannot hold is missing; the other claims are not.
func TestClaimsGetOutOfRange(t *testing.T) {
	for _, c := range getClaims([]byte(`{"big":1e400,"b":"x"}`)) {
		if v, ok := c.Get("big"); ok {
			t.Errorf("big = %v", v)
		}
		if v, ok := c.Get("b"); !ok || v != "x" {
			t.Errorf("b = %v, %v", v, ok)
		}
	}
}

// Cached tokens of different clients share each client's claims, never
// another's, and Get reads each token's own payload on a hit.
func TestTokenCacheSharesPerClient(t *testing.T) {
	e := newEnv(t, "RS256")
	p := e.compile(t, nil)
	type tok struct {
		client, jti string
		raw         string
	}
	var toks []tok
	for range 3 {
		for _, client := range []string{"orders-service", "reports-job"} {
			jti := testidp.WithClaim("jti", client+"-"+string(rune('a'+len(toks))))
			s := e.token(t, client, jti)
			toks = append(toks, tok{client: client, jti: client + "-" + string(rune('a'+len(toks))), raw: s})
		}
	}
	for _, tk := range toks {
		if d := check(p, tk.raw); !d.Allow || d.CachedResult {
			t.Fatalf("cold %s: %+v", tk.client, d)
		}
	}
	first := map[string]*Claims{}
	for _, tk := range toks {
		d := check(p, tk.raw)
		if !d.Allow || !d.CachedResult {
			t.Fatalf("hit %s: %+v", tk.client, d)
		}
		c := d.Claims
		if c.AuthorizedParty != tk.client || c.ID != tk.jti {
			t.Errorf("%s: azp %q jti %q", tk.client, c.AuthorizedParty, c.ID)
		}
		if v, _ := c.Get("jti"); v != tk.jti {
			t.Errorf("%s: Get(jti) = %v", tk.client, v)
		}
		if v, _ := c.Get("clientId"); v != tk.client {
			t.Errorf("%s: Get(clientId) = %v", tk.client, v)
		}
		wantScopes := []string{"orders:read", "orders:write"}
		if tk.client == "reports-job" {
			wantScopes = []string{"orders:read"}
		}
		for _, s := range wantScopes {
			if !slices.Contains(c.Scopes, s) {
				t.Errorf("%s: scopes %v lack %s", tk.client, c.Scopes, s)
			}
		}
		if f, ok := first[tk.client]; !ok {
			first[tk.client] = c
		} else if &f.Scopes[0] != &c.Scopes[0] || &f.RealmRoles[0] != &c.RealmRoles[0] {
			t.Errorf("%s: the client's scopes and roles are not shared between its tokens", tk.client)
		}
	}
	if &first["orders-service"].Scopes[0] == &first["reports-job"].Scopes[0] {
		t.Error("two clients share one scope list")
	}
}

// FuzzClaimsGet holds Get to json.Unmarshal of the whole payload.
func FuzzClaimsGet(f *testing.F) {
	f.Add([]byte(`{"a":1,"b":{"c":[1,2]},"a":"x"}`), "a")
	f.Add([]byte(`{"\u0062":"y"}`), "b")
	f.Add([]byte(`{"s":"\"}"}`), "s")
	f.Fuzz(func(t *testing.T, payload []byte, name string) {
		if len(payload) == 0 || payload[0] != '{' {
			return
		}
		var want map[string]any
		err := json.Unmarshal(payload, &want)
		for _, c := range getClaims(payload) {
			got, ok := c.Get(name)
			switch {
			case !json.Valid(payload) || !utf8.Valid(payload): // no token carries such a payload (decodeClaims refuses it)
				if ok {
					t.Fatalf("invalid payload %q: Get(%q) = %#v", payload, name, got)
				}
			case err == nil:
				w, wok := want[name]
				if ok != wok || !reflect.DeepEqual(got, w) {
					t.Fatalf("%q: Get(%q) = %#v, %v; want %#v, %v", payload, name, got, ok, w, wok)
				}
			}
		}
	})
}

// BenchmarkClaimsGet reads one claim by name from a cached token's claims
// (base64 decode, validity remembered, one scan, the value decoded).
func BenchmarkClaimsGet(b *testing.B) {
	e := newEnv(b, "RS256")
	p := e.compile(b, nil)
	tok := e.token(b, "orders-service")
	check(p, tok)
	d := check(p, tok)
	if !d.CachedResult {
		b.Fatal("not cached")
	}
	b.ReportAllocs()
	for b.Loop() {
		if v, ok := d.Claims.Get("clientHost"); !ok || v != "127.0.0.1" {
			b.Fatal(v)
		}
	}
}
