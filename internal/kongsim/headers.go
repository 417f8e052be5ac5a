package kongsim

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// hdr is one header line as nginx stores it.
type hdr struct{ name, value string }

// headerList is nginx's ordered list of request header lines.
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

// has reports whether a line named name (case-insensitive) is present.
func (l headerList) has(name string) bool {
	for _, e := range l {
		if strings.EqualFold(e.name, name) {
			return true
		}
	}
	return false
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

// table mimics ngx.req.get_headers(max): lowercase keys, each with its
// lines' values (a string for one line, a list for repeated lines once
// encoded); at most max lines are read.
func (l headerList) table(max int) map[string][]string {
	out := map[string][]string{}
	for i, e := range l {
		if i >= max {
			break
		}
		out[e.name] = append(out[e.name], e.value)
	}
	return out
}

// percentDecode decodes the escapes of s the way kong.tools.uri does: every
// escape except those of the reserved characters !*'();:@&=+$,/?%#[], which
// are uppercased instead. Invalid escapes are kept verbatim.
func percentDecode(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			c := unhex(s[i+1])<<4 | unhex(s[i+2])
			if strings.IndexByte("!*'();:@&=+$,/?%#[]", c) < 0 {
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

// normalizePath follows kong.tools.uri.normalize(path, true) as used by
// kong.request.get_path: percent-decode non-reserved characters, uppercase the
// remaining escapes, resolve dot segments and merge duplicate slashes.
func normalizePath(p string) string {
	p = percentDecode(p)
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
