package policy

import (
	"encoding/binary"
	"hash/maphash"
	"slices"
	"strings"
	"sync"

	"github.com/keycloak-jwt/keycloak-jwt/jwks"
)

// cacheEntry is one verified token. The whole token is kept so a hash
// collision can never return another token's claims; the claims' payload
// segment (what Claims.Get reads) is a part of it, so an entry costs the
// token once plus the decoded claims the checks read (see
// TestTokenCacheMemory: at most twice the token's size).
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
// the token's last bytes (see key). Each shard holds at most size/cacheShards entries; when full,
// it drops an expired entry if it finds one among a few, else any entry.
type tokenCache struct {
	seed   maphash.Seed
	perCap int
	shapes shapes
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

// keyBytes is how much of a token's end the cache hashes.
const keyBytes = 64

// key is the map key of a token: a seeded hash of its last keyBytes, which
// lie in its signature. Hashing the whole token was a third of a warm check
// (1.3 KB through aeshash); a signature's bytes are as unpredictable as the
// whole, and only verified tokens are ever put, so an attacker can choose
// neither. A hit is still the whole token compared byte for byte: a token
// that shares a cached one's signature but not its header or payload is a
// miss (and then fails verification).
func (c *tokenCache) key(token string) uint64 {
	if len(token) > keyBytes {
		token = token[len(token)-keyBytes:]
	}
	return maphash.String(c.seed, token)
}

func (c *tokenCache) get(token string, now int64) *cacheEntry {
	h := c.key(token)
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

// put keeps e under token. The token is copied first: the caller's string
// may be a part of a larger buffer (a header block, a socket message) that
// the cache must not pin. The copy also holds the token's jti, and the
// claims' payload segment (what Claims.Get reads) is moved onto it; the
// claims every token of one client repeats are shared (see shapes).
func (c *tokenCache) put(token string, e *cacheEntry) {
	cl := e.claims
	cnf := &cl.Confirmation
	var b strings.Builder
	b.Grow(len(token) + len(cl.ID) + len(cnf.JKT) + len(cnf.X5TS256) + len(cnf.Other))
	for _, s := range [...]string{token, cl.ID, cnf.JKT, cnf.X5TS256, cnf.Other} {
		b.WriteString(s)
	}
	own := b.String()
	if first, last := strings.IndexByte(own, '.'), strings.LastIndexByte(own, '.'); first > 0 && last > first {
		cl.enc, cl.raw = own[first+1:last], nil
	}
	// The token's own strings move onto its copy; the claims' arena (see
	// decodeClaims) is then held only through what shapes shares.
	rest := own
	take := func(n int) string {
		s := rest[:n]
		rest = rest[n:]
		return s
	}
	e.token = take(len(token))
	cl.ID = take(len(cl.ID))
	cnf.JKT, cnf.X5TS256, cnf.Other = take(len(cnf.JKT)), take(len(cnf.X5TS256)), take(len(cnf.Other))
	c.shapes.share(cl)
	h := c.key(token)
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

// shapes shares, between cached tokens, the claims that all tokens of one
// client carry alike: issuer, subject, types, client ids, audience, scopes
// and roles. Keycloak mints them anew for every token, so without sharing
// each cached token kept its own copies (about 1.4 KB of small strings,
// slices and a map, as much as the token itself); only jti and the times
// differ between the tokens of a client. Shared values are read-only, as
// all Claims are. Bounded: emptied when full.
type shapes struct {
	mu  sync.Mutex
	key []byte // scratch, under mu
	m   map[string]*shape
}

// shape is the shared part of Claims.
type shape struct {
	iss, sub, typ, azp, clientID string
	aud, scopes, realmRoles      []string
	clientRoles                  map[string][]string
}

const shapesSize = 1024

// share points cl's repeated claims at an equal shape's values, or records
// cl's as a new shape.
func (s *shapes) share(cl *Claims) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.key[:0]
	for _, v := range [...]string{cl.Issuer, cl.Subject, cl.Type, cl.AuthorizedParty, cl.ClientIDClaim} {
		k = appendField(k, v)
	}
	for _, l := range [...][]string{cl.Audience, cl.Scopes, cl.RealmRoles} {
		k = appendList(k, l)
	}
	if cl.ClientRoles == nil {
		k = binary.AppendUvarint(k, 0)
	} else {
		clients := make([]string, 0, len(cl.ClientRoles))
		for c := range cl.ClientRoles {
			clients = append(clients, c)
		}
		slices.Sort(clients)
		k = binary.AppendUvarint(k, uint64(len(clients))+1)
		for _, c := range clients {
			k = appendField(k, c)
			k = appendList(k, cl.ClientRoles[c])
		}
	}
	s.key = k
	if sh, ok := s.m[string(k)]; ok {
		cl.Issuer, cl.Subject, cl.Type, cl.AuthorizedParty, cl.ClientIDClaim = sh.iss, sh.sub, sh.typ, sh.azp, sh.clientID
		cl.Audience, cl.Scopes, cl.RealmRoles, cl.ClientRoles = sh.aud, sh.scopes, sh.realmRoles, sh.clientRoles
		return
	}
	if s.m == nil || len(s.m) >= shapesSize {
		s.m = make(map[string]*shape)
	}
	s.m[string(k)] = &shape{iss: cl.Issuer, sub: cl.Subject, typ: cl.Type, azp: cl.AuthorizedParty, clientID: cl.ClientIDClaim,
		aud: cl.Audience, scopes: cl.Scopes, realmRoles: cl.RealmRoles, clientRoles: cl.ClientRoles}
}

// appendField and appendList encode the shape key without ambiguity:
// every string is length-prefixed, a list is its length + 1 (0 for nil)
// then its strings.
func appendField(k []byte, v string) []byte {
	return append(binary.AppendUvarint(k, uint64(len(v))), v...)
}

func appendList(k []byte, l []string) []byte {
	if l == nil {
		return binary.AppendUvarint(k, 0)
	}
	k = binary.AppendUvarint(k, uint64(len(l))+1)
	for _, v := range l {
		k = appendField(k, v)
	}
	return k
}
