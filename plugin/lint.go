package plugin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	yamlv3 "go.yaml.in/yaml/v3"
	"sigs.k8s.io/yaml"

	"github.com/keycloak-jwt/keycloak-jwt/authz"
	"github.com/keycloak-jwt/keycloak-jwt/jwks"
	"github.com/keycloak-jwt/keycloak-jwt/policy"
)

// Name is the plugin name Kong knows it by.
const Name = "keycloak-jwt"

// Finding is one problem of one keycloak-jwt plugin entry in a declarative file.
type Finding struct {
	// Where locates the plugin entry, e.g. `services[0] "orders" > routes[1] "orders-write" > plugins[0]`.
	Where string
	// File and Line locate it in the input (Line 0: unknown). For a field
	// that came from a decK _plugin_configs entry, they point at that entry,
	// which may be in another file.
	File string
	Line int
	// Err is what is wrong; a *policy.ConfigError names the field.
	Err error
	// Warning findings do not fail the check.
	Warning bool
}

func (f Finding) String() string {
	kind := "error"
	if f.Warning {
		kind = "warning"
	}
	return fmt.Sprintf("%s: %s: %v", f.Where, kind, f.Err)
}

// Location is file:line (either may be missing), or "".
func (f Finding) Location() string {
	switch {
	case f.File != "" && f.Line > 0:
		return fmt.Sprintf("%s:%d", f.File, f.Line)
	case f.Line > 0:
		return fmt.Sprintf("line %d", f.Line)
	}
	return f.File
}

// LintOptions tune Lint.
type LintOptions struct {
	// IgnoreMissingKeys downgrades an unreadable upstream_jwt private key
	// (file or environment variable absent on the machine running the check)
	// to a warning: the key usually exists only inside the gateway.
	IgnoreMissingKeys bool
	// LookupEnv resolves decK's ${{ env "DECK_..." }} references (default
	// os.LookupEnv).
	LookupEnv func(string) (string, bool)
}

// File is one declarative file: a kong.yml, or one of the files decK
// reads together as one state (deck gateway sync a.yaml b.yaml).
type File struct {
	Name string
	Data []byte
}

// Lint validates every keycloak-jwt plugin entry of a Kong declarative
// configuration (YAML or JSON) with the plugin's own Compile, since Kong
// cannot validate a Go plugin's config beyond its types. It returns how many
// entries it checked and what it found.
func Lint(doc []byte, opts LintOptions) (int, []Finding, error) {
	return LintFiles([]File{{Data: doc}}, opts)
}

// LintFiles is Lint for files that decK reads together as one state: a
// plugin may take its config from a _plugin_configs entry of any of them.
// It reads them as decK writes them (_format_version, _info with
// select_tags, _workspace, _konnect, _plugin_configs and _config, ids,
// plugins on services, routes, consumers, consumer groups and at the top
// level, naming their service or route by name or id, every schema field
// present, null when unset) and renders decK's ${{ env "DECK_..." }}
// references first. An error is returned only for a file that does not
// parse; every other problem is a Finding.
func LintFiles(files []File, opts LintOptions) (int, []Finding, error) {
	if opts.LookupEnv == nil {
		opts.LookupEnv = os.LookupEnv
	}
	var findings []Finding
	st := &deckState{pluginConfigs: map[string]pluginConfigSource{}, names: map[string]string{}}
	var docs []*parsedDoc
	var manifestEntries []pluginEntry
	for _, f := range files {
		if es, ok := kicEntries(f); ok {
			manifestEntries = append(manifestEntries, es...)
			continue
		}
		data, fs := renderEnv(f, opts.LookupEnv)
		findings = append(findings, fs...)
		d, err := parseDoc(f.Name, data)
		if err != nil {
			if f.Name != "" {
				return 0, nil, fmt.Errorf("%s: %w", f.Name, err)
			}
			return 0, nil, err
		}
		findings = append(findings, checkHeader(d)...)
		findings = append(findings, st.add(d)...)
		docs = append(docs, d)
	}
	entries := manifestEntries
	for _, d := range docs {
		entries = append(entries, st.collect(d)...)
	}
	cache := jwks.NewCache(jwks.Options{}) // never fetched: Compile registers sources only
	for _, e := range entries {
		at := func(err error, warn bool) Finding {
			file, line := e.locate(err)
			return Finding{Where: e.where, File: file, Line: line, Err: err, Warning: warn}
		}
		if e.consumer {
			findings = append(findings, at(errConsumerScoped, false))
			continue
		}
		if e.err != nil {
			findings = append(findings, at(e.err, false))
			continue
		}
		cfg, err := decodeStrict(e.config)
		if err != nil {
			findings = append(findings, at(err, false))
			continue
		}
		if _, err := Compile(cfg, policy.Deps{Keys: cache}); err != nil {
			// One finding per problem: Compile reports every one at once.
			for _, err := range authz.Errors(err) {
				var ce *policy.ConfigError
				warn := opts.IgnoreMissingKeys && errors.As(err, &ce) && strings.HasPrefix(ce.Field, "upstream_jwt.private_key")
				findings = append(findings, at(err, warn))
			}
		}
		// Kong answers 500 to every unauthenticated request when the
		// anonymous consumer does not exist. Where the file defines no
		// consumers at all they may live elsewhere (a DB-backed Kong): a
		// warning then.
		if anon := strings.TrimSpace(cfg.Anonymous); anon != "" && !st.consumers[anon] {
			findings = append(findings, at(&policy.ConfigError{Field: "anonymous",
				Msg: fmt.Sprintf("consumer %q (id or username) is not defined in consumers: every unauthenticated request would get 500", anon)},
				!st.hasConsumers))
		}
	}
	return len(entries), findings, nil
}

// errConsumerScoped is the finding for an entry on a consumer or consumer
// group. Kong's own authentication plugins refuse that in their schema
// (no_consumer); a Go plugin's generated schema cannot say it.
var errConsumerScoped = errors.New("keycloak-jwt authenticates requests, so it cannot be scoped to a consumer " +
	"or consumer group: Kong runs such plugins only once a consumer is known; put it on the service or route")

// parsedDoc is one file decoded twice: as data, and as YAML nodes for the
// line of each element.
type parsedDoc struct {
	name  string
	root  map[string]any
	lines map[string]int // "services/0/routes/1/plugins/0" -> line
}

func parseDoc(name string, data []byte) (*parsedDoc, error) {
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("not YAML or JSON: %w", err)
	}
	var root map[string]any
	if err := json.Unmarshal(js, &root); err != nil {
		return nil, fmt.Errorf("the declarative configuration must be a mapping: %w", err)
	}
	if root == nil {
		return nil, errors.New("empty declarative configuration")
	}
	d := &parsedDoc{name: name, root: root, lines: map[string]int{}}
	var n yamlv3.Node
	if yamlv3.Unmarshal(data, &n) == nil && len(n.Content) == 1 {
		indexLines(n.Content[0], "", d.lines)
	}
	return d, nil
}

func indexLines(n *yamlv3.Node, path string, out map[string]int) {
	switch n.Kind {
	case yamlv3.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := n.Content[i].Value
			if path != "" {
				p = path + "/" + p
			}
			out[p] = n.Content[i].Line
			indexLines(n.Content[i+1], p, out)
		}
	case yamlv3.SequenceNode:
		for i, c := range n.Content {
			p := path + "/" + strconv.Itoa(i)
			out[p] = c.Line
			indexLines(c, p, out)
		}
	case yamlv3.AliasNode:
		if n.Alias != nil {
			indexLines(n.Alias, path, out)
		}
	}
}

// line is the line of path, or of its nearest ancestor that has one.
func (d *parsedDoc) line(path string) int {
	for path != "" {
		if l, ok := d.lines[path]; ok {
			return l
		}
		i := strings.LastIndexByte(path, '/')
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 0
}

// envRef is decK's reference to an environment variable, with an optional
// conversion (the text is substituted; YAML types it).
var envRef = regexp.MustCompile(`\$\{\{\s*env\s+"([^"]*)"\s*(\|\s*(toBool|toInt|toFloat)\s*)?\}\}`)

// renderEnv substitutes decK's ${{ env "DECK_NAME" }} references, as decK
// does before it parses a file: names must start with DECK_ and be set.
func renderEnv(f File, lookup func(string) (string, bool)) ([]byte, []Finding) {
	if !bytes.Contains(f.Data, []byte("${{")) {
		return f.Data, nil
	}
	var findings []Finding
	lineAt := func(off int) int { return 1 + bytes.Count(f.Data[:off], []byte("\n")) }
	var out bytes.Buffer
	last := 0
	for _, m := range envRef.FindAllSubmatchIndex(f.Data, -1) {
		out.Write(f.Data[last:m[0]])
		last = m[1]
		name := string(f.Data[m[2]:m[3]])
		value, ok := lookup(name)
		switch {
		case !strings.HasPrefix(name, "DECK_"):
			findings = append(findings, Finding{Where: "${{ env }}", File: f.Name, Line: lineAt(m[0]),
				Err: fmt.Errorf("decK reads only environment variables prefixed DECK_, not %q", name)})
		case !ok:
			findings = append(findings, Finding{Where: "${{ env }}", File: f.Name, Line: lineAt(m[0]),
				Err: fmt.Errorf("environment variable %s is referenced but not set (decK refuses the file)", name)})
		}
		out.WriteString(value)
	}
	out.Write(f.Data[last:])
	rest := out.Bytes()
	if i := bytes.Index(rest, []byte("${{")); i >= 0 {
		findings = append(findings, Finding{Where: "${{ }}", File: f.Name,
			Err: errors.New(`a decK template other than ${{ env "DECK_..." }} (optionally | toBool, toInt, toFloat) is not checked`), Warning: true})
	}
	return rest, findings
}

// formatVersions are the _format_version values Kong 3 and decK accept.
var formatVersions = map[string]bool{"1.1": true, "2.1": true, "3.0": true}

// checkHeader checks the file-level keys decK writes.
func checkHeader(d *parsedDoc) []Finding {
	var out []Finding
	bad := func(key string, err error) {
		out = append(out, Finding{Where: key, File: d.name, Line: d.line(key), Err: err})
	}
	if v, ok := d.root["_format_version"]; ok {
		switch s, _ := v.(string); {
		case v == nil:
			bad("_format_version", errors.New(`is empty: use "3.0"`))
		case !formatVersions[s]:
			bad("_format_version", fmt.Errorf("%v is not a format Kong 3 reads: use \"3.0\"", v))
		}
	}
	if v, ok := d.root["_info"]; ok {
		info, ok := v.(map[string]any)
		if !ok {
			bad("_info", errors.New("must be a mapping"))
		} else if tags, ok := info["select_tags"]; ok {
			list, ok := tags.([]any)
			for _, t := range list {
				if s, isStr := t.(string); !isStr || s == "" {
					ok = false
				}
			}
			if !ok {
				bad("_info/select_tags", errors.New("must be a list of non-empty tags"))
			}
		}
	}
	if v, ok := d.root["_plugin_configs"]; ok {
		if _, ok := v.(map[string]any); !ok {
			bad("_plugin_configs", errors.New("must be a mapping of names to plugin configs"))
		}
	}
	return out
}

// deckState is what decK resolves across all files: the _plugin_configs
// entries, and the names of the services and routes their ids stand for.
type deckState struct {
	pluginConfigs map[string]pluginConfigSource
	names         map[string]string // service or route id -> name
	all           []*parsedDoc
	// consumers are the ids and usernames of the consumers the state
	// defines; hasConsumers whether it has a consumers section at all.
	consumers    map[string]bool
	hasConsumers bool
}

type pluginConfigSource struct {
	doc    *parsedDoc
	config map[string]any
}

// add records the _plugin_configs and entity ids of d.
func (st *deckState) add(d *parsedDoc) []Finding {
	var out []Finding
	pcs, _ := d.root["_plugin_configs"].(map[string]any)
	for _, name := range sortedKeys(pcs) {
		cfg, ok := pcs[name].(map[string]any)
		path := "_plugin_configs/" + name
		if !ok {
			out = append(out, Finding{Where: path, File: d.name, Line: d.line(path), Err: errors.New("must be a mapping (a plugin config)")})
			continue
		}
		if prev, dup := st.pluginConfigs[name]; dup {
			out = append(out, Finding{Where: path, File: d.name, Line: d.line(path), Warning: true,
				Err: fmt.Errorf("also defined in %s: the entries of one name must be one", orStdin(prev.doc.name))})
		}
		st.pluginConfigs[name] = pluginConfigSource{doc: d, config: cfg}
	}
	st.all = append(st.all, d)
	if list, ok := d.root["consumers"].([]any); ok {
		st.hasConsumers = true
		if st.consumers == nil {
			st.consumers = map[string]bool{}
		}
		for _, item := range list {
			if m, ok := item.(map[string]any); ok {
				for _, k := range []string{"id", "username"} {
					if v, ok := m[k].(string); ok && v != "" {
						st.consumers[v] = true
					}
				}
			}
		}
	}
	walk(d.root, func(_ string, m map[string]any) {
		if id, ok := m["id"].(string); ok {
			if name, ok := m["name"].(string); ok {
				st.names[id] = name
			}
		}
	})
	return out
}

func orStdin(name string) string {
	if name == "" {
		return "the same input"
	}
	return name
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

type pluginEntry struct {
	where    string
	doc      *parsedDoc
	path     string          // the entry's path in doc, for its line
	config   json.RawMessage // with its _plugin_configs entry merged in
	own      map[string]any  // the entry's own config
	source   string          // the _plugin_configs entry it refers to
	srcDoc   *parsedDoc      // the file that defines it
	err      error           // the entry cannot be assembled
	consumer bool            // on a consumer or consumer group
	service  string          // the service it is on, or the route's service ("" when global)
	route    string          // the route it is on ("" on a service or global)
}

// locate is the file and line of an entry's problem: the line of the
// field a *policy.ConfigError names, in the entry's own config or else
// in the _plugin_configs entry it came from; otherwise the entry's line.
func (e pluginEntry) locate(err error) (string, int) {
	var ce *policy.ConfigError
	field := ""
	if errors.As(err, &ce) {
		field = fieldPath(ce.Field)
	} else if m := unknownField.FindStringSubmatch(err.Error()); m != nil {
		field = m[1]
	}
	if field != "" {
		if l, ok := e.doc.lines[e.path+"/config/"+field]; ok {
			return e.doc.name, l
		}
		if e.srcDoc != nil {
			if l, ok := e.srcDoc.lines["_plugin_configs/"+e.source+"/"+field]; ok {
				return e.srcDoc.name, l
			}
		}
	}
	return e.doc.name, e.doc.line(e.path)
}

var unknownField = regexp.MustCompile(`unknown field "([^"]+)"`)

// fieldPath turns a ConfigError field (upstream_jwt.claims, issuers[0].jwks_uri)
// into a line-index path (upstream_jwt/claims, issuers/0/jwks_uri).
func fieldPath(f string) string {
	f = strings.NewReplacer("[", "/", "]", "", ".", "/").Replace(f)
	if i := strings.IndexByte(f, ' '); i >= 0 {
		f = f[:i]
	}
	return f
}

// collect walks the entity collections of one file that may carry plugins.
func (st *deckState) collect(d *parsedDoc) []pluginEntry {
	var out []pluginEntry
	st.collectIn(d, d.root, "", "", false, "", "", &out)
	return out
}

func (st *deckState) collectIn(d *parsedDoc, node map[string]any, where, path string, consumer bool, service, route string, out *[]pluginEntry) {
	if plugins, ok := node["plugins"].([]any); ok {
		for i, p := range plugins {
			pm, ok := p.(map[string]any)
			if !ok || pm["name"] != Name {
				continue
			}
			if enabled, ok := pm["enabled"].(bool); ok && !enabled {
				continue
			}
			e := pluginEntry{where: join(where, fmt.Sprintf("plugins[%d]", i)), doc: d, path: join2(path, "plugins/"+strconv.Itoa(i)),
				service: service, route: route}
			// A top-level entry may name its consumer or group, and its
			// service or route (by name or id, as a string or {id|name}).
			e.consumer = consumer || pm["consumer"] != nil || pm["consumer_group"] != nil
			if ref := st.ref(pm["service"]); ref != "" {
				e.service = ref
			}
			if ref := st.ref(pm["route"]); ref != "" {
				e.route = ref
				if svc := st.serviceOfRoute(ref); svc != "" && pm["service"] == nil {
					e.service = svc
				}
			}
			e.own, _ = pm["config"].(map[string]any)
			merged := e.own
			if ref, ok := pm["_config"]; ok && ref != nil {
				name, _ := ref.(string)
				e.source = name
				src, found := st.pluginConfigs[name]
				if !found {
					e.err = fmt.Errorf("_config: no _plugin_configs entry named %q (decK refuses the file)", name)
				} else {
					e.where += fmt.Sprintf(" (_config %q)", name)
					e.srcDoc = src.doc
					merged = mergeConfig(e.own, src.config)
				}
			}
			e.config, _ = json.Marshal(merged)
			*out = append(*out, e)
		}
	}
	for _, coll := range []string{"services", "routes", "consumers", "consumer_groups"} {
		list, ok := node[coll].([]any)
		if !ok {
			continue
		}
		for i, item := range list {
			m, ok := item.(map[string]any)
			if !ok {
				continue
			}
			label := fmt.Sprintf("%s[%d]", coll, i)
			if name, ok := m["name"].(string); ok {
				label += fmt.Sprintf(" %q", name)
			} else if name, ok := m["username"].(string); ok {
				label += fmt.Sprintf(" %q", name)
			}
			name, _ := m["name"].(string)
			svc, rt := service, route
			switch coll {
			case "services":
				svc = name
			case "routes":
				rt = name
				if ref := st.ref(m["service"]); ref != "" && svc == "" {
					svc = ref
				}
			}
			st.collectIn(d, m, join(where, label), join2(path, coll+"/"+strconv.Itoa(i)),
				consumer || coll == "consumers" || coll == "consumer_groups", svc, rt, out)
		}
	}
}

// ref is the name an entity reference stands for: a string (name or id),
// or a mapping with id or name.
func (st *deckState) ref(v any) string {
	var s string
	switch r := v.(type) {
	case string:
		s = r
	case map[string]any:
		if name, ok := r["name"].(string); ok {
			return name
		}
		s, _ = r["id"].(string)
	}
	if name, ok := st.names[s]; ok {
		return name
	}
	return s
}

// serviceOfRoute is the service of the route called route in any file.
func (st *deckState) serviceOfRoute(route string) string {
	for _, d := range st.all {
		if svc := st.serviceOf(d.root, route); svc != "" {
			return svc
		}
	}
	return ""
}

// mergeConfig is decK's merge of a _plugin_configs entry into a plugin's
// own config: the plugin's keys win at every level (also when null); a
// mapping in both is merged recursively. Neither input is changed.
func mergeConfig(own, source map[string]any) map[string]any {
	out := make(map[string]any, len(own)+len(source))
	for k, v := range source {
		out[k] = v
	}
	for k, v := range own {
		dst, dstMap := v.(map[string]any)
		src, srcMap := source[k].(map[string]any)
		if dstMap && srcMap {
			out[k] = mergeConfig(dst, src)
			continue
		}
		out[k] = v
	}
	return out
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + " > " + b
}

func join2(a, b string) string {
	if a == "" {
		return b
	}
	return a + "/" + b
}

// ParseConfig decodes one plugin config strictly (unknown fields are
// errors, as in Kong's schema) and validates it with Compile, without
// fetching any key. Errors name the field.
func ParseConfig(raw []byte) (*Config, error) {
	cfg, err := decodeStrict(raw)
	if err != nil {
		return nil, err
	}
	if _, err := Compile(cfg, policy.Deps{Keys: jwks.NewCache(jwks.Options{})}); err != nil {
		return nil, err
	}
	return cfg, nil
}

// decodeStrict decodes a plugin config as Kong would accept it: unknown
// fields are errors (Kong's schema refuses them too).
func decodeStrict(raw json.RawMessage) (*Config, error) {
	cfg := &Config{}
	if len(raw) == 0 || string(raw) == "null" {
		return cfg, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(cfg); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return cfg, nil
}

// ConfigFor returns the keycloak-jwt configuration Kong runs for the route
// or service called name in a declarative configuration: the plugin on
// that route, else on its service, else a global one (Kong's precedence),
// and where it stands in the file. A decK _config reference is resolved
// against the file's _plugin_configs.
func ConfigFor(doc []byte, name string) (*Config, string, error) {
	d, err := parseDoc("", doc)
	if err != nil {
		return nil, "", err
	}
	st := &deckState{pluginConfigs: map[string]pluginConfigSource{}, names: map[string]string{}}
	st.add(d)
	entries := st.collect(d)
	root := d.root
	// The service of the route called name, if name is a route.
	service := name
	if svc := st.serviceOfRoute(name); svc != "" {
		service = svc
	}
	var pick *pluginEntry
	for _, want := range []func(e pluginEntry) bool{
		func(e pluginEntry) bool { return e.route == name },
		func(e pluginEntry) bool { return e.route == "" && e.service == service },
		func(e pluginEntry) bool {
			return e.route == "" && e.service == "" && (routeNamed(root, name) || serviceNamed(root, name))
		},
	} {
		for i := range entries {
			if !entries[i].consumer && want(entries[i]) {
				pick = &entries[i]
				break
			}
		}
		if pick != nil {
			break
		}
	}
	if pick == nil {
		return nil, "", fmt.Errorf("no enabled %s plugin applies to a route or service named %q", Name, name)
	}
	if pick.err != nil {
		return nil, pick.where, pick.err
	}
	cfg, err := decodeStrict(pick.config)
	if err != nil {
		return nil, pick.where, err
	}
	return cfg, pick.where, nil
}

// serviceOf is the name of the service of the route called route ("" when
// there is no such route, or it has no service).
func (st *deckState) serviceOf(root map[string]any, route string) string {
	services, _ := root["services"].([]any)
	for _, item := range services {
		svc, _ := item.(map[string]any)
		routes, _ := svc["routes"].([]any)
		for _, r := range routes {
			if m, ok := r.(map[string]any); ok && (m["name"] == route || m["id"] == route) {
				name, _ := svc["name"].(string)
				return name
			}
		}
	}
	routes, _ := root["routes"].([]any)
	for _, r := range routes {
		m, _ := r.(map[string]any)
		if m["name"] != route && m["id"] != route {
			continue
		}
		return st.ref(m["service"])
	}
	return ""
}

// routeNamed and serviceNamed report whether the file defines that entity.
func routeNamed(root map[string]any, name string) bool {
	found := false
	walk(root, func(coll string, m map[string]any) {
		found = found || coll == "routes" && m["name"] == name
	})
	return found
}

func serviceNamed(root map[string]any, name string) bool {
	found := false
	walk(root, func(coll string, m map[string]any) {
		found = found || coll == "services" && m["name"] == name
	})
	return found
}

func walk(node map[string]any, visit func(coll string, m map[string]any)) {
	for _, coll := range []string{"services", "routes"} {
		list, _ := node[coll].([]any)
		for _, item := range list {
			if m, ok := item.(map[string]any); ok {
				visit(coll, m)
				walk(m, visit)
			}
		}
	}
}
