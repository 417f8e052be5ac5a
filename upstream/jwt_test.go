package upstream

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/keycloak-jwt/keycloak-jwt/policy"
)

var algs = []string{"ES256", "EdDSA", "RS256"}

// testNow is the fixed clock of the signer tests.
var testNow = time.Unix(1_800_000_000, 0)

func fixedClock() time.Time { return testNow }

var (
	keysMu sync.Mutex
	keys   = map[string]crypto.Signer{}
)

// testKey returns a key generated once per test binary for name:
// "ES256", "EdDSA", "RS256", "RS256-other", "ES256-other", "P384", "RSA1024".
func testKey(t testing.TB, name string) crypto.Signer {
	t.Helper()
	keysMu.Lock()
	defer keysMu.Unlock()
	if k, ok := keys[name]; ok {
		return k
	}
	var (
		k   crypto.Signer
		err error
	)
	switch strings.TrimSuffix(name, "-other") {
	case "ES256":
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "P384":
		k, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "EdDSA":
		_, k, err = ed25519.GenerateKey(rand.Reader)
	case "RS256":
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	case "RSA1024":
		k, err = rsa.GenerateKey(rand.Reader, 1024)
	default:
		t.Fatalf("unknown test key %q", name)
	}
	if err != nil {
		t.Fatalf("generate %s: %v", name, err)
	}
	keys[name] = k
	return k
}

// pemOf encodes key as "pkcs8", "pkcs1" (RSA) or "sec1" (EC).
func pemOf(t testing.TB, key any, format string) []byte {
	t.Helper()
	var (
		typ string
		der []byte
		err error
	)
	switch format {
	case "pkcs8":
		typ = "PRIVATE KEY"
		der, err = x509.MarshalPKCS8PrivateKey(key)
	case "pkcs1":
		typ = "RSA PRIVATE KEY"
		der = x509.MarshalPKCS1PrivateKey(key.(*rsa.PrivateKey))
	case "sec1":
		typ = "EC PRIVATE KEY"
		der, err = x509.MarshalECPrivateKey(key.(*ecdsa.PrivateKey))
	default:
		t.Fatalf("unknown format %q", format)
	}
	if err != nil {
		t.Fatalf("marshal %s: %v", format, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func writeFile(t testing.TB, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func baseConfig(alg, keyFile string) JWTConfig {
	return JWTConfig{
		Enabled: true, Issuer: "https://gateway.example", Audience: "orders-api",
		Algorithm: alg, PrivateKeyFile: keyFile,
		Claims: []string{"scope", "realm_access", "resource_access", "clientHost", "absent", "count"},
	}
}

func newSigner(t testing.TB, alg string) *Signer {
	t.Helper()
	s, err := NewSigner(baseConfig(alg, writeFile(t, pemOf(t, testKey(t, alg), "pkcs8"))), fixedClock)
	if err != nil {
		t.Fatalf("NewSigner(%s): %v", alg, err)
	}
	return s
}

const tokenPayload = `{"iss":"https://kc.example/realms/demo","sub":"9b2c4e1a","azp":"orders-client",
	"exp":4102444800,"iat":1799999990,"jti":"orig-jti-1","typ":"Bearer",
	"scope":"openid orders:read","realm_access":{"roles":["r1"]},
	"resource_access":{"orders-api":{"roles":["reader"]}},"clientHost":"10.0.0.7","count":12345678901234,
	"email":"not-copied@example"}`

func decodeSegment(t testing.TB, seg string) map[string]any {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatalf("decode segment: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("unmarshal segment %s: %v", b, err)
	}
	return m
}

func TestSignVerifyEachAlgorithm(t *testing.T) {
	for _, alg := range algs {
		t.Run(alg, func(t *testing.T) {
			s := newSigner(t, alg)
			if s.Header() != "X-Upstream-Jwt" || s.JWKSPath() != DefaultJWKSPath || s.Algorithm() != alg {
				t.Errorf("defaults: header %q path %q alg %q", s.Header(), s.JWKSPath(), s.Algorithm())
			}
			tok, err := s.Sign(allowed(t, tokenPayload))
			if err != nil {
				t.Fatalf("Sign: %v", err)
			}
			claims, err := Verify(s.JWKS(), tok, "https://gateway.example", "orders-api", testNow)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			now := float64(testNow.Unix())
			want := map[string]any{
				"iss": "https://gateway.example", "aud": "orders-api",
				"sub": "orders-client", "client_id": "orders-client",
				"iat": now, "nbf": now, "exp": now + DefaultTTLSeconds,
				"original_jti": "orig-jti-1", "original_iss": "https://kc.example/realms/demo",
				"scope": "openid orders:read", "clientHost": "10.0.0.7", "count": float64(12345678901234),
				"realm_access":    map[string]any{"roles": []any{"r1"}},
				"resource_access": map[string]any{"orders-api": map[string]any{"roles": []any{"reader"}}},
			}
			jti, _ := claims["jti"].(string)
			if len(jti) != 22 {
				t.Errorf("jti = %q, want 22 base64url characters", jti)
			}
			delete(claims, "jti")
			if got, exp := fmt.Sprint(claims), fmt.Sprint(want); got != exp {
				t.Errorf("claims =\n%s\nwant\n%s", got, exp)
			}
			hdr := decodeSegment(t, strings.Split(tok, ".")[0])
			if fmt.Sprint(hdr) != fmt.Sprint(map[string]any{"alg": alg, "typ": "JWT", "kid": s.KeyID()}) {
				t.Errorf("header = %v", hdr)
			}
			// One second before nbf, and at exp, the token is refused.
			if _, err := Verify(s.JWKS(), tok, "https://gateway.example", "orders-api", testNow.Add(-time.Second)); err == nil {
				t.Error("Verify accepted a token before nbf")
			}
			if _, err := Verify(s.JWKS(), tok, "https://gateway.example", "orders-api", testNow.Add(DefaultTTLSeconds*time.Second)); err == nil {
				t.Error("Verify accepted an expired token")
			}
		})
	}
}

func TestSignRawPayloadShape(t *testing.T) {
	// Claims without jti/iss are simply left out; values are escaped. A
	// policy allows no token without iss, so these claims are built by hand.
	s := newSigner(t, "ES256")
	tok, err := s.Sign(&policy.Decision{Allow: true, Status: 200, Reason: policy.ReasonOK,
		Claims: &policy.Claims{Subject: `a"b</c>`, Expiry: 4102444800}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := Verify(s.JWKS(), tok, "https://gateway.example", "orders-api", testNow)
	if err != nil {
		t.Fatal(err)
	}
	if c["sub"] != `a"b</c>` || c["client_id"] != `a"b</c>` {
		t.Errorf("sub = %q client_id = %q", c["sub"], c["client_id"])
	}
	for _, k := range []string{"original_jti", "original_iss", "scope"} {
		if _, ok := c[k]; ok {
			t.Errorf("claim %q present, want absent", k)
		}
	}
}

func TestVerifyRefusesTampering(t *testing.T) {
	for _, alg := range algs {
		t.Run(alg, func(t *testing.T) {
			s := newSigner(t, alg)
			tok, err := s.Sign(allowed(t, tokenPayload))
			if err != nil {
				t.Fatal(err)
			}
			parts := strings.Split(tok, ".")
			enc := base64.RawURLEncoding

			payload, _ := enc.DecodeString(parts[1])
			evilPayload := enc.EncodeToString([]byte(strings.Replace(string(payload), "orders-client", "admin-client", 2)))
			sig, _ := enc.DecodeString(parts[2])
			sig[len(sig)/2] ^= 0x01
			hdrNone := enc.EncodeToString([]byte(`{"alg":"none","kid":"` + s.KeyID() + `","typ":"JWT"}`))
			hdrOtherAlg := enc.EncodeToString([]byte(`{"alg":"HS256","kid":"` + s.KeyID() + `","typ":"JWT"}`))
			hdrNoKid := enc.EncodeToString([]byte(`{"alg":"` + alg + `","typ":"JWT"}`))

			// Another key of the same type, signing under this signer's kid.
			other := *s
			other.key = testKey(t, alg+"-other")
			forged, err := other.signCompact(payload)
			if err != nil {
				t.Fatal(err)
			}
			otherSigner, err := NewSigner(baseConfig(alg, writeFile(t, pemOf(t, testKey(t, alg+"-other"), "pkcs8"))), fixedClock)
			if err != nil {
				t.Fatal(err)
			}
			otherTok, err := otherSigner.Sign(allowed(t, tokenPayload))
			if err != nil {
				t.Fatal(err)
			}

			cases := map[string]string{
				"payload changed":        parts[0] + "." + evilPayload + "." + parts[2],
				"signature changed":      parts[0] + "." + parts[1] + "." + enc.EncodeToString(sig),
				"signature removed":      parts[0] + "." + parts[1] + ".",
				"alg none":               hdrNone + "." + parts[1] + ".",
				"alg HS256":              hdrOtherAlg + "." + parts[1] + "." + parts[2],
				"no kid":                 hdrNoKid + "." + parts[1] + "." + parts[2],
				"other key, same kid":    forged,
				"other key, its own kid": otherTok,
				"garbage":                "not.a.jwt",
				"empty":                  "",
			}
			for name, bad := range cases {
				if _, err := Verify(s.JWKS(), bad, "https://gateway.example", "orders-api", testNow); err == nil {
					t.Errorf("%s: Verify accepted a tampered token", name)
				}
			}
			if _, err := Verify(s.JWKS(), tok, "https://other-gateway", "orders-api", testNow); err == nil {
				t.Error("Verify accepted a wrong issuer")
			}
			if _, err := Verify(s.JWKS(), tok, "https://gateway.example", "billing-api", testNow); err == nil {
				t.Error("Verify accepted a wrong audience")
			}
			if _, err := Verify(otherSigner.JWKS(), tok, "https://gateway.example", "orders-api", testNow); err == nil {
				t.Error("Verify accepted a token against another JWKS")
			}
			if _, err := Verify([]byte(`{"keys":`), tok, "https://gateway.example", "orders-api", testNow); err == nil {
				t.Error("Verify accepted an invalid JWKS")
			}
			// Sanity: the untampered token passes.
			if _, err := Verify(s.JWKS(), tok, "https://gateway.example", "orders-api", testNow); err != nil {
				t.Errorf("untampered token refused: %v", err)
			}
		})
	}
}

func TestExpCappedByOriginalToken(t *testing.T) {
	cfg := baseConfig("EdDSA", writeFile(t, pemOf(t, testKey(t, "EdDSA"), "pkcs8")))
	cfg.TTLSeconds = 120
	s, err := NewSigner(cfg, fixedClock)
	if err != nil {
		t.Fatal(err)
	}
	now := testNow.Unix()
	tests := []struct {
		origExp, want int64
	}{
		{now + 10, now + 10},
		{now + 119, now + 119},
		{now + 120, now + 120},
		{now + 121, now + 120},
		{now + 86400, now + 120},
	}
	for _, tt := range tests {
		tok, err := s.Sign(allowed(t, fmt.Sprintf(`{"azp":"c","exp":%d}`, tt.origExp)))
		if err != nil {
			t.Fatal(err)
		}
		c := decodeSegment(t, strings.Split(tok, ".")[1])
		if got := int64(c["exp"].(float64)); got != tt.want {
			t.Errorf("original exp %d: exp = %d, want %d", tt.origExp, got, tt.want)
		}
		if _, err := Verify(s.JWKS(), tok, cfg.Issuer, cfg.Audience, testNow); err != nil {
			t.Errorf("original exp %d: %v", tt.origExp, err)
		}
	}
	// A policy accepts a token until its exp plus the leeway
	// (AcceptedUntil): the upstream JWT lives no longer than that, even for a
	// token accepted within the leeway after its exp, and stays verifiable.
	for _, tt := range []struct {
		origExp, until, want int64
	}{
		{now - 5, now + 55, now + 55},     // accepted 5 s into a 60 s leeway
		{now + 30, now + 90, now + 90},    // exp+leeway before iat+ttl
		{now + 300, now + 360, now + 120}, // iat+ttl first
	} {
		d := allowed(t, fmt.Sprintf(`{"azp":"c","exp":%d}`, tt.origExp))
		d.AcceptedUntil = tt.until
		tok, err := s.Sign(d)
		if err != nil {
			t.Fatal(err)
		}
		if got := int64(decodeSegment(t, strings.Split(tok, ".")[1])["exp"].(float64)); got != tt.want {
			t.Errorf("exp %d accepted until %d: upstream exp = %d, want %d", tt.origExp, tt.until, got, tt.want)
		}
		if _, err := Verify(s.JWKS(), tok, cfg.Issuer, cfg.Audience, testNow); err != nil {
			t.Errorf("exp %d accepted until %d: %v", tt.origExp, tt.until, err)
		}
	}
	// A token accepted in its last second, signed a second later: dated at
	// the check, the JWT is not expired on issue (exp > iat).
	d := allowed(t, fmt.Sprintf(`{"azp":"c","exp":%d}`, now-60))
	d.CheckedAt, d.AcceptedUntil = now-1, now
	tok, err := s.Sign(d)
	if err != nil {
		t.Fatal(err)
	}
	c := decodeSegment(t, strings.Split(tok, ".")[1])
	if iat, exp := int64(c["iat"].(float64)), int64(c["exp"].(float64)); iat != now-1 || exp != now {
		t.Errorf("last-second token: iat %d exp %d, want %d and %d", iat, exp, now-1, now)
	}
	// A decision without AcceptedUntil (not made by a policy) is capped at
	// the token's own exp.
	tok, err = s.Sign(allowed(t, fmt.Sprintf(`{"azp":"c","exp":%d}`, now-5)))
	if err != nil {
		t.Fatal(err)
	}
	if got := int64(decodeSegment(t, strings.Split(tok, ".")[1])["exp"].(float64)); got != now-5 {
		t.Errorf("exp = %d, want %d", got, now-5)
	}
}

func TestJTIFreshPerCall(t *testing.T) {
	s := newSigner(t, "ES256")
	d := allowed(t, tokenPayload)
	seen := map[string]bool{}
	for range 200 {
		tok, err := s.Sign(d)
		if err != nil {
			t.Fatal(err)
		}
		jti := decodeSegment(t, strings.Split(tok, ".")[1])["jti"].(string)
		if seen[jti] || jti == "orig-jti-1" {
			t.Fatalf("jti %q repeated", jti)
		}
		seen[jti] = true
	}
}

// thumbprint computes the RFC 7638 SHA-256 thumbprint independently: the
// required members in lexicographic order, no whitespace.
func thumbprint(t *testing.T, pub crypto.PublicKey) string {
	t.Helper()
	b64 := base64.RawURLEncoding.EncodeToString
	var js string
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		e, err := k.ECDH()
		if err != nil {
			t.Fatal(err)
		}
		raw := e.Bytes() // 0x04 || X || Y
		js = fmt.Sprintf(`{"crv":"P-256","kty":"EC","x":"%s","y":"%s"}`, b64(raw[1:33]), b64(raw[33:]))
	case ed25519.PublicKey:
		js = fmt.Sprintf(`{"crv":"Ed25519","kty":"OKP","x":"%s"}`, b64(k))
	case *rsa.PublicKey:
		js = fmt.Sprintf(`{"e":"%s","kty":"RSA","n":"%s"}`, b64(big.NewInt(int64(k.E)).Bytes()), b64(k.N.Bytes()))
	default:
		t.Fatalf("unexpected key %T", pub)
	}
	sum := sha256.Sum256([]byte(js))
	return b64(sum[:])
}

func TestKidIsRFC7638Thumbprint(t *testing.T) {
	for _, alg := range algs {
		t.Run(alg, func(t *testing.T) {
			s := newSigner(t, alg)
			if want := thumbprint(t, testKey(t, alg).Public()); s.KeyID() != want {
				t.Errorf("kid = %q, want %q", s.KeyID(), want)
			}
		})
	}
}

// privateMembers are JWK members that carry private key material.
var privateMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

func TestJWKSContainsOnlyPublicParts(t *testing.T) {
	wantMembers := map[string][]string{
		"ES256": {"alg", "crv", "kid", "kty", "use", "x", "y"},
		"EdDSA": {"alg", "crv", "kid", "kty", "use", "x"},
		"RS256": {"alg", "e", "kid", "kty", "n", "use"},
	}
	for _, alg := range algs {
		t.Run(alg, func(t *testing.T) {
			s := newSigner(t, alg)
			var doc struct {
				Keys []map[string]any `json:"keys"`
			}
			if err := json.Unmarshal(s.JWKS(), &doc); err != nil {
				t.Fatalf("JWKS is not JSON: %v", err)
			}
			if len(doc.Keys) != 1 {
				t.Fatalf("JWKS has %d keys, want 1", len(doc.Keys))
			}
			k := doc.Keys[0]
			var members []string
			for m := range k {
				members = append(members, m)
			}
			slices.Sort(members)
			if !slices.Equal(members, wantMembers[alg]) {
				t.Errorf("members = %v, want %v", members, wantMembers[alg])
			}
			for _, m := range privateMembers {
				if _, ok := k[m]; ok {
					t.Errorf("JWKS has private member %q", m)
				}
			}
			if k["kid"] != s.KeyID() || k["alg"] != alg || k["use"] != "sig" {
				t.Errorf("kid/alg/use = %v/%v/%v", k["kid"], k["alg"], k["use"])
			}
			assertNotContains(t, string(s.JWKS()), privateMaterial(t, testKey(t, alg)))
			if first, again := s.JWKS(), s.JWKS(); &first[0] != &again[0] {
				t.Error("JWKS is recomputed per call")
			}
		})
	}
}

func TestKeyLoading(t *testing.T) {
	ec, ed, rs := testKey(t, "ES256"), testKey(t, "EdDSA"), testKey(t, "RS256")
	ecParams := pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}})
	tests := []struct {
		name string
		alg  string
		key  crypto.Signer
		pem  []byte
		env  bool
	}{
		{"EC PKCS#8 file", "ES256", ec, pemOf(t, ec, "pkcs8"), false},
		{"EC SEC1 file", "ES256", ec, pemOf(t, ec, "sec1"), false},
		{"EC SEC1 with EC PARAMETERS", "ES256", ec, append(ecParams, pemOf(t, ec, "sec1")...), false},
		{"Ed25519 PKCS#8 file", "EdDSA", ed, pemOf(t, ed, "pkcs8"), false},
		{"RSA PKCS#8 file", "RS256", rs, pemOf(t, rs, "pkcs8"), false},
		{"RSA PKCS#1 file", "RS256", rs, pemOf(t, rs, "pkcs1"), false},
		{"EC env", "ES256", ec, pemOf(t, ec, "sec1"), true},
		{"Ed25519 env", "EdDSA", ed, pemOf(t, ed, "pkcs8"), true},
		{"RSA env", "RS256", rs, pemOf(t, rs, "pkcs1"), true},
		{"env with escaped newlines", "ES256", ec, []byte(strings.ReplaceAll(string(pemOf(t, ec, "pkcs8")), "\n", `\n`)), true},
		{"default algorithm is ES256", "", ec, pemOf(t, ec, "pkcs8"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := baseConfig(tt.alg, "")
			if tt.env {
				cfg.PrivateKeyEnv = "UPSTREAM_TEST_KEY"
				t.Setenv("UPSTREAM_TEST_KEY", string(tt.pem))
			} else {
				cfg.PrivateKeyFile = writeFile(t, tt.pem)
			}
			s, err := NewSigner(cfg, fixedClock)
			if err != nil {
				t.Fatalf("NewSigner: %v", err)
			}
			if s.KeyID() != thumbprint(t, tt.key.Public()) {
				t.Error("loaded a different key")
			}
			tok, err := s.Sign(allowed(t, tokenPayload))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Verify(s.JWKS(), tok, cfg.Issuer, cfg.Audience, testNow); err != nil {
				t.Errorf("Verify: %v", err)
			}
		})
	}
}

func TestNewSignerDisabled(t *testing.T) {
	s, err := NewSigner(JWTConfig{Issuer: "x", PrivateKeyFile: "/nonexistent"}, nil)
	if s != nil || err != nil {
		t.Fatalf("NewSigner(disabled) = %v, %v; want nil, nil", s, err)
	}
}

// privateMaterial lists encodings of the private scalars of key (RSA d, p,
// q; the EC scalar; the Ed25519 seed), which must never appear anywhere.
func privateMaterial(t *testing.T, key crypto.Signer) []string {
	t.Helper()
	var secrets [][]byte
	switch k := key.(type) {
	case *rsa.PrivateKey:
		secrets = append(secrets, k.D.Bytes(), k.Primes[0].Bytes(), k.Primes[1].Bytes())
	case *ecdsa.PrivateKey:
		e, err := k.ECDH()
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, e.Bytes())
	case ed25519.PrivateKey:
		secrets = append(secrets, k.Seed())
	}
	var out []string
	for _, b := range secrets {
		out = append(out,
			base64.RawURLEncoding.EncodeToString(b)[:16],
			base64.StdEncoding.EncodeToString(b)[:16],
			fmt.Sprintf("%x", b)[:16],
			new(big.Int).SetBytes(b).String()[:16])
	}
	return out
}

// keyMaterial adds the lines of the key's PEM body in every format to
// privateMaterial: errors and logs must not echo any of the PEM either.
func keyMaterial(t *testing.T, key crypto.Signer) []string {
	t.Helper()
	out := privateMaterial(t, key)
	formats := []string{"pkcs8"}
	switch key.(type) {
	case *rsa.PrivateKey:
		formats = append(formats, "pkcs1")
	case *ecdsa.PrivateKey:
		formats = append(formats, "sec1")
	}
	for _, f := range formats {
		for _, line := range strings.Split(string(pemOf(t, key, f)), "\n") {
			if len(line) >= 16 && !strings.HasPrefix(line, "-----") {
				out = append(out, line[:16])
			}
		}
	}
	return out
}

func assertNotContains(t *testing.T, s string, material []string) {
	t.Helper()
	for _, m := range material {
		if strings.Contains(s, m) {
			t.Fatalf("key material %q found in %q", m, s)
		}
	}
}

func assertNoKeyMaterial(t *testing.T, s string, key crypto.Signer) {
	t.Helper()
	assertNotContains(t, s, keyMaterial(t, key))
}

func TestNewSignerErrors(t *testing.T) {
	ec, ed, rs := testKey(t, "ES256"), testKey(t, "EdDSA"), testKey(t, "RS256")
	p384, rsa1024 := testKey(t, "P384"), testKey(t, "RSA1024")
	x25519, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	x25519PEM := pemOf(t, x25519, "pkcs8")
	ecPEM := pemOf(t, ec, "pkcs8")
	ecFile := writeFile(t, ecPEM)

	// A PEM whose DER is cut short: the error must not echo its content.
	block, _ := pem.Decode(pemOf(t, rs, "pkcs1"))
	corrupt := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: block.Bytes[:len(block.Bytes)-7]})
	encrypted := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-128-CBC,00112233445566778899AABBCCDDEEFF"}, Bytes: block.Bytes})
	encryptedPKCS8 := pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: block.Bytes})
	pubDER, _ := x509.MarshalPKIXPublicKey(ec.Public())
	publicOnly := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	twoKeys := append(pemOf(t, ec, "pkcs8"), pemOf(t, ed, "pkcs8")...)
	// A misspelt PEM type that still ends in PRIVATE KEY.
	oddType := pem.EncodeToMemory(&pem.Block{Type: "OPENSSH PRIVATE KEY", Bytes: block.Bytes})

	file := func(alg string, data []byte) JWTConfig {
		return baseConfig(alg, writeFile(t, data))
	}
	with := func(f func(*JWTConfig)) JWTConfig {
		c := baseConfig("ES256", ecFile)
		f(&c)
		return c
	}
	t.Setenv("UPSTREAM_EMPTY_KEY", "")
	t.Setenv("UPSTREAM_CORRUPT_KEY", string(corrupt))

	tests := []struct {
		name  string
		cfg   JWTConfig
		field string
		want  string
		key   crypto.Signer // whose material must not leak (nil: rs, the corrupt one)
	}{
		{"missing issuer", with(func(c *JWTConfig) { c.Issuer = "" }), "upstream_jwt.issuer", "required", ec},
		{"missing audience", with(func(c *JWTConfig) { c.Audience = "" }), "upstream_jwt.audience", "required", ec},
		{"HS256", with(func(c *JWTConfig) { c.Algorithm = "HS256" }), "upstream_jwt.algorithm", "not supported", ec},
		{"none", with(func(c *JWTConfig) { c.Algorithm = "none" }), "upstream_jwt.algorithm", "not supported", ec},
		{"ES384", with(func(c *JWTConfig) { c.Algorithm = "ES384" }), "upstream_jwt.algorithm", "not supported", ec},
		{"negative ttl", with(func(c *JWTConfig) { c.TTLSeconds = -1 }), "upstream_jwt.ttl_seconds", "between 1 and 3600", ec},
		{"ttl too long", with(func(c *JWTConfig) { c.TTLSeconds = 3601 }), "upstream_jwt.ttl_seconds", "between 1 and 3600", ec},
		{"reserved claim", with(func(c *JWTConfig) { c.Claims = []string{"scope", "exp"} }), "upstream_jwt.claims[1]", "set by the gateway", ec},
		{"reserved original_jti", with(func(c *JWTConfig) { c.Claims = []string{"original_jti"} }), "upstream_jwt.claims[0]", "set by the gateway", ec},
		{"duplicate claim", with(func(c *JWTConfig) { c.Claims = []string{"scope", "scope"} }), "upstream_jwt.claims[1]", "twice", ec},
		{"empty claim", with(func(c *JWTConfig) { c.Claims = []string{""} }), "upstream_jwt.claims[0]", "empty", ec},
		{"bad header", with(func(c *JWTConfig) { c.Header = "X Upstream" }), "upstream_jwt.header", "RFC 7230", ec},
		{"reserved header", with(func(c *JWTConfig) { c.Header = "Authorization" }), "upstream_jwt.header", "may not be set", ec},
		{"relative jwks path", with(func(c *JWTConfig) { c.JWKSPath = "jwks.json" }), "upstream_jwt.jwks_path", "start with '/'", ec},
		{"jwks path with query", with(func(c *JWTConfig) { c.JWKSPath = "/jwks?x=1" }), "upstream_jwt.jwks_path", "not allowed", ec},
		{"no key", with(func(c *JWTConfig) { c.PrivateKeyFile = "" }), "upstream_jwt.private_key_file", "required", ec},
		{"file and env", with(func(c *JWTConfig) { c.PrivateKeyEnv = "UPSTREAM_EMPTY_KEY" }), "upstream_jwt.private_key_file", "exactly one", ec},
		{"env unset", with(func(c *JWTConfig) { c.PrivateKeyFile, c.PrivateKeyEnv = "", "UPSTREAM_SURELY_UNSET_VARIABLE" }), "upstream_jwt.private_key_env", "not set", ec},
		{"env empty", with(func(c *JWTConfig) { c.PrivateKeyFile, c.PrivateKeyEnv = "", "UPSTREAM_EMPTY_KEY" }), "upstream_jwt.private_key_env", "not set", ec},
		{"env corrupt", with(func(c *JWTConfig) { c.PrivateKeyFile, c.PrivateKeyEnv = "", "UPSTREAM_CORRUPT_KEY" }), "upstream_jwt.private_key_env", "not a valid private key", rs},
		{"missing file", with(func(c *JWTConfig) { c.PrivateKeyFile = filepath.Join(t.TempDir(), "nope.pem") }), "upstream_jwt.private_key_file", "cannot read", ec},
		{"endless file", with(func(c *JWTConfig) { c.PrivateKeyFile = "/dev/zero" }), "upstream_jwt.private_key_file", "larger than 1048576 bytes", ec},
		{"not PEM", file("ES256", []byte("this is not a key")), "upstream_jwt.private_key_file", "no PEM private key", ec},
		{"public key only", file("ES256", publicOnly), "upstream_jwt.private_key_file", "no PEM private key", ec},
		{"corrupt DER", file("RS256", corrupt), "upstream_jwt.private_key_file", "not a valid private key", rs},
		{"encrypted legacy PEM", file("RS256", encrypted), "upstream_jwt.private_key_file", "encrypted", rs},
		{"encrypted PKCS#8", file("RS256", encryptedPKCS8), "upstream_jwt.private_key_file", "encrypted", rs},
		{"two keys", file("ES256", twoKeys), "upstream_jwt.private_key_file", "more than one", ec},
		{"unknown PEM type", file("RS256", oddType), "upstream_jwt.private_key_file", "unsupported PEM block type", rs},
		{"EC key for RS256", file("RS256", ecPEM), "upstream_jwt.private_key_file", "does not fit an EC key", ec},
		{"EC key for EdDSA", file("EdDSA", ecPEM), "upstream_jwt.private_key_file", "does not fit an EC key", ec},
		{"P-384 key for ES256", file("ES256", pemOf(t, p384, "pkcs8")), "upstream_jwt.private_key_file", "needs a P-256 key", p384},
		{"RSA key for ES256", file("ES256", pemOf(t, rs, "pkcs1")), "upstream_jwt.private_key_file", "does not fit an RSA key", rs},
		{"RSA key for EdDSA", file("EdDSA", pemOf(t, rs, "pkcs8")), "upstream_jwt.private_key_file", "does not fit an RSA key", rs},
		{"Ed25519 key for ES256", file("ES256", pemOf(t, ed, "pkcs8")), "upstream_jwt.private_key_file", "does not fit an Ed25519 key", ed},
		{"Ed25519 key for RS256", file("RS256", pemOf(t, ed, "pkcs8")), "upstream_jwt.private_key_file", "does not fit an Ed25519 key", ed},
		{"RSA 1024", file("RS256", pemOf(t, rsa1024, "pkcs1")), "upstream_jwt.private_key_file", "at least 2048", rsa1024},
		{"X25519 key", file("EdDSA", x25519PEM), "upstream_jwt.private_key_file", "unsupported private key type", ec},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewSigner(tt.cfg, fixedClock)
			if err == nil {
				t.Fatalf("NewSigner = %v, want an error", s)
			}
			var ce *policy.ConfigError
			if !errors.As(err, &ce) || ce.Field != tt.field {
				t.Errorf("error %q: want field %q", err, tt.field)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
			assertNoKeyMaterial(t, err.Error(), tt.key)
			if tt.name == "X25519 key" {
				der, _ := x509.MarshalPKCS8PrivateKey(x25519)
				if strings.Contains(err.Error(), base64.StdEncoding.EncodeToString(der)[:16]) {
					t.Errorf("error leaks key material: %q", err)
				}
			}
		})
	}
}

func TestSignerDoesNotPrintKey(t *testing.T) {
	for _, alg := range algs {
		s := newSigner(t, alg)
		for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
			out := fmt.Sprintf(f, s) + fmt.Sprintf(f, *s)
			if !strings.Contains(out, s.KeyID()) {
				t.Errorf("%s %s: %q does not describe the signer", alg, f, out)
			}
			assertNoKeyMaterial(t, out, testKey(t, alg))
		}
	}
}

func TestSignRefusesDeniedDecision(t *testing.T) {
	s := newSigner(t, "ES256")
	d := allowed(t, tokenPayload)
	noIdentity := allowed(t, `{"exp":4102444800}`)
	for name, dec := range map[string]*policy.Decision{
		"nil":         nil,
		"denied":      {Allow: false, Status: 403, Claims: d.Claims},
		"no claims":   {Allow: true, Status: 200},
		"no identity": noIdentity,
	} {
		if tok, err := s.Sign(dec); err == nil || tok != "" {
			t.Errorf("%s: Sign = %q, %v; want an error", name, tok, err)
		}
	}
}

func TestSignConcurrent(t *testing.T) {
	s := newSigner(t, "EdDSA")
	d := allowed(t, tokenPayload)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				tok, err := s.Sign(d)
				if err == nil {
					_, err = Verify(s.JWKS(), tok, "https://gateway.example", "orders-api", testNow)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// signJWX signs the same payload with jwx (the baseline of BenchmarkSign).
func signJWX(s *Signer, payload []byte) (string, error) {
	alg, _ := jwa.LookupSignatureAlgorithm(s.alg)
	hdrs := jws.NewHeaders()
	if err := hdrs.Set(jws.KeyIDKey, s.kid); err != nil {
		return "", err
	}
	if err := hdrs.Set(jws.TypeKey, "JWT"); err != nil {
		return "", err
	}
	b, err := jws.Sign(payload, jws.WithKey(alg, s.key, jws.WithProtectedHeaders(hdrs)))
	return string(b), err
}

// TestJWXBaselineInterop checks that the benchmark baseline produces tokens
// Verify accepts, so both paths of BenchmarkSign do the same work.
func TestJWXBaselineInterop(t *testing.T) {
	for _, alg := range algs {
		s := newSigner(t, alg)
		p, err := s.payload(allowed(t, tokenPayload))
		if err != nil {
			t.Fatal(err)
		}
		tok, err := signJWX(s, p)
		if err != nil {
			t.Fatalf("%s: jws.Sign: %v", alg, err)
		}
		if _, err := Verify(s.JWKS(), tok, "https://gateway.example", "orders-api", testNow); err != nil {
			t.Errorf("%s: %v", alg, err)
		}
	}
}

// BenchmarkSign measures Sign (stdlib crypto over a precomputed header) per
// algorithm, and the same payload signed with jwx's jws.Sign for comparison.
func BenchmarkSign(b *testing.B) {
	for _, alg := range algs {
		s := newSigner(b, alg)
		d := allowed(b, tokenPayload)
		b.Run(alg, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Sign(d); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(alg+"-jwx", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				p, err := s.payload(d)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := signJWX(s, p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkVerify(b *testing.B) {
	s := newSigner(b, "ES256")
	tok, err := s.Sign(allowed(b, tokenPayload))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Verify(s.JWKS(), tok, "https://gateway.example", "orders-api", testNow); err != nil {
			b.Fatal(err)
		}
	}
}

func TestCheckSigner(t *testing.T) {
	cfg := baseConfig("ES256", writeFile(t, pemOf(t, testKey(t, "ES256"), "pkcs8")))
	cfg.Header = "x-client-id"
	clash, err := NewSigner(cfg, fixedClock)
	if err != nil {
		t.Fatal(err)
	}
	h := mustCompile(t, HeadersConfig{})
	if err := h.CheckSigner(clash); err == nil || !strings.HasPrefix(err.Error(), "upstream_jwt.header: ") {
		t.Errorf("CheckSigner(clash) = %v, want an upstream_jwt.header error", err)
	}
	if err := h.CheckSigner(newSigner(t, "ES256")); err != nil {
		t.Errorf("CheckSigner = %v", err)
	}
	if err := h.CheckSigner(nil); err != nil {
		t.Errorf("CheckSigner(nil) = %v", err)
	}
	if err := mustCompile(t, HeadersConfig{ClientIDHeader: "-"}).CheckSigner(clash); err != nil {
		t.Errorf("CheckSigner with the clashing header disabled = %v", err)
	}
}
