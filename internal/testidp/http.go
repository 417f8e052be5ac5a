package testidp

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// maxFormBytes bounds the token request body.
const maxFormBytes = 1 << 20

// routes returns the mux serving the realm endpoints.
func (i *IdP) routes() http.Handler {
	base := "/realms/" + i.realm
	mux := http.NewServeMux()
	mux.HandleFunc(base+"/.well-known/openid-configuration", i.handleDiscovery)
	mux.HandleFunc(base+"/protocol/openid-connect/certs", i.handleJWKS)
	mux.HandleFunc(base+"/protocol/openid-connect/token", i.handleToken)
	return mux
}

// discovery is the subset of Keycloak's OpenID provider metadata that the
// realm serves, in Keycloak's member order.
type discovery struct {
	Issuer                                     string   `json:"issuer"`
	AuthorizationEndpoint                      string   `json:"authorization_endpoint"`
	TokenEndpoint                              string   `json:"token_endpoint"`
	IntrospectionEndpoint                      string   `json:"introspection_endpoint"`
	UserinfoEndpoint                           string   `json:"userinfo_endpoint"`
	EndSessionEndpoint                         string   `json:"end_session_endpoint"`
	JWKSURI                                    string   `json:"jwks_uri"`
	GrantTypesSupported                        []string `json:"grant_types_supported"`
	ResponseTypesSupported                     []string `json:"response_types_supported"`
	SubjectTypesSupported                      []string `json:"subject_types_supported"`
	IDTokenSigningAlgValuesSupported           []string `json:"id_token_signing_alg_values_supported"`
	UserinfoSigningAlgValuesSupported          []string `json:"userinfo_signing_alg_values_supported"`
	TokenEndpointAuthMethodsSupported          []string `json:"token_endpoint_auth_methods_supported"`
	TokenEndpointAuthSigningAlgValuesSupported []string `json:"token_endpoint_auth_signing_alg_values_supported"`
	ScopesSupported                            []string `json:"scopes_supported"`
	ClaimsSupported                            []string `json:"claims_supported"`
	CodeChallengeMethodsSupported              []string `json:"code_challenge_methods_supported"`
}

// signingAlgs is the algorithm list Keycloak advertises.
var signingAlgs = []string{"PS384", "ES384", "RS384", "HS256", "HS512", "ES256", "RS256", "HS384", "ES512", "PS256", "PS512", "RS512", "EdDSA"}

// Discovery returns the discovery document as the endpoint currently serves
// it (without any injected fault).
func (i *IdP) Discovery() ([]byte, error) {
	i.mu.RLock()
	issuer := i.issuerOverride
	i.mu.RUnlock()
	if issuer == "" {
		issuer = i.Issuer()
	}
	oidc := i.Issuer() + "/protocol/openid-connect"
	return json.Marshal(discovery{
		Issuer:                                     issuer,
		AuthorizationEndpoint:                      oidc + "/auth",
		TokenEndpoint:                              i.TokenURL(),
		IntrospectionEndpoint:                      oidc + "/token/introspect",
		UserinfoEndpoint:                           oidc + "/userinfo",
		EndSessionEndpoint:                         oidc + "/logout",
		JWKSURI:                                    i.JWKSURL(),
		GrantTypesSupported:                        []string{"authorization_code", "implicit", "refresh_token", "password", "client_credentials", "urn:openid:params:grant-type:ciba", "urn:ietf:params:oauth:grant-type:device_code"},
		ResponseTypesSupported:                     []string{"code", "none", "id_token", "token", "id_token token", "code id_token", "code token", "code id_token token"},
		SubjectTypesSupported:                      []string{"public", "pairwise"},
		IDTokenSigningAlgValuesSupported:           signingAlgs,
		UserinfoSigningAlgValuesSupported:          append(append([]string{}, signingAlgs...), "none"),
		TokenEndpointAuthMethodsSupported:          []string{"client_secret_basic", "client_secret_post"},
		TokenEndpointAuthSigningAlgValuesSupported: signingAlgs,
		ScopesSupported:                            []string{"openid", "profile", "email", "roles", "web-origins", "acr", "offline_access"},
		ClaimsSupported:                            []string{"aud", "sub", "iss", "auth_time", "name", "given_name", "family_name", "preferred_username", "email", "acr"},
		CodeChallengeMethodsSupported:              []string{"plain", "S256"},
	})
}

func (i *IdP) handleDiscovery(w http.ResponseWriter, r *http.Request) {
	i.discoveryFetches.Add(1)
	if !allowGet(w, r) {
		return
	}
	i.mu.RLock()
	f := i.discoveryFault
	i.mu.RUnlock()
	i.serveDocument(w, r, f, "", i.Discovery)
}

func (i *IdP) handleJWKS(w http.ResponseWriter, r *http.Request) {
	i.jwksFetches.Add(1)
	if !allowGet(w, r) {
		return
	}
	i.mu.RLock()
	f, cc := i.jwksFault, i.cacheControl
	i.mu.RUnlock()
	i.serveDocument(w, r, f, cc, i.JWKS)
}

// allowGet answers 405 to anything but GET and HEAD and reports whether the
// request may proceed.
func allowGet(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "HTTP 405 Method Not Allowed"})
	return false
}

// serveDocument writes the JSON document produced by doc, subject to fault f.
// cacheControl, if not empty, is sent as the Cache-Control header.
func (i *IdP) serveDocument(w http.ResponseWriter, r *http.Request, f Fault, cacheControl string, doc func() ([]byte, error)) {
	if f.Slow > 0 {
		t := time.NewTimer(f.Slow)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return
		case <-i.closed:
			abortConnection(w)
			return
		}
	}
	if f.Reset {
		abortConnection(w)
		return
	}
	if f.Down {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, "<html><body><h1>503 Service Unavailable</h1>\nNo server is available to handle this request.\n</body></html>\n")
		return
	}
	body, err := doc()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if cacheControl != "" {
		w.Header().Set("Cache-Control", cacheControl)
	}
	switch {
	case f.BadJSON:
		// A strict prefix of a JSON object is never valid JSON.
		body = body[:len(body)/2]
	case f.HugeBytes > len(body):
		writePadded(w, body, f.HugeBytes)
		return
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// writePadded writes the JSON object body with an extra "x-padding" string
// member so that the whole response is size bytes long (or as close above as
// possible), streaming the padding.
func writePadded(w http.ResponseWriter, body []byte, size int) {
	const open, closing = `,"x-padding":"`, `"}`
	n := max(size-len(body)-len(open)-len(closing)+1, 0) // +1: body's '}' is replaced
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write(append(body[:len(body)-1:len(body)-1], open...)); err != nil {
		return
	}
	chunk := make([]byte, 32<<10)
	for k := range chunk {
		chunk[k] = 'x'
	}
	for n > 0 {
		c := min(n, len(chunk))
		if _, err := w.Write(chunk[:c]); err != nil {
			return
		}
		n -= c
	}
	_, _ = io.WriteString(w, closing)
}

// abortConnection closes the client connection without a response, with a
// TCP RST where possible.
func abortConnection(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// Not hijackable (e.g. HTTP/2 or a recorder): let net/http abort.
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

// TokenResponse is the token endpoint's success response.
type TokenResponse struct {
	AccessToken      string `json:"access_token"`
	ExpiresIn        int64  `json:"expires_in"`
	RefreshExpiresIn int64  `json:"refresh_expires_in"`
	TokenType        string `json:"token_type"`
	NotBeforePolicy  int64  `json:"not-before-policy"`
	Scope            string `json:"scope"`
}

// oauthError is an OAuth2 error response.
type oauthError struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description,omitempty"`
}

// handleToken implements the client-credentials grant of the token endpoint.
func (i *IdP) handleToken(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		writeJSON(w, http.StatusMethodNotAllowed, oauthError{Error: "HTTP 405 Method Not Allowed"})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, oauthError{"invalid_request", "Invalid form body"})
		return
	}
	form := r.PostForm
	for _, v := range form {
		if len(v) > 1 {
			writeJSON(w, http.StatusBadRequest, oauthError{"invalid_request", "duplicated parameter"})
			return
		}
	}
	switch gt := form.Get("grant_type"); gt {
	case "client_credentials":
	case "":
		writeJSON(w, http.StatusBadRequest, oauthError{"invalid_request", "Missing form parameter: grant_type"})
		return
	default:
		writeJSON(w, http.StatusBadRequest, oauthError{"unsupported_grant_type", "Unsupported grant_type"})
		return
	}
	c, err := i.authenticate(r, form)
	if err != nil {
		if _, _, basic := r.BasicAuth(); basic {
			w.Header().Set("WWW-Authenticate", `Basic realm="`+i.realm+`"`)
		}
		writeJSON(w, http.StatusUnauthorized, oauthError{"unauthorized_client", "Invalid client or Invalid client credentials"})
		return
	}
	scope, err := grantedScope(c, form.Get("scope"), i.shape)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, oauthError{"invalid_scope", err.Error()})
		return
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	token, err := i.signAccess(c, scope, host, &mint{})
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, oauthError{"server_error", err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, TokenResponse{
		AccessToken: token,
		ExpiresIn:   int64(i.ttl / time.Second),
		TokenType:   "Bearer",
		Scope:       scope,
	})
}

var errBadCredentials = errors.New("invalid client credentials")

// authenticate identifies the client by HTTP Basic credentials
// (client_secret_basic, form-urlencoded as RFC 6749 §2.3.1 requires) or by
// the client_id and client_secret form fields (client_secret_post).
func (i *IdP) authenticate(r *http.Request, form url.Values) (Client, error) {
	var id, secret string
	if user, pass, ok := r.BasicAuth(); ok {
		var err1, err2 error
		id, err1 = url.QueryUnescape(user)
		secret, err2 = url.QueryUnescape(pass)
		if err1 != nil || err2 != nil {
			return Client{}, errBadCredentials
		}
		if fid := form.Get("client_id"); fid != "" && fid != id {
			return Client{}, errBadCredentials
		}
	} else {
		id, secret = form.Get("client_id"), form.Get("client_secret")
	}
	c, ok := i.client(id)
	if !ok || c.Secret == "" || subtle.ConstantTimeCompare([]byte(secret), []byte(c.Secret)) != 1 {
		return Client{}, errBadCredentials
	}
	return c, nil
}

// writeJSON writes v as a JSON response with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
