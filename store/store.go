// Package store holds what gateway nodes may share: replay marks (a DPoP
// proof's jti seen once) and cached answers (token introspection), each
// with a time to live. Memory is one node's bounded store; Redis is the
// store many nodes share, as Kong's own rate-limiting plugin shares its
// counters.
//
// What a caller does when the store fails is its own choice, and the two
// users choose differently: a replay check fails closed (an error from
// SetNX refuses the request: a proof that cannot be recorded as seen could
// be replayed), an introspection cache falls back to the node's own memory
// (an answer not shared only costs one more call to the authorization
// server).
package store

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"time"
)

// Store is a key-value store with expiry. Keys are opaque to it: callers
// never put a token in a key (they hash it).
type Store interface {
	// SetNX records key for ttl unless it is already recorded: firstTime
	// is true when this call recorded it. An error means nothing is known
	// (a replay check must refuse).
	SetNX(ctx context.Context, key string, ttl time.Duration) (firstTime bool, err error)
	// Get returns the value of key; ok is false when it is absent or expired.
	Get(ctx context.Context, key string) (value []byte, ok bool, err error)
	// Set stores value under key for ttl (a ttl under a millisecond stores
	// nothing).
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) error
}

// Errors of a Store.
var (
	// ErrFull: a Memory store at its bound with no expired entry to drop
	// refuses a new replay mark rather than forget one still live.
	ErrFull = errors.New("store: full")
	// ErrUnavailable wraps every failure to reach Redis (dial, timeout,
	// connection closed, error reply).
	ErrUnavailable = errors.New("store: unavailable")
)

// Replay is a replay check over a Store, in the shape of authz.ReplayStore:
// FirstUse records key (hashed: a proof's jti is chosen by the client) for
// ttl and reports whether it was new. An error means the check could not
// be made: the caller refuses.
type Replay struct {
	Store Store
	// Namespace starts every key, e.g. "dpop:".
	Namespace string
	// Timeout bounds one check (default 250 ms); Redis's own timeout
	// applies too.
	Timeout time.Duration
}

// FirstUse implements the replay check.
func (r Replay) FirstUse(key string, ttl time.Duration) (bool, error) {
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultRedisTimeoutMillis * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	sum := sha256.Sum256([]byte(key))
	return r.Store.SetNX(ctx, r.Namespace+base64.RawURLEncoding.EncodeToString(sum[:]), ttl)
}
