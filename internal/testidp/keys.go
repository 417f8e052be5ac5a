package testidp

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"

	// Register the hash implementations used by algorithms.
	_ "crypto/sha512"
)

// algorithm describes how a JWS algorithm signs.
type algorithm struct {
	family string // "RS", "PS", "ES" or "EdDSA"
	hash   crypto.Hash
	curve  elliptic.Curve // for "ES"
}

// algorithms lists the supported JWS signing algorithms.
var algorithms = map[string]algorithm{
	"RS256": {family: "RS", hash: crypto.SHA256},
	"RS384": {family: "RS", hash: crypto.SHA384},
	"RS512": {family: "RS", hash: crypto.SHA512},
	"PS256": {family: "PS", hash: crypto.SHA256},
	"PS384": {family: "PS", hash: crypto.SHA384},
	"PS512": {family: "PS", hash: crypto.SHA512},
	"ES256": {family: "ES", hash: crypto.SHA256, curve: elliptic.P256()},
	"ES384": {family: "ES", hash: crypto.SHA384, curve: elliptic.P384()},
	"ES512": {family: "ES", hash: crypto.SHA512, curve: elliptic.P521()},
	"EdDSA": {family: "EdDSA"},
}

// rsaBits is the modulus size of generated RSA keys, as in Keycloak.
const rsaBits = 2048

// key is one asymmetric key of the realm. Everything but published is
// immutable once the key has been added.
type key struct {
	kid    string
	alg    string // JWS algorithm used when signing with the key
	use    string // "sig" or "enc"
	signer crypto.Signer
	// published reports whether the key appears in the JWKS. Guarded by
	// IdP.mu.
	published bool
}

// jwkAlg returns the "alg" the JWKS publishes for k.
func (k *key) jwkAlg() string {
	if k.use == "enc" {
		return "RSA-OAEP"
	}
	return k.alg
}

// addKey generates a key for alg and registers it. use is "sig", or "enc"
// for the RSA-OAEP key (alg then only determines how WithKid signs with it).
func (i *IdP) addKey(alg, use string, publish bool) (*key, error) {
	signer, err := generateKey(alg)
	if err != nil {
		return nil, err
	}
	kid, err := keyID(signer.Public())
	if err != nil {
		return nil, err
	}
	k := &key{kid: kid, alg: alg, use: use, signer: signer, published: publish}
	i.mu.Lock()
	defer i.mu.Unlock()
	i.keys = append(i.keys, k)
	i.byKid[kid] = k
	return k, nil
}

// generateKey returns a fresh private key suitable for alg.
func generateKey(alg string) (crypto.Signer, error) {
	a, ok := algorithms[alg]
	if !ok {
		return nil, fmt.Errorf("testidp: unsupported signing algorithm %q", alg)
	}
	switch a.family {
	case "RS", "PS":
		return rsa.GenerateKey(rand.Reader, rsaBits)
	case "ES":
		return ecdsa.GenerateKey(a.curve, rand.Reader)
	default:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		return priv, err
	}
}

// keyID derives a Keycloak-like kid from a public key: the unpadded
// base64url SHA-256 of its PKIX encoding, 43 characters long.
func keyID(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("testidp: encode public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(sum[:]), nil
}

// sign returns the JWS signature of signingInput made with signer under alg,
// in the encoding JWS prescribes (raw r||s for ECDSA).
func sign(alg string, signer crypto.Signer, signingInput []byte) ([]byte, error) {
	a, ok := algorithms[alg]
	if !ok {
		return nil, fmt.Errorf("testidp: unsupported signing algorithm %q", alg)
	}
	if a.family == "EdDSA" {
		return signer.Sign(rand.Reader, signingInput, crypto.Hash(0))
	}
	h := a.hash.New()
	h.Write(signingInput)
	digest := h.Sum(nil)
	switch a.family {
	case "RS":
		return signer.Sign(rand.Reader, digest, a.hash)
	case "PS":
		return signer.Sign(rand.Reader, digest, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: a.hash})
	default: // "ES"
		der, err := signer.Sign(rand.Reader, digest, a.hash)
		if err != nil {
			return nil, err
		}
		var sig struct{ R, S *big.Int }
		if _, err := asn1.Unmarshal(der, &sig); err != nil {
			return nil, fmt.Errorf("testidp: decode ECDSA signature: %w", err)
		}
		size := (a.curve.Params().BitSize + 7) / 8
		out := make([]byte, 2*size)
		sig.R.FillBytes(out[:size])
		sig.S.FillBytes(out[size:])
		return out, nil
	}
}

// JWK is one entry of the JWKS document, with members in Keycloak's order.
type JWK struct {
	Kid string `json:"kid"`
	Kty string `json:"kty"`
	Alg string `json:"alg"`
	Use string `json:"use"`
	// RSA
	N string `json:"n,omitempty"`
	E string `json:"e,omitempty"`
	// EC and OKP
	Crv string `json:"crv,omitempty"`
	X   string `json:"x,omitempty"`
	Y   string `json:"y,omitempty"`
}

// jwk returns the public JWK of k.
func (k *key) jwk() (JWK, error) {
	b64 := base64.RawURLEncoding.EncodeToString
	j := JWK{Kid: k.kid, Alg: k.jwkAlg(), Use: k.use}
	switch pub := k.signer.Public().(type) {
	case *rsa.PublicKey:
		j.Kty = "RSA"
		j.N = b64(pub.N.Bytes())
		j.E = b64(big.NewInt(int64(pub.E)).Bytes())
	case *ecdsa.PublicKey:
		raw, err := pub.Bytes() // 0x04 || X || Y
		if err != nil {
			return JWK{}, err
		}
		size := (len(raw) - 1) / 2
		j.Kty = "EC"
		j.Crv = pub.Curve.Params().Name
		j.X = b64(raw[1 : 1+size])
		j.Y = b64(raw[1+size:])
	case ed25519.PublicKey:
		j.Kty = "OKP"
		j.Crv = "Ed25519"
		j.X = b64(pub)
	default:
		return JWK{}, errors.New("testidp: unsupported key type")
	}
	return j, nil
}

// JWKSet is the JWKS document.
type JWKSet struct {
	Keys []JWK `json:"keys"`
}

// JWKS returns the JWKS document as the certs endpoint currently serves it
// (without any injected fault).
func (i *IdP) JWKS() ([]byte, error) {
	i.mu.RLock()
	set := JWKSet{Keys: []JWK{}}
	var err error
	for _, k := range i.keys {
		if !k.published {
			continue
		}
		var j JWK
		if j, err = k.jwk(); err != nil {
			break
		}
		set.Keys = append(set.Keys, j)
	}
	i.mu.RUnlock()
	if err != nil {
		return nil, err
	}
	return json.Marshal(set)
}
