// Package dpoptest is a DPoP client for tests (RFC 9449): its own proof key,
// its RFC 7638 thumbprint, and proofs, written from the RFCs rather than with
// the gateway's code. Test support only.
package dpoptest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"
)

// Client holds a P-256 proof key.
type Client struct {
	Key *ecdsa.PrivateKey
	JWK map[string]string
	// JKT is the key's RFC 7638 SHA-256 thumbprint: a bound token's cnf.jkt.
	JKT string
}

// New makes a client with a fresh key.
func New(t testing.TB) *Client {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	x, y := make([]byte, 32), make([]byte, 32)
	k.X.FillBytes(x)
	k.Y.FillBytes(y)
	c := &Client{Key: k, JWK: map[string]string{"kty": "EC", "crv": "P-256", "x": b64(x), "y": b64(y)}}
	// RFC 7638: the required members in lexicographic order, no whitespace.
	canon := `{"crv":"P-256","kty":"EC","x":"` + c.JWK["x"] + `","y":"` + c.JWK["y"] + `"}`
	sum := sha256.Sum256([]byte(canon))
	c.JKT = b64(sum[:])
	return c
}

// Proof signs a proof for method and htu bound to token; edit may change
// the header and the claims first.
func (c *Client) Proof(t testing.TB, method, htu, token string, edit func(h, p map[string]any)) string {
	t.Helper()
	ath := sha256.Sum256([]byte(token))
	h := map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": c.JWK}
	jti := make([]byte, 12)
	_, _ = rand.Read(jti)
	p := map[string]any{"jti": base64.RawURLEncoding.EncodeToString(jti), "htm": method, "htu": htu,
		"iat": time.Now().Unix(), "ath": base64.RawURLEncoding.EncodeToString(ath[:])}
	if edit != nil {
		edit(h, p)
	}
	hb, _ := json.Marshal(h)
	pb, _ := json.Marshal(p)
	input := base64.RawURLEncoding.EncodeToString(hb) + "." + base64.RawURLEncoding.EncodeToString(pb)
	digest := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, c.Key, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}
