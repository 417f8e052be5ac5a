package policy

import (
	"reflect"
	"strings"
)

// Over returns base with every field that r sets replaced by r's value: a
// list is set when it is not nil (so [] requires nothing of that kind), a
// match mode when it is not "". It is how a sidecar route's requirements
// apply over the shared ones; it walks the fields by reflection so that a
// new requirement needs no edit here.
func (r Requirements) Over(base Requirements) Requirements {
	out := base
	src, dst := reflect.ValueOf(r), reflect.ValueOf(&out).Elem()
	for i := 0; i < src.NumField(); i++ {
		if isSet(src.Field(i)) {
			dst.Field(i).Set(src.Field(i))
		}
	}
	return out
}

// Set lists the configuration names (json tags) of the fields r sets, in
// declaration order.
func (r Requirements) Set() []string {
	var names []string
	v := reflect.ValueOf(r)
	for i := 0; i < v.NumField(); i++ {
		if isSet(v.Field(i)) {
			names = append(names, RequirementFields()[i])
		}
	}
	return names
}

// RequirementFields are the configuration names of Requirements' fields, in
// declaration order.
func RequirementFields() []string {
	return requirementFields
}

var requirementFields = func() []string {
	t := reflect.TypeFor[Requirements]()
	names := make([]string, t.NumField())
	for i := range names {
		names[i], _, _ = strings.Cut(t.Field(i).Tag.Get("json"), ",")
	}
	return names
}()

// IsRequirementField reports whether name (a configuration path such as
// "scopes_required[0]" or "issuers[1].jwks_uri") starts with a field of
// Requirements.
func IsRequirementField(name string) bool {
	if i := strings.IndexAny(name, "[."); i >= 0 {
		name = name[:i]
	}
	for _, f := range requirementFields {
		if f == name {
			return true
		}
	}
	return false
}

func isSet(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Slice:
		return !v.IsNil()
	case reflect.String:
		return v.String() != ""
	}
	return !v.IsZero()
}
