package jwks

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"testing"
)

// TestAlgorithmTable: each algorithm of the one table fits exactly the keys
// of its family (and curve); HMAC and "none" are not algorithms here.
func TestAlgorithmTable(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	keys := map[string]*Key{
		"rsa": {Public: &rsaKey.PublicKey}, "p256": {Public: &p256.PublicKey}, "p384": {Public: &p384.PublicKey},
		"p521": {Public: &p521.PublicKey}, "ed25519": {Public: edPub},
	}
	fits := map[string]string{
		"RS256": "rsa", "RS384": "rsa", "RS512": "rsa", "PS256": "rsa", "PS384": "rsa", "PS512": "rsa",
		"ES256": "p256", "ES384": "p384", "ES512": "p521", "EdDSA": "ed25519",
	}
	if names := AlgorithmNames(); len(names) != len(fits) {
		t.Fatalf("table %v", names)
	}
	for _, alg := range AlgorithmNames() {
		for kname, k := range keys {
			if got, want := k.Allows(alg), fits[alg] == kname; got != want {
				t.Errorf("%s with a %s key: %v, want %v", alg, kname, got, want)
			}
		}
	}
	for _, bad := range []string{"HS256", "HS512", "none", "", "rs256", "ES256K"} {
		if _, ok := LookupAlgorithm(bad); ok {
			t.Errorf("%q is in the table", bad)
		}
		if keys["rsa"].Allows(bad) {
			t.Errorf("%q allowed", bad)
		}
	}
	if a, ok := LookupAlgorithm("Ed25519"); !ok || a.Name != "EdDSA" {
		t.Errorf("Ed25519 alias: %+v", a)
	}
}
