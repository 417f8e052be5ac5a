package jwks

import (
	"encoding/pem"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTLS: HTTPS key fetches trust the system roots, or exactly the CAs of
// ca_file; insecure_skip_verify is an explicit escape hatch.
func TestTLS(t *testing.T) {
	idp, c, _ := setup(t)
	srv := httptest.NewUnstartedServer(idp.Handler())
	srv.StartTLS()
	defer srv.Close()
	jwksURI := srv.URL + strings.TrimPrefix(idp.JWKSURL(), idp.URL())

	caFile := filepath.Join(t.TempDir(), "ca.pem")
	cert := srv.Certificate()
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	untrusted := mustSource(t, c, Spec{Issuer: idp.Issuer(), JWKSURI: jwksURI})
	if _, err := untrusted.Key(ctx, idp.CurrentKid(), "RS256"); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("a self-signed server must not be trusted by default: %v", err)
	}
	withCA := mustSource(t, c, Spec{Issuer: idp.Issuer(), JWKSURI: jwksURI, Config: Config{CAFile: caFile}})
	if _, err := withCA.Key(ctx, idp.CurrentKid(), "RS256"); err != nil {
		t.Fatalf("ca_file: %v", err)
	}
	insecure := mustSource(t, c, Spec{Issuer: idp.Issuer(), JWKSURI: jwksURI, Config: Config{InsecureSkipVerify: true}})
	if _, err := insecure.Key(ctx, idp.CurrentKid(), "RS256"); err != nil {
		t.Fatalf("insecure_skip_verify: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.pem")
	_ = os.WriteFile(bad, []byte("not a cert"), 0o600)
	if _, err := c.Source(Spec{Issuer: idp.Issuer(), JWKSURI: jwksURI, Config: Config{CAFile: bad}}); !errors.Is(err, ErrInvalidSpec) {
		t.Fatalf("bad ca_file: %v", err)
	}
	// A path to an endless device is refused at its size bound, not read until memory runs out.
	if _, err := c.Source(Spec{Issuer: idp.Issuer(), JWKSURI: jwksURI, Config: Config{CAFile: "/dev/zero"}}); !errors.Is(err, ErrInvalidSpec) || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("ca_file /dev/zero: %v", err)
	}
}
