package policy

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/keycloak-jwt/keycloak-jwt/jwks"
)

// The benchmarks compare the engine's cold path (full parse + verify +
// claim checks, verified-token cache off) and warm path (cache hit) with the
// raw standard-library verification of the very same signature, so the
// overhead ratio is read off one run:
//
//	go test -run '^$' -bench . -benchmem ./policy/

func benchEnv(b *testing.B, alg string, cache int) (*Policy, string) {
	e := newEnv(b, alg)
	p := e.compile(b, func(c *Config) {
		c.Algorithms = []string{alg}
		c.TokenCacheSize = &cache
		c.ScopesRequired = []string{"orders:read"}
		c.ClientRolesRequired = []string{"orders-api:reader"}
	})
	tok := e.token(b, "orders-service")
	if d := p.Check(context.Background(), tok); !d.Allow {
		b.Fatalf("benchmark token denied: %s", d.Detail)
	}
	return p, tok
}

func benchCheck(b *testing.B, alg string, cache int) {
	p, tok := benchEnv(b, alg, cache)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if d := p.Check(ctx, tok); !d.Allow {
			b.Fatal(d.Detail)
		}
	}
}

// rawVerify is the floor: hash the signing input and verify the signature
// with the standard library, key already in hand.
func rawVerify(b *testing.B, alg string) {
	p, tok := benchEnv(b, alg, 0)
	src := p.Sources()[0]
	pt, err := split(tok, nil)
	if err != nil {
		b.Fatal(err)
	}
	key, err := src.Key(context.Background(), pt.hdr.Kid, alg)
	if err != nil {
		b.Fatal(err)
	}
	input := tok[:strings.LastIndexByte(tok, '.')]
	sig, _ := base64.RawURLEncoding.DecodeString(tok[strings.LastIndexByte(tok, '.')+1:])
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		switch pub := key.Public.(type) {
		case *rsa.PublicKey:
			d := sha256.Sum256([]byte(input))
			if rsa.VerifyPKCS1v15(pub, crypto.SHA256, d[:], sig) != nil {
				b.Fatal("verify")
			}
		case *ecdsa.PublicKey:
			d := sha256.Sum256([]byte(input))
			r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
			if !ecdsa.Verify(pub, d[:], r, s) {
				b.Fatal("verify")
			}
		case ed25519.PublicKey:
			if !ed25519.Verify(pub, []byte(input), sig) {
				b.Fatal("verify")
			}
		}
	}
}

func BenchmarkRawVerifyRS256(b *testing.B) { rawVerify(b, "RS256") }
func BenchmarkColdRS256(b *testing.B)      { benchCheck(b, "RS256", 0) }
func BenchmarkRawVerifyES256(b *testing.B) { rawVerify(b, "ES256") }
func BenchmarkColdES256(b *testing.B)      { benchCheck(b, "ES256", 0) }
func BenchmarkRawVerifyEdDSA(b *testing.B) { rawVerify(b, "EdDSA") }
func BenchmarkColdEdDSA(b *testing.B)      { benchCheck(b, "EdDSA", 0) }
func BenchmarkWarmRS256(b *testing.B)      { benchCheck(b, "RS256", 10000) }

// BenchmarkWarmParallel measures cache hits from all cores at once (lock contention).
func BenchmarkWarmParallel(b *testing.B) {
	p, tok := benchEnv(b, "RS256", 10000)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if d := p.Check(ctx, tok); !d.Allow {
				b.Fatal(d.Detail)
			}
		}
	})
}

// BenchmarkDecodeClaims isolates claim decoding of a Keycloak payload.
func BenchmarkDecodeClaims(b *testing.B) {
	e := newEnv(b, "RS256")
	pt, err := split(e.token(b, "orders-service"), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeClaims(pt.payload, pt.hdr); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRatio alternates, within each iteration, one raw
// standard-library verification and one cold engine check of the same
// token, so both see the same machine state; it reports each one's mean and
// their ratio. On a shared machine this ratio is steadier than the ratio of
// two separately run benchmarks.
func BenchmarkRatio(b *testing.B) {
	for _, alg := range []string{"RS256", "ES256", "EdDSA"} {
		b.Run(alg, func(b *testing.B) {
			p, tok := benchEnv(b, alg, 0)
			key, err := p.Sources()[0].Key(context.Background(), mustKid(b, tok), alg)
			if err != nil {
				b.Fatal(err)
			}
			dot := strings.LastIndexByte(tok, '.')
			input := tok[:dot]
			sig, _ := base64.RawURLEncoding.DecodeString(tok[dot+1:])
			ctx := context.Background()
			var raw, cold time.Duration
			b.ResetTimer()
			for b.Loop() {
				t0 := time.Now()
				if err := jwks.Verify(alg, key, input, sig); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				if d := p.Check(ctx, tok); !d.Allow {
					b.Fatal(d.Detail)
				}
				raw += t1.Sub(t0)
				cold += time.Since(t1)
			}
			b.ReportMetric(float64(raw.Nanoseconds())/float64(b.N), "raw-ns/op")
			b.ReportMetric(float64(cold.Nanoseconds())/float64(b.N), "cold-ns/op")
			b.ReportMetric(float64(cold)/float64(raw), "cold/raw")
		})
	}
}

func mustKid(b *testing.B, tok string) string {
	pt, err := split(tok, nil)
	if err != nil {
		b.Fatal(err)
	}
	return pt.hdr.Kid
}
