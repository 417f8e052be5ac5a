package store

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keycloak-jwt/keycloak-jwt/internal/limitedfile"
)

// Defaults of RedisConfig.
const (
	DefaultRedisTimeoutMillis = 250
	DefaultRedisKeyPrefix     = "keycloak-jwt:"
	maxRedisTimeoutMillis     = 10_000
	maxSecretFileBytes        = 64 << 10
	maxCAFileBytes            = 4 << 20
)

// RedisConfig is the operator's form of a Redis connection (Kong's
// rate-limiting plugin names the same settings redis_host, redis_port,
// redis_username, redis_password, redis_database, redis_ssl).
type RedisConfig struct {
	// Address is host:port of the Redis server. Required.
	Address string `json:"address"`
	// Username for Redis ACLs (Redis 6+); empty for the default user.
	Username string `json:"username"`
	// PasswordEnv or PasswordFile (at most one) holds the password.
	PasswordEnv  string `json:"password_env"`
	PasswordFile string `json:"password_file"`
	// DB is the database number (default 0).
	DB int `json:"db"`
	// TLS connects with TLS; CAFile, when set, is the PEM bundle of the
	// CAs trusted for the server's certificate (default: the system's).
	TLS    bool   `json:"tls"`
	CAFile string `json:"ca_file"`
	// TimeoutMillis bounds every Redis call: dial, write and read, and the
	// wait for a free connection (default 250).
	TimeoutMillis int `json:"timeout_ms"`
	// KeyPrefix starts every key (default "keycloak-jwt:"), so that one
	// Redis may serve other users.
	KeyPrefix string `json:"key_prefix"`
}

// FieldError names the RedisConfig field (its json name) that is wrong.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

func fieldErr(field, format string, a ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, a...)}
}

// Validate reports every error of c, each a *FieldError. It reads the
// password and CA files (to report them missing now, not on the first
// request) but never returns their contents.
func (c RedisConfig) Validate() error {
	_, err := c.options()
	return err
}

// Key is the configuration's identity: equal keys share one client.
func (c RedisConfig) key() string {
	return fmt.Sprintf("%s|%s|%s|%s|%d|%t|%s|%d|%s", c.Address, c.Username, c.PasswordEnv, c.PasswordFile,
		c.DB, c.TLS, c.CAFile, c.TimeoutMillis, c.KeyPrefix)
}

func (c RedisConfig) options() (*redis.Options, error) {
	var errs []error
	if c.Address == "" {
		errs = append(errs, fieldErr("address", "is required (host:port of the Redis server)"))
	} else if host, port, err := net.SplitHostPort(c.Address); err != nil || host == "" || port == "" {
		errs = append(errs, fieldErr("address", "%q is not host:port", c.Address))
	}
	if c.DB < 0 || c.DB > 1<<16 {
		errs = append(errs, fieldErr("db", "must be between 0 and 65536, got %d", c.DB))
	}
	timeout := time.Duration(DefaultRedisTimeoutMillis) * time.Millisecond
	switch {
	case c.TimeoutMillis < 0 || c.TimeoutMillis > maxRedisTimeoutMillis:
		errs = append(errs, fieldErr("timeout_ms", "must be between 0 (default %d) and %d, got %d",
			DefaultRedisTimeoutMillis, maxRedisTimeoutMillis, c.TimeoutMillis))
	case c.TimeoutMillis > 0:
		timeout = time.Duration(c.TimeoutMillis) * time.Millisecond
	}
	var password string
	switch {
	case c.PasswordEnv != "" && c.PasswordFile != "":
		errs = append(errs, fieldErr("password_file", "set at most one of password_env and password_file"))
	case c.PasswordEnv != "":
		v, ok := os.LookupEnv(c.PasswordEnv)
		if !ok || v == "" {
			errs = append(errs, fieldErr("password_env", "environment variable %q is not set or empty", c.PasswordEnv))
		}
		password = v
	case c.PasswordFile != "":
		b, err := limitedfile.Read(c.PasswordFile, maxSecretFileBytes)
		if err != nil {
			errs = append(errs, fieldErr("password_file", "cannot read %q: %v", c.PasswordFile, unwrapPath(err)))
		}
		password = strings.TrimRight(string(b), "\r\n")
	}
	var tlsConfig *tls.Config
	if c.CAFile != "" && !c.TLS {
		errs = append(errs, fieldErr("ca_file", "is only used with tls: true"))
	}
	if c.TLS {
		tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		if host, _, err := net.SplitHostPort(c.Address); err == nil {
			tlsConfig.ServerName = host
		}
		if c.CAFile != "" {
			pem, err := limitedfile.Read(c.CAFile, maxCAFileBytes)
			pool := x509.NewCertPool()
			switch {
			case err != nil:
				errs = append(errs, fieldErr("ca_file", "cannot read %q: %v", c.CAFile, unwrapPath(err)))
			case !pool.AppendCertsFromPEM(pem):
				errs = append(errs, fieldErr("ca_file", "%q holds no PEM certificate", c.CAFile))
			}
			tlsConfig.RootCAs = pool
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &redis.Options{
		Addr: c.Address, Username: c.Username, Password: password, DB: c.DB, TLSConfig: tlsConfig,
		DialTimeout: timeout, ReadTimeout: timeout, WriteTimeout: timeout, PoolTimeout: timeout,
		ContextTimeoutEnabled: true,
		// One attempt: a caller on the request path would rather fall back
		// (or refuse) than wait for retries.
		MaxRetries: -1,
		// No CLIENT SETINFO on connect: older servers and proxies refuse it.
		DisableIdentity: true,
	}, nil
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Redis is a Store in a Redis server, shared by every node that uses it.
// Every call is bounded by the configured timeout (and the caller's
// context); every failure wraps ErrUnavailable.
type Redis struct {
	c       *redis.Client
	prefix  string
	timeout time.Duration
	addr    string
}

// NewRedis validates c and returns its client. It does not connect: the
// first call does.
func NewRedis(c RedisConfig) (*Redis, error) {
	o, err := c.options()
	if err != nil {
		return nil, err
	}
	prefix := c.KeyPrefix
	if prefix == "" {
		prefix = DefaultRedisKeyPrefix
	}
	return &Redis{c: redis.NewClient(o), prefix: prefix, timeout: o.ReadTimeout, addr: c.Address}, nil
}

// Close closes the client's connections.
func (r *Redis) Close() error { return r.c.Close() }

// String names the server, never the password.
func (r *Redis) String() string { return "redis " + r.addr }

func (r *Redis) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	// The caller's deadline may be longer than ours (or absent).
	return context.WithTimeout(ctx, r.timeout)
}

func (r *Redis) fail(op string, err error) error {
	return fmt.Errorf("%w: %s %s: %v", ErrUnavailable, op, r.addr, err)
}

// SetNX implements Store: SET key "" NX PX ttl.
func (r *Redis) SetNX(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	if ttl < time.Millisecond {
		ttl = time.Millisecond
	}
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	err := r.c.SetArgs(ctx, r.prefix+key, "", redis.SetArgs{Mode: "NX", TTL: ttl}).Err()
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, redis.Nil):
		return false, nil
	}
	return false, r.fail("SET NX", err)
}

// Get implements Store.
func (r *Redis) Get(ctx context.Context, key string) ([]byte, bool, error) {
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	b, err := r.c.Get(ctx, r.prefix+key).Bytes()
	switch {
	case err == nil:
		return b, true, nil
	case errors.Is(err, redis.Nil):
		return nil, false, nil
	}
	return nil, false, r.fail("GET", err)
}

// Set implements Store: SET key value PX ttl.
func (r *Redis) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if ttl < time.Millisecond {
		return nil
	}
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	if err := r.c.Set(ctx, r.prefix+key, value, ttl).Err(); err != nil {
		return r.fail("SET", err)
	}
	return nil
}

// Ping checks that the server answers (readiness probes).
func (r *Redis) Ping(ctx context.Context) error {
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	if err := r.c.Ping(ctx).Err(); err != nil {
		return r.fail("PING", err)
	}
	return nil
}

// Pool holds one Redis client per distinct configuration, for a process:
// the policies of many routes (or Kong plugin instances) that name one
// server share its connections.
type Pool struct {
	mu sync.Mutex
	m  map[string]*Redis
}

// NewPool returns an empty pool.
func NewPool() *Pool { return &Pool{m: map[string]*Redis{}} }

var defaultPool = NewPool()

// DefaultPool is the process-wide pool, used where no other is given.
func DefaultPool() *Pool { return defaultPool }

// Redis returns the pool's client for c, creating it on first use.
func (p *Pool) Redis(c RedisConfig) (*Redis, error) {
	k := c.key()
	p.mu.Lock()
	defer p.mu.Unlock()
	if r := p.m[k]; r != nil {
		return r, nil
	}
	r, err := NewRedis(c)
	if err != nil {
		return nil, err
	}
	p.m[k] = r
	return r, nil
}

// Close closes every client of the pool.
func (p *Pool) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	for k, r := range p.m {
		errs = append(errs, r.Close())
		delete(p.m, k)
	}
	return errors.Join(errs...)
}
