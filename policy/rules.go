package policy

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
)

// claimRule is one check of a verified token's claims. Check applies them
// in order and stops at the first that fails; Explain runs them all. A new
// claim requirement is one entry here (and its field in Requirements).
type claimRule struct {
	// check names the rule in explanations.
	check  string
	reason string
	// eval reports whether c passes; detail (the values compared) is built
	// only when it does not: eval runs on every cache hit.
	eval func(p *Policy, c *Claims, now int64) (ok bool, detail string)
	// deny is the decision when eval fails.
	deny func(p *Policy, c *Claims, detail string) Decision
	// fix says what to change, named as Keycloak's admin console names it.
	fix func(p *Policy, c *Claims, now int64) string
	// needed reports whether the rule can fail under these rules (nil:
	// always): Check skips the others, Explain shows them all.
	needed func(r *rules) bool
}

// neededRules are the rules of claimRuleList that r can fail, in order.
func neededRules(r *rules) []*claimRule {
	var out []*claimRule
	for i := range claimRuleList {
		if cr := &claimRuleList[i]; cr.needed == nil || cr.needed(r) {
			out = append(out, cr)
		}
	}
	return out
}

func invalidTokenRule(reason, msg string) func(*Policy, *Claims, string) Decision {
	return func(_ *Policy, _ *Claims, detail string) Decision { return invalidToken(reason, msg, detail) }
}

func forbiddenRule(reason, msg string, withScope bool) func(*Policy, *Claims, string) Decision {
	return func(p *Policy, c *Claims, detail string) Decision {
		d := deny(http.StatusForbidden, ErrInsufficientScope, reason, msg, detail)
		d.Claims = c
		if withScope {
			d.Scope = p.scope
		}
		return d
	}
}

var claimRuleList = []claimRule{
	{
		check: "token type", reason: ReasonType,
		eval: func(p *Policy, c *Claims, _ int64) (bool, string) {
			if p.typeAccepted(c) {
				return true, ""
			}
			if c.NotAccessClaim != "" && c.Type == "" && p.r.acceptUntyp {
				return false, fmt.Sprintf("untyped token carries %q, a claim of ID or logout tokens", c.NotAccessClaim)
			}
			return false, fmt.Sprintf("token type not accepted (typ claim %q, header typ %q)", c.Type, c.HeaderType)
		},
		deny: invalidTokenRule(ReasonType, "The token is not an access token"),
		fix: func(p *Policy, c *Claims, _ int64) string {
			switch strings.ToLower(c.Type) {
			case "refresh", "offline":
				return "a refresh token was sent: send the access_token of the token response, not its refresh_token"
			case "id", "serialized-id":
				return "an ID token was sent: send the access_token of the token response, not its id_token"
			case "logout":
				return "a logout token was sent: it is not an access token"
			}
			return fmt.Sprintf("accepted token_types are %s", list(p.acceptedTypes()))
		},
	},
	{
		check: "issuer", reason: ReasonIssuer,
		eval: func(p *Policy, c *Claims, _ int64) (bool, string) {
			if _, ok := p.sources[c.Issuer]; ok || p.tenantOf(c.Issuer) != "" {
				return true, ""
			}
			return false, fmt.Sprintf("iss %q is not a trusted issuer", c.Issuer)
		},
		deny: invalidTokenRule(ReasonIssuer, "The access token was issued by an untrusted issuer"),
		fix:  func(p *Policy, c *Claims, _ int64) string { return p.issuerFix(c.Issuer) },
	},
	{
		check: "tenants", reason: ReasonTenant,
		needed: func(r *rules) bool { return len(r.tenants) > 0 },
		eval: func(p *Policy, c *Claims, _ int64) (bool, string) {
			t := p.tenantOf(c.Issuer)
			if len(p.r.tenants) == 0 || t != "" && contains(p.r.tenants, t) {
				return true, ""
			}
			return false, tenantDetail(t, p.r.tenants)
		},
		deny: invalidTokenRule(ReasonTenant, tenantMessage),
		fix: func(p *Policy, c *Claims, _ int64) string {
			return fmt.Sprintf("call with a token of a realm among %s, or add the tenant to this route's tenants", list(p.r.tenants))
		},
	},
	{
		check: "expiry", reason: ReasonExpired,
		eval: func(p *Policy, c *Claims, now int64) (bool, string) {
			if now < c.Expiry+p.r.leeway {
				return true, ""
			}
			return false, fmt.Sprintf("exp %d is past (now %d, leeway %ds)", c.Expiry, now, p.r.leeway)
		},
		deny: invalidTokenRule(ReasonExpired, "The access token expired"),
		fix: func(p *Policy, c *Claims, now int64) string {
			fix := fmt.Sprintf("the token expired %d s ago: get a new token (clients should renew before exp)", now-c.Expiry)
			if c.IssuedAt != 0 && c.Expiry > c.IssuedAt && now-c.IssuedAt > 10*(c.Expiry-c.IssuedAt) {
				fix += fmt.Sprintf("; it was issued %d s ago: if it is in fact fresh, the gateway's clock is off: sync it (NTP)", now-c.IssuedAt)
			}
			return fix
		},
	},
	{
		check: "not before", reason: ReasonNotYetValid,
		eval: func(p *Policy, c *Claims, now int64) (bool, string) {
			if c.NotBefore == 0 || c.NotBefore <= now+p.r.leeway {
				return true, ""
			}
			return false, fmt.Sprintf("nbf %d is in the future (now %d, leeway %ds)", c.NotBefore, now, p.r.leeway)
		},
		deny: invalidTokenRule(ReasonNotYetValid, "The access token is not valid yet"),
		fix: func(p *Policy, c *Claims, now int64) string {
			return fmt.Sprintf("the clocks of Keycloak and the gateway differ by about %d s: sync them (NTP), or raise leeway_seconds", c.NotBefore-now)
		},
	},
	{
		check: "issued at", reason: ReasonIssuedInFuture,
		eval: func(p *Policy, c *Claims, now int64) (bool, string) {
			if c.IssuedAt == 0 || c.IssuedAt <= now+p.r.leeway {
				return true, ""
			}
			return false, fmt.Sprintf("iat %d is in the future (now %d, leeway %ds)", c.IssuedAt, now, p.r.leeway)
		},
		deny: invalidTokenRule(ReasonIssuedInFuture, "The access token is not valid yet"),
		fix: func(p *Policy, c *Claims, now int64) string {
			return fmt.Sprintf("the clocks of Keycloak and the gateway differ by about %d s: sync them (NTP), or raise leeway_seconds", c.IssuedAt-now)
		},
	},
	{
		check: "audience", reason: ReasonAudience,
		eval: func(p *Policy, c *Claims, _ int64) (bool, string) {
			if intersects(c.Audience, p.r.audiences) {
				return true, ""
			}
			return false, fmt.Sprintf("aud %s contains none of %s", list(c.Audience), list(p.r.audiences))
		},
		deny: invalidTokenRule(ReasonAudience, "The access token is not meant for this API"),
		fix: func(p *Policy, c *Claims, _ int64) string {
			return fmt.Sprintf("add an Audience mapper to client %q's dedicated scope (Clients → %s → Client scopes → %s-dedicated → "+
				"Add mapper → By configuration → Audience, Included Client Audience or Included Custom Audience %q, Add to access token on)",
				c.ClientID(), c.ClientID(), c.ClientID(), p.r.audiences[0])
		},
	},
	{
		check: "allowed clients", reason: ReasonClient,
		needed: func(r *rules) bool { return len(r.clients) > 0 },
		eval: func(p *Policy, c *Claims, _ int64) (bool, string) {
			if len(p.r.clients) == 0 || contains(p.r.clients, c.ClientID()) {
				return true, ""
			}
			return false, fmt.Sprintf("client %q is not in allowed_clients %s", c.ClientID(), list(p.r.clients))
		},
		deny: invalidTokenRule(ReasonClient, "The client is not allowed to call this API"),
		fix: func(p *Policy, c *Claims, _ int64) string {
			return fmt.Sprintf("call with one of the clients %s, or add %q to allowed_clients", list(p.r.clients), c.ClientID())
		},
	},
	{
		check: "scopes", reason: ReasonScope,
		needed: func(r *rules) bool { return len(r.scopes.values) > 0 },
		eval: func(p *Policy, c *Claims, _ int64) (bool, string) {
			if p.r.scopes.satisfiedBy(c.Scopes) {
				return true, ""
			}
			return false, fmt.Sprintf("scopes %s do not satisfy %s of %s", list(c.Scopes), matchName(p.r.scopes.any), list(p.r.scopes.values))
		},
		deny: forbiddenRule(ReasonScope, "The access token lacks a required scope", true),
		fix: func(p *Policy, c *Claims, _ int64) string {
			missing := p.r.scopes.missing(c.Scopes)
			return fmt.Sprintf("request scope=%s in the token request (an Optional client scope of client %q), or make it a Default "+
				"client scope; if the client lacks it: Clients → %s → Client scopes → Add client scope",
				strings.Join(missing, " "), c.ClientID(), c.ClientID())
		},
	},
	{
		check: "realm roles", reason: ReasonRealmRole,
		needed: func(r *rules) bool { return len(r.realmRoles.values) > 0 },
		eval: func(p *Policy, c *Claims, _ int64) (bool, string) {
			if p.r.realmRoles.satisfiedBy(c.RealmRoles) {
				return true, ""
			}
			return false, fmt.Sprintf("realm roles %s do not satisfy %s of %s", list(c.RealmRoles), matchName(p.r.realmRoles.any), list(p.r.realmRoles.values))
		},
		deny: forbiddenRule(ReasonRealmRole, "The client lacks a required role", false),
		fix: func(p *Policy, c *Claims, _ int64) string {
			return fmt.Sprintf("assign the realm role %s to the service account (Clients → %s → Service accounts roles → Assign role)",
				strings.Join(p.r.realmRoles.missing(c.RealmRoles), ", "), c.ClientID())
		},
	},
	{
		check: "client roles", reason: ReasonClientRole,
		needed: func(r *rules) bool { return len(r.clientRoles) > 0 },
		eval: func(p *Policy, c *Claims, _ int64) (bool, string) {
			if len(p.r.clientRoles) == 0 || p.clientRolesOK(c) {
				return true, ""
			}
			want := make([]string, len(p.r.clientRoles))
			for i, cr := range p.r.clientRoles {
				want[i] = cr.client + ":" + cr.role
			}
			return false, fmt.Sprintf("client roles %s do not satisfy %s of %s", list(clientRoleList(c.ClientRoles)), matchName(p.r.clientAny), list(want))
		},
		deny: forbiddenRule(ReasonClientRole, "The client lacks a required role", false),
		fix: func(p *Policy, c *Claims, _ int64) string {
			var missing []string
			for _, cr := range p.r.clientRoles {
				if !contains(c.ClientRoles[cr.client], cr.role) {
					missing = append(missing, cr.client+":"+cr.role)
				}
			}
			return fmt.Sprintf("assign the client role %s to the service account (Clients → %s → Service accounts roles → Assign role → Filter by clients)",
				strings.Join(missing, ", "), c.ClientID())
		},
	},
}

// missing lists the required values that have lacks.
func (r requirement) missing(have []string) []string {
	var out []string
	for _, v := range r.values {
		if !contains(have, v) {
			out = append(out, v)
		}
	}
	return out
}

// list renders values for a log line or an explanation: [a, b], or [] when empty.
func list(values []string) string {
	return "[" + strings.Join(values, ", ") + "]"
}

// clientRoleList renders Keycloak's resource_access roles as client:role, sorted.
func clientRoleList(m map[string][]string) []string {
	var out []string
	for client, roles := range m {
		for _, r := range roles {
			out = append(out, client+":"+r)
		}
	}
	sort.Strings(out)
	return out
}

// acceptedTypes lists the token_types this policy accepts.
func (p *Policy) acceptedTypes() []string {
	var out []string
	if p.r.acceptBearer {
		out = append(out, TypeBearer)
	}
	if p.r.acceptATJWT {
		out = append(out, TypeATJWT)
	}
	if p.r.acceptUntyp {
		out = append(out, "untyped")
	}
	return out
}

// issuerFix explains an untrusted iss: most often the same realm under
// another host name (Keycloak puts the URL the client used into iss).
func (p *Policy) issuerFix(iss string) string {
	trusted := make([]string, 0, len(p.r.issuers))
	for _, s := range p.r.issuers {
		trusted = append(trusted, s.Issuer)
	}
	_, realm, _ := strings.Cut(iss, "/realms/")
	for _, t := range trusted {
		if _, tr, ok := strings.Cut(t, "/realms/"); ok && realm != "" && tr == realm {
			return fmt.Sprintf("tokens say %q but the config trusts %q: the same realm under another host name. Keycloak puts the "+
				"host name the client used into iss: set KC_HOSTNAME on Keycloak so that every client gets %q, or trust %q "+
				"(and set discovery_url or jwks_uri to where the gateway reaches Keycloak)", iss, t, t, iss)
		}
	}
	return fmt.Sprintf("tokens say %q; the config trusts %s: add it to issuers if this realm should be trusted", iss, list(trusted))
}
