package interop

import (
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"testing"
	"unicode/utf8"
)

// TestRealmSignedJWTClient checks the client of the realm export that
// authenticates with a signed JWT (clientAuthenticatorType client-jwt): no
// secret, RS256, and the certificate Keycloak checks assertions against is
// the one of examples/jwt-client, whose private key the example signs with.
// It also checks what Keycloak refuses at import only with a database error
// that stops the server: a client name or description over 255 characters.
func TestRealmSignedJWTClient(t *testing.T) {
	var raw struct {
		Clients []struct {
			ClientID    string `json:"clientId"`
			Name        string `json:"name"`
			Description string `json:"description"`
		} `json:"clients"`
	}
	if err := json.Unmarshal(readRepoFile(t, realmFile), &raw); err != nil {
		t.Fatal(err)
	}
	for _, c := range raw.Clients {
		for field, v := range map[string]string{"name": c.Name, "description": c.Description} {
			if n := utf8.RuneCountInString(v); n > 255 {
				t.Errorf("client %q: %s has %d characters; Keycloak's column holds 255 and the import fails", c.ClientID, field, n)
			}
		}
	}

	r := loadRealm(t)
	c := r.client("orders-signed-jwt")
	if c == nil {
		t.Fatal("client orders-signed-jwt (private_key_jwt) is missing")
	}
	if c.ClientAuthenticatorType != "client-jwt" || c.Secret != "" {
		t.Errorf("clientAuthenticatorType %q, secret set %t: want client-jwt and no secret", c.ClientAuthenticatorType, c.Secret != "")
	}
	if !isTrue(c.ServiceAccountsEnabled) || r.serviceAccount(c.ClientID) == nil {
		t.Error("orders-signed-jwt needs a service account")
	}
	if a := c.Attributes["token.endpoint.auth.signing.alg"]; a != "RS256" {
		t.Errorf("token.endpoint.auth.signing.alg %q, want RS256 (what examples/jwt-client signs with)", a)
	}
	der, err := base64.StdEncoding.DecodeString(c.Attributes["jwt.credential.certificate"])
	if err != nil {
		t.Fatalf("jwt.credential.certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("jwt.credential.certificate: %v", err)
	}
	pemCert, err := os.ReadFile(repoPath("examples/jwt-client/demo-cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := pem.Decode(pemCert); b == nil || string(b.Bytes) != string(der) {
		t.Error("jwt.credential.certificate is not examples/jwt-client/demo-cert.pem")
	}
	keyPEM, err := os.ReadFile(repoPath("examples/jwt-client/demo-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		t.Fatal("examples/jwt-client/demo-key.pem: no PEM block")
	}
	key, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if signer, ok := key.(crypto.Signer); !ok {
		t.Fatalf("demo key %T", key)
	} else if p, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !p.Equal(signer.Public()) {
		t.Error("the certificate does not hold the public half of examples/jwt-client/demo-key.pem")
	}
}
