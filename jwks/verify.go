package jwks

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"math/big"

	"github.com/keycloak-jwt/keycloak-jwt/internal/strbytes"
)

// Verify checks sig over the signing input with key and alg (one verifier
// for realm tokens and DPoP proofs). The
// caller has already checked alg against the allow-list and key.Allows(alg).
func Verify(alg string, key *Key, signingInput string, sig []byte) error {
	a, ok := LookupAlgorithm(alg)
	if !ok {
		return fmt.Errorf("algorithm %s is not supported", alg)
	}
	switch pub := key.Public.(type) {
	case *rsa.PublicKey:
		if a.Family != FamilyRSA && a.Family != FamilyPSS {
			return fmt.Errorf("algorithm %s does not fit an RSA key", alg)
		}
		var buf [sha512.Size]byte
		digest := digestFor(a.Hash, signingInput, &buf)
		if a.Family == FamilyPSS {
			return rsa.VerifyPSS(pub, a.Hash, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: a.Hash})
		}
		return rsa.VerifyPKCS1v15(pub, a.Hash, digest, sig)
	case *ecdsa.PublicKey:
		if a.Family != FamilyEC {
			return fmt.Errorf("algorithm %s does not fit an EC key", alg)
		}
		var buf [sha512.Size]byte
		digest := digestFor(a.Hash, signingInput, &buf)
		size := (pub.Curve.Params().BitSize + 7) / 8
		if len(sig) != 2*size {
			return fmt.Errorf("ECDSA signature is %d bytes, want %d", len(sig), 2*size)
		}
		r := new(big.Int).SetBytes(sig[:size])
		s := new(big.Int).SetBytes(sig[size:])
		if !ecdsa.Verify(pub, digest, r, s) {
			return errors.New("ECDSA verification failed")
		}
		return nil
	case ed25519.PublicKey:
		if a.Family != FamilyEdDSA {
			return fmt.Errorf("algorithm %s does not fit an Ed25519 key", alg)
		}
		if len(sig) != ed25519.SignatureSize || !ed25519.Verify(pub, strbytes.ReadOnly(signingInput), sig) {
			return errors.New("Ed25519 verification failed")
		}
		return nil
	}
	return fmt.Errorf("unsupported key type %T", key.Public)
}

// digestFor hashes the signing input into buf, without allocating a
// hasher or a copy of the input.
func digestFor(h crypto.Hash, input string, buf *[sha512.Size]byte) []byte {
	in := strbytes.ReadOnly(input)
	switch h {
	case crypto.SHA256:
		d := sha256.Sum256(in)
		return append(buf[:0], d[:]...)
	case crypto.SHA384:
		d := sha512.Sum384(in)
		return append(buf[:0], d[:]...)
	case crypto.SHA512:
		d := sha512.Sum512(in)
		return append(buf[:0], d[:]...)
	}
	return nil
}
