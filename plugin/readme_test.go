package plugin

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/keycloak-jwt/keycloak-jwt/policy"
)

// configPaths lists every configuration field of t as Kong sees it, e.g.
// "issuers[].jwks_uri", "upstream_jwt.ttl_seconds".
func configPaths(t reflect.Type, prefix string) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name := prefix + f.Tag.Get("json")
		out = append(out, name)
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		switch {
		case ft.Kind() == reflect.Struct:
			out = append(out, configPaths(ft, name+".")...)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			out = append(out, configPaths(ft.Elem(), name+"[].")...)
		}
	}
	return out
}

// TestREADMEConfigReference keeps the README's configuration reference in
// sync with Config, both ways.
func TestREADMEConfigReference(t *testing.T) {
	readme, err := os.ReadFile("../docs/kong.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(readme)
	start := strings.Index(text, "## Configuration reference (Kong plugin)")
	end := strings.Index(text, "## Error responses")
	if start < 0 || end < start {
		t.Fatal("README has no configuration reference section")
	}
	section := text[start:end]
	rows := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([^`]+)` \\|").FindAllStringSubmatch(section, -1) {
		rows[m[1]] = true
	}
	fields := map[string]bool{}
	for _, p := range configPaths(reflect.TypeOf(Config{}), "") {
		fields[p] = true
		if !rows[p] {
			t.Errorf("README configuration reference lacks `%s`", p)
		}
	}
	for r := range rows {
		if !fields[r] {
			t.Errorf("README documents `%s`, which Config does not have", r)
		}
	}
}

// TestConfigCoversPolicy: every engine field exists in the plugin Config
// under the same name and reaches policy.Config through PolicyConfig.
func TestConfigCoversPolicy(t *testing.T) {
	var c Config
	cv := reflect.ValueOf(&c).Elem()
	byTag := map[string]reflect.Value{}
	for i := 0; i < cv.NumField(); i++ {
		if f := cv.Type().Field(i); f.IsExported() {
			byTag[f.Tag.Get("json")] = cv.Field(i)
		}
	}
	pt := reflect.TypeOf(policy.Config{})
	var leaves []reflect.StructField // the engine's fields, Requirements flattened
	for _, f := range reflect.VisibleFields(pt) {
		if !f.Anonymous {
			leaves = append(leaves, f)
		}
	}
	if len(leaves) < 15 {
		t.Fatalf("only %d engine fields found", len(leaves))
	}
	for _, lf := range leaves {
		tag := lf.Tag.Get("json")
		f, ok := byTag[tag]
		if !ok {
			t.Errorf("plugin Config lacks the engine field %q", tag)
			continue
		}
		setNonZero(f)
	}
	got := reflect.ValueOf(c.PolicyConfig())
	for _, lf := range leaves {
		if got.FieldByIndex(lf.Index).IsZero() {
			t.Errorf("PolicyConfig does not carry %q", lf.Tag.Get("json"))
		}
	}
}

func setNonZero(v reflect.Value) {
	switch v.Kind() {
	case reflect.String:
		v.SetString("x")
	case reflect.Int:
		v.SetInt(1)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
	case reflect.Struct:
		setNonZero(v.Field(0))
	}
}

// TestREADMEKongExample lints the kong.yml example of the README with the
// plugin's own checks, so the example people copy stays valid.
func TestREADMEKongExample(t *testing.T) {
	readme, err := os.ReadFile("../docs/kong.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(readme)
	start := strings.Index(text, "```yaml\n_format_version:")
	if start < 0 {
		t.Fatal("README has no kong.yml example")
	}
	block := text[start+len("```yaml\n"):]
	block = block[:strings.Index(block, "```")]
	n, findings, err := Lint([]byte(block), LintOptions{})
	if err != nil || n == 0 || len(findings) > 0 {
		t.Fatalf("README kong.yml example: %d entries, %v, %v", n, findings, err)
	}
}
