package policy

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

// Library baselines for the same RS256 Keycloak-shaped token, so that the
// comparison with BenchmarkRawVerifyRS256 and BenchmarkColdRS256 (README,
// "Dependencies, and why") is measured in one run:
//
//	go test -run '^$' -bench 'RS256' -benchmem ./policy/

// BenchmarkJWXVerifyRS256: jwx/v3 jws.Verify with the key already chosen,
// then the claims decoded into a map, as a hand-rolled check on jwx would.
func BenchmarkJWXVerifyRS256(b *testing.B) {
	e := newEnv(b, "RS256")
	tok := []byte(e.token(b, "orders-service"))
	pub := e.idp.PublicKey(e.idp.CurrentKid())
	b.ReportAllocs()
	for b.Loop() {
		payload, err := jws.Verify(tok, jws.WithKey(jwa.RS256(), pub))
		if err != nil {
			b.Fatal(err)
		}
		var claims map[string]any
		if err := json.Unmarshal(payload, &claims); err != nil || claims["azp"] != "orders-service" {
			b.Fatalf("claims %v: %v", claims["azp"], err)
		}
	}
}

// BenchmarkJWXParseRS256: jwx/v3 jwt.Parse with the realm's key set and
// validation of iss, aud and the time claims: the library's one-call path.
func BenchmarkJWXParseRS256(b *testing.B) {
	e := newEnv(b, "RS256")
	tok := []byte(e.token(b, "orders-service"))
	kid := e.idp.CurrentKid()
	key, err := jwk.Import(e.idp.PublicKey(kid))
	if err != nil {
		b.Fatal(err)
	}
	if err := key.Set(jwk.KeyIDKey, kid); err != nil {
		b.Fatal(err)
	}
	if err := key.Set(jwk.AlgorithmKey, jwa.RS256()); err != nil {
		b.Fatal(err)
	}
	set := jwk.NewSet()
	if err := set.AddKey(key); err != nil {
		b.Fatal(err)
	}
	clock := jwt.ClockFunc(func() time.Time { return e.clock.Now() })
	b.ReportAllocs()
	for b.Loop() {
		t, err := jwt.Parse(tok, jwt.WithKeySet(set), jwt.WithValidate(true), jwt.WithClock(clock),
			jwt.WithIssuer(e.idp.Issuer()), jwt.WithAudience("orders-api"))
		if err != nil {
			b.Fatal(err)
		}
		var azp string
		if err := t.Get("azp", &azp); err != nil || azp != "orders-service" {
			b.Fatalf("azp %q: %v", azp, err)
		}
	}
}
