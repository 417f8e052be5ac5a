package upstream

import (
	"bytes"
	"crypto"
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
	"net/textproto"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/keycloak-jwt/keycloak-jwt/internal/limitedfile"
	"github.com/keycloak-jwt/keycloak-jwt/jwks"
	"github.com/keycloak-jwt/keycloak-jwt/policy"
)

// Defaults and limits of the signed upstream JWT.
const (
	DefaultJWTHeader  = "X-Upstream-Jwt"
	DefaultAlgorithm  = "ES256"
	DefaultTTLSeconds = 60
	MaxTTLSeconds     = 3600
	DefaultJWKSPath   = "/.well-known/keycloak-jwt/jwks.json"
)

// jwtPrefix is the name of the configuration record in error messages.
const jwtPrefix = "upstream_jwt"

// maxKeyFileBytes bounds private_key_file (a PEM key is a few KiB).
const maxKeyFileBytes = 1 << 20

// JWTConfig configures the short-lived JWT the gateway signs for the
// upstream, so that the upstream can trust the hop.
type JWTConfig struct {
	Enabled bool `json:"enabled"`
	// Header carries the JWT. Default "X-Upstream-Jwt".
	Header string `json:"header"`
	// Issuer is the "iss" of the upstream JWT (the gateway). Required.
	Issuer string `json:"issuer"`
	// Audience is the "aud" of the upstream JWT (the upstream). Required.
	Audience string `json:"audience"`
	// Algorithm is "ES256" (default), "EdDSA" or "RS256".
	Algorithm string `json:"algorithm"`
	// PrivateKeyFile is a PEM file (PKCS#8, PKCS#1 or SEC1, unencrypted).
	PrivateKeyFile string `json:"private_key_file"`
	// PrivateKeyEnv names an environment variable holding the PEM. Exactly
	// one of PrivateKeyFile and PrivateKeyEnv is required.
	PrivateKeyEnv string `json:"private_key_env"`
	// NextPrivateKeyFile or NextPrivateKeyEnv (at most one) is the key of
	// the next roll-over: published in the JWKS, signing nothing yet, so
	// that upstreams caching the JWKS have it before it signs. A PEM public
	// key is enough (a private one is read for its public part).
	NextPrivateKeyFile string `json:"next_private_key_file"`
	NextPrivateKeyEnv  string `json:"next_private_key_env"`
	// PreviousPrivateKeyFile or PreviousPrivateKeyEnv (at most one) is the
	// key that signed before the last roll-over: still published, so that
	// JWTs it signed (at most ttl_seconds old) keep verifying. Public is
	// enough, as for next.
	PreviousPrivateKeyFile string `json:"previous_private_key_file"`
	PreviousPrivateKeyEnv  string `json:"previous_private_key_env"`
	// TTLSeconds is the lifetime of the JWT: default 60, max 3600. It never
	// outlives the gateway's acceptance of the original token (its exp plus
	// the policy's leeway, Decision.AcceptedUntil).
	TTLSeconds int `json:"ttl_seconds"`
	// Claims are copied from the original token when present, e.g.
	// ["scope", "realm_access", "resource_access"].
	Claims []string `json:"claims"`
	// JWKSPath is where the public JWKS is served. Default
	// "/.well-known/keycloak-jwt/jwks.json".
	JWKSPath string `json:"jwks_path"`
}

// reservedClaims are set by the signer and cannot be copied.
var reservedClaims = map[string]bool{
	"iss": true, "aud": true, "sub": true, "iat": true, "nbf": true, "exp": true,
	"jti": true, "original_jti": true, "client_id": true, "original_iss": true, "tenant": true,
}

// Signer signs upstream JWTs. It is immutable and safe for concurrent use.
// It never exposes its private key: String and GoString are redacted.
type Signer struct {
	header   string // canonical
	alg      string
	kid      string
	ttl      int64
	claims   []string
	jwksPath string
	jwks     []byte
	kids     []string // published: current, next, previous
	clock    func() time.Time

	// prefix is `base64url(protected header).` and payloadHead is
	// `{"iss":...,"aud":...,`, both precomputed.
	prefix      string
	payloadHead []byte

	key crypto.Signer
}

// NewSigner validates c and loads the private key. It returns nil, nil when
// c is not enabled. clock is time.Now when nil. Errors are
// *policy.ConfigError values naming the offending field; they never contain
// key material.
func NewSigner(c JWTConfig, clock func() time.Time) (*Signer, error) {
	if !c.Enabled {
		return nil, nil
	}
	if clock == nil {
		clock = time.Now
	}
	s := &Signer{clock: clock}

	header := strings.TrimSpace(c.Header)
	if header == "" {
		header = DefaultJWTHeader
	}
	if err := CheckHeaderName(header); err != nil {
		return nil, cfgErr(jwtPrefix+".header", "%v", err)
	}
	s.header = textproto.CanonicalMIMEHeaderKey(header)

	if c.Issuer == "" {
		return nil, cfgErr(jwtPrefix+".issuer", "is required when the upstream JWT is enabled")
	}
	if c.Audience == "" {
		return nil, cfgErr(jwtPrefix+".audience", "is required when the upstream JWT is enabled")
	}

	s.alg = c.Algorithm
	if s.alg == "" {
		s.alg = DefaultAlgorithm
	}
	switch s.alg {
	case "ES256", "EdDSA", "RS256":
	default:
		return nil, cfgErr(jwtPrefix+".algorithm", "%q is not supported (want ES256, EdDSA or RS256)", c.Algorithm)
	}

	switch {
	case c.TTLSeconds == 0:
		s.ttl = DefaultTTLSeconds
	case c.TTLSeconds < 0 || c.TTLSeconds > MaxTTLSeconds:
		return nil, cfgErr(jwtPrefix+".ttl_seconds", "must be between 1 and %d, got %d", MaxTTLSeconds, c.TTLSeconds)
	default:
		s.ttl = int64(c.TTLSeconds)
	}

	seen := map[string]bool{}
	for i, name := range c.Claims {
		field := fmt.Sprintf("%s.claims[%d]", jwtPrefix, i)
		switch {
		case name == "":
			return nil, cfgErr(field, "claim name is empty")
		case reservedClaims[name]:
			return nil, cfgErr(field, "claim %q is set by the gateway and cannot be copied", name)
		case seen[name]:
			return nil, cfgErr(field, "claim %q is listed twice", name)
		}
		seen[name] = true
		s.claims = append(s.claims, name)
	}

	s.jwksPath = c.JWKSPath
	if s.jwksPath == "" {
		s.jwksPath = DefaultJWKSPath
	}
	if err := checkPath(s.jwksPath); err != nil {
		return nil, cfgErr(jwtPrefix+".jwks_path", "%v", err)
	}

	key, field, err := loadKey(c)
	if err != nil {
		return nil, cfgErr(field, "%v", err)
	}
	if err := keyFits(key, s.alg); err != nil {
		return nil, cfgErr(field, "%v", err)
	}
	s.key = key

	pubs, roles := []crypto.PublicKey{key.Public()}, []string{"current"}
	for _, role := range []struct{ name, file, env string }{
		{"next", c.NextPrivateKeyFile, c.NextPrivateKeyEnv},
		{"previous", c.PreviousPrivateKeyFile, c.PreviousPrivateKeyEnv},
	} {
		pub, field, err := loadPublic(role.name, role.file, role.env)
		if err == nil && pub != nil {
			err = keyFits(pub, s.alg)
		}
		if err != nil {
			return nil, cfgErr(field, "%v", err)
		}
		if pub != nil {
			pubs, roles = append(pubs, pub), append(roles, role.name)
		}
	}

	if err := s.buildPublic(pubs, roles); err != nil {
		return nil, cfgErr(field, "%v", err)
	}

	hdr, _ := json.Marshal(struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
		Typ string `json:"typ"`
	}{s.alg, s.kid, "JWT"})
	s.prefix = base64.RawURLEncoding.EncodeToString(hdr) + "."

	var head bytes.Buffer
	head.WriteString(`{"iss":`)
	head.Write(jsonString(c.Issuer))
	head.WriteString(`,"aud":`)
	head.Write(jsonString(c.Audience))
	head.WriteByte(',')
	s.payloadHead = head.Bytes()
	return s, nil
}

func checkPath(p string) error {
	if !strings.HasPrefix(p, "/") {
		return errors.New("must start with '/'")
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c <= ' ' || c >= 0x7f || c == '?' || c == '#' {
			return fmt.Errorf("%q has a character that is not allowed in a path (space, control, '?' or '#')", p)
		}
	}
	return nil
}

// loadKey reads the signing key's PEM from the configured file or
// environment variable. It returns the field to blame in errors.
func loadKey(c JWTConfig) (crypto.Signer, string, error) {
	data, field, err := readPEM("", c.PrivateKeyFile, c.PrivateKeyEnv)
	switch {
	case err != nil:
		return nil, field, err
	case data == nil:
		return nil, field, errors.New("one of private_key_file and private_key_env is required when the upstream JWT is enabled")
	}
	key, err := parsePrivateKey(data)
	return key, field, err
}

// loadPublic reads the public key of the next or previous key: a PEM
// public key (PKIX), or a private key's public part. Neither set: nil.
func loadPublic(role, file, env string) (crypto.PublicKey, string, error) {
	data, field, err := readPEM(role+"_", file, env)
	if err != nil || data == nil {
		return nil, field, err
	}
	if b, _ := pem.Decode(data); b != nil && b.Type == "PUBLIC KEY" {
		pub, err := x509.ParsePKIXPublicKey(b.Bytes)
		if err != nil {
			return nil, field, errors.New("the PUBLIC KEY PEM block is not a valid public key")
		}
		return pub, field, nil
	}
	key, err := parsePrivateKey(data)
	if err != nil {
		return nil, field, fmt.Errorf("%v (or a PUBLIC KEY)", err)
	}
	return key.Public(), field, nil
}

// readPEM reads <prefix>private_key_file or <prefix>private_key_env (at
// most one; neither: nil data). It returns the field to blame in errors.
func readPEM(prefix, file, env string) ([]byte, string, error) {
	fileField, envField := jwtPrefix+"."+prefix+"private_key_file", jwtPrefix+"."+prefix+"private_key_env"
	switch {
	case file != "" && env != "":
		return nil, fileField, fmt.Errorf("set exactly one of %sprivate_key_file and %sprivate_key_env, not both", prefix, prefix)
	case file != "":
		data, err := limitedfile.Read(file, maxKeyFileBytes)
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err // the path is named below
			}
			return nil, fileField, fmt.Errorf("cannot read %q: %v", file, err)
		}
		return data, fileField, nil
	case env != "":
		v, ok := os.LookupEnv(env)
		if !ok || strings.TrimSpace(v) == "" {
			return nil, envField, fmt.Errorf("environment variable %q is not set or empty", env)
		}
		// A PEM in an environment variable often has its newlines escaped.
		if !strings.Contains(v, "\n") && strings.Contains(v, `\n`) {
			v = strings.ReplaceAll(v, `\n`, "\n")
		}
		return []byte(v), envField, nil
	}
	return nil, fileField, nil
}

// parsePrivateKey decodes one unencrypted PEM private key. Its errors are
// fixed strings: nothing of the input is ever echoed.
func parsePrivateKey(data []byte) (crypto.Signer, error) {
	var block *pem.Block
	found := 0
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		switch {
		case b.Type == "ENCRYPTED PRIVATE KEY" || b.Headers["Proc-Type"] != "":
			return nil, errors.New("the PEM private key is encrypted; an unencrypted key is required")
		case strings.HasSuffix(b.Type, "PRIVATE KEY"):
			found++
			block = b
		}
	}
	switch found {
	case 0:
		return nil, errors.New("no PEM private key found (want PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)")
	case 1:
	default:
		return nil, errors.New("more than one PEM private key found; want exactly one")
	}
	var (
		key any
		err error
	)
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("unsupported PEM block type %q (want PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)", block.Type)
	}
	if err != nil {
		// x509 errors describe the DER structure; do not pass them on.
		return nil, fmt.Errorf("the %s PEM block is not a valid private key", block.Type)
	}
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		return k, nil
	case ed25519.PrivateKey:
		return k, nil
	case *rsa.PrivateKey:
		return k, nil
	}
	return nil, fmt.Errorf("unsupported private key type %T", key)
}

// keyFits checks that key (private or public) suits alg.
func keyFits(key any, alg string) error {
	if s, ok := key.(crypto.Signer); ok {
		key = s.Public()
	}
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		if alg == "ES256" && k.Curve == elliptic.P256() {
			return nil
		}
		if alg == "ES256" {
			return fmt.Errorf("ES256 needs a P-256 key, got an EC key on %s", k.Curve.Params().Name)
		}
		return fmt.Errorf("algorithm %s does not fit an EC key", alg)
	case ed25519.PublicKey:
		if alg == "EdDSA" {
			return nil
		}
		return fmt.Errorf("algorithm %s does not fit an Ed25519 key", alg)
	case *rsa.PublicKey:
		if alg != "RS256" {
			return fmt.Errorf("algorithm %s does not fit an RSA key", alg)
		}
		if bits := k.N.BitLen(); bits < jwks.MinRSABits {
			return fmt.Errorf("RSA key has %d bits, at least %d are required", bits, jwks.MinRSABits)
		}
		return nil
	}
	return fmt.Errorf("unsupported key type %T", key)
}

// buildPublic computes each key's kid (RFC 7638 SHA-256 thumbprint) and
// the JWKS of pubs: the signing key first, then next and previous.
func (s *Signer) buildPublic(pubs []crypto.PublicKey, roles []string) error {
	alg, ok := jwa.LookupSignatureAlgorithm(s.alg)
	if !ok {
		return fmt.Errorf("algorithm %s is unknown to the JOSE library", s.alg)
	}
	set := jwk.NewSet()
	for i, p := range pubs {
		pub, err := jwk.Import(p)
		if err != nil {
			return errors.New("cannot convert the public key to a JWK")
		}
		tp, err := pub.Thumbprint(crypto.SHA256)
		if err != nil {
			return errors.New("cannot compute the JWK thumbprint of the public key")
		}
		kid := base64.RawURLEncoding.EncodeToString(tp)
		if slices.Contains(s.kids, kid) {
			return fmt.Errorf("the %s key is the same key as the %s one: a roll-over needs a new key", roles[i], roles[slices.Index(s.kids, kid)])
		}
		s.kids = append(s.kids, kid)
		for _, kv := range []struct {
			k string
			v any
		}{{jwk.KeyIDKey, kid}, {jwk.AlgorithmKey, alg}, {jwk.KeyUsageKey, jwk.ForSignature}} {
			if err := pub.Set(kv.k, kv.v); err != nil {
				return fmt.Errorf("cannot set %s on the public JWK", kv.k)
			}
		}
		if err := set.AddKey(pub); err != nil {
			return errors.New("cannot build the public JWKS")
		}
	}
	s.kid = s.kids[0]
	var err error
	if s.jwks, err = json.Marshal(set); err != nil {
		return errors.New("cannot serialize the public JWKS")
	}
	return nil
}

// Header is the canonical name of the header that carries the JWT. Adapters
// delete client-supplied copies of it on every request.
func (s *Signer) Header() string { return s.header }

// JWKS is the public JWKS document ({"keys":[...]}), computed once. The
// returned slice must not be modified.
func (s *Signer) JWKS() []byte { return s.jwks }

// JWKSPath is the path where adapters serve JWKS.
func (s *Signer) JWKSPath() string { return s.jwksPath }

// KeyID is the kid of the signing key (its RFC 7638 thumbprint).
func (s *Signer) KeyID() string { return s.kid }

// KeyIDs are the kids the JWKS publishes: the signing key's, then the next
// and the previous key's when configured.
func (s *Signer) KeyIDs() []string { return slices.Clone(s.kids) }

// Algorithm is the JWS algorithm of the signer.
func (s *Signer) Algorithm() string { return s.alg }

// String describes the signer without its key.
func (s Signer) String() string {
	return fmt.Sprintf("upstream.Signer{header=%s alg=%s kid=%s}", s.header, s.alg, s.kid)
}

// GoString describes the signer without its key.
func (s Signer) GoString() string { return s.String() }

// Sign returns the compact JWT for an allowed decision. Its claims are iss,
// aud, sub (the client id), client_id, iat (d.CheckedAt, when the policy
// checked the token), nbf (= iat), exp (iat + ttl,
// but never after d.AcceptedUntil, when the gateway itself stops accepting
// the original token: its exp plus the policy's leeway), a fresh random
// jti, original_jti, original_iss, and the configured claims present in the
// original token. So a token accepted within the leeway after its exp still
// yields an upstream JWT that a strict verifier accepts, for what is left of
// that leeway and no longer.
func (s *Signer) Sign(d *policy.Decision) (string, error) {
	p, err := s.payload(d)
	if err != nil {
		return "", err
	}
	return s.signCompact(p)
}

// payload renders the JSON claims of the upstream JWT for d.
func (s *Signer) payload(d *policy.Decision) ([]byte, error) {
	if d == nil || !d.Allow || d.Claims == nil {
		return nil, errors.New("upstream: only an allowed decision with claims can be signed")
	}
	c := d.Claims
	client := d.ClientID()
	if client == "" {
		return nil, errors.New("upstream: the decision has no client identity (azp, client_id or sub)")
	}
	// Dated at the check (CheckedAt < AcceptedUntil), so that a token
	// accepted in its last second cannot yield a JWT expired on issue.
	iat := d.CheckedAt
	if iat == 0 { // a decision not made by a policy
		iat = s.clock().Unix()
	}
	exp := iat + s.ttl
	until := d.AcceptedUntil
	if until == 0 { // not made by a policy: the token's own exp
		until = c.Expiry
	}
	if until < exp {
		exp = until
	}
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return nil, fmt.Errorf("upstream: random jti: %w", err)
	}

	p := make([]byte, 0, 256)
	p = append(p, s.payloadHead...)
	p = append(p, `"sub":`...)
	p = append(p, jsonString(client)...)
	p = append(p, `,"client_id":`...)
	p = append(p, jsonString(client)...)
	p = append(p, `,"iat":`...)
	p = strconv.AppendInt(p, iat, 10)
	p = append(p, `,"nbf":`...)
	p = strconv.AppendInt(p, iat, 10)
	p = append(p, `,"exp":`...)
	p = strconv.AppendInt(p, exp, 10)
	p = append(p, `,"jti":"`...)
	p = base64.RawURLEncoding.AppendEncode(p, jti[:])
	p = append(p, '"')
	if c.ID != "" {
		p = append(p, `,"original_jti":`...)
		p = append(p, jsonString(c.ID)...)
	}
	if c.Issuer != "" {
		p = append(p, `,"original_iss":`...)
		p = append(p, jsonString(c.Issuer)...)
	}
	if d.Tenant != "" {
		p = append(p, `,"tenant":`...)
		p = append(p, jsonString(d.Tenant)...)
	}
	for _, name := range s.claims {
		v, ok := c.Get(name)
		if !ok {
			continue
		}
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("upstream: claim %q cannot be encoded: %w", name, err)
		}
		p = append(p, ',')
		p = append(p, jsonString(name)...)
		p = append(p, ':')
		p = append(p, b...)
	}
	p = append(p, '}')
	return p, nil
}

// signCompact builds `prefix || base64url(payload) || "." || base64url(sig)`.
func (s *Signer) signCompact(payload []byte) (string, error) {
	enc := base64.RawURLEncoding
	out := make([]byte, 0, len(s.prefix)+enc.EncodedLen(len(payload))+1+enc.EncodedLen(s.sigSize()))
	out = append(out, s.prefix...)
	out = enc.AppendEncode(out, payload)
	sig, err := s.signInput(out)
	if err != nil {
		return "", err
	}
	out = append(out, '.')
	out = enc.AppendEncode(out, sig)
	return string(out), nil
}

func (s *Signer) sigSize() int {
	switch k := s.key.(type) {
	case *rsa.PrivateKey:
		return k.Size()
	case ed25519.PrivateKey:
		return ed25519.SignatureSize
	}
	return 64
}

// signInput signs the JWS signing input with the signer's algorithm.
func (s *Signer) signInput(input []byte) ([]byte, error) {
	switch k := s.key.(type) {
	case *ecdsa.PrivateKey: // ES256: R || S, 32 bytes each (RFC 7518 §3.4)
		digest := sha256.Sum256(input)
		r, sv, err := ecdsa.Sign(rand.Reader, k, digest[:])
		if err != nil {
			return nil, fmt.Errorf("upstream: ES256 signing failed: %w", err)
		}
		sig := make([]byte, 64)
		r.FillBytes(sig[:32])
		sv.FillBytes(sig[32:])
		return sig, nil
	case ed25519.PrivateKey:
		return ed25519.Sign(k, input), nil
	case *rsa.PrivateKey:
		digest := sha256.Sum256(input)
		sig, err := rsa.SignPKCS1v15(nil, k, crypto.SHA256, digest[:])
		if err != nil {
			return nil, fmt.Errorf("upstream: RS256 signing failed: %w", err)
		}
		return sig, nil
	}
	return nil, fmt.Errorf("upstream: unsupported key type %T", s.key)
}

// jsonString encodes s as a JSON string.
func jsonString(s string) []byte {
	b, _ := json.Marshal(s)
	return b
}

// Verify checks an upstream JWT against the public JWKS a Signer serves:
// signature (the kid must name a key of the set, and the key's alg must
// match), iss, aud, exp and nbf at now. It returns the JSON-decoded claims.
// Upstream services and tests use it; it has no leeway.
func Verify(jwksJSON []byte, token, issuer, audience string, now time.Time) (map[string]any, error) {
	set, err := jwk.Parse(jwksJSON)
	if err != nil {
		return nil, fmt.Errorf("upstream: invalid JWKS: %w", err)
	}
	if issuer == "" || audience == "" {
		return nil, errors.New("upstream: issuer and audience are required")
	}
	_, err = jwt.Parse([]byte(token),
		jwt.WithKeySet(set),
		jwt.WithValidate(true),
		jwt.WithIssuer(issuer),
		jwt.WithAudience(audience),
		jwt.WithRequiredClaim("exp"),
		jwt.WithClock(jwt.ClockFunc(func() time.Time { return now })),
	)
	if err != nil {
		return nil, fmt.Errorf("upstream: %w", err)
	}
	// The signature is valid: decode the payload as plain JSON.
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, errors.New("upstream: not a compact JWS")
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, fmt.Errorf("upstream: payload: %w", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(raw, &claims); err != nil {
		return nil, fmt.Errorf("upstream: payload: %w", err)
	}
	return claims, nil
}

// CheckSigner reports an error when the signer's header is also one of the
// identity or claim headers of h (each would overwrite the other). Either
// may be nil (disabled).
func (h *Headers) CheckSigner(s *Signer) error {
	if h == nil || s == nil {
		return nil
	}
	for _, n := range h.names {
		if n == s.header {
			return cfgErr(jwtPrefix+".header", "header %q is also an identity or claim header of %s", s.header, configPrefix)
		}
	}
	return nil
}
