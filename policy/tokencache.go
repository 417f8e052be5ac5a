package policy

import (
	"hash/maphash"
	"sync"

	"github.com/keycloak-jwt/keycloak-jwt/jwks"
)

// cacheEntry is one verified token. The whole token is kept so a hash
// collision can never return another token's claims.
type cacheEntry struct {
	token  string
	claims *Claims
	key    *jwks.Key    // the key that verified it; must still be published on a hit
	src    *jwks.Source // where key came from
	exp    int64        // the token's exp: the entry is never used at or after it
}

const cacheShards = 16

// TokenCaches hands out verified-token caches shared by size: every policy
// compiled with the same TokenCaches and the same token_cache_size uses one
// cache. A Kong node runs one policy per route; sharing keeps memory bounded
// by the configured size, not by size × routes, and lets a token verified
// on one route hit the cache on the next. An entry records only what
// verification established (claims, key, key source); each policy re-checks
// on a hit that the entry's algorithm and key source are ones it trusts,
// then re-runs every claim rule.
type TokenCaches struct {
	mu sync.Mutex
	m  map[int]*tokenCache
}

// NewTokenCaches returns an empty registry.
func NewTokenCaches() *TokenCaches { return &TokenCaches{m: map[int]*tokenCache{}} }

func (t *TokenCaches) get(size int) *tokenCache {
	t.mu.Lock()
	defer t.mu.Unlock()
	c, ok := t.m[size]
	if !ok {
		c = newTokenCache(size)
		t.m[size] = c
	}
	return c
}

// tokenCache is a bounded map of verified tokens, keyed by a seeded hash of
// the token. Each shard holds at most size/cacheShards entries; when full,
// it drops an expired entry if it finds one among a few, else any entry.
type tokenCache struct {
	seed   maphash.Seed
	perCap int
	shards [cacheShards]struct {
		mu sync.Mutex
		m  map[uint64]*cacheEntry
	}
}

func newTokenCache(size int) *tokenCache {
	c := &tokenCache{seed: maphash.MakeSeed(), perCap: max(1, (size+cacheShards-1)/cacheShards)}
	for i := range c.shards {
		c.shards[i].m = make(map[uint64]*cacheEntry)
	}
	return c
}

func (c *tokenCache) get(token string, now int64) *cacheEntry {
	h := maphash.String(c.seed, token)
	s := &c.shards[h%cacheShards]
	s.mu.Lock()
	e := s.m[h]
	if e != nil && now >= e.exp {
		delete(s.m, h)
		e = nil
	}
	s.mu.Unlock()
	if e == nil || e.token != token {
		return nil
	}
	return e
}

func (c *tokenCache) put(token string, e *cacheEntry) {
	h := maphash.String(c.seed, token)
	s := &c.shards[h%cacheShards]
	s.mu.Lock()
	if _, ok := s.m[h]; !ok && len(s.m) >= c.perCap {
		// Look at a few entries (map order is random) and drop the one that
		// expires first: usually an expired token, never a scan of the shard.
		victim, soonest, probes := uint64(0), int64(0), 0
		for k, old := range s.m {
			if probes == 0 || old.exp < soonest {
				victim, soonest = k, old.exp
			}
			if probes++; probes == 8 {
				break
			}
		}
		delete(s.m, victim)
	}
	s.m[h] = e
	s.mu.Unlock()
}

// len is the number of entries (tests and metrics).
func (c *tokenCache) len() int {
	n := 0
	for i := range c.shards {
		c.shards[i].mu.Lock()
		n += len(c.shards[i].m)
		c.shards[i].mu.Unlock()
	}
	return n
}
