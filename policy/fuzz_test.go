package policy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"testing"
)

// FuzzCheck feeds arbitrary tokens to a compiled policy: it must never panic
// and must never allow anything but tokens the realm signed.
func FuzzCheck(f *testing.F) {
	e := newEnv(f, "RS256")
	p := e.compile(f, nil)
	good := e.token(f, "orders-service")
	f.Add(good)
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add(good[:len(good)-3])
	f.Add("eyJhbGciOiJSUzI1NiIsImNyaXQiOlsieCJdfQ.e30.AA")
	f.Fuzz(func(t *testing.T, tok string) {
		d := p.Check(context.Background(), tok)
		if d.Allow && tok != good {
			t.Fatalf("allowed a token the realm did not issue: %q", tok)
		}
		if !d.Allow && (d.Status < 400 || d.Message == "" || d.Reason == "") {
			t.Fatalf("incomplete deny: %+v", d)
		}
	})
}

// FuzzDecodeClaims checks the claims parser on arbitrary payloads.
func FuzzDecodeClaims(f *testing.F) {
	f.Add([]byte(`{"exp":1,"aud":["a"],"scope":"a b","realm_access":{"roles":["x"]}}`))
	f.Add([]byte(`{"exp":"1"}`))
	f.Add([]byte(`{"exp":1e400}`))
	f.Add([]byte(`{"resource_access":{"a":{"roles":null}},"exp":-1}`))
	f.Add([]byte(`{"exp":1,"iss":"https://kc/realms/a\\/b\"c","aud":["x\ty","z"],"resource_access":{"api\n":{"roles":["r\u00e9","s"]},"b":{"roles":["t"]}},"cnf":{"jkt":"k"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := decodeClaims(b, &header{})
		if err == nil && c == nil {
			t.Fatal("nil claims without error")
		}
		if err == nil {
			c.ClientID()
			c.Get("x")
			sameAsEncodingJSON(t, b, c)
		}
	})
}

// sameAsEncodingJSON: the strings decodeClaims read (each a copy in the
// claims' arena) are those encoding/json reads. \u escapes are left out:
// the parsers differ on lone surrogates, which no issuer writes.
func sameAsEncodingJSON(t *testing.T, b []byte, c *Claims) {
	var m map[string]any
	if bytes.Contains(b, []byte(`\u`)) || json.Unmarshal(b, &m) != nil {
		return
	}
	for name, got := range map[string]string{"iss": c.Issuer, "sub": c.Subject, "jti": c.ID, "typ": c.Type, "azp": c.AuthorizedParty, "client_id": c.ClientIDClaim} {
		if want, ok := m[name].(string); ok && got != want {
			t.Fatalf("%s: %q, encoding/json %q", name, got, want)
		}
	}
	if want, ok := m["aud"].([]any); ok && fmt.Sprint(want) != fmt.Sprint(c.Audience) {
		t.Fatalf("aud: %q, encoding/json %q", c.Audience, want)
	}
	if ra, ok := m["resource_access"].(map[string]any); ok {
		for client, v := range ra {
			roles, _ := v.(map[string]any)["roles"].([]any)
			if fmt.Sprint(roles) != fmt.Sprint(c.ClientRoles[client]) {
				t.Fatalf("resource_access.%s: %q, encoding/json %q", client, c.ClientRoles[client], roles)
			}
		}
	}
}
