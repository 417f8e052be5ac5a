package jwks

import (
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/keycloak-jwt/keycloak-jwt/internal/testidp"
)

// TestRefreshBeforeExpiry: with traffic, a key set is refetched in the
// background at 80 % of its TTL, before it expires, and not before.
func TestRefreshBeforeExpiry(t *testing.T) {
	idp, c, clk := setup(t)
	idp.SetCacheControl("max-age=600")
	s := mustSource(t, c, Spec{Issuer: idp.Issuer(), JWKSURI: idp.JWKSURL()})
	kid := idp.CurrentKid()
	if _, err := s.Key(ctx, kid, "RS256"); err != nil {
		t.Fatal(err)
	}
	clk.Advance(470 * time.Second) // below 80 % of 600 s
	if _, err := s.Key(ctx, kid, "RS256"); err != nil {
		t.Fatal(err)
	}
	if _, j := idp.Fetches(); j != 1 {
		t.Fatalf("refetched at 78 %% of the TTL (%d fetches)", j)
	}
	clk.Advance(20 * time.Second) // 490 s: past 80 %, before expiry
	if _, err := s.Key(ctx, kid, "RS256"); err != nil {
		t.Fatal(err)
	}
	// The fetch counts before it publishes: wait for the new set itself.
	waitFor(t, func() bool { _, j := idp.Fetches(); return j == 2 && s.Current().FetchedAt.Equal(clk.Now()) })
	if got := s.Current().ExpiresAt.Sub(clk.Now()); got != 600*time.Second {
		t.Fatalf("the refreshed set expires in %s, want 600s", got)
	}
}

// TestFailedFetchLoggedAtErrorLevel: an outage is loud, with the URL.
func TestFailedFetchLoggedAtErrorLevel(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	idp, err := testidp.New(testidp.Options{Clock: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer idp.Close()
	c := NewCache(Options{Clock: clk.Now, Logger: zap.New(core)})
	s := mustSource(t, c, Spec{Issuer: idp.Issuer(), JWKSURI: idp.JWKSURL()})
	if _, err := s.Key(ctx, idp.CurrentKid(), "RS256"); err != nil {
		t.Fatal(err)
	}
	idp.SetFault(testidp.Fault{Down: true})
	clk.Advance(DefaultTTL)
	if _, err := s.Key(ctx, idp.CurrentKid(), "RS256"); err != nil {
		t.Fatalf("stale keys must still be served: %v", err)
	}
	waitFor(t, func() bool { return logs.FilterMessageSnippet("refresh failed").Len() == 1 })
	e := logs.FilterMessageSnippet("refresh failed").All()[0]
	if e.Level != zapcore.ErrorLevel || e.ContextMap()["keys_from"] != idp.JWKSURL() {
		t.Fatalf("log entry %v %v", e.Level, e.ContextMap())
	}
}
