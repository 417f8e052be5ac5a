package policy

import (
	"context"
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
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := decodeClaims(b, &header{})
		if err == nil && c == nil {
			t.Fatal("nil claims without error")
		}
		if err == nil {
			c.ClientID()
			c.Get("x")
		}
	})
}
