package store

import (
	"context"
	"sync"
	"time"
)

// DefaultMemoryEntries bounds a Memory store when NewMemory is given 0.
const DefaultMemoryEntries = 100_000

// Memory is a bounded store held by one node. When it is full, expired
// entries are dropped first; then Set drops live cached values (a cache
// may forget), while SetNX refuses with ErrFull (a replay mark may not be
// forgotten before it expires). It is safe for concurrent use.
type Memory struct {
	max int
	now func() time.Time

	mu sync.Mutex
	m  map[string]memEntry
}

type memEntry struct {
	value []byte
	until int64 // Unix nanoseconds
}

// NewMemory returns a store of at most maxEntries entries (0: the default).
// clock is time.Now when nil.
func NewMemory(maxEntries int, clock func() time.Time) *Memory {
	if maxEntries <= 0 {
		maxEntries = DefaultMemoryEntries
	}
	if clock == nil {
		clock = time.Now
	}
	return &Memory{max: maxEntries, now: clock, m: map[string]memEntry{}}
}

// Len is the number of entries held, expired ones not yet dropped included.
func (s *Memory) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// SetNX implements Store.
func (s *Memory) SetNX(_ context.Context, key string, ttl time.Duration) (bool, error) {
	now := s.now().UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[key]; ok && e.until > now {
		return false, nil
	}
	if ttl <= 0 {
		return true, nil
	}
	if !s.room(key, now, false) {
		return false, ErrFull
	}
	s.m[key] = memEntry{until: now + int64(ttl)}
	return true, nil
}

// Get implements Store.
func (s *Memory) Get(_ context.Context, key string) ([]byte, bool, error) {
	now := s.now().UnixNano()
	s.mu.Lock()
	e, ok := s.m[key]
	s.mu.Unlock()
	if !ok || e.until <= now || e.value == nil {
		return nil, false, nil
	}
	return e.value, true, nil
}

// Set implements Store. The value is copied.
func (s *Memory) Set(_ context.Context, key string, value []byte, ttl time.Duration) error {
	if ttl < time.Millisecond {
		return nil
	}
	now := s.now().UnixNano()
	v := append(make([]byte, 0, len(value)), value...)
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.room(key, now, true) {
		return ErrFull // every entry is a live replay mark
	}
	s.m[key] = memEntry{value: v, until: now + int64(ttl)}
	return nil
}

// room makes space for key, dropping expired entries and, when evict is
// set, live cached values (never live replay marks). It reports whether
// there is room.
func (s *Memory) room(key string, now int64, evict bool) bool {
	if _, ok := s.m[key]; ok || len(s.m) < s.max {
		return true
	}
	for k, e := range s.m {
		if e.until <= now {
			delete(s.m, k)
		}
	}
	if len(s.m) < s.max {
		return true
	}
	if !evict {
		return false
	}
	// Drop a tenth of the cached values (map order is random enough: no
	// caller chooses what goes).
	drop := s.max/10 + 1
	for k, e := range s.m {
		if drop == 0 {
			break
		}
		if e.value != nil {
			delete(s.m, k)
			drop--
		}
	}
	return len(s.m) < s.max
}
