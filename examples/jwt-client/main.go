// Command jwt-client is an example machine client that authenticates to
// Keycloak with a JWT signed by its own private key instead of a client
// secret: private_key_jwt (RFC 7523 §2.2, OpenID Connect Core §9), which
// Keycloak calls "Signed JWT" (clientAuthenticatorType client-jwt). The
// client keeps its private key; Keycloak holds only the certificate (or a
// JWKS URL) to check the signature. It gets client-credentials access tokens
// (golang.org/x/oauth2/clientcredentials), a fresh assertion for each one,
// and calls the API with them.
//
//	go run ./examples/jwt-client                       # orders-signed-jwt, GET http://localhost:8000/orders once
//	go run ./examples/jwt-client -count 3 -api-url http://localhost:8081/orders
//
// The assertion's claims: iss and sub are the client id, aud is the realm's
// issuer (-audience; Keycloak 26 also accepts the token endpoint URL), jti is
// random (Keycloak refuses a jti it has seen), iat is now and exp a minute
// later. It is signed with RS256; kid is the key id Keycloak derives from the
// registered certificate (-key-id to override, "" to leave it out).
//
// Every flag has an environment variable (shown by -h). For the demo client
// of examples/keycloak/realm-demo.json the defaults are its demo key pair
// (examples/jwt-client/demo-key.pem and demo-cert.pem): make your own with
// `openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem
// -days 365 -subj /CN=my-client` and register cert.pem with the client.
// Neither the key nor a token is ever logged.
package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// assertionType is the client_assertion_type of a JWT client assertion
// (RFC 7523 §2.2).
const assertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// config is everything the client needs; see parseFlags for the meaning.
type config struct {
	TokenURL string
	ClientID string
	Key      *rsa.PrivateKey
	KeyID    string
	Audience string
	Scopes   []string
	APIURL   string
	Method   string
	Count    int
	Timeout  time.Duration
}

func main() {
	log.SetFlags(log.Ltime | log.Lmicroseconds)
	cfg, err := parseFlags(os.Args[1:], os.Getenv)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		log.Fatal(err)
	}
	if err := run(context.Background(), cfg, log.Default()); err != nil {
		log.Fatal(err)
	}
}

func parseFlags(args []string, getenv func(string) string) (config, error) {
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	var cfg config
	var keyFile, certFile, scope string
	fs := flag.NewFlagSet("jwt-client", flag.ContinueOnError)
	fs.StringVar(&cfg.TokenURL, "token-url", env("TOKEN_URL", "http://localhost:8080/realms/demo/protocol/openid-connect/token"),
		"token endpoint of the realm (env TOKEN_URL)")
	fs.StringVar(&cfg.ClientID, "client-id", env("CLIENT_ID", "orders-signed-jwt"), "client id: iss and sub of the assertion (env CLIENT_ID)")
	fs.StringVar(&keyFile, "private-key-file", env("PRIVATE_KEY_FILE", "examples/jwt-client/demo-key.pem"),
		"PEM RSA private key (PKCS#8 or PKCS#1, unencrypted) that signs the assertion (env PRIVATE_KEY_FILE)")
	fs.StringVar(&certFile, "cert-file", env("CERT_FILE", "examples/jwt-client/demo-cert.pem"),
		"the certificate registered with the client, for the default key id; \"\" derives it from the key (env CERT_FILE)")
	fs.StringVar(&cfg.KeyID, "key-id", env("KEY_ID", ""), "kid of the assertion; default: Keycloak's id of the key, \"-\": none (env KEY_ID)")
	fs.StringVar(&cfg.Audience, "audience", env("AUDIENCE", ""),
		"aud of the assertion (default: the realm issuer, the token URL without /protocol/openid-connect/token; env AUDIENCE)")
	fs.StringVar(&scope, "scope", env("SCOPE", ""), "space-separated scopes to request; empty: the client's default scopes (env SCOPE)")
	fs.StringVar(&cfg.APIURL, "api-url", env("API_URL", "http://localhost:8000/orders"), "URL to call (env API_URL)")
	fs.StringVar(&cfg.Method, "method", env("METHOD", http.MethodGet), "HTTP method of the calls (env METHOD)")
	count, err := strconv.Atoi(env("COUNT", "1"))
	if err != nil {
		return cfg, fmt.Errorf("COUNT %q is not a number", getenv("COUNT"))
	}
	fs.IntVar(&cfg.Count, "count", count, "number of calls (env COUNT)")
	fs.DurationVar(&cfg.Timeout, "timeout", 10*time.Second, "timeout of each HTTP request")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	cfg.Scopes = strings.Fields(scope)
	if cfg.Key, err = readKey(keyFile); err != nil {
		return cfg, err
	}
	if cfg.KeyID == "" {
		if cfg.KeyID, err = keycloakKeyID(certFile, cfg.Key); err != nil {
			return cfg, err
		}
	}
	if cfg.KeyID == "-" {
		cfg.KeyID = ""
	}
	if cfg.Audience == "" {
		cfg.Audience = strings.TrimSuffix(cfg.TokenURL, "/protocol/openid-connect/token")
	}
	for name, u := range map[string]string{"token-url": cfg.TokenURL, "api-url": cfg.APIURL} {
		if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return cfg, fmt.Errorf("-%s %q is not an http(s) URL", name, u)
		}
	}
	if cfg.Count < 1 || cfg.Timeout <= 0 {
		return cfg, errors.New("-count and -timeout must be positive")
	}
	return cfg, nil
}

// readKey reads an unencrypted PEM RSA private key.
func readKey(file string) (*rsa.PrivateKey, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("private key: %w", err)
	}
	b, _ := pem.Decode(raw)
	if b == nil {
		return nil, fmt.Errorf("private key %s: no PEM block", file)
	}
	var key any
	switch b.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	default:
		return nil, fmt.Errorf("private key %s: PEM block %q, want PRIVATE KEY or RSA PRIVATE KEY (unencrypted)", file, b.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("private key %s: %w", file, err)
	}
	rk, ok := key.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("private key %s: %T, want an RSA key (RS256)", file, key)
	}
	return rk, nil
}

// keycloakKeyID is the kid Keycloak gives the key of a client registered
// with a certificate: base64url(SHA-256(SubjectPublicKeyInfo)). The
// certificate must hold the public half of key; without a certificate file
// the id is derived from the key itself.
func keycloakKeyID(certFile string, key *rsa.PrivateKey) (string, error) {
	spki, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return "", err
	}
	if certFile != "" {
		raw, err := os.ReadFile(certFile)
		if err != nil {
			return "", fmt.Errorf("certificate: %w", err)
		}
		b, _ := pem.Decode(raw)
		if b == nil || b.Type != "CERTIFICATE" {
			return "", fmt.Errorf("certificate %s: no CERTIFICATE PEM block", certFile)
		}
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return "", fmt.Errorf("certificate %s: %w", certFile, err)
		}
		if pub, ok := cert.PublicKey.(*rsa.PublicKey); !ok || !pub.Equal(&key.PublicKey) {
			return "", fmt.Errorf("certificate %s does not hold the public half of the private key", certFile)
		}
	}
	sum := sha256.Sum256(spki)
	return base64.RawURLEncoding.EncodeToString(sum[:]), nil
}

// assertion returns a fresh signed client assertion.
func assertion(cfg config, now time.Time) (string, error) {
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", err
	}
	tok, err := jwt.NewBuilder().
		Issuer(cfg.ClientID).
		Subject(cfg.ClientID).
		Audience([]string{cfg.Audience}).
		JwtID(hex.EncodeToString(jti[:])).
		IssuedAt(now).
		Expiration(now.Add(time.Minute)).
		Build()
	if err != nil {
		return "", err
	}
	hdr := jws.NewHeaders()
	if cfg.KeyID != "" {
		if err := hdr.Set(jws.KeyIDKey, cfg.KeyID); err != nil {
			return "", err
		}
	}
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.RS256(), cfg.Key, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		return "", fmt.Errorf("sign the client assertion: %w", err)
	}
	return string(signed), nil
}

// assertionSource gets a token with a new assertion each time it is asked.
type assertionSource struct {
	ctx  context.Context
	cfg  config
	http *http.Client
}

func (s assertionSource) Token() (*oauth2.Token, error) {
	a, err := assertion(s.cfg, time.Now())
	if err != nil {
		return nil, err
	}
	cc := clientcredentials.Config{
		ClientID: s.cfg.ClientID, // sent as client_id; there is no secret
		TokenURL: s.cfg.TokenURL,
		Scopes:   s.cfg.Scopes,
		EndpointParams: url.Values{
			"client_assertion_type": {assertionType},
			"client_assertion":      {a},
		},
		AuthStyle: oauth2.AuthStyleInParams,
	}
	return cc.Token(context.WithValue(s.ctx, oauth2.HTTPClient, s.http))
}

// run gets a token and calls the API cfg.Count times with it (renewed 30 s
// before it expires). It fails when no call got a 2xx answer.
func run(ctx context.Context, cfg config, logger *log.Logger) error {
	httpClient := &http.Client{Timeout: cfg.Timeout}
	tokens := oauth2.ReuseTokenSourceWithExpiry(nil, assertionSource{ctx, cfg, httpClient}, 30*time.Second)
	api := &http.Client{Timeout: cfg.Timeout, Transport: &oauth2.Transport{Source: tokens}}
	ok := 0
	for i := 0; i < cfg.Count; i++ {
		req, err := http.NewRequestWithContext(ctx, cfg.Method, cfg.APIURL, nil)
		if err != nil {
			return err
		}
		resp, err := api.Do(req)
		if err != nil {
			logger.Printf("%s %s: %v", cfg.Method, cfg.APIURL, err)
			continue
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		resp.Body.Close()
		if resp.StatusCode >= 200 && resp.StatusCode < 300 {
			ok++
		}
		logger.Printf("%s %s -> %d %s %s", cfg.Method, cfg.APIURL, resp.StatusCode,
			resp.Header.Get("WWW-Authenticate"), strings.Join(strings.Fields(string(body)), " "))
	}
	if ok == 0 {
		return fmt.Errorf("every call failed (%d of %d)", cfg.Count, cfg.Count)
	}
	return nil
}
