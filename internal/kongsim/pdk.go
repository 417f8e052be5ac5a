package kongsim

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"

	kpp "github.com/Kong/go-pdk/server/kong_plugin_protocol"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"
)

// pdkMethod is one entry of Kong's rpc_service table: built, like Kong's
// load_service, from the "Kong" service of pluginsocket.proto.
type pdkMethod struct {
	name    string // e.g. "kong.request.get_headers"
	rpc     string // e.g. "Kong.Request_GetHeaders"
	in, out protoreflect.MessageType
	handler pdkHandler
	phases  []string // nil: any phase
}

type pdkHandler func(ev *event, in proto.Message) (proto.Message, error)

var (
	pdkMethods map[string]*pdkMethod
	pdkInitErr error
)

// luaMethodName converts "Kong" + "Request_GetHeader" the way Kong does:
// '_' -> '.', then "([a-z]%d*)([A-Z])" -> "%1_%2", then lowercase.
var camelBoundary = regexp.MustCompile(`([a-z][0-9]*)([A-Z])`)

func luaMethodName(service, method string) string {
	s := strings.ReplaceAll(service+"."+method, "_", ".")
	s = camelBoundary.ReplaceAllString(s, "${1}_${2}")
	return strings.ToLower(s)
}

func init() {
	_ = emptypb.Empty{}
	pdkMethods = map[string]*pdkMethod{}
	svc := kpp.File_server_kong_plugin_protocol_pluginsocket_proto.Services().ByName("Kong")
	if svc == nil {
		pdkInitErr = errors.New("service Kong not found in pluginsocket.proto")
		return
	}
	ms := svc.Methods()
	for i := 0; i < ms.Len(); i++ {
		m := ms.Get(i)
		name := luaMethodName(string(svc.Name()), string(m.Name()))
		if alias, ok := proto.GetExtension(m.Options(), kpp.E_MethodName).(string); ok && alias != "" {
			name = alias
		}
		in, err1 := protoregistry.GlobalTypes.FindMessageByName(m.Input().FullName())
		out, err2 := protoregistry.GlobalTypes.FindMessageByName(m.Output().FullName())
		if err1 != nil || err2 != nil {
			pdkInitErr = fmt.Errorf("resolving types of %s: %v %v", m.FullName(), err1, err2)
			continue
		}
		pdkMethods[name] = &pdkMethod{name: name, rpc: string(svc.Name()) + "." + string(m.Name()), in: in, out: out}
	}
	for name, h := range handlers {
		if m, ok := pdkMethods[name]; ok {
			m.handler = h.fn
			m.phases = h.phases
		}
	}
}

func (ev *event) dispatch(method string, args []byte) ([]byte, *KongError) {
	m, ok := pdkMethods[method]
	if !ok || m.handler == nil {
		ev.res.Unhandled = append(ev.res.Unhandled, method)
		msg := fmt.Sprintf("method %q not found", method)
		if ok {
			msg = fmt.Sprintf("method %q (%s) is not simulated by kongsim", method, m.rpc)
		}
		if pdkInitErr != nil {
			msg += " (" + pdkInitErr.Error() + ")"
		}
		return nil, &KongError{Method: method, Message: msg}
	}
	in := m.in.New().Interface()
	if err := proto.Unmarshal(args, in); err != nil {
		return nil, &KongError{Method: method, Message: fmt.Sprintf("decoding %s arguments: %v", m.in.Descriptor().FullName(), err)}
	}
	if m.phases != nil && !contains(m.phases, ev.phase) {
		return nil, &KongError{Method: method, Message: fmt.Sprintf("function cannot be called in %s phase (only in: %s)", ev.phase, strings.Join(m.phases, ", "))}
	}
	out, err := m.handler(ev, in)
	if err != nil {
		return nil, &KongError{Method: method, Message: err.Error()}
	}
	if out == nil {
		return []byte{}, nil
	}
	data, err := proto.Marshal(out)
	if err != nil {
		return nil, &KongError{Method: method, Message: "encoding reply: " + err.Error()}
	}
	return data, nil
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// Phase sets, after kong/pdk/private/phases.lua, restricted to the phases a
// go-pdk plugin can implement (certificate, rewrite, access, response,
// preread, log).
var (
	phRequest   = []string{"rewrite", "access", "response", "log"}
	phAuthLater = []string{"access", "response", "log"}
	phAccess    = []string{"access"}
	phRespWrite = []string{"rewrite", "access", "response"}
	phSvcReq    = []string{"rewrite", "access"}
)

type handlerSpec struct {
	fn     pdkHandler
	phases []string
}

// handlers are the PDK methods kongsim answers: those the keycloak-jwt
// plugin calls. Any other method of the Kong service is reported as not
// simulated (Result.Unhandled) and aborts the event, as an unknown one does.
var handlers = map[string]handlerSpec{
	"kong.client.get_credential": {fn: clientGetCredential, phases: phAuthLater},
	"kong.client.load_consumer":  {fn: clientLoadConsumer, phases: phAuthLater},
	"kong.client.authenticate":   {fn: clientAuthenticate, phases: phAccess},

	"kong.log.err": {fn: logErr},

	"kong.request.get_method": {fn: func(ev *event, _ proto.Message) (proto.Message, error) { return str(ev.req.Method), nil }, phases: phRequest},
	"kong.request.get_path": {fn: func(ev *event, _ proto.Message) (proto.Message, error) {
		return str(normalizePath(ev.req.Path)), nil
	}, phases: phRequest},
	"kong.request.get_raw_query": {fn: func(ev *event, _ proto.Message) (proto.Message, error) { return str(ev.req.RawQuery), nil }, phases: phRequest},
	"kong.request.get_headers":   {fn: requestGetHeaders, phases: phRequest},

	"kong.response.exit": {fn: responseExit, phases: phRespWrite},

	"kong.service.request.clear_header": {fn: serviceRequestClearHeader, phases: phSvcReq},
	"kong.service.request.set_headers":  {fn: serviceRequestSetHeaders, phases: phSvcReq},
}

// ---------------------------------------------------------------------------
// value helpers

func str(s string) *kpp.String { return &kpp.String{V: s} }

// luaValue mirrors Kong's pb_unwrap structpb_value: note the Lua "or" chain
// turns a boolean false into nil.
func luaValue(v *structpb.Value) any {
	if v == nil {
		return nil
	}
	switch k := v.Kind.(type) {
	case *structpb.Value_ListValue:
		var out []any
		for _, e := range k.ListValue.GetValues() {
			lv := luaValue(e)
			if lv == nil {
				break // a nil ends a Lua sequence
			}
			out = append(out, lv)
		}
		if out == nil {
			return map[string]any{} // an empty Lua table
		}
		return out
	case *structpb.Value_StructValue:
		out := map[string]any{}
		for key, e := range k.StructValue.GetFields() {
			if lv := luaValue(e); lv != nil {
				out[key] = lv
			}
		}
		return out
	case *structpb.Value_BoolValue:
		if k.BoolValue {
			return true
		}
		return nil
	case *structpb.Value_StringValue:
		return k.StringValue
	case *structpb.Value_NumberValue:
		return k.NumberValue
	default:
		return nil
	}
}

func luaStruct(s *structpb.Struct) map[string]any {
	out := map[string]any{}
	for k, v := range s.GetFields() {
		if lv := luaValue(v); lv != nil {
			out[k] = lv
		}
	}
	return out
}

// toStruct mirrors Kong's pb_wrap of a get_headers table: a string for a
// single line, a list for repeated lines.
func toStruct(m map[string][]string) *structpb.Struct {
	fields := make(map[string]*structpb.Value, len(m))
	for k, vs := range m {
		if len(vs) == 1 {
			fields[k] = structpb.NewStringValue(vs[0])
			continue
		}
		vals := make([]*structpb.Value, len(vs))
		for i, v := range vs {
			vals[i] = structpb.NewStringValue(v)
		}
		fields[k] = structpb.NewListValue(&structpb.ListValue{Values: vals})
	}
	return &structpb.Struct{Fields: fields}
}

// headerValues mirrors kong.pdk.private.checks.validate_header plus
// normalize_multi_header: strings, numbers, booleans or arrays of strings.
func headerValues(name string, v any) ([]string, error) {
	switch x := v.(type) {
	case string:
		return []string{x}, nil
	case float64:
		return []string{luaToString(x)}, nil
	case bool:
		return []string{luaToString(x)}, nil
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("invalid header value in array %q: got %s, expected string", name, luaType(e))
			}
			out = append(out, s)
		}
		return out, nil
	case map[string]any:
		if len(x) == 0 {
			return []string{}, nil // empty table: the header is removed
		}
	}
	return nil, fmt.Errorf("invalid header value for %q: got %s, expected array of string, string, number or boolean", name, luaType(v))
}

func luaType(v any) string {
	switch v.(type) {
	case nil:
		return "nil"
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "boolean"
	default:
		return "table"
	}
}

func checkMax(what string, n int32) (int, error) {
	if n < 1 {
		return 0, fmt.Errorf("%s must be >= 1", what)
	}
	if n > 1000 {
		return 0, fmt.Errorf("%s must be <= 1000", what)
	}
	return int(n), nil
}

// ---------------------------------------------------------------------------
// kong.client

func consumerMsg(c *Consumer) *kpp.Consumer {
	return &kpp.Consumer{Id: c.ID, CreatedAt: c.CreatedAt, Username: c.Username, CustomId: c.CustomID, Tags: c.Tags}
}

func clientGetCredential(ev *event, _ proto.Message) (proto.Message, error) {
	c := ev.res.AuthenticatedCredential
	if c == nil {
		return nil, nil
	}
	return &kpp.AuthenticatedCredential{Id: c.ID, ConsumerId: c.ConsumerID}, nil
}

var uuidRe = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

func clientLoadConsumer(ev *event, in proto.Message) (proto.Message, error) {
	spec := in.(*kpp.ConsumerSpec)
	isUUID := uuidRe.MatchString(spec.Id)
	if !isUUID && !spec.ByUsername {
		return nil, errors.New("cannot load a consumer with an id that is not a uuid")
	}
	if isUUID {
		for i := range ev.req.Consumers {
			if strings.EqualFold(ev.req.Consumers[i].ID, spec.Id) {
				return consumerMsg(&ev.req.Consumers[i]), nil
			}
		}
	}
	if spec.ByUsername {
		for i := range ev.req.Consumers {
			if ev.req.Consumers[i].Username == spec.Id {
				return consumerMsg(&ev.req.Consumers[i]), nil
			}
		}
	}
	// Kong returns nil (plus maybe an error string that the bridge drops):
	// the plugin receives an empty Consumer and no error.
	return nil, nil
}

func clientAuthenticate(ev *event, in proto.Message) (proto.Message, error) {
	a := in.(*kpp.AuthenticateArgs)
	if a.Consumer == nil && a.Credential == nil {
		return nil, errors.New("either credential or consumer must be provided")
	}
	ev.res.AuthenticatedConsumer = nil
	ev.res.AuthenticatedCredential = nil
	if c := a.Consumer; c != nil {
		ev.res.AuthenticatedConsumer = &Consumer{ID: c.Id, Username: c.Username, CustomID: c.CustomId, CreatedAt: c.CreatedAt, Tags: c.Tags}
	}
	if c := a.Credential; c != nil {
		ev.res.AuthenticatedCredential = &Credential{ID: c.Id, ConsumerID: c.ConsumerId}
	}
	return nil, nil
}

// ---------------------------------------------------------------------------
// kong.log

func logErr(ev *event, in proto.Message) (proto.Message, error) {
	vals := in.(*structpb.ListValue).GetValues()
	// table.unpack stops at the last non-nil element
	n := len(vals)
	for n > 0 && luaValue(vals[n-1]) == nil {
		n--
	}
	var b strings.Builder
	for _, v := range vals[:n] {
		b.WriteString(luaToString(luaValue(v)))
	}
	ev.res.Logs = append(ev.res.Logs, "[err] "+b.String())
	return nil, nil
}

// ---------------------------------------------------------------------------
// kong.request

func requestGetHeaders(ev *event, in proto.Message) (proto.Message, error) {
	max, err := checkMax("max_headers", in.(*kpp.Int).V)
	if err != nil {
		return nil, err
	}
	return toStruct(ev.reqHdr.table(max)), nil
}

// ---------------------------------------------------------------------------
// kong.response

func responseExit(ev *event, in proto.Message) (proto.Message, error) {
	a := in.(*kpp.ExitArgs)
	if a.Status < 100 || a.Status > 599 {
		return nil, fmt.Errorf("code must be a number between 100 and 599")
	}
	headers := map[string][]string{}
	for k, v := range luaStruct(a.Headers) {
		vals, err := headerValues(k, v)
		if err != nil {
			return nil, err
		}
		headers[k] = vals
	}
	ev.res.Exited = true
	ev.res.Status = int(a.Status)
	ev.res.Body = append([]byte{}, a.Body...)
	ev.res.ExitHeaders = headers
	ev.exit = true
	return nil, nil
}

// ---------------------------------------------------------------------------
// kong.service.request

func (ev *event) upSet(name string, vals []string) {
	if len(vals) == 0 {
		ev.upClear(name)
		return
	}
	ev.reqHdr.set(name, vals)
	ev.res.headerOps = append(ev.res.headerOps, headerOp{"set", name, append([]string{}, vals...)})
	k := http.CanonicalHeaderKey(name)
	ev.res.UpstreamSet[k] = append([]string{}, vals...)
	ev.res.UpstreamCleared = removeStr(ev.res.UpstreamCleared, k)
}

func (ev *event) upClear(name string) {
	ev.reqHdr.clear(name)
	ev.res.headerOps = append(ev.res.headerOps, headerOp{op: "clear", name: name})
	k := http.CanonicalHeaderKey(name)
	delete(ev.res.UpstreamSet, k)
	if !contains(ev.res.UpstreamCleared, k) {
		ev.res.UpstreamCleared = append(ev.res.UpstreamCleared, k)
	}
}

func serviceRequestClearHeader(ev *event, in proto.Message) (proto.Message, error) {
	ev.upClear(in.(*kpp.String).V)
	return nil, nil
}

// serviceRequestSetHeaders applies a set_headers table: Kong validates every
// value first, then sets each name in sorted order (a value or a list of
// values; an empty list removes the header).
func serviceRequestSetHeaders(ev *event, in proto.Message) (proto.Message, error) {
	parsed := map[string][]string{}
	for k, v := range luaStruct(in.(*structpb.Struct)) {
		vals, err := headerValues(k, v)
		if err != nil {
			return nil, err
		}
		parsed[k] = vals
	}
	for _, k := range sortedKeys(parsed) {
		ev.upSet(k, parsed[k])
	}
	return nil, nil
}

// ---------------------------------------------------------------------------

func removeStr(l []string, s string) []string {
	out := l[:0]
	for _, x := range l {
		if x != s {
			out = append(out, x)
		}
	}
	return out
}

func sortedKeys(m map[string][]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
