package keycloak

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/keycloak-jwt/keycloak-jwt/internal/testidp"
)

// shape flattens a JSON value into path → JSON type ("string", "number",
// "boolean", "array<string>", "object"...).
func shape(prefix string, v any, out map[string]string) {
	switch x := v.(type) {
	case map[string]any:
		if prefix != "" {
			out[prefix] = "object"
		}
		for k, e := range x {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			shape(p, e, out)
		}
	case []any:
		elem := "empty"
		if len(x) > 0 {
			elem = jsonType(x[0])
		}
		out[prefix] = "array<" + elem + ">"
	default:
		out[prefix] = jsonType(v)
	}
}

func jsonType(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "boolean"
	case nil:
		return "null"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

// TestClaimSetMatchesTheImitation compares, for each demo client, the claim
// names and JSON types (header and payload) of a real Keycloak token with
// those of the in-process demo realm's token (internal/testidp built from
// the same realm export): the test fails when the imitation drifts.
func TestClaimSetMatchesTheImitation(t *testing.T) {
	k := keycloak(t)
	realm, err := testidp.DemoRealm()
	if err != nil {
		t.Fatal(err)
	}
	idp, err := testidp.New(realm.Options())
	if err != nil {
		t.Fatal(err)
	}
	defer idp.Close()
	cases := []struct{ client, scope string }{
		{ordersService, ""}, {reportsJob, ""}, {reportsJob, "orders:export"}, {noAudience, ""},
	}
	for _, tc := range cases {
		t.Run(tc.client+"/"+tc.scope, func(t *testing.T) {
			real := k.token(t, tc.client, demoSecret(tc.client), secretBasic, tc.scope)
			fake, err := idp.Token(tc.client, testidp.WithScope(tc.scope))
			if err != nil {
				t.Fatal(err)
			}
			rh, rp := jwtParts(t, real)
			fh, fp := jwtParts(t, fake)
			for _, part := range []struct {
				name       string
				real, fake map[string]any
			}{{"header", rh, fh}, {"payload", rp, fp}} {
				rs, fs := map[string]string{}, map[string]string{}
				shape("", part.real, rs)
				shape("", part.fake, fs)
				var drift []string
				for p, ty := range rs {
					if fs[p] != ty {
						drift = append(drift, fmt.Sprintf("%s: Keycloak %s, testidp %q", p, ty, fs[p]))
					}
				}
				for p, ty := range fs {
					if _, ok := rs[p]; !ok {
						drift = append(drift, fmt.Sprintf("%s: Keycloak has none, testidp %s", p, ty))
					}
				}
				sort.Strings(drift)
				if len(drift) > 0 {
					t.Errorf("%s drift:\n  %s", part.name, strings.Join(drift, "\n  "))
				}
			}
			// The values the gateways check agree too (Keycloak's scope
			// order varies from token to token: compared as a set).
			for _, c := range []string{"typ", "azp", "aud"} {
				if fmt.Sprint(rp[c]) != fmt.Sprint(fp[c]) {
					t.Errorf("%s: Keycloak %v, testidp %v", c, rp[c], fp[c])
				}
			}
			rs, _ := rp["scope"].(string)
			fs, _ := fp["scope"].(string)
			if r, f := strings.Fields(rs), strings.Fields(fs); !sameSet(r, f) {
				t.Errorf("scope: Keycloak %q, testidp %q", rs, fs)
			}
		})
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
