// Package strbytes views a string's bytes without copying them, for hot
// paths that hand a string to a function taking []byte that only reads it
// (hashes, signature checks, the base64 decoder): []byte(s) would allocate
// and copy a 1 KB token segment on every cold check.
package strbytes

import "unsafe"

// ReadOnly is s's bytes without a copy. The caller must not write to them.
func ReadOnly(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }
