package kongsim

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// hdr is one header line as nginx stores it.
type hdr struct{ name, value string }

// headerList is nginx's ordered list of request (or response) header lines.
type headerList []hdr

// newHeaderList builds the list from a map, lowercasing names (nginx exposes
// lowercase keys through ngx.req.get_headers) in a deterministic order.
func newHeaderList(m map[string][]string) headerList {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool {
		li, lj := strings.ToLower(names[i]), strings.ToLower(names[j])
		if li != lj {
			return li < lj
		}
		return names[i] < names[j]
	})
	var l headerList
	for _, k := range names {
		for _, v := range m[k] {
			l = append(l, hdr{strings.ToLower(k), v})
		}
	}
	return l
}

// varKey is the nginx $http_* normalization: case-insensitive, "-" == "_".
func varKey(name string) string {
	return strings.ReplaceAll(strings.ToLower(name), "_", "-")
}

// get mimics ngx.var["http_"..name]: all matching lines joined with ", " (with
// "; " for Cookie), as nginx >= 1.23 does.
func (l headerList) get(name string) (string, bool) {
	k := varKey(name)
	var vals []string
	for _, e := range l {
		if varKey(e.name) == k {
			vals = append(vals, e.value)
		}
	}
	if len(vals) == 0 {
		return "", false
	}
	sep := ", "
	if k == "cookie" {
		sep = "; "
	}
	return strings.Join(vals, sep), true
}

// first returns the first matching line, like the table lookups Kong does on
// get_headers() results.
func (l headerList) first(name string) (string, bool) {
	k := varKey(name)
	for _, e := range l {
		if varKey(e.name) == k {
			return e.value, true
		}
	}
	return "", false
}

func (l *headerList) clear(name string) {
	out := (*l)[:0]
	for _, e := range *l {
		if !strings.EqualFold(e.name, name) {
			out = append(out, e)
		}
	}
	*l = out
}

func (l *headerList) set(name string, values []string) {
	l.clear(name)
	l.add(name, values...)
}

func (l *headerList) add(name string, values ...string) {
	for _, v := range values {
		*l = append(*l, hdr{strings.ToLower(name), v})
	}
}

// table mimics ngx.req.get_headers(max): lowercase keys, a string for a single
// line, a list for repeated lines; at most max lines are read.
func (l headerList) table(max int) map[string]any {
	out := map[string]any{}
	for i, e := range l {
		if i >= max {
			break
		}
		k := strings.ToLower(e.name)
		switch cur := out[k].(type) {
		case nil:
			out[k] = e.value
		case string:
			out[k] = []any{cur, e.value}
		case []any:
			out[k] = append(cur, e.value)
		}
	}
	return out
}

// queryArg is one decoded query argument: a string, or boolean true for "?foo".
type queryArg struct {
	key   string
	value any
}

// parseArgs mimics ngx.req.get_uri_args(max) / ngx.decode_args.
func parseArgs(raw string, max int) []queryArg {
	var out []queryArg
	if raw == "" {
		return nil
	}
	for _, part := range strings.Split(raw, "&") {
		if max > 0 && len(out) >= max {
			break
		}
		if part == "" {
			continue
		}
		k, v, hasEq := strings.Cut(part, "=")
		k = unescapeArg(k)
		if k == "" {
			continue
		}
		if !hasEq {
			out = append(out, queryArg{k, true})
			continue
		}
		out = append(out, queryArg{k, unescapeArg(v)})
	}
	return out
}

func argsTable(args []queryArg) map[string]any {
	out := map[string]any{}
	for _, a := range args {
		switch cur := out[a.key].(type) {
		case nil:
			out[a.key] = a.value
		case []any:
			out[a.key] = append(cur, a.value)
		default:
			out[a.key] = []any{cur, a.value}
		}
	}
	return out
}

// unescapeArg is ngx.unescape_uri for arguments: "+" is a space, invalid
// escapes are kept verbatim.
func unescapeArg(s string) string {
	s = strings.ReplaceAll(s, "+", " ")
	return percentDecode(s, func(byte) bool { return true })
}

func percentDecode(s string, decode func(byte) bool) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			c := unhex(s[i+1])<<4 | unhex(s[i+2])
			if decode(c) {
				b.WriteByte(c)
			} else {
				b.WriteByte('%')
				b.WriteString(strings.ToUpper(s[i+1 : i+3]))
			}
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isHex(c byte) bool {
	return ('0' <= c && c <= '9') || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// notReserved: kong.tools.uri decodes every escape except the reserved
// characters !*'();:@&=+$,/?%#[] (whose escapes are uppercased instead).
func notReserved(c byte) bool {
	return !strings.ContainsRune("!*'();:@&=+$,/?%#[]", rune(c))
}

// normalizePath follows kong.tools.uri.normalize(path, true) as used by
// kong.request.get_path: percent-decode non-reserved characters, uppercase the
// remaining escapes, resolve dot segments and merge duplicate slashes.
func normalizePath(p string) string {
	p = percentDecode(p, notReserved)
	if p == "" {
		return "/"
	}
	trailing := strings.HasSuffix(p, "/") || strings.HasSuffix(p, "/.") || strings.HasSuffix(p, "/..")
	var segs []string
	for _, s := range strings.Split(p, "/") {
		switch s {
		case "", ".":
		case "..":
			if len(segs) > 0 {
				segs = segs[:len(segs)-1]
			}
		default:
			segs = append(segs, s)
		}
	}
	out := "/" + strings.Join(segs, "/")
	if trailing && out != "/" {
		out += "/"
	}
	return out
}

// luaToString formats a value the way Lua's tostring (used by kong.log.*) would.
func luaToString(v any) string {
	switch x := v.(type) {
	case nil:
		return "nil"
	case string:
		return x
	case bool:
		if x {
			return "true"
		}
		return "false"
	case float64:
		if math.IsInf(x, 1) {
			return "inf"
		}
		if math.IsInf(x, -1) {
			return "-inf"
		}
		if math.IsNaN(x) {
			return "nan"
		}
		return fmt.Sprintf("%.14g", x)
	case []any, map[string]any:
		return "table: 0x00000000"
	default:
		return fmt.Sprint(x)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
