package upstream

import "testing"

func TestLookalikes(t *testing.T) {
	l := NewLookalikes([]string{"X-Client-Id", "x-consumer-username", "X-Upstream-Jwt"})
	tests := []struct {
		name string
		want bool
	}{
		{"X_Client_Id", true},
		{"x_client_id", true},
		{"X-Client_Id", true},
		{"X_CLIENT-ID", true},
		{"X_consumer_username", true},
		{"X-Upstream_Jwt", true},
		{"X_Upstream_Jwt", true},
		// Exact spellings are the caller's job (removed by name); owned
		// names never contain '_' (CheckHeaderName refuses it).
		{"X-Client-Id", false},
		{"x-upstream-jwt", false},
		// Other names.
		{"X_Client_Idx", false},
		{"X_Client", false},
		{"_", false},
		{"", false},
	}
	for _, tc := range tests {
		if got := l.Match(tc.name); got != tc.want {
			t.Errorf("Match(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func BenchmarkLookalikesNoUnderscore(b *testing.B) {
	l := NewLookalikes([]string{"X-Client-Id", "X-Client-Scopes", "X-Client-Roles"})
	names := []string{"Accept", "User-Agent", "Authorization", "Content-Type", "X-Request-Id"}
	b.ReportAllocs()
	for b.Loop() {
		for _, n := range names {
			if l.Match(n) {
				b.Fatal(n)
			}
		}
	}
}
