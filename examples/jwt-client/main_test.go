package main

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"
)

const tokenURL = "https://sso.example.com/realms/prod/protocol/openid-connect/token"

func demoEnv(extra map[string]string) func(string) string {
	env := map[string]string{"TOKEN_URL": tokenURL, "PRIVATE_KEY_FILE": "demo-key.pem", "CERT_FILE": "demo-cert.pem"}
	for k, v := range extra {
		env[k] = v
	}
	return func(k string) string { return env[k] }
}

// TestAssertion: the client assertion RFC 7523 and Keycloak ask for, signed
// with the key, a fresh jti each time.
func TestAssertion(t *testing.T) {
	cfg, err := parseFlags(nil, demoEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	seen := map[string]bool{}
	for range 3 {
		a, err := assertion(cfg, now)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := jws.Parse([]byte(a))
		if err != nil {
			t.Fatal(err)
		}
		hdr := msg.Signatures()[0].ProtectedHeaders()
		if alg, _ := hdr.Algorithm(); alg != jwa.RS256() {
			t.Errorf("alg %v", alg)
		}
		if kid, _ := hdr.KeyID(); kid != cfg.KeyID || len(kid) != 43 {
			t.Errorf("kid %q, want Keycloak's id of the key %q", kid, cfg.KeyID)
		}
		payload, err := jws.Verify([]byte(a), jws.WithKey(jwa.RS256(), &cfg.Key.PublicKey))
		if err != nil {
			t.Fatalf("signature: %v", err)
		}
		var c struct {
			Iss, Sub, Jti string
			Aud           []string
			Iat, Exp      int64
		}
		if err := json.Unmarshal(payload, &c); err != nil {
			t.Fatalf("%v: %s", err, payload)
		}
		issuer := strings.TrimSuffix(tokenURL, "/protocol/openid-connect/token")
		if c.Iss != "orders-signed-jwt" || c.Sub != c.Iss || len(c.Aud) != 1 || c.Aud[0] != issuer ||
			c.Iat != now.Unix() || c.Exp != now.Unix()+60 || len(c.Jti) != 32 || seen[c.Jti] {
			t.Errorf("claims %s", payload)
		}
		seen[c.Jti] = true
	}
}

func TestParseFlags(t *testing.T) {
	cfg, err := parseFlags([]string{"-key-id", "-", "-audience", tokenURL}, demoEnv(nil))
	if err != nil || cfg.KeyID != "" || cfg.Audience != tokenURL || cfg.Count != 1 {
		t.Errorf("%+v, %v", cfg.KeyID, err)
	}
	for name, env := range map[string]map[string]string{
		"count":       {"COUNT": "many"},
		"token url":   {"TOKEN_URL": "sso.example.com/token"},
		"no key":      {"PRIVATE_KEY_FILE": "missing.pem"},
		"not a key":   {"PRIVATE_KEY_FILE": "demo-cert.pem"},
		"no cert":     {"CERT_FILE": "missing.pem"},
		"zero counts": {"COUNT": "0"},
	} {
		if _, err := parseFlags(nil, demoEnv(env)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestKeyIDNeedsTheCertificatesKey: a key that is not the registered
// certificate's is caught before Keycloak refuses it.
func TestKeyIDNeedsTheCertificatesKey(t *testing.T) {
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keycloakKeyID("demo-cert.pem", other); err == nil || !strings.Contains(err.Error(), "public half") {
		t.Errorf("err %v", err)
	}
	withCert, err := parseFlags(nil, demoEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	fromKey, err := keycloakKeyID("", withCert.Key)
	if err != nil || fromKey != withCert.KeyID {
		t.Errorf("key id from the key %q, from the certificate %q (%v)", fromKey, withCert.KeyID, err)
	}
}
