package authz

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/keycloak-jwt/keycloak-jwt/jwks"
	"github.com/keycloak-jwt/keycloak-jwt/policy"
)

// Defaults of DPoPConfig.
const (
	DefaultDPoPMaxAgeSeconds   = 60
	DefaultDPoPReplayCacheSize = 100_000
	// dpopClockSkew is how far in the future a proof's iat may be.
	dpopClockSkew = 5 * time.Second
	// maxProofBytes bounds a DPoP header (a proof with an RSA-4096 jwk is ~1.5 KB).
	maxProofBytes = 8 << 10
)

// ErrInvalidDPoPProof is RFC 9449's error code for a missing or bad proof.
const ErrInvalidDPoPProof = "invalid_dpop_proof"

// Reasons of sender-constrained tokens.
const (
	ReasonTokenBound = "token_bound"        // a cnf-bound token without its proof: 401
	ReasonDPoPProof  = "invalid_dpop_proof" // the DPoP proof is missing or does not hold: 401
	ReasonNotBound   = "token_not_bound"    // a DPoP-scheme token without cnf.jkt: 401
)

// DPoPConfig accepts sender-constrained tokens (RFC 9449): "Authorization:
// DPoP <token>" with a "DPoP: <proof>" header.
type DPoPConfig struct {
	// Enabled accepts the DPoP scheme. Default false: a DPoP token is then
	// refused like any token bound to a key without its proof.
	Enabled bool `json:"enabled"`
	// Algorithms allowed for proofs. Default ["ES256", "RS256", "PS256", "EdDSA"].
	Algorithms []string `json:"algorithms"`
	// MaxAgeSeconds is how old a proof's iat may be (and how long its jti is
	// remembered). Default 60.
	MaxAgeSeconds int `json:"max_age_seconds"`
	// ReplayCacheSize bounds the jti replay cache (per gateway node).
	// Default 100000. When full of unexpired proofs, new ones are refused.
	ReplayCacheSize int `json:"replay_cache_size"`
}

// ReplayStore remembers proofs: FirstUse reports whether key is new, and
// keeps it for ttl. The default is in memory, per node; a shared store
// (Redis) lets several gateway nodes see each other's proofs.
type ReplayStore interface {
	FirstUse(key string, ttl time.Duration) (bool, error)
}

// dpopPolicy is a compiled DPoPConfig.
type dpopPolicy struct {
	algs    []string
	maxAge  time.Duration
	replay  ReplayStore
	baseURL *url.URL
	now     func() time.Time
	keys    proofKeys
}

// proofKeys remembers parsed proof keys by their JWK text: a client signs
// many proofs with one key, and parsing a JWK costs more than verifying.
// Bounded: emptied when full.
type proofKeys struct {
	mu sync.Mutex
	m  map[string]proofKey
}

type proofKey struct {
	key        *jwks.Key
	thumbprint string
}

const maxProofKeys = 4096

func (c *proofKeys) parse(raw []byte) (*jwks.Key, string, error) {
	c.mu.Lock()
	if k, ok := c.m[string(raw)]; ok {
		c.mu.Unlock()
		return k.key, k.thumbprint, nil
	}
	c.mu.Unlock()
	key, tp, err := jwks.ParseJWK(raw)
	if err != nil {
		return nil, "", err
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxProofKeys {
		c.m = make(map[string]proofKey)
	}
	c.m[string(raw)] = proofKey{key, tp}
	c.mu.Unlock()
	return key, tp, nil
}

func compileDPoP(c DPoPConfig, publicURL *url.URL, now func() time.Time, store ReplayStore) (*dpopPolicy, error) {
	if !c.Enabled {
		return nil, nil
	}
	var errs []error
	if publicURL == nil {
		errs = append(errs, cfgErr("public_url", "is required with dpop.enabled: a proof's htu is checked against it"))
	}
	p := &dpopPolicy{maxAge: time.Duration(DefaultDPoPMaxAgeSeconds) * time.Second, baseURL: publicURL, now: now, replay: store}
	algs := c.Algorithms
	if len(algs) == 0 {
		algs = []string{"ES256", "RS256", "PS256", "EdDSA"}
	}
	for i, a := range algs {
		alg, ok := jwks.LookupAlgorithm(a)
		if !ok {
			errs = append(errs, cfgErr(fmt.Sprintf("dpop.algorithms[%d]", i), "%q is not an asymmetric JWS algorithm; choose from %v", a, jwks.AlgorithmNames()))
			continue
		}
		p.algs = append(p.algs, alg.Name)
	}
	switch {
	case c.MaxAgeSeconds == 0:
	case c.MaxAgeSeconds < 1 || c.MaxAgeSeconds > 3600:
		errs = append(errs, cfgErr("dpop.max_age_seconds", "must be between 1 and 3600, got %d", c.MaxAgeSeconds))
	default:
		p.maxAge = time.Duration(c.MaxAgeSeconds) * time.Second
	}
	size := DefaultDPoPReplayCacheSize
	switch {
	case c.ReplayCacheSize == 0:
	case c.ReplayCacheSize < 100 || c.ReplayCacheSize > 10_000_000:
		errs = append(errs, cfgErr("dpop.replay_cache_size", "must be between 100 and 10000000, got %d", c.ReplayCacheSize))
	default:
		size = c.ReplayCacheSize
	}
	if p.replay == nil {
		p.replay = newMemoryReplay(size, now)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return p, nil
}

// proofClaims are the claims of a DPoP proof.
type proofClaims struct {
	JTI   string          `json:"jti"`
	HTM   string          `json:"htm"`
	HTU   string          `json:"htu"`
	IAT   json.Number     `json:"iat"`
	ATH   string          `json:"ath"`
	Nonce json.RawMessage `json:"nonce"`
}

// check verifies a DPoP proof for a request to method and path that
// carries token bound to jkt (RFC 9449 §4.3). The error says what failed.
func (p *dpopPolicy) check(proof, method, path, token, jkt string) error {
	if len(proof) > maxProofBytes {
		return fmt.Errorf("the proof is longer than %d bytes", maxProofBytes)
	}
	parts := strings.Split(proof, ".")
	if len(parts) != 3 {
		return errors.New("the proof is not a compact JWS")
	}
	hdrJSON, err := b64url.DecodeString(parts[0])
	if err != nil {
		return errors.New("the proof's header is not base64url")
	}
	hdr, err := strictObject(hdrJSON)
	if err != nil {
		return fmt.Errorf("the proof's header %w", err)
	}
	var typ, alg string
	if json.Unmarshal(hdr["typ"], &typ) != nil || typ != "dpop+jwt" {
		return errors.New(`the proof's typ is not "dpop+jwt"`)
	}
	if json.Unmarshal(hdr["alg"], &alg) != nil || !contains(p.algs, alg) {
		return fmt.Errorf("the proof's alg %q is not one of %v", alg, p.algs)
	}
	for _, forbidden := range []string{"jku", "x5u", "x5c", "crit"} {
		if _, ok := hdr[forbidden]; ok {
			return fmt.Errorf("the proof's header carries %q", forbidden)
		}
	}
	rawJWK, ok := hdr["jwk"]
	if !ok {
		return errors.New("the proof's header has no jwk")
	}
	key, thumbprint, err := p.keys.parse(rawJWK)
	if err != nil {
		return fmt.Errorf("the proof's jwk: %w", err)
	}
	if thumbprint != jkt {
		return errors.New("the proof's key is not the key the token is bound to (cnf.jkt)")
	}
	if !key.Allows(alg) {
		return fmt.Errorf("alg %s does not fit the proof's key", alg)
	}
	sig, err := b64url.DecodeString(parts[2])
	if err != nil {
		return errors.New("the proof's signature is not base64url")
	}
	if err := jwks.Verify(alg, key, parts[0]+"."+parts[1], sig); err != nil {
		return fmt.Errorf("the proof's signature: %w", err)
	}
	payload, err := b64url.DecodeString(parts[1])
	if err != nil {
		return errors.New("the proof's payload is not base64url")
	}
	obj, err := strictObject(payload)
	if err != nil {
		return fmt.Errorf("the proof's claims %w", err)
	}
	var c proofClaims
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&c); err != nil {
		return errors.New("the proof's claims have the wrong types")
	}
	for _, name := range []string{"jti", "htm", "htu", "iat", "ath"} {
		if _, ok := obj[name]; !ok {
			return fmt.Errorf("the proof has no %s", name)
		}
	}
	if c.JTI == "" || len(c.JTI) > 256 {
		return errors.New("the proof's jti is empty or too long")
	}
	if c.HTM != method {
		return fmt.Errorf("the proof is for method %q, the request is %s", c.HTM, method)
	}
	if err := p.checkHTU(c.HTU, path); err != nil {
		return err
	}
	iat, err := c.IAT.Int64()
	if err != nil {
		return errors.New("the proof's iat is not an integer")
	}
	now := p.now()
	issued := time.Unix(iat, 0)
	if issued.After(now.Add(dpopClockSkew)) {
		return fmt.Errorf("the proof's iat is %s in the future", issued.Sub(now).Round(time.Second))
	}
	if now.Sub(issued) > p.maxAge {
		return fmt.Errorf("the proof is %s old (dpop.max_age_seconds %d)", now.Sub(issued).Round(time.Second), int(p.maxAge/time.Second))
	}
	ath := sha256.Sum256([]byte(token))
	if c.ATH != b64url.EncodeToString(ath[:]) {
		return errors.New("the proof's ath is not the hash of this access token")
	}
	first, err := p.replay.FirstUse(jkt+"\x00"+c.JTI, p.maxAge+dpopClockSkew)
	switch {
	case err != nil:
		return fmt.Errorf("the replay check failed: %w", err)
	case !first:
		return errors.New("the proof was used before (jti replayed)")
	}
	return nil
}

// checkHTU compares a proof's htu with the request's URL: the public base
// URL and the path, without query and fragment (RFC 9449 §4.3), scheme and
// host without case, default ports elided.
func (p *dpopPolicy) checkHTU(htu, path string) error {
	u, err := url.Parse(htu)
	if err != nil || u.Host == "" {
		return fmt.Errorf("the proof's htu %q is not an absolute URL", htu)
	}
	want := *p.baseURL
	want.Path = strings.TrimSuffix(want.Path, "/") + path
	if !strings.EqualFold(u.Scheme, want.Scheme) || hostPort(u) != hostPort(&want) || u.EscapedPath() != want.EscapedPath() {
		return fmt.Errorf("the proof is for %s, the request is for %s", stripQuery(u), want.String())
	}
	return nil
}

func hostPort(u *url.URL) string {
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if port == "" || (u.Scheme == "https" && port == "443") || (u.Scheme == "http" && port == "80") {
		return host
	}
	return host + ":" + port
}

func stripQuery(u *url.URL) string {
	c := *u
	c.RawQuery, c.Fragment = "", ""
	return c.String()
}

var b64url = base64.RawURLEncoding.Strict()

// strictObject decodes a JSON object with case-sensitive member names and
// refuses duplicate members (the JOSE rule the engine applies to tokens).
func strictObject(b []byte) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil || m == nil {
		return nil, errors.New("is not a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if _, err := dec.Token(); err != nil {
		return nil, errors.New("is not a JSON object")
	}
	n := 0
	for dec.More() {
		if _, err := dec.Token(); err != nil { // the member name
			return nil, errors.New("is not a JSON object")
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil, errors.New("is not a JSON object")
		}
		n++
	}
	if n != len(m) {
		return nil, errors.New("repeats a member")
	}
	return m, nil
}

// memoryReplay is the per-node replay store: bounded, expiring.
type memoryReplay struct {
	mu   sync.Mutex
	seen map[string]time.Time // key → expiry
	max  int
	now  func() time.Time
}

func newMemoryReplay(size int, now func() time.Time) *memoryReplay {
	return &memoryReplay{seen: map[string]time.Time{}, max: size, now: now}
}

// FirstUse implements ReplayStore. When the store is full of unexpired
// proofs it answers an error: a proof it cannot remember is refused (fail
// closed), never accepted unremembered.
func (m *memoryReplay) FirstUse(key string, ttl time.Duration) (bool, error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if exp, ok := m.seen[key]; ok && now.Before(exp) {
		return false, nil
	}
	if len(m.seen) >= m.max {
		for k, exp := range m.seen {
			if !now.Before(exp) {
				delete(m.seen, k)
			}
		}
		if len(m.seen) >= m.max {
			return false, fmt.Errorf("the replay cache holds %d unexpired proofs (dpop.replay_cache_size)", m.max)
		}
	}
	m.seen[key] = now.Add(ttl)
	return true, nil
}

func contains(list []string, v string) bool {
	for _, s := range list {
		if s == v {
			return true
		}
	}
	return false
}

// checkBinding enforces a sender-constrained token's binding (its cnf
// claim, RFC 7800): a DPoP token needs its proof, a certificate-bound one
// the client certificate, and neither passes as a bearer token (RFC 9449
// §7.2). It returns the denial, or nil.
func (g *Gate) checkBinding(req *Request, s *scan, token string, d *policy.Decision) *policy.Decision {
	cnf := d.Claims.Confirmation
	deny := func(code, reason, msg, detail string) *policy.Decision {
		return &policy.Decision{Status: http.StatusUnauthorized, Error: code, Reason: reason, Message: msg, Detail: detail}
	}
	if s.dpopScheme {
		switch {
		case cnf.JKT == "":
			return deny(policy.ErrInvalidToken, ReasonNotBound, "The access token is not bound to a DPoP key",
				"a token without cnf.jkt presented with the DPoP scheme")
		case len(s.dpopLines) != 1:
			return deny(ErrInvalidDPoPProof, ReasonDPoPProof, "A single DPoP proof is required",
				fmt.Sprintf("%d DPoP header lines", len(s.dpopLines)))
		}
		if err := g.dpop.check(strings.TrimSpace(s.dpopLines[0]), req.Method, req.Path, token, cnf.JKT); err != nil {
			return deny(ErrInvalidDPoPProof, ReasonDPoPProof, "The DPoP proof is invalid", err.Error())
		}
	} else if cnf.JKT != "" || cnf.Other != "" {
		what := "a DPoP key (cnf.jkt)"
		if cnf.JKT == "" {
			what = "a confirmation method the gateway cannot check (cnf." + cnf.Other + ")"
		}
		return deny(policy.ErrInvalidToken, ReasonTokenBound, "The access token is bound to a key: present it with its proof",
			"a token bound to "+what+" presented as a bearer token")
	}
	if cnf.X5TS256 != "" {
		thumb, err := g.certThumbprint(req, s)
		if err != nil {
			return deny(policy.ErrInvalidToken, ReasonTokenBound, "The access token is bound to a client certificate", err.Error())
		}
		if thumb != cnf.X5TS256 {
			return deny(policy.ErrInvalidToken, ReasonTokenBound, "The access token is bound to another client certificate",
				"the client certificate's SHA-256 thumbprint is not cnf.x5t#S256")
		}
	}
	return nil
}

// certThumbprint is the SHA-256 thumbprint (base64url) of the client
// certificate: the one the adapter saw on its own TLS connection, else the
// one the proxy in front passed in certificate_header.
func (g *Gate) certThumbprint(req *Request, s *scan) (string, error) {
	pemText := req.ClientCertPEM
	if pemText != "" && !strings.HasPrefix(pemText, "-----") {
		unescaped, err := url.QueryUnescape(pemText)
		if err != nil {
			return "", errors.New("the client certificate is not URL-encoded PEM")
		}
		pemText = unescaped
	}
	if pemText == "" {
		if !g.certified {
			return "", errors.New("no client certificate: the gateway terminates no TLS and certificate_header is not set")
		}
		if len(s.certLines) != 1 {
			return "", fmt.Errorf("%d lines of the certificate header; one expected", len(s.certLines))
		}
		unescaped, err := url.QueryUnescape(s.certLines[0])
		if err != nil {
			return "", errors.New("the certificate header is not URL-encoded PEM")
		}
		pemText = unescaped
	}
	block, _ := pem.Decode([]byte(pemText))
	if block == nil || block.Type != "CERTIFICATE" {
		return "", errors.New("the client certificate is not a PEM certificate")
	}
	if _, err := x509.ParseCertificate(block.Bytes); err != nil {
		return "", fmt.Errorf("the client certificate does not parse: %w", err)
	}
	sum := sha256.Sum256(block.Bytes)
	return b64url.EncodeToString(sum[:]), nil
}
