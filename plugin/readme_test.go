package plugin

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
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
	readme, err := os.ReadFile("../README.md")
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
