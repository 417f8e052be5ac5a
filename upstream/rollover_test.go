package upstream

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func pubPEM(t testing.TB, key crypto.Signer) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func newECKey(t testing.TB) crypto.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func jwksKids(t testing.TB, doc []byte) []string {
	t.Helper()
	var set struct {
		Keys []struct {
			Kid, Alg, Use string
			D             string `json:"d"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(doc, &set); err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, k := range set.Keys {
		if k.Alg != "ES256" || k.Use != "sig" || k.D != "" {
			t.Fatalf("published key %+v", k)
		}
		kids = append(kids, k.Kid)
	}
	return kids
}

func TestSignerPublishesNextAndPrevious(t *testing.T) {
	cur, next, prev := newECKey(t), newECKey(t), newECKey(t)
	cfg := baseConfig("ES256", writeFile(t, pemOf(t, cur, "pkcs8")))
	cfg.NextPrivateKeyFile = writeFile(t, pubPEM(t, next)) // a public key is enough
	t.Setenv("UPSTREAM_PREV_KEY", string(pemOf(t, prev, "sec1")))
	cfg.PreviousPrivateKeyEnv = "UPSTREAM_PREV_KEY" // or the old private key
	s, err := NewSigner(cfg, fixedClock)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{thumbprint(t, cur.Public()), thumbprint(t, next.Public()), thumbprint(t, prev.Public())}
	if got := jwksKids(t, s.JWKS()); !slices.Equal(got, want) || !slices.Equal(s.KeyIDs(), want) || s.KeyID() != want[0] {
		t.Fatalf("published %v (KeyIDs %v), want current, next, previous %v", got, s.KeyIDs(), want)
	}
	tok, err := s.Sign(allowed(t, tokenPayload))
	if err != nil {
		t.Fatal(err)
	}
	if kid := decodeSegment(t, strings.Split(tok, ".")[0])["kid"]; kid != want[0] {
		t.Fatalf("signed with kid %v, want the current key's", kid)
	}
	if _, err := Verify(s.JWKS(), tok, cfg.Issuer, cfg.Audience, testNow); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name  string
		edit  func(*JWTConfig)
		field string
	}{
		{"next is the current key", func(c *JWTConfig) { c.NextPrivateKeyFile = c.PrivateKeyFile }, "upstream_jwt.private_key_file"},
		{"next of another algorithm", func(c *JWTConfig) { c.NextPrivateKeyFile = writeFile(t, pemOf(t, testKey(t, "EdDSA"), "pkcs8")) },
			"upstream_jwt.next_private_key_file"},
		{"previous file and env", func(c *JWTConfig) { c.PreviousPrivateKeyFile, c.PreviousPrivateKeyEnv = "/x", "Y" },
			"upstream_jwt.previous_private_key_file"},
		{"previous env unset", func(c *JWTConfig) { c.PreviousPrivateKeyEnv = "KEYCLOAK_JWT_UNSET_KEY" }, "upstream_jwt.previous_private_key_env"},
		{"next not a key", func(c *JWTConfig) { c.NextPrivateKeyFile = writeFile(t, []byte("nothing")) }, "upstream_jwt.next_private_key_file"},
	} {
		c := baseConfig("ES256", cfg.PrivateKeyFile)
		tc.edit(&c)
		_, err := NewSigner(c, fixedClock)
		if err == nil || !strings.HasPrefix(err.Error(), tc.field+":") {
			t.Errorf("%s: %v, want an error on %s", tc.name, err, tc.field)
		}
	}
}

// cachingUpstream verifies upstream JWTs with the gateway's JWKS, which it
// fetches over HTTP and keeps for ttl. It never refetches early on an
// unknown kid: the strictest cache an upstream may keep.
type cachingUpstream struct {
	url     string
	ttl     time.Duration
	jwks    []byte
	fetched time.Time
	fetches int
}

func (u *cachingUpstream) verify(t *testing.T, tok string, now time.Time) error {
	t.Helper()
	if u.jwks == nil || now.Sub(u.fetched) >= u.ttl {
		resp, err := http.Get(u.url)
		if err != nil {
			t.Fatal(err)
		}
		u.jwks, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		u.fetched = now
		u.fetches++
	}
	_, err := Verify(u.jwks, tok, "https://gateway.example", "orders-api", now)
	return err
}

// rollPhase is one configuration of the gateway and how long it runs.
type rollPhase struct {
	name          string
	current       crypto.Signer
	next, prev    crypto.Signer
	dur           time.Duration
	wantPublished int
}

// runRoll runs the phases against a caching upstream: every 5 s of (fake)
// time the live signer signs a JWT, which the upstream verifies at once,
// and the oldest JWT still within its lifetime is verified again (a request
// in flight across a change). It returns the failures.
func runRoll(t *testing.T, phases []rollPhase, cacheTTL time.Duration) (verified int, failures []string) {
	t.Helper()
	var live atomic.Pointer[Signer]
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(live.Load().JWKS())
	}))
	defer gw.Close()
	up := &cachingUpstream{url: gw.URL, ttl: cacheTTL}
	now := testNow
	type issued struct {
		tok string
		at  time.Time
	}
	var inFlight []issued
	const ttl = 60 * time.Second
	for _, ph := range phases {
		cfg := baseConfig("ES256", writeFile(t, pemOf(t, ph.current, "pkcs8")))
		cfg.TTLSeconds = int(ttl / time.Second)
		if ph.next != nil {
			cfg.NextPrivateKeyFile = writeFile(t, pubPEM(t, ph.next))
		}
		if ph.prev != nil {
			cfg.PreviousPrivateKeyFile = writeFile(t, pemOf(t, ph.prev, "pkcs8"))
		}
		s, err := NewSigner(cfg, func() time.Time { return now })
		if err != nil {
			t.Fatalf("%s: %v", ph.name, err)
		}
		if n := len(s.KeyIDs()); n != ph.wantPublished {
			t.Fatalf("%s: %d keys published, want %d", ph.name, n, ph.wantPublished)
		}
		live.Store(s) // a reload: the new signer serves the next request
		for end := now.Add(ph.dur); now.Before(end); now = now.Add(5 * time.Second) {
			d := *allowed(t, tokenPayload)
			d.CheckedAt, d.AcceptedUntil = now.Unix(), now.Add(time.Hour).Unix()
			tok, err := s.Sign(&d)
			if err != nil {
				t.Fatal(err)
			}
			inFlight = append(inFlight, issued{tok, now})
			for len(inFlight) > 0 && now.Sub(inFlight[0].at) >= ttl-5*time.Second {
				inFlight = inFlight[1:]
			}
			for _, j := range []issued{{tok, now}, inFlight[0]} {
				verified++
				if err := up.verify(t, j.tok, now); err != nil {
					failures = append(failures, ph.name+" at +"+now.Sub(testNow).String()+" (signed at +"+j.at.Sub(testNow).String()+"): "+err.Error())
				}
			}
		}
	}
	if up.fetches < 2 {
		t.Fatalf("the upstream fetched the JWKS %d times: the test does not cross a refetch", up.fetches)
	}
	return verified, failures
}

// TestUpstreamKeyRollOver: an upstream that caches the JWKS for 5 minutes
// verifies every upstream JWT across two whole roll-overs done by the
// documented procedure (add next; after the upstreams' JWKS cache time,
// promote it, the old key becoming previous; after ttl_seconds, retire the
// previous). Without the "add next" step the same upstream refuses JWTs.
func TestUpstreamKeyRollOver(t *testing.T) {
	const cacheTTL = 5 * time.Minute
	k1, k2, k3 := newECKey(t), newECKey(t), newECKey(t)
	wait := cacheTTL + 10*time.Second // add next → promote: at least the JWKS cache time
	drain := 70 * time.Second         // promote → retire: at least ttl_seconds
	phases := []rollPhase{
		{name: "k1 signs", current: k1, dur: 2 * time.Minute, wantPublished: 1},
		{name: "add next k2", current: k1, next: k2, dur: wait, wantPublished: 2},
		{name: "promote k2", current: k2, prev: k1, dur: drain, wantPublished: 2},
		{name: "retire k1", current: k2, dur: 3 * time.Minute, wantPublished: 1},
		{name: "add next k3", current: k2, next: k3, dur: wait, wantPublished: 2},
		{name: "promote k3", current: k3, prev: k2, dur: drain, wantPublished: 2},
		{name: "retire k2", current: k3, dur: 6 * time.Minute, wantPublished: 1},
	}
	verified, failures := runRoll(t, phases, cacheTTL)
	if len(failures) > 0 {
		t.Fatalf("%d of %d verifications failed across the roll-over:\n%s", len(failures), verified, strings.Join(failures, "\n"))
	}
	t.Logf("%d verifications across two roll-overs, none failed", verified)

	// The control: promoting a key the upstreams have not cached yet.
	_, failures = runRoll(t, []rollPhase{
		{name: "k1 signs", current: k1, dur: 2 * time.Minute, wantPublished: 1},
		{name: "promote k2 at once", current: k2, prev: k1, dur: 5 * time.Minute, wantPublished: 2},
	}, cacheTTL)
	if len(failures) == 0 {
		t.Fatal("promoting an unpublished key broke nothing: the test cannot see a bad roll-over")
	}
	// And retiring too early: JWTs of the previous key still in flight fail
	// once the upstream refetches (here at +10 min, right at the promotion).
	_, failures = runRoll(t, []rollPhase{
		{name: "k1 signs", current: k1, dur: 290 * time.Second, wantPublished: 1},
		{name: "add next k2", current: k1, next: k2, dur: wait, wantPublished: 2},
		{name: "promote k2, k1 dropped", current: k2, dur: 5 * time.Minute, wantPublished: 1},
	}, cacheTTL)
	if len(failures) == 0 {
		t.Fatal("dropping the previous key at once broke nothing: the test cannot see in-flight JWTs")
	}
}
