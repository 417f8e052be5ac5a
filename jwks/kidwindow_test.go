package jwks

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/keycloak-jwt/keycloak-jwt/internal/testidp"
)

func jwksFetches(idp *testidp.IdP) int64 { _, j := idp.Fetches(); return j }

// warmSource is a source of the test realm with its keys fetched at start-up.
func warmSource(t *testing.T) (*testidp.IdP, *Source, *clock) {
	t.Helper()
	idp, c, clk := setup(t)
	s := mustSource(t, c, Spec{Issuer: idp.Issuer()})
	if err := s.Warm(ctx); err != nil {
		t.Fatal(err)
	}
	return idp, s, clk
}

// inventedKids asks for n random kids, step apart; each must be unknown.
func inventedKids(t *testing.T, s *Source, clk *clock, n int, step time.Duration) {
	t.Helper()
	for range n {
		if _, err := s.Key(ctx, fmt.Sprintf("invented-%016x", rand.Uint64()), "RS256"); !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("invented kid: %v", err)
		}
		clk.Advance(step)
	}
}

// wantNewKid checks that a token with kid is served after exactly one more
// JWKS fetch than before.
func wantNewKid(t *testing.T, idp *testidp.IdP, s *Source, kid string) {
	t.Helper()
	before := jwksFetches(idp)
	k, err := s.Key(ctx, kid, "RS256")
	if err != nil || k.ID != kid {
		t.Fatalf("new kid %q: %v", kid, err)
	}
	if got := jwksFetches(idp) - before; got != 1 {
		t.Fatalf("new kid served after %d JWKS fetches, want 1", got)
	}
}

// rotateThenAsk rotates the realm's key 1 s from now and asks for the new
// kid 1 s later: it must be served after exactly one JWKS fetch.
func rotateThenAsk(t *testing.T, idp *testidp.IdP, s *Source, clk *clock) {
	t.Helper()
	clk.Advance(time.Second)
	newKid, err := idp.RotateKey()
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	wantNewKid(t, idp, s, newKid)
}

// TestNewKidRightAfterStartUpFetch: keys fetched at start, the realm
// rotates 1 s later, the first token with the new kid comes 2 s after the
// start: it is served after one refetch, not refused for the rest of
// min_refresh_interval (a start-up fetch does not open the unknown-kid window).
func TestNewKidRightAfterStartUpFetch(t *testing.T) {
	idp, s, clk := warmSource(t)
	rotateThenAsk(t, idp, s, clk)
	if got := jwksFetches(idp); got != 2 {
		t.Fatalf("%d JWKS fetches, want 2 (start-up + one refetch)", got)
	}
}

// TestNewKidRightAfterScheduledRefresh: the same right after a background
// refresh (due at 80 % of the TTL).
func TestNewKidRightAfterScheduledRefresh(t *testing.T) {
	idp, s, clk := warmSource(t)
	kid := idp.CurrentKid()
	clk.Advance(DefaultTTL * 4 / 5)
	if _, err := s.Key(ctx, kid, "RS256"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return jwksFetches(idp) == 2 && s.Current().FetchedAt.Equal(clk.Now()) })
	rotateThenAsk(t, idp, s, clk)
}

// TestUnknownKidWindow: 1000 tokens with invented kids within one second
// cause at most one JWKS fetch; once min_refresh_interval has passed since
// that fetch, an unknown kid refetches again (and a kid published meanwhile
// is found).
func TestUnknownKidWindow(t *testing.T) {
	idp, s, clk := warmSource(t)
	start := jwksFetches(idp)
	inventedKids(t, s, clk, 1000, time.Millisecond)
	if got := jwksFetches(idp) - start; got > 1 {
		t.Fatalf("1000 invented kids in 1 s made %d JWKS fetches, want at most 1", got)
	}
	newKid, err := idp.RotateKey()
	if err != nil {
		t.Fatal(err)
	}
	// Still within the window opened by the storm's fetch: refused unfetched.
	before := jwksFetches(idp)
	if _, err := s.Key(ctx, newKid, "RS256"); !errors.Is(err, ErrUnknownKey) || jwksFetches(idp) != before {
		t.Fatalf("within the window: %v, %d fetches", err, jwksFetches(idp)-before)
	}
	clk.Advance(DefaultMinRefreshInterval - time.Second) // 10 s after the storm's first request
	wantNewKid(t, idp, s, newKid)
	clk.Advance(DefaultMinRefreshInterval)
	before = jwksFetches(idp)
	if _, err := s.Key(ctx, "invented-again", "RS256"); !errors.Is(err, ErrUnknownKey) {
		t.Fatal(err)
	}
	if got := jwksFetches(idp) - before; got != 1 {
		t.Fatalf("an unknown kid after the window made %d JWKS fetches, want 1", got)
	}
}

// TestUnknownKidWindowWhileFailing: while the realm fails, invented kids
// add at most one attempt per min_refresh_interval, whatever fetched last.
func TestUnknownKidWindowWhileFailing(t *testing.T) {
	idp, s, clk := warmSource(t)
	idp.SetFault(testidp.Fault{Down: true})
	for window := range 3 {
		start := s.Status().Fetches
		inventedKids(t, s, clk, 1000, DefaultMinRefreshInterval/1000)
		if got := s.Status().Fetches - start; got > 1 {
			t.Fatalf("window %d: %d fetch attempts against a failing realm, want at most 1", window, got)
		}
	}
}
