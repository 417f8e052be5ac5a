package policy

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/keycloak-jwt/keycloak-jwt/jwks"
)

// Step is one check of an explanation, in the order the engine applies
// them.
type Step struct {
	// Check names it: "size", "format", "header", "algorithm", "claims",
	// "issuer", "key", "signature", then the claim rules ("token type",
	// "expiry", "audience", "scopes", ...).
	Check string `json:"check"`
	// Result is "pass", "fail" or "skipped" (it could not be evaluated
	// after an earlier failure, e.g. no claims to read).
	Result string `json:"result"`
	// Reason is the reason code a failure gives (as in logs and metrics).
	Reason string `json:"reason,omitempty"`
	// Detail holds the values compared. It never holds the token.
	Detail string `json:"detail,omitempty"`
	// Fix says what to change, on the Keycloak side where that is where the
	// problem is, named as Keycloak's admin console names it.
	Fix string `json:"fix,omitempty"`
}

// Step results.
const (
	StepPass    = "pass"
	StepFail    = "fail"
	StepSkipped = "skipped"
)

// Explanation is every check of one token against a policy, and the verdict.
type Explanation struct {
	// Decision is exactly what Check decides for the token.
	Decision Decision `json:"-"`
	// Steps are the checks in order; every claim rule is evaluated even
	// after one fails, so that one run shows every problem.
	Steps []Step `json:"steps"`
}

// Explain checks token as Check does and explains every check: the verdict
// is Check's own (the same code decides), the steps say why.
func (p *Policy) Explain(ctx context.Context, token string) Explanation {
	ex := Explanation{Decision: p.check(ctx, token)}
	add := func(check, result, reason, detail, fix string) {
		ex.Steps = append(ex.Steps, Step{Check: check, Result: result, Reason: reason, Detail: detail, Fix: fix})
	}
	pass := func(check, detail string) { add(check, StepPass, "", detail, "") }
	fail := func(check, reason, detail, fix string) { add(check, StepFail, reason, detail, fix) }
	skipRest := func(from string) {
		started := false
		for _, c := range append([]string{"size", "format", "header", "algorithm", "claims", "issuer", "key", "signature"}, ruleChecks()...) {
			started = started || c == from
			if started {
				add(c, StepSkipped, "", "", "")
			}
		}
	}

	if len(token) > p.r.maxBytes {
		fail("size", ReasonTooLarge, fmt.Sprintf("%d bytes, max_token_bytes %d", len(token), p.r.maxBytes),
			"the token is larger than max_token_bytes: raise it, or have Keycloak put fewer claims in access tokens")
		skipRest("format")
		return ex
	}
	pass("size", fmt.Sprintf("%d bytes (max %d)", len(token), p.r.maxBytes))
	pt, err := split(token, nil)
	if err != nil {
		fail("format", ReasonMalformed, err.Error(), "send the access_token of the token response as is: header.payload.signature, base64url without padding")
		skipRest("header")
		return ex
	}
	pass("format", "a compact JWS")
	h := pt.hdr
	if reason, detail := checkHeader(h); reason != "" {
		fail("header", reason, detail, "")
		skipRest("algorithm")
		return ex
	}
	pass("header", fmt.Sprintf("alg %q, kid %q, typ %q", h.Alg, h.Kid, h.Typ))
	if !contains(p.r.algs, h.Alg) {
		fix := fmt.Sprintf("add %q to algorithms, or change the realm's signature algorithm (Realm settings → Tokens → Default signature algorithm)", h.Alg)
		if _, ok := jwks.LookupAlgorithm(h.Alg); !ok {
			fix = fmt.Sprintf("%q can never verify a realm's token; Keycloak signs refresh tokens with HS512: send the access_token "+
				"of the token response, not its refresh_token", h.Alg)
		}
		fail("algorithm", ReasonAlgorithm, fmt.Sprintf("alg %q is not in algorithms %s", h.Alg, list(p.r.algs)), fix)
	} else {
		pass("algorithm", fmt.Sprintf("%s is allowed", h.Alg))
	}
	claims, err := decodeClaims(pt.payload, h)
	if err != nil {
		fail("claims", ReasonMalformed, err.Error(), "")
		skipRest("issuer")
		return ex
	}
	pass("claims", fmt.Sprintf("client %q, jti %q", claims.ClientID(), claims.ID))
	src := p.sources[claims.Issuer]
	var realm *Decision // why an issuer pattern's realm was not found
	if src == nil && len(p.patterns) > 0 {
		src, realm = p.tenantSource(ctx, claims.Issuer)
	}
	if src == nil && realm != nil {
		fail("issuer", realm.Reason, realm.Detail, "the realm named by iss is not served by Keycloak, not in tenant_allow_list or "+
			"tenant_regex, or not among this route's tenants; or more new realms were discovered this minute than "+
			"tenant_discoveries_per_minute allows")
		add("key", StepSkipped, "", "", "")
		add("signature", StepSkipped, "", "", "")
	} else if src == nil {
		fail("issuer", ReasonIssuer, fmt.Sprintf("iss %q is not a trusted issuer", claims.Issuer), p.issuerFix(claims.Issuer))
		add("key", StepSkipped, "", "", "")
		add("signature", StepSkipped, "", "", "")
	} else {
		pass("issuer", fmt.Sprintf("iss %q is trusted", claims.Issuer))
		key, err := src.Key(ctx, h.Kid, h.Alg)
		switch {
		case errors.Is(err, jwks.ErrUnknownKey):
			fail("key", ReasonUnknownKey, fmt.Sprintf("kid %q is not among the keys of %s", h.Kid, claims.Issuer),
				"the token was signed by a key the realm no longer (or not yet) publishes: a rotated-out key, another Keycloak "+
					"instance or realm with the same name; get a new token, and check Realm settings → Keys")
			add("signature", StepSkipped, "", "", "")
		case err != nil:
			fail("key", ReasonKeysUnavailable, fmt.Sprintf("keys of %s unavailable: %v", claims.Issuer, err),
				"the gateway cannot fetch the realm's keys: check that discovery_url or jwks_uri is reachable from the gateway")
			add("signature", StepSkipped, "", "", "")
		default:
			pass("key", fmt.Sprintf("kid %q (%s)", key.ID, h.Alg))
			if !key.Allows(h.Alg) {
				fail("signature", ReasonAlgorithm, fmt.Sprintf("alg %q does not fit key %q", h.Alg, key.ID), "")
			} else if err := jwks.Verify(h.Alg, key, pt.signingInput, pt.sig); err != nil {
				fail("signature", ReasonSignature, err.Error(), "the token was altered, or signed by another key with the same kid")
			} else {
				pass("signature", "verified")
			}
		}
	}
	now := p.now().Unix()
	for i := range claimRuleList {
		r := &claimRuleList[i]
		if r.check == "issuer" {
			continue // explained above, with the keys
		}
		if ok, detail := r.eval(p, claims, now); ok {
			pass(r.check, ruleSummary(p, r.check, claims))
		} else {
			fail(r.check, r.reason, detail, r.fix(p, claims, now))
		}
	}
	return ex
}

// ruleChecks are the names of the claim rules but the issuer's.
func ruleChecks() []string {
	var out []string
	for _, r := range claimRuleList {
		if r.check != "issuer" {
			out = append(out, r.check)
		}
	}
	return out
}

// ruleSummary says what a passing claim rule compared.
func ruleSummary(p *Policy, check string, c *Claims) string {
	switch check {
	case "token type":
		return fmt.Sprintf("typ claim %q, header typ %q", c.Type, c.HeaderType)
	case "expiry":
		return fmt.Sprintf("exp %d, in %d s", c.Expiry, c.Expiry-p.now().Unix())
	case "not before":
		if c.NotBefore == 0 {
			return "no nbf"
		}
		return fmt.Sprintf("nbf %d", c.NotBefore)
	case "issued at":
		if c.IssuedAt == 0 {
			return "no iat"
		}
		return fmt.Sprintf("iat %d, %d s ago", c.IssuedAt, p.now().Unix()-c.IssuedAt)
	case "audience":
		return fmt.Sprintf("aud %s, required one of %s", list(c.Audience), list(p.r.audiences))
	case "allowed clients":
		if len(p.r.clients) == 0 {
			return "any client"
		}
		return fmt.Sprintf("client %q", c.ClientID())
	case "scopes":
		return fmt.Sprintf("scopes %s, required %s", list(c.Scopes), required(p.r.scopes))
	case "realm roles":
		return fmt.Sprintf("realm roles %s, required %s", list(c.RealmRoles), required(p.r.realmRoles))
	case "client roles":
		return fmt.Sprintf("client roles %s", list(clientRoleList(c.ClientRoles)))
	}
	return ""
}

// required says what a requirement asks for: "none", or "all of [a, b]".
func required(r requirement) string {
	if len(r.values) == 0 {
		return "none"
	}
	return matchName(r.any) + " of " + list(r.values)
}

// Summary is a one-line verdict for the explanation: "allow" or the
// denial's status and reason.
func (ex *Explanation) Summary() string {
	d := &ex.Decision
	if d.Allow {
		return "allow"
	}
	return fmt.Sprintf("deny %d %s (%s)", d.Status, d.Reason, http.StatusText(d.Status))
}

// Failed lists the checks that failed.
func (ex *Explanation) Failed() []string {
	var out []string
	for _, s := range ex.Steps {
		if s.Result == StepFail {
			out = append(out, s.Check)
		}
	}
	return out
}

// RequiredScopes are the scopes this policy requires (in configuration order).
func (p *Policy) RequiredScopes() []string { return append([]string(nil), p.r.scopes.values...) }

// Issuers are the exact issuers this policy trusts (patterns excluded).
func (p *Policy) Issuers() []string {
	out := make([]string, 0, len(p.r.issuers))
	for _, s := range p.r.issuers {
		out = append(out, s.Issuer)
	}
	return out
}
