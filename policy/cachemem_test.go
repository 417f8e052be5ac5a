package policy

import (
	"context"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keycloak-jwt/keycloak-jwt/internal/testidp"
)

// memTokens are distinct RS256 tokens of the orders-service client (about
// 1.3 KB each), minted once per test binary: signing is the slow part.
var memTokens struct {
	once sync.Once
	e    *env
	toks []string
}

func distinctTokens(t testing.TB, n int) (*env, []string) {
	memTokens.once.Do(func() {
		e := newEnv(t, "RS256")
		toks := make([]string, 10000)
		var wg sync.WaitGroup
		workers := runtime.GOMAXPROCS(0)
		errs := make(chan error, workers)
		for w := range workers {
			wg.Go(func() {
				for i := w; i < len(toks); i += workers {
					tok, err := e.idp.Token("orders-service", testidp.WithTTL(time.Hour))
					if err != nil {
						errs <- err
						return
					}
					toks[i] = tok
				}
			})
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
		memTokens.e, memTokens.toks = e, toks
	})
	if memTokens.e == nil {
		t.Fatal("tokens not minted")
	}
	return memTokens.e, memTokens.toks[:n]
}

// cacheBytesPerEntry fills a fresh cache with the tokens through Check
// (each token a fresh copy, as from a request) and returns the heap the
// cache keeps per entry and the mean token size. When get is set, every
// decision's claims are also read by name, as the upstream headers do.
func cacheBytesPerEntry(t testing.TB, toks []string, get bool) (perEntry, tokLen float64) {
	e, _ := distinctTokens(t, 0)
	size := 2 * len(toks) // room in every shard: all of them stay
	p, err := Compile(func() Config {
		c := e.config()
		c.TokenCacheSize = &size
		c.ScopesRequired = []string{"orders:read"}
		c.ClientRolesRequired = []string{"orders-api:reader"}
		return c
	}(), Deps{Keys: e.keys, Clock: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if d := p.Check(context.Background(), strings.Clone(toks[0])); !d.Allow {
		t.Fatal(d.Detail)
	}
	p.cache = newTokenCache(size) // the key set is fetched; start empty
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	ctx := context.Background()
	total := 0
	for _, tok := range toks {
		total += len(tok)
		d := p.Check(ctx, strings.Clone(tok))
		if !d.Allow {
			t.Fatal(d.Detail)
		}
		if get {
			if v, ok := d.Claims.Get("clientHost"); !ok || v != "127.0.0.1" {
				t.Fatalf("clientHost = %v, %v", v, ok)
			}
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if n := p.cache.len(); n != len(toks) {
		t.Fatalf("cache holds %d entries, want %d", n, len(toks))
	}
	runtime.KeepAlive(p)
	return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(len(toks)),
		float64(total) / float64(len(toks))
}

// TestTokenCacheMemory holds the verified-token cache to at most twice the
// size of the tokens it keeps, claims read by name included.
func TestTokenCacheMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("mints 10,000 RS256 tokens")
	}
	_, toks := distinctTokens(t, 10000)
	for _, get := range []bool{false, true} {
		per, tok := cacheBytesPerEntry(t, toks, get)
		t.Logf("claims read by name %v: %.0f bytes per entry, tokens %.0f bytes (%.2f×)", get, per, tok, per/tok)
		if per > 2*tok {
			t.Errorf("claims read by name %v: %.0f bytes per cached token of %.0f bytes, more than 2×", get, per, tok)
		}
	}
}

// BenchmarkCacheMemory reports the heap kept per cached token for 10,000
// distinct tokens (the figure in BENCHMARKS.md); ns/op is the fill time.
func BenchmarkCacheMemory(b *testing.B) {
	_, toks := distinctTokens(b, 10000)
	var per, tok float64
	for b.Loop() {
		per, tok = cacheBytesPerEntry(b, toks, true)
	}
	b.ReportMetric(per, "B/entry")
	b.ReportMetric(tok, "B/token")
	b.ReportMetric(per/tok, "entry/token")
}
