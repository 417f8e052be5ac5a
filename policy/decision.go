package policy

import (
	"encoding/json"
	"net/http"
	"strings"
)

// RFC 6750 §3.1 error codes.
const (
	ErrInvalidRequest    = "invalid_request"
	ErrInvalidToken      = "invalid_token"
	ErrInsufficientScope = "insufficient_scope"
)

// Reason codes: a small, fixed vocabulary for logs and metrics labels. The
// Detail of a Decision carries the specifics.
const (
	ReasonOK              = "ok"
	ReasonNoToken         = "no_token"
	ReasonMalformedHeader = "malformed_header"
	ReasonMultipleTokens  = "multiple_tokens"
	ReasonTooLarge        = "token_too_large"
	ReasonMalformed       = "malformed_token"
	ReasonBadHeader       = "forbidden_header"
	ReasonAlgorithm       = "algorithm_not_allowed"
	ReasonType            = "wrong_token_type"
	ReasonIssuer          = "untrusted_issuer"
	ReasonKeysUnavailable = "keys_unavailable"
	ReasonUnknownKey      = "unknown_key"
	ReasonSignature       = "bad_signature"
	ReasonExpired         = "expired"
	ReasonNotYetValid     = "not_yet_valid"
	ReasonIssuedInFuture  = "issued_in_future"
	ReasonAudience        = "wrong_audience"
	ReasonClient          = "client_not_allowed"
	ReasonScope           = "missing_scope"
	ReasonRealmRole       = "missing_realm_role"
	ReasonClientRole      = "missing_client_role"
	ReasonTenant          = "tenant_not_allowed"
	ReasonConfig          = "invalid_config"
	// ReasonInactive: introspection answered active false (revoked).
	ReasonInactive = "token_inactive"
	// ReasonIntrospection: the introspection endpoint could not answer
	// (down, slow, refused the gateway's client): 503, never allowed.
	ReasonIntrospection = "introspection_unavailable"
)

// Decision is the outcome of checking one request. It is a plain value:
// adapters render it, tests assert on it.
type Decision struct {
	// Allow is true only for a verified token that meets the policy.
	Allow bool
	// Status is the HTTP status to answer a denied request with (200 when allowed).
	Status int
	// Error is the RFC 6750 error code ("" for a request without a token,
	// and for allowed or misconfigured ones).
	Error string
	// Message is short, safe to send to the caller, and reveals no internals.
	Message string
	// Reason is a code from the Reason* constants, for logs and metrics.
	Reason string
	// Detail explains the decision for the operator's log (never the token).
	Detail string
	// Scope lists the scopes required when Error is insufficient_scope.
	Scope string
	// Claims are the verified claims (set when allowed, and on 403).
	Claims *Claims
	// Tenant is the realm an issuer pattern matched in the token's iss
	// ("" for a fixed issuer), set with Claims.
	Tenant string
	// CachedResult is true when the signature check was served by the
	// verified-token cache.
	CachedResult bool
	// Introspected is true when the issuer's introspection answer decided
	// (the claims are the answer's).
	Introspected bool
	// AcceptedUntil is, when allowed, the Unix second from which this
	// policy stops accepting the token: its exp plus the leeway. What is
	// derived from the decision (the signed upstream JWT) must not outlive it.
	AcceptedUntil int64
	// CheckedAt is, when allowed, the Unix second the claims were checked
	// at (always before AcceptedUntil). Derived outputs date themselves
	// from it, not from a later clock reading.
	CheckedAt int64
}

// ClientID is the stable identity of the calling client ("" when unknown).
func (d *Decision) ClientID() string {
	if d.Claims == nil {
		return ""
	}
	return d.Claims.ClientID()
}

// WWWAuthenticate renders the RFC 6750 challenge for a denied decision.
// realm is the protection space name (e.g. the API or gateway name).
func (d *Decision) WWWAuthenticate(realm string) string {
	var b strings.Builder
	b.WriteString("Bearer")
	sep := " "
	param := func(k, v string) {
		b.WriteString(sep)
		b.WriteString(k)
		b.WriteString(`="`)
		b.WriteString(quoteSafe(v))
		b.WriteString(`"`)
		sep = ", "
	}
	if realm != "" {
		param("realm", realm)
	}
	if d.Error != "" {
		param("error", d.Error)
		if d.Message != "" {
			param("error_description", d.Message)
		}
	}
	if d.Scope != "" {
		param("scope", d.Scope)
	}
	return b.String()
}

// quoteSafe keeps a value inside an RFC 6750 quoted string: printable ASCII
// without '"' or '\' (the RFC forbids those in error_description anyway).
func quoteSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return -1
		}
		return r
	}, s)
}

// Body is the JSON response body for a denied decision, in the shape Kong's
// own authentication plugins use: {"message": "..."}.
func (d *Decision) Body() []byte {
	msg := d.Message
	if msg == "" {
		msg = http.StatusText(d.Status)
	}
	b, _ := json.Marshal(struct {
		Message string `json:"message"`
	}{msg})
	return b
}

func allow(c *Claims) Decision {
	return Decision{Allow: true, Status: http.StatusOK, Reason: ReasonOK, Claims: c}
}

func deny(status int, code, reason, msg, detail string) Decision {
	return Decision{Status: status, Error: code, Reason: reason, Message: msg, Detail: detail}
}

func invalidToken(reason, msg, detail string) Decision {
	return deny(http.StatusUnauthorized, ErrInvalidToken, reason, msg, detail)
}

// Misconfigured is the decision for every request on a route whose
// configuration failed to compile: fail closed with a 500 that reveals nothing.
func Misconfigured(err error) Decision {
	d := deny(http.StatusInternalServerError, "", ReasonConfig, "An unexpected error occurred", "")
	if err != nil {
		d.Detail = err.Error()
	}
	return d
}
