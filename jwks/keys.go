package jwks

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
)

// MinRSABits is the smallest RSA modulus accepted for signature keys.
const MinRSABits = 2048

// Key is one public signature key of an issuer.
type Key struct {
	// ID is the JWK "kid" ("" when the issuer publishes none).
	ID string
	// Alg is the JWK "alg" ("" when the JWK does not pin one).
	Alg string
	// Public is *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey.
	Public crypto.PublicKey
}

// Allows reports whether a token signed with JWS algorithm alg may be
// verified with this key: the JWK's own "alg" must match when present, and the
// key type (and curve) must fit the algorithm family. HMAC and "none" never fit.
func (k *Key) Allows(alg string) bool {
	if k.Alg != "" && k.Alg != alg {
		return false
	}
	a, ok := LookupAlgorithm(alg)
	if !ok {
		return false
	}
	switch pub := k.Public.(type) {
	case *rsa.PublicKey:
		return a.Family == FamilyRSA || a.Family == FamilyPSS
	case *ecdsa.PublicKey:
		return a.Family == FamilyEC && pub.Curve == a.Curve
	case ed25519.PublicKey:
		return a.Family == FamilyEdDSA
	}
	return false
}

// KeySet is an immutable snapshot of an issuer's usable signature keys.
type KeySet struct {
	byID  map[string]*Key
	noID  []*Key
	count int
	// Skipped describes keys that were published but are not usable for
	// signatures (encryption keys, HMAC keys, unsupported or weak keys).
	Skipped []string
	// FetchedAt is when this set was fetched; RefreshAt when a background
	// refresh starts; ExpiresAt when its TTL ends (it is served stale after
	// that only while refreshes fail, up to Config.MaxStale).
	FetchedAt, RefreshAt, ExpiresAt time.Time
}

// Lookup returns the key with the given kid. A token without a kid matches
// only when the issuer publishes exactly one usable key that allows alg.
func (s *KeySet) Lookup(kid, alg string) (*Key, bool) {
	if s == nil {
		return nil, false
	}
	if kid != "" {
		k, ok := s.byID[kid]
		return k, ok
	}
	var found *Key
	for _, k := range s.all() {
		if k.Allows(alg) {
			if found != nil {
				return nil, false
			}
			found = k
		}
	}
	return found, found != nil
}

// Len is the number of usable keys.
func (s *KeySet) Len() int {
	if s == nil {
		return 0
	}
	return s.count
}

// Keys lists the usable keys.
func (s *KeySet) Keys() []*Key {
	if s == nil {
		return nil
	}
	return s.all()
}

// IDs lists the kids of the usable keys.
func (s *KeySet) IDs() []string {
	var ids []string
	for _, k := range s.all() {
		ids = append(ids, k.ID)
	}
	return ids
}

func (s *KeySet) all() []*Key {
	out := make([]*Key, 0, s.count)
	for _, k := range s.byID {
		out = append(out, k)
	}
	return append(out, s.noID...)
}

// reuse replaces keys equal to ones of old by old's pointers, so a cached
// verification that remembers its *Key stays valid across refreshes that
// did not change that key.
func (s *KeySet) reuse(old *KeySet) {
	if old == nil {
		return
	}
	type equaler interface{ Equal(crypto.PublicKey) bool }
	for id, k := range s.byID {
		if o, ok := old.byID[id]; ok && o.Alg == k.Alg {
			if e, ok := o.Public.(equaler); ok && e.Equal(k.Public) {
				s.byID[id] = o
			}
		}
	}
}

// ErrNoUsableKeys is returned when a JWKS document holds no signature key
// this package can use.
var ErrNoUsableKeys = errors.New("no usable signature keys")

// ParseSet parses a JWKS document. Keys are parsed one by one, so a key this
// package cannot use (Keycloak's RSA-OAEP "enc" key, an "oct" key, an
// unknown key type) is skipped and noted instead of failing the whole set.
// It fails when the document is not a JWKS or when no usable key remains.
func ParseSet(data []byte) (*KeySet, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("JWKS is not valid JSON: %w", err)
	}
	if doc.Keys == nil {
		return nil, errors.New(`JWKS has no "keys" array`)
	}
	set := &KeySet{byID: make(map[string]*Key, len(doc.Keys))}
	dup := map[string]bool{}
	for i, raw := range doc.Keys {
		k, why := parseKey(raw)
		if k == nil {
			set.Skipped = append(set.Skipped, fmt.Sprintf("key %d: %s", i, why))
			continue
		}
		if k.ID == "" {
			set.noID = append(set.noID, k)
		} else {
			if dup[k.ID] {
				set.Skipped = append(set.Skipped, fmt.Sprintf("kid %q: published again, ignored", k.ID))
				continue
			}
			if _, seen := set.byID[k.ID]; seen {
				dup[k.ID] = true
				// Two keys with one kid make the choice ambiguous: keep neither.
				delete(set.byID, k.ID)
				set.count--
				set.Skipped = append(set.Skipped, fmt.Sprintf("kid %q: published twice, ignored", k.ID))
				continue
			}
			set.byID[k.ID] = k
		}
		set.count++
	}
	if set.count == 0 {
		return nil, fmt.Errorf("%w (%d published: %v)", ErrNoUsableKeys, len(doc.Keys), set.Skipped)
	}
	return set, nil
}

// parseKey returns a usable signature key, or nil and the reason it is not.
func parseKey(raw json.RawMessage) (*Key, string) {
	var hdr struct {
		Kty    string   `json:"kty"`
		Use    string   `json:"use"`
		KeyOps []string `json:"key_ops"`
		Alg    string   `json:"alg"`
		Kid    string   `json:"kid"`
	}
	if err := json.Unmarshal(raw, &hdr); err != nil {
		return nil, "not a JSON object"
	}
	label := fmt.Sprintf("kid %q (kty %q, use %q, alg %q)", hdr.Kid, hdr.Kty, hdr.Use, hdr.Alg)
	if hdr.Use != "" && hdr.Use != "sig" {
		return nil, label + ": not a signature key"
	}
	if len(hdr.KeyOps) > 0 && !contains(hdr.KeyOps, "verify") {
		return nil, label + `: key_ops lacks "verify"`
	}
	if _, ok := LookupAlgorithm(hdr.Alg); !ok && hdr.Alg != "" {
		return nil, label + ": algorithm not usable for signatures"
	}
	switch hdr.Kty {
	case "RSA", "EC", "OKP":
	default:
		return nil, label + ": key type not usable (HMAC and unknown types are never trusted)"
	}
	jk, err := jwk.ParseKey(raw)
	if err != nil {
		return nil, label + ": " + err.Error()
	}
	var pub any
	if err := jwk.Export(jk, &pub); err != nil {
		return nil, label + ": " + err.Error()
	}
	switch p := pub.(type) {
	case *rsa.PublicKey:
		if p.N.BitLen() < MinRSABits {
			return nil, fmt.Sprintf("%s: RSA key of %d bits is below %d", label, p.N.BitLen(), MinRSABits)
		}
	case *ecdsa.PublicKey:
	case ed25519.PublicKey:
	default:
		// Private keys or anything else: a JWKS must publish public keys only.
		return nil, fmt.Sprintf("%s: not a public key (%T)", label, pub)
	}
	k := &Key{ID: hdr.Kid, Alg: hdr.Alg, Public: pub}
	if hdr.Alg != "" && !k.Allows(hdr.Alg) {
		return nil, label + ": alg does not fit the key type"
	}
	return k, ""
}

func contains(list []string, v string) bool {
	for _, s := range list {
		if s == v {
			return true
		}
	}
	return false
}

// ParseJWK parses one public signature JWK (a DPoP proof's jwk header) by
// the rules of a realm's keys (no private, HMAC or short RSA keys; alg must
// fit), and returns its RFC 7638 SHA-256 thumbprint, base64url.
func ParseJWK(raw []byte) (*Key, string, error) {
	k, why := parseKey(raw)
	if k == nil {
		return nil, "", errors.New(why)
	}
	jk, err := jwk.ParseKey(raw)
	if err != nil {
		return nil, "", err
	}
	tp, err := jk.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, "", err
	}
	return k, base64.RawURLEncoding.EncodeToString(tp), nil
}
