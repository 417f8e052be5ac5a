package policy

import (
	"bytes"
	"encoding/json"
	"sync"
	"unicode/utf8"

	"github.com/keycloak-jwt/keycloak-jwt/internal/strbytes"
)

// Get returns any claim of the payload by name, decoded as encoding/json
// decodes into an any: string, float64, bool, nil, []any, map[string]any.
// A name present twice yields its last value, as json.Unmarshal into a map
// does; a payload that is not RFC 8259 JSON yields no claim at all, and a
// value encoding/json cannot decode (a number out of float64's range) is
// missing.
//
// Nothing decoded is kept: each call reads the claim from the payload (on a
// cached token, from its segment of the token, decoded again), so a cached
// token costs its own bytes, not a decoded copy of its payload (a map of a
// Keycloak payload was 4 KB per cached token). A call costs one scan of the
// payload, plus a base64 decode on a cached token.
func (c *Claims) Get(name string) (any, bool) {
	if c.valid.Load() == 2 {
		return nil, false
	}
	b := c.raw
	if c.enc != "" {
		bp := payloadBufs.Get().(*[]byte)
		defer payloadBufs.Put(bp)
		// The segment is only read: decoding straight from the string's
		// bytes spares a copy of the payload per call.
		var err error
		b, err = b64.AppendDecode((*bp)[:0], strbytes.ReadOnly(c.enc))
		*bp = b
		if err != nil {
			c.valid.Store(2)
			return nil, false
		}
	}
	if len(b) == 0 {
		return nil, false
	}
	if c.valid.Load() == 0 {
		// Not UTF-8: refused, as decodeClaims refuses such a payload
		// (encoding/json would read its bytes as U+FFFD).
		if !json.Valid(b) || !utf8.Valid(b) {
			c.valid.Store(2)
			return nil, false
		}
		c.valid.Store(1)
	}
	raw, ok := member(b, name)
	if !ok {
		return nil, false
	}
	if raw[0] == '"' && bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw) {
		// A string without escapes: its bytes, as encoding/json reads them.
		return string(raw[1 : len(raw)-1]), true
	}
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return nil, false
	}
	return v, true
}

// payloadBufs recycles the buffers Get decodes payloads into.
var payloadBufs = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// member returns the raw JSON text of the last member of object b named
// name. b must be valid JSON (json.Valid) whose first value is an object.
func member(b []byte, name string) ([]byte, bool) {
	var found []byte
	ok := false
	i := skipSpace(b, 0) + 1 // past '{'
	for {
		i = skipSpace(b, i)
		if i >= len(b) || b[i] == '}' {
			return found, ok
		}
		ks := i
		i = skipString(b, i)
		key := b[ks:i]
		i = skipSpace(b, i) + 1 // past ':'
		i = skipSpace(b, i)
		vs := i
		i = skipValue(b, i)
		if keyIs(key, name) {
			found, ok = b[vs:i], true
		}
		i = skipSpace(b, i)
		if i < len(b) && b[i] == ',' {
			i++
		}
	}
}

// keyIs reports whether the quoted JSON string key unescapes to name.
func keyIs(key []byte, name string) bool {
	inner := key[1 : len(key)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return string(inner) == name
	}
	var s string
	return json.Unmarshal(key, &s) == nil && s == name
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index just past the string starting at b[i] ('"').
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return i
}

// skipValue returns the index just past the value starting at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = skipString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	}
	for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' &&
		b[i] != ' ' && b[i] != '\t' && b[i] != '\n' && b[i] != '\r' {
		i++
	}
	return i
}
