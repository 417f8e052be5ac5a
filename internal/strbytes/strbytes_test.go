package strbytes

import "testing"

func TestReadOnly(t *testing.T) {
	for _, s := range []string{"", "a", "header.payload.signature"} {
		if got := string(ReadOnly(s)); got != s {
			t.Errorf("ReadOnly(%q) = %q", s, got)
		}
		if n := testing.AllocsPerRun(100, func() { _ = ReadOnly(s) }); n != 0 {
			t.Errorf("ReadOnly(%q): %v allocations", s, n)
		}
	}
}
