package policy

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// TestHeaderStrict: the JOSE header is read by the claims' rules: member
// names are case-sensitive, a member may appear once, and the members that
// are refused today (key material, crit, b64, JWE) stay refused whatever
// their value.
func TestHeaderStrict(t *testing.T) {
	e := newEnv(t, "RS256")
	p := e.compile(t, func(c *Config) { c.Algorithms = []string{"RS256", "RS384"} })
	kid := e.idp.CurrentKid()
	payload := mustJSON(validClaims(e))
	base := fmt.Sprintf(`"alg":"RS256","typ":"JWT","kid":%q`, kid)
	cases := []struct {
		name, hdr, reason string // reason "" means allowed
	}{
		{"Keycloak header", `{` + base + `}`, ""},
		{"unknown member ignored", `{` + base + `,"x5t":"abc","foo":{"a":[1]}}`, ""},
		{"escaped member name", `{"\u0061lg":"RS256","typ":"JWT","kid":"` + kid + `"}`, ""},
		{"null cty", `{` + base + `,"cty":null}`, ""},

		// Case: "ALG" is not "alg" (RFC 7515 §4, RFC 8259 §8.3).
		{"ALG overrides alg", `{` + base + `,"ALG":"RS384"}`, ReasonMalformed},
		{"ALG alone", fmt.Sprintf(`{"ALG":"RS256","typ":"JWT","kid":%q}`, kid), ReasonMalformed},
		{"Kid", fmt.Sprintf(`{"alg":"RS256","typ":"JWT","Kid":%q}`, kid), ReasonMalformed},
		{"TYP", `{` + base + `,"TYP":"at+jwt"}`, ReasonMalformed},
		{"JKU", `{` + base + `,"JKU":"https://evil.example/jwks"}`, ReasonMalformed},
		{"Crit", `{` + base + `,"Crit":["exp"]}`, ReasonMalformed},
		{"kid with a Kelvin sign", `{` + base + `,"\u212aid":"other"}`, ReasonMalformed},
		{"jku with a Kelvin sign", `{` + base + `,"j\u212au":"https://evil.example/jwks"}`, ReasonMalformed},

		// Duplicates, however spelled.
		{"alg twice", `{"alg":"RS384",` + base + `}`, ReasonMalformed},
		{"alg twice, same value", `{"alg":"RS256",` + base + `}`, ReasonMalformed},
		{"alg twice, one escaped", `{` + base + `,"\u0061lg":"RS256"}`, ReasonMalformed},
		{"kid twice", fmt.Sprintf(`{%s,"kid":"other"}`, base), ReasonMalformed},
		{"unknown member twice", `{` + base + `,"foo":1,"foo":1}`, ReasonMalformed},

		// Types.
		{"alg a number", fmt.Sprintf(`{"alg":256,"kid":%q}`, kid), ReasonMalformed},
		{"kid an array", `{"alg":"RS256","kid":["x"]}`, ReasonMalformed},
		{"typ an object", `{` + strings.Replace(base, `"typ":"JWT"`, `"typ":{}`, 1) + `}`, ReasonMalformed},
		{"alg null", fmt.Sprintf(`{"alg":null,"kid":%q}`, kid), ReasonAlgorithm},
		{"trailing data", `{` + base + `} {}`, ReasonMalformed},
		{"not an object", `["RS256"]`, ReasonMalformed},
		{"unterminated", `{` + base, ReasonMalformed},
		{"invalid escape", `{` + base + `,"x":"\0"}`, ReasonMalformed},
		{"control character", `{` + base + ",\"x\":\"a\tb\"}", ReasonMalformed},
		{"invalid UTF-8", `{` + base + ",\"x\":\"\xff\"}", ReasonMalformed},

		// Refused as today: presence alone, any value.
		{"nested JWT", `{` + base + `,"cty":"jwt"}`, ReasonBadHeader},
		{"escaped jku", `{` + base + `,"\u006aku":"https://evil.example/jwks"}`, ReasonBadHeader},
	}
	for _, name := range []string{"jku", "x5u", "jwk", "x5c", "crit", "b64", "zip", "enc"} {
		for _, v := range []string{`null`, `""`, `"x"`, `[]`, `{}`, `false`, `0`} {
			cases = append(cases, struct{ name, hdr, reason string }{
				name + "=" + v, `{` + base + `,"` + name + `":` + v + `}`, ReasonBadHeader})
		}
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := e.idp.SignRaw([]byte(tc.hdr), payload)
			if err != nil {
				t.Fatal(err)
			}
			for range 2 { // the second check may be served by the header cache
				d := check(p, tok)
				if tc.reason == "" {
					if !d.Allow {
						t.Fatalf("denied: %s (%s)", d.Reason, d.Detail)
					}
					continue
				}
				if d.Allow || d.Reason != tc.reason {
					t.Fatalf("got allow=%v reason=%s (%s), want %s", d.Allow, d.Reason, d.Detail, tc.reason)
				}
			}
		})
	}
}

// TestClaimsTextRules: the claims, like the header, must be valid UTF-8
// (encoding/json, which Claims.Get uses, would read U+FFFD where the
// parser keeps the raw bytes).
func TestClaimsTextRules(t *testing.T) {
	e := newEnv(t, "RS256")
	p := e.compile(t, nil)
	hdr := mustJSON(hdrFor(e, nil))
	good := string(mustJSON(validClaims(e)))
	for name, payload := range map[string]string{
		"invalid UTF-8 in azp":     strings.Replace(good, `"azp":"orders-service"`, "\"azp\":\"orders-\xffservice\"", 1),
		"invalid UTF-8 in a claim": good[:len(good)-1] + ",\"x\":\"\xc3\"}",
	} {
		t.Run(name, func(t *testing.T) {
			if payload == good {
				t.Fatal("payload not edited")
			}
			tok, err := e.idp.SignRaw(hdr, []byte(payload))
			if err != nil {
				t.Fatal(err)
			}
			if d := check(p, tok); d.Allow || d.Reason != ReasonMalformed {
				t.Fatalf("got allow=%v reason=%s (%s), want %s", d.Allow, d.Reason, d.Detail, ReasonMalformed)
			}
		})
	}
}

// TestHeaderCacheKeepsOnlyGoodHeaders: a decoded header is cached by its
// encoding and served again; a refused one is never cached.
func TestHeaderCacheKeepsOnlyGoodHeaders(t *testing.T) {
	e := newEnv(t, "RS256")
	good := e.token(t, "orders-service")
	var hc headerCache
	first, err := split(good, &hc)
	if err != nil {
		t.Fatal(err)
	}
	again, err := split(good, &hc)
	if err != nil || again.hdr != first.hdr {
		t.Fatalf("header not served from the cache (%v)", err)
	}
	if first.hdr.Alg != "RS256" || first.hdr.Kid != e.idp.CurrentKid() || first.hdr.Typ != "JWT" {
		t.Fatalf("decoded header %+v", first.hdr)
	}
	dup := b64.EncodeToString([]byte(`{"alg":"RS256","alg":"RS256"}`))
	for range 2 {
		if _, err := split(dup+".e30.AA", &hc); err == nil {
			t.Fatal("a header with a duplicate member was accepted")
		}
	}
	if len(hc.m) != 1 {
		t.Fatalf("cache holds %d headers, want 1", len(hc.m))
	}
}

// BenchmarkCheckHeaderUncached is the cold path with the header cache
// emptied before every check, so each one pays for parsing the JOSE header.
func BenchmarkCheckHeaderUncached(b *testing.B) {
	p, tok := benchEnv(b, "RS256", 0)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		p.headers = headerCache{}
		if d := p.Check(ctx, tok); !d.Allow {
			b.Fatal(d.Detail)
		}
	}
}

// BenchmarkCheckDecodeHeader isolates decoding a Keycloak JOSE header.
func BenchmarkCheckDecodeHeader(b *testing.B) {
	e := newEnv(b, "RS256")
	tok := e.token(b, "orders-service")
	raw := tok[:strings.IndexByte(tok, '.')]
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeHeader(raw); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzDecodeHeader: arbitrary headers never panic, and a header that is
// accepted reads the same with encoding/json (no duplicate or case-variant
// member is left for a case-insensitive, last-wins reader to read otherwise).
func FuzzDecodeHeader(f *testing.F) {
	for _, s := range []string{
		`{"alg":"RS256","typ":"JWT","kid":"k1"}`,
		`{"alg":"RS256","ALG":"none"}`,
		`{"alg":"RS256","\u0061lg":"none"}`,
		`{"\u212aid":"x","kid":"y"}`,
		`{"jku":null}`,
		`{"cty":"JWT","x":{"y":[1,2]}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := decodeHeader(b64.EncodeToString(b))
		if err != nil {
			return
		}
		var std struct{ Alg, Kid, Typ, Cty string }
		if err := json.Unmarshal(b, &std); err != nil {
			t.Fatalf("%q: accepted, but encoding/json refuses it: %v", b, err)
		}
		if std.Alg != h.Alg || std.Kid != h.Kid || std.Typ != h.Typ || std.Cty != h.Cty {
			t.Fatalf("%q: read as %+v, encoding/json reads %+v", b, *h, std)
		}
	})
}

// TestTokenTypes: header typ × claim typ × token_types. Keycloak's refresh,
// offline, ID and logout tokens (claim typ, any case) are refused whatever
// the header says and whatever token_types accepts, also on a cache hit.
func TestTokenTypes(t *testing.T) {
	e := newEnv(t, "RS256")
	configs := map[string][]string{
		"Bearer":        {TypeBearer},
		"at+jwt":        {TypeATJWT},
		"Bearer,at+jwt": {TypeBearer, TypeATJWT},
	}
	headerTypes := []string{"", "JWT", "at+jwt", "AT+JWT", "application/at+jwt"}
	claimTypes := []string{"", "Bearer", "bearer", "Refresh", "refresh", "REFRESH", "Offline", "ID", "id", "Id",
		"Logout", "logout", "LOGOUT", "Serialized-ID", "Other"}
	nonAccess := map[string]bool{"refresh": true, "offline": true, "id": true, "logout": true, "serialized-id": true}
	for cfgName, types := range configs {
		p := e.compile(t, func(c *Config) { c.TokenTypes = types })
		for _, ht := range headerTypes {
			for _, ct := range claimTypes {
				name := fmt.Sprintf("token_types=%s/header=%q/claim=%q", cfgName, ht, ct)
				t.Run(name, func(t *testing.T) {
					hdr := hdrFor(e, map[string]any{"typ": nilIfEmpty(ht)})
					tok := signRaw(t, e, hdr, claimsWith(e, map[string]any{"typ": nilIfEmpty(ct)}))
					atJWT := strings.EqualFold(ht, "at+jwt") || strings.EqualFold(ht, "application/at+jwt")
					want := !nonAccess[strings.ToLower(ct)] &&
						(contains(types, TypeATJWT) && atJWT || contains(types, TypeBearer) && ct == TypeBearer)
					d := check(p, tok)
					if d.Allow != want || (!want && d.Reason != ReasonType) {
						t.Fatalf("allow=%v reason=%s (%s), want allow=%v", d.Allow, d.Reason, d.Detail, want)
					}
				})
			}
		}
	}
}

// TestTokenTypeOnCacheHit: the type rule runs on verified-token cache hits
// too, so an entry that reached the cache cannot bypass it.
func TestTokenTypeOnCacheHit(t *testing.T) {
	e := newEnv(t, "RS256")
	p := e.compile(t, nil)
	if p.cache == nil {
		t.Fatal("the token cache is off by default")
	}
	for _, typ := range []string{"Refresh", "ID", "Logout"} {
		tok := signRaw(t, e, hdrFor(e, map[string]any{"typ": "at+jwt"}), claimsWith(e, map[string]any{"typ": typ}))
		pt, err := split(tok, nil)
		if err != nil {
			t.Fatal(err)
		}
		claims, err := decodeClaims(pt.payload, pt.hdr)
		if err != nil {
			t.Fatal(err)
		}
		src := p.Sources()[0]
		key, err := src.Key(context.Background(), pt.hdr.Kid, pt.hdr.Alg)
		if err != nil {
			t.Fatal(err)
		}
		p.cache.put(tok, &cacheEntry{token: tok, claims: claims, key: key, src: src, exp: claims.Expiry})
		if d := check(p, tok); d.Allow || d.Reason != ReasonType || !d.CachedResult {
			t.Fatalf("typ %s on a cache hit: allow=%v reason=%s cached=%v", typ, d.Allow, d.Reason, d.CachedResult)
		}
	}
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}
