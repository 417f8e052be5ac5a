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

// FuzzExtractToken checks header handling never panics and is consistent.
func FuzzExtractToken(f *testing.F) {
	for _, s := range []string{"Bearer abc", "bearer  a.b.c", "Basic x", "Bearer a b", "Bearer ==", ""} {
		f.Add(s, "")
	}
	f.Fuzz(func(t *testing.T, h, q string) {
		c := Credentials{Authorization: []string{h}}
		if q != "" {
			c.Query = []string{q}
		}
		tok, d := ExtractToken(c)
		if (d == nil) == (tok == "") {
			t.Fatalf("token %q with decision %+v", tok, d)
		}
		if d != nil && d.Status != 400 && d.Status != 401 {
			t.Fatalf("status %d", d.Status)
		}
		if d == nil && !isB64Token(tok) {
			t.Fatalf("extracted a non-b64token %q", tok)
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
