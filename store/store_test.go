package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keycloak-jwt/keycloak-jwt/internal/redistest"
)

// conformance runs the Store contract against s; sleep lets TTLs pass.
func conformance(t *testing.T, s Store, sleep func(time.Duration)) {
	ctx := context.Background()
	first, err := s.SetNX(ctx, "jti-1", 200*time.Millisecond)
	if err != nil || !first {
		t.Fatalf("first SetNX = %v, %v; want true", first, err)
	}
	if again, err := s.SetNX(ctx, "jti-1", 200*time.Millisecond); err != nil || again {
		t.Fatalf("second SetNX = %v, %v; want false", again, err)
	}
	if _, ok, err := s.Get(ctx, "absent"); ok || err != nil {
		t.Fatalf("Get(absent) = %v, %v", ok, err)
	}
	if err := s.Set(ctx, "answer", []byte(`{"active":true}`), 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := s.Get(ctx, "answer"); !ok || err != nil || string(v) != `{"active":true}` {
		t.Fatalf("Get(answer) = %q, %v, %v", v, ok, err)
	}
	sleep(300 * time.Millisecond)
	if _, ok, _ := s.Get(ctx, "answer"); ok {
		t.Fatal("the answer outlived its TTL")
	}
	if first, err := s.SetNX(ctx, "jti-1", time.Second); err != nil || !first {
		t.Fatalf("SetNX after expiry = %v, %v; want true", first, err)
	}
	// Concurrent SetNX of one key: exactly one wins.
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if ok, err := s.SetNX(ctx, "race", time.Second); err == nil && ok {
				wins.Add(1)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d concurrent SetNX won, want 1", wins.Load())
	}
}

func TestMemoryConformance(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s := NewMemory(100, clock)
	conformance(t, s, func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() })
}

func TestMemoryBound(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	s := NewMemory(10, func() time.Time { return now })
	ctx := context.Background()
	for i := range 10 {
		if ok, err := s.SetNX(ctx, fmt.Sprint("mark", i), time.Minute); !ok || err != nil {
			t.Fatal(ok, err)
		}
	}
	// Full of live replay marks: a new mark is refused, never one forgotten.
	if _, err := s.SetNX(ctx, "mark-new", time.Minute); !errors.Is(err, ErrFull) {
		t.Fatalf("SetNX on a full store: %v, want ErrFull", err)
	}
	if err := s.Set(ctx, "v", []byte("x"), time.Minute); !errors.Is(err, ErrFull) {
		t.Fatalf("Set on a store full of marks: %v, want ErrFull", err)
	}
	if ok, _ := s.SetNX(ctx, "mark3", time.Minute); ok {
		t.Fatal("a live mark was forgotten")
	}
	// Once they expire, there is room again.
	now = now.Add(2 * time.Minute)
	if ok, err := s.SetNX(ctx, "mark-new", time.Minute); !ok || err != nil {
		t.Fatal(ok, err)
	}
	// Cached values are evicted to make room, and the bound holds.
	c := NewMemory(10, func() time.Time { return now })
	for i := range 100 {
		if err := c.Set(ctx, fmt.Sprint("k", i), []byte("v"), time.Minute); err != nil {
			t.Fatal(err)
		}
		if c.Len() > 10 {
			t.Fatalf("%d entries held, bound 10", c.Len())
		}
	}
	if v, ok, _ := c.Get(ctx, "k99"); !ok || string(v) != "v" {
		t.Fatal("the newest value is not there")
	}
}

func TestRedisConformance(t *testing.T) {
	srv := redistest.Start(t)
	r, err := NewRedis(RedisConfig{Address: srv.Addr, KeyPrefix: "test:"})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	conformance(t, r, time.Sleep)
	if err := r.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestRedisTwoClientsShareMarks: a mark set through one client (one
// gateway node) is seen through another.
func TestRedisTwoClientsShareMarks(t *testing.T) {
	srv := redistest.Start(t)
	a, _ := NewRedis(RedisConfig{Address: srv.Addr})
	b, _ := NewRedis(RedisConfig{Address: srv.Addr})
	defer a.Close()
	defer b.Close()
	ctx := context.Background()
	if ok, err := a.SetNX(ctx, "dpop:jti-x", time.Minute); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if ok, err := b.SetNX(ctx, "dpop:jti-x", time.Minute); ok || err != nil {
		t.Fatalf("node b saw the proof as new: %v, %v", ok, err)
	}
	// Another prefix is another namespace.
	c, _ := NewRedis(RedisConfig{Address: srv.Addr, KeyPrefix: "other:"})
	defer c.Close()
	if ok, err := c.SetNX(ctx, "dpop:jti-x", time.Minute); !ok || err != nil {
		t.Fatal(ok, err)
	}
}

// TestRedisDown: a stopped server fails every call with ErrUnavailable,
// quickly; a server that accepts but never answers, within the timeout.
func TestRedisDown(t *testing.T) {
	srv := redistest.Start(t)
	r, _ := NewRedis(RedisConfig{Address: srv.Addr, TimeoutMillis: 100})
	defer r.Close()
	ctx := context.Background()
	if _, err := r.SetNX(ctx, "k", time.Minute); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	if _, err := r.SetNX(ctx, "k2", time.Minute); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("SetNX with redis down: %v", err)
	}
	if _, _, err := r.Get(ctx, "k"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Get with redis down: %v", err)
	}

	// A black hole: accepts connections, never answers.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	hole, _ := NewRedis(RedisConfig{Address: l.Addr().String(), TimeoutMillis: 100})
	defer hole.Close()
	start := time.Now()
	_, err = hole.SetNX(ctx, "k", time.Minute)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("SetNX to a silent server: %v", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("SetNX to a silent server took %v, timeout 100ms", took)
	}
}

func TestRedisPassword(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	admin, _ := NewRedis(RedisConfig{Address: srv.Addr})
	defer admin.Close()
	if err := admin.c.ConfigSet(ctx, "requirepass", "s3cret-pw").Err(); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TEST_REDIS_PW", "s3cret-pw")
	good, err := NewRedis(RedisConfig{Address: srv.Addr, PasswordEnv: "TEST_REDIS_PW"})
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	if ok, err := good.SetNX(ctx, "k", time.Minute); !ok || err != nil {
		t.Fatal(ok, err)
	}
	file := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(file, []byte("wrong\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad, _ := NewRedis(RedisConfig{Address: srv.Addr, PasswordFile: file})
	defer bad.Close()
	_, err = bad.SetNX(ctx, "k", time.Minute)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("wrong password: %v", err)
	}
	if s := err.Error() + fmt.Sprint(bad); strings.Contains(s, "wrong") || strings.Contains(s, "s3cret") {
		t.Fatalf("an error or String shows the password: %s", s)
	}
}

func TestRedisConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		c     RedisConfig
		field string
	}{
		{RedisConfig{}, "address"},
		{RedisConfig{Address: "nohost"}, "address"},
		{RedisConfig{Address: "h:1", TimeoutMillis: -1}, "timeout_ms"},
		{RedisConfig{Address: "h:1", DB: -1}, "db"},
		{RedisConfig{Address: "h:1", PasswordEnv: "A", PasswordFile: "B"}, "password_file"},
		{RedisConfig{Address: "h:1", PasswordEnv: "KEYCLOAK_JWT_UNSET_VAR"}, "password_env"},
		{RedisConfig{Address: "h:1", PasswordFile: "/nonexistent/pw"}, "password_file"},
		{RedisConfig{Address: "h:1", CAFile: "/x"}, "ca_file"},
	} {
		err := tc.c.Validate()
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%+v: %v, want an error on %s", tc.c, err, tc.field)
		}
	}
	if err := (RedisConfig{Address: "127.0.0.1:6379"}).Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestPoolShares(t *testing.T) {
	p := NewPool()
	defer p.Close()
	a, _ := p.Redis(RedisConfig{Address: "127.0.0.1:1"})
	b, _ := p.Redis(RedisConfig{Address: "127.0.0.1:1"})
	c, _ := p.Redis(RedisConfig{Address: "127.0.0.1:1", DB: 2})
	if a != b || a == c {
		t.Fatal("the pool does not share by configuration")
	}
}

func TestReplay(t *testing.T) {
	srv := redistest.Start(t)
	r, _ := NewRedis(RedisConfig{Address: srv.Addr})
	defer r.Close()
	nodeA, nodeB := Replay{Store: r, Namespace: "dpop:"}, Replay{Store: r, Namespace: "dpop:"}
	if ok, err := nodeA.FirstUse("jkt\x00jti-1", time.Minute); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if ok, err := nodeB.FirstUse("jkt\x00jti-1", time.Minute); ok || err != nil {
		t.Fatalf("a proof used on node A passed on node B: %v %v", ok, err)
	}
	srv.Stop()
	if _, err := nodeA.FirstUse("jkt\x00jti-2", time.Minute); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("redis down: %v (a replay check must fail closed)", err)
	}
}
