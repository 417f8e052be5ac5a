package policy

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"
	"unsafe"

	"github.com/valyala/fastjson"

	"github.com/keycloak-jwt/keycloak-jwt/internal/strbytes"
)

// header is the protected JOSE header of a compact JWS.
type header struct {
	Alg, Kid, Typ, Cty string
	// refused marks the members whose presence alone is refused, whatever
	// their value (null included): see checkHeader.
	refused refusedMembers
}

// refusedMembers is a set of the header members checkHeader refuses.
type refusedMembers uint8

const (
	// jku, x5u, jwk and x5c carry keys or key URLs, never trusted; crit,
	// b64, zip and enc ask for processing that is not supported.
	memberJku refusedMembers = 1 << iota
	memberX5u
	memberJwk
	memberX5c
	memberCrit
	memberB64
	memberZip
	memberEnc
)

// headerMembers are the header members read or refused, by exact name.
var headerMembers = map[string]refusedMembers{
	"alg": 0, "kid": 0, "typ": 0, "cty": 0,
	"jku": memberJku, "x5u": memberX5u, "jwk": memberJwk, "x5c": memberX5c,
	"crit": memberCrit, "b64": memberB64, "zip": memberZip, "enc": memberEnc,
}

// parsed is a compact JWS split and decoded, not yet verified.
type parsed struct {
	hdr          *header
	signingInput string
	payload      []byte
	sig          []byte
}

var errFormat = errors.New("not a compact JWS")

// b64 is strict base64url without padding (RFC 7515 §2): '=' padding and
// non-zero trailing bits are refused, so one token has one encoding.
var b64 = base64.RawURLEncoding.Strict()

// split decodes a compact JWS. Headers repeat across the tokens of one
// realm, so decoded headers are kept in hc (bounded) when hc is not nil.
func split(token string, hc *headerCache) (parsed, error) {
	first := strings.IndexByte(token, '.')
	last := strings.LastIndexByte(token, '.')
	if first <= 0 || last == first || last == len(token)-1 {
		return parsed{}, fmt.Errorf("%w: want three non-empty dot-separated parts", errFormat)
	}
	// Two byte scans (vectorised) rather than ContainsAny's loop over a set,
	// which was a fifth of a cold check's work outside the signature.
	if strings.IndexByte(token, '\r') >= 0 || strings.IndexByte(token, '\n') >= 0 {
		return parsed{}, fmt.Errorf("%w: line break in token", errFormat)
	}
	if strings.IndexByte(token[first+1:last], '.') >= 0 {
		return parsed{}, fmt.Errorf("%w: more than three parts (encrypted tokens are not accepted)", errFormat)
	}
	rawHdr, rawPayload, rawSig := token[:first], token[first+1:last], token[last+1:]
	h, err := hc.get(rawHdr)
	if err != nil {
		return parsed{}, err
	}
	p := parsed{hdr: h, signingInput: token[:last]}
	if rawPayload == "" {
		return parsed{}, fmt.Errorf("%w: empty payload", errFormat)
	}
	// Payload and signature decode into one allocation.
	np := b64.DecodedLen(len(rawPayload))
	buf := make([]byte, np+b64.DecodedLen(len(rawSig)))
	n, err := b64.Decode(buf[:np], strbytes.ReadOnly(rawPayload))
	if err != nil {
		return parsed{}, fmt.Errorf("%w: payload is not base64url: %w", errFormat, err)
	}
	m, err := b64.Decode(buf[np:], strbytes.ReadOnly(rawSig))
	if err != nil {
		return parsed{}, fmt.Errorf("%w: signature is not base64url: %w", errFormat, err)
	}
	p.payload, p.sig = buf[:n:n], buf[np:np+m:np+m]
	return p, nil
}

// decodeHeader decodes the protected header with the claims' parser and
// rules, and stricter ones: the text must be RFC 8259 JSON in UTF-8; member
// names match exactly (case-sensitive, RFC 7515 §4); a name differing only
// in case from a member read here is refused (a case-insensitive reader
// downstream would take it for that member), and so is any member present
// twice, since readers disagree on which one wins.
func decodeHeader(raw string) (*header, error) {
	b, err := b64.DecodeString(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: header is not base64url: %w", errFormat, err)
	}
	obj, parser, err := parseObject(b)
	if err != nil {
		return nil, fmt.Errorf("%w: header %w", errFormat, err)
	}
	defer jsonParsers.Put(parser)
	// The parser lets invalid escapes, control characters in strings and
	// non-numbers ("nan", "01") through, which encoding/json refuses;
	// Validate holds the header to RFC 8259. Headers are parsed rarely (see
	// headerCache), so this costs next to nothing per token.
	if err := fastjson.ValidateBytes(b); err != nil {
		return nil, fmt.Errorf("%w: header is not valid JSON: %w", errFormat, err)
	}
	if err := uniqueMembers(obj); err != nil {
		return nil, fmt.Errorf("%w: header: %w", errFormat, err)
	}
	h := new(header)
	obj.Visit(func(key []byte, v *fastjson.Value) {
		if err != nil {
			return
		}
		bit, known := headerMembers[string(key)]
		switch {
		case bit != 0:
			h.refused |= bit
		case !known:
			err = caseVariant(string(key))
		case v.Type() == fastjson.TypeNull:
		default:
			var s string
			if s, err = str(string(key), v); err == nil {
				switch string(key) {
				case "alg":
					h.Alg = s
				case "kid":
					h.Kid = s
				case "typ":
					h.Typ = s
				case "cty":
					h.Cty = s
				}
			}
		}
	})
	if err != nil {
		return nil, fmt.Errorf("%w: header: %w", errFormat, err)
	}
	return h, nil
}

// caseVariant refuses a header member name that equals a member read or
// refused by decodeHeader but for letter case; any other name is ignored.
// Folding is Unicode's, as encoding/json's: the Kelvin sign folds to 'k'.
func caseVariant(name string) error {
	for m := range headerMembers {
		if strings.EqualFold(name, m) {
			return fmt.Errorf("member %q is not %q: header member names are case-sensitive", name, m)
		}
	}
	return nil
}

// uniqueMembers refuses an object with a member name twice (names compared
// after unescaping, so "\u0061lg" repeats "alg").
func uniqueMembers(obj *fastjson.Object) error {
	var dup []byte
	if n := obj.Len(); n <= 8 {
		var names [8][]byte
		i := 0
		obj.Visit(func(key []byte, _ *fastjson.Value) {
			for _, seen := range names[:i] {
				if dup == nil && string(seen) == string(key) {
					dup = key
				}
			}
			names[i] = key
			i++
		})
	} else {
		seen := make(map[string]struct{}, n)
		obj.Visit(func(key []byte, _ *fastjson.Value) {
			if _, ok := seen[string(key)]; ok && dup == nil {
				dup = key
			}
			seen[string(key)] = struct{}{}
		})
	}
	if dup != nil {
		return fmt.Errorf("member %q appears more than once", dup)
	}
	return nil
}

// headerCache remembers decoded headers by their encoded form. Only headers
// that passed decoding are kept; it is bounded and reset when full.
type headerCache struct {
	mu sync.RWMutex
	m  map[string]*header
}

const headerCacheSize = 256

func (c *headerCache) get(raw string) (*header, error) {
	if c == nil {
		return decodeHeader(raw)
	}
	c.mu.RLock()
	h, ok := c.m[raw]
	c.mu.RUnlock()
	if ok {
		return h, nil
	}
	h, err := decodeHeader(raw)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= headerCacheSize {
		c.m = make(map[string]*header, headerCacheSize)
	}
	c.m[raw] = h
	c.mu.Unlock()
	return h, nil
}

// checkHeader applies the header rules that do not depend on keys.
func checkHeader(h *header) (reason, detail string) {
	switch {
	case h.refused&(memberJku|memberX5u|memberJwk|memberX5c) != 0:
		return ReasonBadHeader, "token header carries key material or a key URL (jku/x5u/jwk/x5c); keys come only from the issuer's JWKS"
	case h.refused&memberCrit != 0:
		return ReasonBadHeader, "token header has a crit parameter; no critical extension is supported"
	case h.refused&memberB64 != 0:
		return ReasonBadHeader, "token header has b64 (unencoded payload) which is not supported"
	case h.refused&(memberZip|memberEnc) != 0:
		return ReasonBadHeader, "token header has JWE parameters (zip/enc)"
	case h.Cty != "" && strings.EqualFold(h.Cty, "JWT"):
		return ReasonBadHeader, "nested JWTs (cty JWT) are not accepted"
	}
	return "", ""
}

// Claims are the verified claims of an access token. They are immutable
// once built and may be shared between goroutines.
type Claims struct {
	Issuer          string
	Subject         string
	Audience        []string
	Expiry          int64 // Unix seconds
	NotBefore       int64 // 0 when absent
	IssuedAt        int64 // 0 when absent
	ID              string
	Type            string // the "typ" claim (Keycloak: "Bearer")
	AuthorizedParty string // "azp"
	ClientIDClaim   string // "client_id" (RFC 9068)
	Scopes          []string
	RealmRoles      []string
	ClientRoles     map[string][]string

	// KeyID and Algorithm are from the verified JOSE header; HeaderType is its "typ".
	KeyID, Algorithm, HeaderType string
	// NotAccessClaim is the first claim seen that only ID tokens ("nonce",
	// "at_hash", "c_hash", "s_hash") or logout tokens ("events") carry; ""
	// when none. It refuses such tokens when they declare no type.
	NotAccessClaim string
	// Confirmation is the "cnf" claim (RFC 7800): the key a sender-
	// constrained token is bound to. Zero for a plain bearer token.
	Confirmation Confirmation

	// Get reads the payload: raw, decoded, until the token is cached, then
	// enc, its segment of the cached token (see tokenCache.put): a cached
	// token keeps no decoded copy of its payload.
	raw   []byte
	enc   string
	valid atomic.Uint32 // Get's verdict on the payload: 0 not yet known, 1 JSON, 2 not
}

// ClientID is the stable client identity: azp, else client_id, else sub.
func (c *Claims) ClientID() string {
	switch {
	case c.AuthorizedParty != "":
		return c.AuthorizedParty
	case c.ClientIDClaim != "":
		return c.ClientIDClaim
	}
	return c.Subject
}

// jsonParsers recycles fastjson parsers: the header and the claims of every
// cold-path token are read with one, which costs a fraction of encoding/json.
var jsonParsers fastjson.ParserPool

// parseObject parses b, which must be exactly one JSON object, with a
// pooled parser. The object lives in the parser's memory: the caller puts
// the parser back to the pool when done with it (only when err is nil).
func parseObject(b []byte) (*fastjson.Object, *fastjson.Parser, error) {
	if len(b) == 0 || b[0] != '{' {
		return nil, nil, errors.New("is not a JSON object")
	}
	if !utf8.Valid(b) {
		// RFC 8259 §8.1; encoding/json would read U+FFFD where fastjson
		// keeps the raw bytes.
		return nil, nil, errors.New("is not valid UTF-8")
	}
	parser := jsonParsers.Get()
	v, err := parser.ParseBytes(b)
	if err != nil {
		jsonParsers.Put(parser)
		return nil, nil, fmt.Errorf("is not valid JSON: %w", err)
	}
	obj, err := v.Object()
	if err != nil {
		jsonParsers.Put(parser)
		return nil, nil, errors.New("is not a JSON object")
	}
	return obj, parser, nil
}

// decodeClaims parses the payload into Claims. Claim names match exactly
// (case-sensitive); a registered claim of the wrong JSON type is refused
// rather than ignored; unknown claims are left for Get.
func decodeClaims(payload []byte, h *header) (*Claims, error) {
	obj, parser, err := parseObject(payload)
	if err != nil {
		return nil, fmt.Errorf("claims: payload %w", err)
	}
	defer jsonParsers.Put(parser)
	c := &Claims{KeyID: h.Kid, Algorithm: h.Alg, HeaderType: h.Typ, raw: payload}
	// Every string of the claims is a copy (the parser's buffer is reused),
	// made in one allocation: no string is longer unescaped than in the
	// payload, so the payload's length is enough for them all.
	ar := &arena{b: make([]byte, 0, len(payload))}
	var hasExp bool
	var scp []string
	obj.Visit(func(key []byte, v *fastjson.Value) {
		if err != nil || v.Type() == fastjson.TypeNull {
			return
		}
		switch string(key) { // compared in place, no allocation
		case "iss":
			c.Issuer, err = ar.str("iss", v)
		case "sub":
			c.Subject, err = ar.str("sub", v)
		case "jti":
			c.ID, err = ar.str("jti", v)
		case "typ":
			c.Type, err = ar.str("typ", v)
		case "azp":
			c.AuthorizedParty, err = ar.str("azp", v)
		case "client_id":
			c.ClientIDClaim, err = ar.str("client_id", v)
		case "aud":
			if v.Type() == fastjson.TypeString {
				var a string
				a, err = ar.str("aud", v)
				c.Audience = []string{a}
			} else {
				c.Audience, err = ar.strList("aud", v)
			}
		case "exp":
			c.Expiry, err = numericDate("exp", v)
			hasExp = err == nil
		case "nbf":
			c.NotBefore, err = numericDate("nbf", v)
		case "iat":
			c.IssuedAt, err = numericDate("iat", v)
		case "scope":
			var s string
			if s, err = ar.str("scope", v); err == nil {
				c.Scopes = strings.Fields(s)
			}
		case "scp":
			scp, err = ar.strList("scp", v)
		case "realm_access":
			c.RealmRoles, err = ar.roleList(nil, v)
		case "resource_access":
			c.ClientRoles, err = ar.clientRoles(v)
		case "cnf":
			c.Confirmation, err = ar.confirmation(v)
		case "nonce", "at_hash", "c_hash", "s_hash", "events":
			if c.NotAccessClaim == "" {
				c.NotAccessClaim = notAccessClaims[string(key)]
			}
		}
	})
	if err != nil {
		return nil, fmt.Errorf("claims: %w", err)
	}
	if !hasExp {
		return nil, errors.New(`claims: "exp" is required`)
	}
	if c.Scopes == nil {
		c.Scopes = scp
	}
	return c, nil
}

func str(name string, v *fastjson.Value) (string, error) {
	b, err := v.StringBytes()
	if err != nil {
		return "", fmt.Errorf("%q must be a string", name)
	}
	return string(b), nil
}

// arena holds the strings of one token's claims (see decodeClaims). Bytes
// once handed out as a string are never written again.
type arena struct{ b []byte }

// bytes returns p as a string in the arena (a copy of its own when the
// arena is full, which the sizing in decodeClaims rules out).
func (a *arena) bytes(p []byte) string {
	if len(p) == 0 {
		return ""
	}
	if cap(a.b)-len(a.b) < len(p) {
		return string(p)
	}
	start := len(a.b)
	a.b = append(a.b, p...)
	return unsafe.String(&a.b[start], len(p))
}

func (a *arena) str(name string, v *fastjson.Value) (string, error) {
	b, err := v.StringBytes()
	if err != nil {
		return "", fmt.Errorf("%q must be a string", name)
	}
	return a.bytes(b), nil
}

func (a *arena) strList(name string, v *fastjson.Value) ([]string, error) {
	arr, err := v.Array()
	if err != nil {
		return nil, fmt.Errorf("%q must be an array of strings", name)
	}
	out := make([]string, len(arr))
	for i, e := range arr {
		b, err := e.StringBytes()
		if err != nil {
			return nil, fmt.Errorf("%q must be an array of strings", name)
		}
		out[i] = a.bytes(b)
	}
	return out, nil
}

// notAccessClaims are the claims only ID tokens or logout tokens carry
// (NotAccessClaim names the first one seen).
var notAccessClaims = map[string]string{"nonce": "nonce", "at_hash": "at_hash", "c_hash": "c_hash", "s_hash": "s_hash", "events": "events"}

// numericDate reads a JWT NumericDate: a JSON number of seconds (a
// fraction is truncated down). Strings and booleans are refused.
func numericDate(name string, v *fastjson.Value) (int64, error) {
	f, err := v.Float64()
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f > 1e15 || f < -1e15 {
		return 0, fmt.Errorf("%q must be a number of seconds", name)
	}
	return int64(math.Floor(f)), nil
}

// roleList reads the "roles" array of realm_access (client nil) or of
// resource_access.<client>; the names for errors are built only for errors.
func (a *arena) roleList(client []byte, v *fastjson.Value) ([]string, error) {
	where := func() string {
		if client == nil {
			return "realm_access"
		}
		return "resource_access." + string(client)
	}
	if v.Type() != fastjson.TypeObject {
		return nil, fmt.Errorf("%q must be an object", where())
	}
	r := v.Get("roles")
	if r == nil || r.Type() == fastjson.TypeNull {
		return nil, nil
	}
	roles, err := a.strList("", r)
	if err != nil {
		return nil, fmt.Errorf("%q must be an array of strings", where()+".roles")
	}
	return roles, nil
}

func (a *arena) clientRoles(v *fastjson.Value) (map[string][]string, error) {
	obj, err := v.Object()
	if err != nil {
		return nil, errors.New(`"resource_access" must be an object`)
	}
	out := make(map[string][]string, obj.Len())
	obj.Visit(func(key []byte, cv *fastjson.Value) {
		if err != nil {
			return
		}
		var roles []string
		roles, err = a.roleList(key, cv)
		out[a.bytes(key)] = roles
	})
	return out, err
}

// Confirmation is a token's "cnf" claim: what its sender must prove.
type Confirmation struct {
	// JKT is the RFC 7638 SHA-256 thumbprint of the DPoP key (RFC 9449).
	JKT string
	// X5TS256 is the SHA-256 thumbprint of the client certificate (RFC 8705).
	X5TS256 string
	// Other names a confirmation method the gateway cannot check ("" when none).
	Other string
}

// Bound reports whether the token is sender-constrained: it must not pass
// as a plain bearer token.
func (c Confirmation) Bound() bool { return c.JKT != "" || c.X5TS256 != "" || c.Other != "" }

// confirmation decodes a "cnf" object.
func (a *arena) confirmation(v *fastjson.Value) (Confirmation, error) {
	var out Confirmation
	o, err := v.Object()
	if err != nil {
		return out, errors.New(`"cnf" is not an object`)
	}
	o.Visit(func(k []byte, m *fastjson.Value) {
		if err != nil {
			return
		}
		switch string(k) {
		case "jkt":
			out.JKT, err = a.str("cnf.jkt", m)
		case "x5t#S256":
			out.X5TS256, err = a.str("cnf.x5t#S256", m)
		default:
			if out.Other == "" {
				out.Other = a.bytes(k)
			}
		}
	})
	if err == nil && !out.Bound() {
		out.Other = "(empty cnf)"
	}
	return out, err
}
