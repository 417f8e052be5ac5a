package jwks

import (
	"crypto"
	"crypto/elliptic"
)

// Family is the kind of key a JWS algorithm verifies with.
type Family uint8

// Families of Algorithm.
const (
	FamilyRSA   Family = iota + 1 // RSASSA-PKCS1-v1_5 (RS*)
	FamilyPSS                     // RSASSA-PSS (PS*)
	FamilyEC                      // ECDSA (ES*)
	FamilyEdDSA                   // Ed25519 (EdDSA)
)

// Algorithm is one JWS signature algorithm (RFC 7518 §3, RFC 8037) that
// keys can verify.
type Algorithm struct {
	Name   string
	Family Family
	// Hash is the digest signed (0 for EdDSA, which hashes by itself).
	Hash crypto.Hash
	// Curve is the curve an ES* key must be on.
	Curve elliptic.Curve
}

// algorithms is the one table of the algorithms the project verifies: the
// key cache (which JWKs are usable, which key fits which token), the engine
// (the digest, the allow-list's valid names) and its configuration errors
// read it. HMAC and "none" are not in it, and so can never verify anything.
var algorithms = []Algorithm{
	{"RS256", FamilyRSA, crypto.SHA256, nil},
	{"RS384", FamilyRSA, crypto.SHA384, nil},
	{"RS512", FamilyRSA, crypto.SHA512, nil},
	{"PS256", FamilyPSS, crypto.SHA256, nil},
	{"PS384", FamilyPSS, crypto.SHA384, nil},
	{"PS512", FamilyPSS, crypto.SHA512, nil},
	{"ES256", FamilyEC, crypto.SHA256, elliptic.P256()},
	{"ES384", FamilyEC, crypto.SHA384, elliptic.P384()},
	{"ES512", FamilyEC, crypto.SHA512, elliptic.P521()},
	{"EdDSA", FamilyEdDSA, 0, nil},
}

// aliases are other names of a table entry: JWKs (and older configs) name
// the Ed25519 algorithm by its curve.
var aliases = map[string]string{"Ed25519": "EdDSA"}

var byName = func() map[string]*Algorithm {
	m := make(map[string]*Algorithm, len(algorithms)+len(aliases))
	for i := range algorithms {
		m[algorithms[i].Name] = &algorithms[i]
	}
	for alias, name := range aliases {
		m[alias] = m[name]
	}
	return m
}()

// LookupAlgorithm finds an algorithm by its JWS name (or an alias such as
// "Ed25519", for which the EdDSA entry is returned).
func LookupAlgorithm(name string) (*Algorithm, bool) {
	a, ok := byName[name]
	return a, ok
}

// AlgorithmNames lists the JWS names of every supported algorithm, in the
// table's order.
func AlgorithmNames() []string {
	out := make([]string, len(algorithms))
	for i, a := range algorithms {
		out[i] = a.Name
	}
	return out
}
