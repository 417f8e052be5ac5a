package kongsim

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strconv"
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
	name    string // e.g. "kong.request.get_header"
	rpc     string // e.g. "Kong.Request_GetHeader"
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

// SupportedMethods lists the PDK methods the harness answers (all methods of
// the Kong service in go-pdk's pluginsocket.proto that have a handler).
func SupportedMethods() []string {
	var out []string
	for n, m := range pdkMethods {
		if m.handler != nil {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
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
	phRespRead  = []string{"response", "log"}
	phRespWrite = []string{"rewrite", "access", "response"}
	phSvcReq    = []string{"rewrite", "access"}
	phRawBody   = []string{"rewrite", "access", "response"}
)

type handlerSpec struct {
	fn     pdkHandler
	phases []string
}

var handlers = map[string]handlerSpec{
	// kong.client
	"kong.client.get_ip":             {fn: clientGetIP},
	"kong.client.get_forwarded_ip":   {fn: clientGetForwardedIP},
	"kong.client.get_port":           {fn: func(ev *event, _ proto.Message) (proto.Message, error) { return intv(ev.req.ClientPort), nil }},
	"kong.client.get_forwarded_port": {fn: func(ev *event, _ proto.Message) (proto.Message, error) { return intv(ev.req.ClientPort), nil }},
	"kong.client.get_credential":     {fn: clientGetCredential, phases: phAuthLater},
	"kong.client.load_consumer":      {fn: clientLoadConsumer, phases: phAuthLater},
	"kong.client.get_consumer":       {fn: clientGetConsumer, phases: phAuthLater},
	"kong.client.authenticate":       {fn: clientAuthenticate, phases: phAccess},
	"kong.client.get_protocol":       {fn: clientGetProtocol, phases: phAuthLater},

	// kong.ctx.shared
	"kong.ctx.shared.set": {fn: ctxSharedSet},
	"kong.ctx.shared.get": {fn: ctxSharedGet},

	"kong.ip.is_trusted": {fn: func(ev *event, in proto.Message) (proto.Message, error) {
		return &kpp.Bool{V: ev.req.isTrusted(in.(*kpp.String).V)}, nil
	}},

	// kong.log
	"kong.log.alert":               {fn: logAt("alert")},
	"kong.log.crit":                {fn: logAt("crit")},
	"kong.log.err":                 {fn: logAt("err")},
	"kong.log.warn":                {fn: logAt("warn")},
	"kong.log.notice":              {fn: logAt("notice")},
	"kong.log.info":                {fn: logAt("info")},
	"kong.log.debug":               {fn: logAt("debug")},
	"kong.log.set_serialize_value": {fn: logSetSerializeValue},
	"kong.log.serialize":           {fn: logSerialize},

	// kong.nginx
	"kong.nginx.get_var":              {fn: nginxGetVar},
	"kong.nginx.get_tls1_version_str": {fn: nginxGetTLSVersion},
	"kong.nginx.set_ctx":              {fn: nginxSetCtx},
	"kong.nginx.get_ctx":              {fn: nginxGetCtx},
	"kong.nginx.req_start_time": {fn: func(ev *event, _ proto.Message) (proto.Message, error) {
		return &kpp.Number{V: float64(ev.start.UnixMicro()) / 1e6}, nil
	}},
	"kong.nginx.get_subsystem": {fn: func(ev *event, _ proto.Message) (proto.Message, error) {
		if ev.phase == "preread" {
			return str("stream"), nil
		}
		return str("http"), nil
	}},

	// kong.node
	"kong.node.get_id":           {fn: func(ev *event, _ proto.Message) (proto.Message, error) { return str(ev.s.opts.nodeID), nil }},
	"kong.node.get_memory_stats": {fn: nodeMemoryStats},

	// kong.request
	"kong.request.get_scheme":           {fn: func(ev *event, _ proto.Message) (proto.Message, error) { return str(ev.req.Scheme), nil }, phases: phRequest},
	"kong.request.get_host":             {fn: func(ev *event, _ proto.Message) (proto.Message, error) { return str(ev.req.Host), nil }, phases: phRequest},
	"kong.request.get_port":             {fn: func(ev *event, _ proto.Message) (proto.Message, error) { return intv(ev.req.Port), nil }},
	"kong.request.get_forwarded_scheme": {fn: requestGetForwardedScheme, phases: phRequest},
	"kong.request.get_forwarded_host":   {fn: requestGetForwardedHost, phases: phRequest},
	"kong.request.get_forwarded_port":   {fn: requestGetForwardedPort, phases: phRequest},
	"kong.request.get_http_version": {fn: func(ev *event, _ proto.Message) (proto.Message, error) {
		return &kpp.Number{V: ev.req.HTTPVersion}, nil
	}, phases: phRequest},
	"kong.request.get_method": {fn: func(ev *event, _ proto.Message) (proto.Message, error) { return str(ev.req.Method), nil }, phases: phRequest},
	"kong.request.get_path": {fn: func(ev *event, _ proto.Message) (proto.Message, error) {
		return str(normalizePath(ev.req.Path)), nil
	}, phases: phRequest},
	"kong.request.get_path_with_query": {fn: func(ev *event, _ proto.Message) (proto.Message, error) {
		return str(ev.req.requestURI()), nil
	}, phases: phRequest},
	"kong.request.get_raw_query": {fn: func(ev *event, _ proto.Message) (proto.Message, error) { return str(ev.req.RawQuery), nil }, phases: phRequest},
	"kong.request.get_query_arg": {fn: requestGetQueryArg, phases: phRequest},
	"kong.request.get_query":     {fn: requestGetQuery, phases: phRequest},
	"kong.request.get_header":    {fn: requestGetHeader, phases: phRequest},
	"kong.request.get_headers":   {fn: requestGetHeaders, phases: phRequest},
	"kong.request.get_raw_body": {fn: func(ev *event, _ proto.Message) (proto.Message, error) {
		body := ev.req.Body
		if body == nil {
			body = []byte{}
		}
		return &kpp.RawBodyResult{Kind: &kpp.RawBodyResult_Content{Content: body}}, nil
	}, phases: phRawBody},
	"kong.request.get_uri_captures": {fn: func(ev *event, _ proto.Message) (proto.Message, error) {
		return &kpp.UriCapturesResult{}, nil
	}, phases: phRequest},

	// kong.response
	"kong.response.get_status":   {fn: responseGetStatus, phases: phRespRead},
	"kong.response.get_header":   {fn: responseGetHeader, phases: phRespRead},
	"kong.response.get_headers":  {fn: responseGetHeaders, phases: phRespRead},
	"kong.response.get_source":   {fn: responseGetSource, phases: phRespRead},
	"kong.response.set_status":   {fn: responseSetStatus, phases: phRespWrite},
	"kong.response.set_header":   {fn: responseSetHeader, phases: phRespWrite},
	"kong.response.add_header":   {fn: responseAddHeader, phases: phRespWrite},
	"kong.response.clear_header": {fn: responseClearHeader, phases: phRespWrite},
	"kong.response.set_headers":  {fn: responseSetHeaders, phases: phRespWrite},
	"kong.response.exit":         {fn: responseExit, phases: phRespWrite},

	// kong.router
	"kong.router.get_route":   {fn: routerGetRoute, phases: phAuthLater},
	"kong.router.get_service": {fn: routerGetService, phases: phAuthLater},

	// kong.service
	"kong.service.set_upstream": {fn: func(ev *event, in proto.Message) (proto.Message, error) {
		ev.res.Upstream.UpstreamName = in.(*kpp.String).V
		return nil, nil
	}, phases: phAccess},
	"kong.service.set_target": {fn: serviceSetTarget, phases: phAccess},

	// kong.service.request
	"kong.service.request.set_scheme":    {fn: serviceRequestSetScheme, phases: phSvcReq},
	"kong.service.request.set_path":      {fn: serviceRequestSetPath, phases: phSvcReq},
	"kong.service.request.set_raw_query": {fn: serviceRequestSetRawQuery, phases: phSvcReq},
	"kong.service.request.set_method":    {fn: serviceRequestSetMethod, phases: phSvcReq},
	"kong.service.request.set_query":     {fn: serviceRequestSetQuery, phases: phSvcReq},
	"kong.service.request.set_header":    {fn: serviceRequestSetHeader, phases: phSvcReq},
	"kong.service.request.add_header":    {fn: serviceRequestAddHeader, phases: phSvcReq},
	"kong.service.request.clear_header":  {fn: serviceRequestClearHeader, phases: phSvcReq},
	"kong.service.request.set_headers":   {fn: serviceRequestSetHeaders, phases: phSvcReq},
	"kong.service.request.set_raw_body": {fn: func(ev *event, in proto.Message) (proto.Message, error) {
		ev.res.Upstream.Body = append([]byte{}, in.(*kpp.ByteString).V...)
		ev.res.Upstream.BodySet = true
		return nil, nil
	}, phases: phSvcReq},

	// kong.service.response
	"kong.service.response.get_status":   {fn: serviceResponseGetStatus, phases: phRespRead},
	"kong.service.response.get_header":   {fn: serviceResponseGetHeader, phases: phRespRead},
	"kong.service.response.get_headers":  {fn: serviceResponseGetHeaders, phases: phRespRead},
	"kong.service.response.get_raw_body": {fn: serviceResponseGetRawBody, phases: phRespRead},
}

// ---------------------------------------------------------------------------
// value helpers

func str(s string) *kpp.String { return &kpp.String{V: s} }
func intv(i int) *kpp.Int      { return &kpp.Int{V: int32(i)} }

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

// toValue mirrors Kong's pb_wrap structpb_value (nil -> null, table with [1]
// -> list, other table -> struct), accepting common Go types.
func toValue(v any) *structpb.Value {
	switch x := v.(type) {
	case nil:
		return structpb.NewNullValue()
	case *structpb.Value:
		return x
	case string:
		return structpb.NewStringValue(x)
	case bool:
		return structpb.NewBoolValue(x)
	case float64:
		return structpb.NewNumberValue(x)
	case float32:
		return structpb.NewNumberValue(float64(x))
	case int:
		return structpb.NewNumberValue(float64(x))
	case int32:
		return structpb.NewNumberValue(float64(x))
	case int64:
		return structpb.NewNumberValue(float64(x))
	case uint:
		return structpb.NewNumberValue(float64(x))
	case []string:
		l := make([]any, len(x))
		for i, s := range x {
			l[i] = s
		}
		return toValue(l)
	case []any:
		if len(x) == 0 {
			return structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{}})
		}
		vals := make([]*structpb.Value, len(x))
		for i, e := range x {
			vals[i] = toValue(e)
		}
		return structpb.NewListValue(&structpb.ListValue{Values: vals})
	case map[string]string:
		m := make(map[string]any, len(x))
		for k, s := range x {
			m[k] = s
		}
		return toValue(m)
	case map[string]any:
		fields := make(map[string]*structpb.Value, len(x))
		for k, e := range x {
			fields[k] = toValue(e)
		}
		return structpb.NewStructValue(&structpb.Struct{Fields: fields})
	default:
		if b, err := json.Marshal(x); err == nil {
			var generic any
			if json.Unmarshal(b, &generic) == nil {
				return toValue(generic)
			}
		}
		return structpb.NewStringValue(fmt.Sprint(x))
	}
}

func toStruct(m map[string]any) *structpb.Struct {
	fields := make(map[string]*structpb.Value, len(m))
	for k, v := range m {
		fields[k] = toValue(v)
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

func clientGetIP(ev *event, _ proto.Message) (proto.Message, error) {
	return str(ev.req.ClientIP), nil
}

// forwardedIP is ngx.var.remote_addr after the realip module (Kong defaults:
// real_ip_header X-Real-IP, set_real_ip_from = trusted_ips).
func (ev *event) forwardedIP() string {
	if ev.req.isTrusted(ev.req.ClientIP) {
		if v, ok := ev.reqHdr.first("x-real-ip"); ok && strings.TrimSpace(v) != "" {
			return strings.TrimSpace(v)
		}
	}
	return ev.req.ClientIP
}

func clientGetForwardedIP(ev *event, _ proto.Message) (proto.Message, error) {
	return str(ev.forwardedIP()), nil
}

func consumerMsg(c *Consumer) *kpp.Consumer {
	if c == nil {
		return nil
	}
	return &kpp.Consumer{Id: c.ID, CreatedAt: c.CreatedAt, Username: c.Username, CustomId: c.CustomID, Tags: c.Tags}
}

func clientGetCredential(ev *event, _ proto.Message) (proto.Message, error) {
	c := ev.res.AuthenticatedCredential
	if c == nil {
		return nil, nil
	}
	return &kpp.AuthenticatedCredential{Id: c.ID, ConsumerId: c.ConsumerID}, nil
}

func clientGetConsumer(ev *event, _ proto.Message) (proto.Message, error) {
	if m := consumerMsg(ev.res.AuthenticatedConsumer); m != nil {
		return m, nil
	}
	return nil, nil
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

func clientGetProtocol(ev *event, in proto.Message) (proto.Message, error) {
	allowTerminated := in.(*kpp.Bool).V
	if p := ev.req.Route.Protocols; len(p) == 1 {
		return str(p[0]), nil
	}
	if ev.req.Scheme == "https" {
		return str("https"), nil
	}
	if allowTerminated && ev.req.isTrusted(ev.req.ClientIP) {
		if v, ok := ev.reqHdr.first("x-forwarded-proto"); ok && strings.EqualFold(v, "https") {
			return str("https"), nil
		}
	}
	return str("http"), nil
}

// ---------------------------------------------------------------------------
// kong.ctx.shared / kong.nginx ctx

func ctxSharedSet(ev *event, in proto.Message) (proto.Message, error) {
	kv := in.(*kpp.KV)
	if v := luaValue(kv.V); v == nil {
		delete(ev.res.ContextShared, kv.K)
	} else {
		ev.res.ContextShared[kv.K] = v
	}
	return nil, nil
}

func ctxSharedGet(ev *event, in proto.Message) (proto.Message, error) {
	return toValue(ev.res.ContextShared[in.(*kpp.String).V]), nil
}

func nginxSetCtx(ev *event, in proto.Message) (proto.Message, error) {
	kv := in.(*kpp.KV)
	if v := luaValue(kv.V); v == nil {
		delete(ev.res.NginxCtx, kv.K)
	} else {
		ev.res.NginxCtx[kv.K] = v
	}
	return nil, nil
}

func nginxGetCtx(ev *event, in proto.Message) (proto.Message, error) {
	return toValue(ev.res.NginxCtx[in.(*kpp.String).V]), nil
}

// ---------------------------------------------------------------------------
// kong.log

func logAt(level string) pdkHandler {
	return func(ev *event, in proto.Message) (proto.Message, error) {
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
		ev.res.Logs = append(ev.res.Logs, "["+level+"] "+b.String())
		return nil, nil
	}
}

func logSetSerializeValue(ev *event, in proto.Message) (proto.Message, error) {
	kv := in.(*kpp.KV)
	if kv.K == "" {
		return nil, errors.New("key must be a non-empty string")
	}
	if v := luaValue(kv.V); v == nil {
		delete(ev.res.SerializeValues, kv.K)
	} else {
		ev.res.SerializeValues[kv.K] = v
	}
	return nil, nil
}

func logSerialize(ev *event, _ proto.Message) (proto.Message, error) {
	r := ev.req
	url := fmt.Sprintf("%s://%s:%d%s", r.Scheme, r.Host, r.Port, r.requestURI())
	status := 0
	if ev.res.Exited {
		status = ev.res.Status
	} else if r.ServiceResponse != nil {
		status = r.ServiceResponse.Status
	}
	doc := map[string]any{
		"request": map[string]any{
			"method":      r.Method,
			"uri":         r.requestURI(),
			"url":         url,
			"querystring": argsTable(parseArgs(r.RawQuery, 100)),
			"headers":     ev.reqHdr.table(100),
			"size":        len(r.Body),
		},
		"upstream_uri": normalizePath(r.Path),
		"response": map[string]any{
			"status":  status,
			"headers": ev.rspHdr.table(100),
			"size":    0,
		},
		"route":      r.Route,
		"service":    r.Service,
		"client_ip":  ev.forwardedIP(),
		"started_at": ev.start.UnixMilli(),
		"latencies":  map[string]any{"kong": 0, "proxy": 0, "request": 0},
		"tries":      []any{},
		"source":     map[bool]string{true: "exit", false: "service"}[ev.res.Exited],
	}
	if c := ev.res.AuthenticatedConsumer; c != nil {
		doc["consumer"] = map[string]any{"id": c.ID, "username": c.Username, "custom_id": c.CustomID, "created_at": c.CreatedAt}
	}
	if c := ev.res.AuthenticatedCredential; c != nil {
		doc["authenticated_entity"] = map[string]any{"id": c.ID, "consumer_id": c.ConsumerID}
	}
	for k, v := range ev.res.SerializeValues {
		setDotted(doc, k, v)
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	return str(string(b)), nil
}

func setDotted(doc map[string]any, key string, v any) {
	parts := strings.Split(key, ".")
	cur := doc
	for _, p := range parts[:len(parts)-1] {
		next, ok := cur[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			cur[p] = next
		}
		cur = next
	}
	cur[parts[len(parts)-1]] = v
}

// ---------------------------------------------------------------------------
// kong.nginx

func nginxGetVar(ev *event, in proto.Message) (proto.Message, error) {
	name := strings.ToLower(in.(*kpp.String).V)
	if v, ok := ev.req.Vars[name]; ok {
		return str(v), nil
	}
	r := ev.req
	switch name {
	case "scheme":
		return str(r.Scheme), nil
	case "host":
		return str(r.Host), nil
	case "hostname":
		return str("kongsim"), nil
	case "server_port":
		return str(itoa(r.Port)), nil
	case "server_addr":
		return str("127.0.0.1"), nil
	case "server_protocol":
		return str(fmt.Sprintf("HTTP/%s", strconv.FormatFloat(r.HTTPVersion, 'f', -1, 64))), nil
	case "remote_addr", "binary_remote_addr":
		return str(ev.forwardedIP()), nil
	case "realip_remote_addr":
		return str(r.ClientIP), nil
	case "remote_port", "realip_remote_port":
		return str(itoa(r.ClientPort)), nil
	case "request_method":
		return str(r.Method), nil
	case "request_uri":
		return str(r.requestURI()), nil
	case "uri", "upstream_uri":
		p := normalizePath(r.Path)
		if name == "upstream_uri" && ev.res.Upstream.Path != "" {
			p = ev.res.Upstream.Path
		}
		return str(p), nil
	case "args", "query_string":
		if r.RawQuery == "" {
			return nil, nil
		}
		return str(r.RawQuery), nil
	case "is_args":
		if r.RawQuery == "" {
			return str(""), nil
		}
		return str("?"), nil
	case "request":
		return str(fmt.Sprintf("%s %s HTTP/%s", r.Method, r.requestURI(), strconv.FormatFloat(r.HTTPVersion, 'f', -1, 64))), nil
	case "https":
		if r.Scheme == "https" {
			return str("on"), nil
		}
		return str(""), nil
	case "request_id":
		return str(fmt.Sprintf("%032x", ev.start.UnixNano())), nil
	case "content_type":
		if v, ok := ev.reqHdr.get("content-type"); ok {
			return str(v), nil
		}
		return nil, nil
	case "content_length":
		if v, ok := ev.reqHdr.get("content-length"); ok {
			return str(v), nil
		}
		return nil, nil
	case "msec":
		return str(strconv.FormatFloat(float64(ev.start.UnixMilli())/1000, 'f', 3, 64)), nil
	case "upstream_scheme":
		if ev.res.Upstream.Scheme != "" {
			return str(ev.res.Upstream.Scheme), nil
		}
		return str(r.Service.Protocol), nil
	case "upstream_host":
		if v, ok := ev.reqHdr.get("host"); ok {
			return str(v), nil
		}
		return str(r.Service.Host), nil
	case "ssl_protocol":
		if r.Scheme == "https" {
			return str("TLSv1.3"), nil
		}
		return nil, nil
	}
	if strings.HasPrefix(name, "http_") {
		if v, ok := ev.reqHdr.get(name[len("http_"):]); ok {
			return str(v), nil
		}
		return nil, nil
	}
	if strings.HasPrefix(name, "arg_") {
		for _, a := range parseArgs(r.RawQuery, 0) {
			if strings.EqualFold(a.key, name[len("arg_"):]) {
				if s, ok := a.value.(string); ok {
					return str(s), nil
				}
				return str(""), nil
			}
		}
		return nil, nil
	}
	if strings.HasPrefix(name, "cookie_") {
		if c, ok := ev.reqHdr.get("cookie"); ok {
			hr := http.Request{Header: http.Header{"Cookie": {c}}}
			if ck, err := hr.Cookie(name[len("cookie_"):]); err == nil {
				return str(ck.Value), nil
			}
		}
		return nil, nil
	}
	return nil, nil // unknown variable: nil
}

func nginxGetTLSVersion(ev *event, _ proto.Message) (proto.Message, error) {
	if ev.req.Scheme == "https" {
		return str("TLSv1.3"), nil
	}
	return nil, nil
}

func nodeMemoryStats(ev *event, _ proto.Message) (proto.Message, error) {
	return &kpp.MemoryStats{
		LuaSharedDicts: &kpp.MemoryStats_LuaSharedDicts{
			Kong:        &kpp.MemoryStats_LuaSharedDicts_DictStats{AllocatedSlabs: 12288, Capacity: 5242880},
			KongDbCache: &kpp.MemoryStats_LuaSharedDicts_DictStats{AllocatedSlabs: 12288, Capacity: 134217728},
		},
		WorkersLuaVms: []*kpp.MemoryStats_WorkerLuaVm{{HttpAllocatedGc: 1102, Pid: 18004}},
	}, nil
}

// ---------------------------------------------------------------------------
// kong.request

func requestGetForwardedScheme(ev *event, _ proto.Message) (proto.Message, error) {
	if ev.req.isTrusted(ev.req.ClientIP) {
		if v, ok := ev.reqHdr.get("x-forwarded-proto"); ok {
			return str(strings.ToLower(v)), nil
		}
	}
	return str(ev.req.Scheme), nil
}

func stripHost(h string) (host, port string) {
	if i := strings.Index(h, "@"); i >= 0 {
		h = h[i+1:]
	}
	if i := strings.Index(h, ":"); i >= 0 {
		return h[:i], h[i+1:]
	}
	return h, ""
}

func requestGetForwardedHost(ev *event, _ proto.Message) (proto.Message, error) {
	if ev.req.isTrusted(ev.req.ClientIP) {
		if v, ok := ev.reqHdr.get("x-forwarded-host"); ok {
			h, _ := stripHost(v)
			return str(strings.ToLower(h)), nil
		}
	}
	return str(ev.req.Host), nil
}

func requestGetForwardedPort(ev *event, _ proto.Message) (proto.Message, error) {
	valid := func(s string) (int, bool) {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		return n, err == nil && n >= 1 && n <= 65535
	}
	if ev.req.isTrusted(ev.req.ClientIP) {
		if v, ok := ev.reqHdr.get("x-forwarded-port"); ok {
			if n, ok := valid(v); ok {
				return intv(n), nil
			}
		}
		if v, ok := ev.reqHdr.get("x-forwarded-host"); ok {
			if _, p := stripHost(v); p != "" {
				if n, ok := valid(p); ok {
					return intv(n), nil
				}
			}
		}
	}
	return intv(ev.req.Port), nil
}

func requestGetQueryArg(ev *event, in proto.Message) (proto.Message, error) {
	name := in.(*kpp.String).V
	for _, a := range parseArgs(ev.req.RawQuery, 100) {
		if a.key == name {
			if s, ok := a.value.(string); ok {
				return str(s), nil
			}
			// a valueless "?name": Lua returns boolean true, which cannot be
			// a String; answer the empty string.
			return str(""), nil
		}
	}
	return nil, nil
}

func requestGetQuery(ev *event, in proto.Message) (proto.Message, error) {
	max, err := checkMax("max_args", in.(*kpp.Int).V)
	if err != nil {
		return nil, err
	}
	return toStruct(argsTable(parseArgs(ev.req.RawQuery, max))), nil
}

func requestGetHeader(ev *event, in proto.Message) (proto.Message, error) {
	if v, ok := ev.reqHdr.get(in.(*kpp.String).V); ok {
		return str(v), nil
	}
	return nil, nil
}

func requestGetHeaders(ev *event, in proto.Message) (proto.Message, error) {
	max, err := checkMax("max_headers", in.(*kpp.Int).V)
	if err != nil {
		return nil, err
	}
	return toStruct(ev.reqHdr.table(max)), nil
}

// ---------------------------------------------------------------------------
// kong.response

func responseGetStatus(ev *event, _ proto.Message) (proto.Message, error) {
	switch {
	case ev.res.ResponseStatus != 0:
		return intv(ev.res.ResponseStatus), nil
	case ev.res.Exited:
		return intv(ev.res.Status), nil
	case ev.req.ServiceResponse != nil:
		return intv(ev.req.ServiceResponse.Status), nil
	}
	return intv(200), nil
}

func responseGetHeader(ev *event, in proto.Message) (proto.Message, error) {
	if v, ok := ev.rspHdr.first(in.(*kpp.String).V); ok {
		return str(v), nil
	}
	return nil, nil
}

func responseGetHeaders(ev *event, in proto.Message) (proto.Message, error) {
	max, err := checkMax("max_headers", in.(*kpp.Int).V)
	if err != nil {
		return nil, err
	}
	return toStruct(ev.rspHdr.table(max)), nil
}

func responseGetSource(ev *event, _ proto.Message) (proto.Message, error) {
	switch {
	case ev.res.Exited:
		return str("exit"), nil
	case ev.req.ServiceResponse != nil:
		return str("service"), nil
	}
	return str("error"), nil
}

func responseSetStatus(ev *event, in proto.Message) (proto.Message, error) {
	st := in.(*kpp.Int).V
	if st < 100 || st > 599 {
		return nil, fmt.Errorf("code must be a number between 100 and 599")
	}
	ev.res.ResponseStatus = int(st)
	return nil, nil
}

func (ev *event) respSet(name string, vals []string) {
	ev.rspHdr.set(name, vals)
	k := http.CanonicalHeaderKey(name)
	if len(vals) == 0 {
		ev.respClear(name)
		return
	}
	ev.res.ResponseHeaders[k] = append([]string{}, vals...)
	ev.res.ResponseCleared = removeStr(ev.res.ResponseCleared, k)
}

func (ev *event) respClear(name string) {
	ev.rspHdr.clear(name)
	k := http.CanonicalHeaderKey(name)
	delete(ev.res.ResponseHeaders, k)
	if !contains(ev.res.ResponseCleared, k) {
		ev.res.ResponseCleared = append(ev.res.ResponseCleared, k)
	}
}

func responseSetHeader(ev *event, in proto.Message) (proto.Message, error) {
	kv := in.(*kpp.KV)
	vals, err := headerValues(kv.K, luaValue(kv.V))
	if err != nil {
		return nil, err
	}
	ev.respSet(kv.K, vals)
	return nil, nil
}

func responseAddHeader(ev *event, in proto.Message) (proto.Message, error) {
	kv := in.(*kpp.KV)
	vals, err := headerValues(kv.K, luaValue(kv.V))
	if err != nil {
		return nil, err
	}
	ev.rspHdr.add(kv.K, vals...)
	k := http.CanonicalHeaderKey(kv.K)
	ev.res.ResponseHeaders[k] = append(ev.res.ResponseHeaders[k], vals...)
	ev.res.ResponseCleared = removeStr(ev.res.ResponseCleared, k)
	return nil, nil
}

func responseClearHeader(ev *event, in proto.Message) (proto.Message, error) {
	ev.respClear(in.(*kpp.String).V)
	return nil, nil
}

// setHeaders applies a set_headers table (Kong: each name in sorted order,
// a value or a list of values) through set.
func setHeaders(in proto.Message, set func(name string, vals []string)) error {
	m := luaStruct(in.(*structpb.Struct))
	parsed := map[string][]string{}
	for k, v := range m {
		vals, err := headerValues(k, v)
		if err != nil {
			return err
		}
		parsed[k] = vals
	}
	for _, k := range sortedKeys(parsed) {
		set(k, parsed[k])
	}
	return nil
}

func responseSetHeaders(ev *event, in proto.Message) (proto.Message, error) {
	return nil, setHeaders(in, ev.respSet)
}

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
// kong.router

func routerGetRoute(ev *event, _ proto.Message) (proto.Message, error) {
	r := ev.req.Route
	return &kpp.Route{
		Id: r.Id, CreatedAt: int64(r.CreatedAt), UpdatedAt: int64(r.UpdatedAt), Name: r.Name,
		Protocols: r.Protocols, Methods: r.Methods, Hosts: r.Hosts, Paths: r.Paths, Headers: r.Headers,
		HttpsRedirectStatusCode: int32(r.HTTPSRedirectStatusCode), RegexPriority: int32(r.RegexPriority),
		StripPath: r.StripPath, PreserveHost: r.PreserveHost, Snis: r.SNIs, Sources: r.Sources,
		Destinations: r.Destinations, Tags: r.Tags, Service: &kpp.ServiceKey{Id: r.Service.Id},
	}, nil
}

func routerGetService(ev *event, _ proto.Message) (proto.Message, error) {
	s := ev.req.Service
	out := &kpp.Service{
		Id: s.Id, CreatedAt: int64(s.CreatedAt), UpdatedAt: int64(s.UpdatedAt), Name: s.Name,
		Retries: int32(s.Retries), Protocol: s.Protocol, Host: s.Host, Port: int32(s.Port), Path: s.Path,
		ConnectTimeout: int32(s.ConnectTimeout), WriteTimeout: int32(s.WriteTimeout), ReadTimeout: int32(s.ReadTimeout),
		Tags: s.Tags,
	}
	if s.ClientCertificate.Id != "" {
		out.ClientCertificate = &kpp.CertificateKey{Id: s.ClientCertificate.Id}
	}
	return out, nil
}

// ---------------------------------------------------------------------------
// kong.service and kong.service.request

func serviceSetTarget(ev *event, in proto.Message) (proto.Message, error) {
	t := in.(*kpp.Target)
	if t.Port < 0 || t.Port > 65535 {
		return nil, fmt.Errorf("port must be an integer between 0 and 65535: given %d", t.Port)
	}
	ev.res.Upstream.TargetHost = t.Host
	ev.res.Upstream.TargetPort = int(t.Port)
	return nil, nil
}

func serviceRequestSetScheme(ev *event, in proto.Message) (proto.Message, error) {
	s := in.(*kpp.String).V
	if s != "http" && s != "https" {
		return nil, fmt.Errorf("invalid scheme: %s", s)
	}
	ev.res.Upstream.Scheme = s
	return nil, nil
}

func serviceRequestSetPath(ev *event, in proto.Message) (proto.Message, error) {
	p := in.(*kpp.String).V
	if !strings.HasPrefix(p, "/") {
		return nil, errors.New("path must start with /")
	}
	ev.res.Upstream.Path = p
	return nil, nil
}

func serviceRequestSetRawQuery(ev *event, in proto.Message) (proto.Message, error) {
	ev.res.Upstream.RawQuery = in.(*kpp.String).V
	ev.res.Upstream.QuerySet = true
	return nil, nil
}

var acceptedMethods = map[string]bool{
	"GET": true, "HEAD": true, "PUT": true, "POST": true, "DELETE": true, "OPTIONS": true, "MKCOL": true,
	"COPY": true, "MOVE": true, "PROPFIND": true, "PROPPATCH": true, "LOCK": true, "UNLOCK": true,
	"PATCH": true, "TRACE": true,
}

func serviceRequestSetMethod(ev *event, in proto.Message) (proto.Message, error) {
	m := in.(*kpp.String).V
	if !acceptedMethods[m] {
		return nil, fmt.Errorf("invalid method: %s", m)
	}
	ev.res.Upstream.Method = m
	return nil, nil
}

// ngx.escape_uri for arguments.
func escapeArg(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func serviceRequestSetQuery(ev *event, in proto.Message) (proto.Message, error) {
	args := luaStruct(in.(*structpb.Struct))
	var chunks []string
	for k, v := range args {
		var parts []string
		enc := func(e any) error {
			switch x := e.(type) {
			case string:
				parts = append(parts, escapeArg(k)+"="+escapeArg(x))
			case bool:
				if x {
					parts = append(parts, escapeArg(k))
				}
			case float64:
				parts = append(parts, escapeArg(k)+"="+escapeArg(luaToString(x)))
			default:
				return fmt.Errorf("attempt to use %s as query arg value", luaType(e))
			}
			return nil
		}
		if l, ok := v.([]any); ok {
			for _, e := range l {
				if err := enc(e); err != nil {
					return nil, err
				}
			}
		} else if err := enc(v); err != nil {
			return nil, err
		}
		chunks = append(chunks, strings.Join(parts, "&"))
	}
	sort.Strings(chunks)
	ev.res.Upstream.RawQuery = strings.Join(chunks, "&")
	ev.res.Upstream.QuerySet = true
	return nil, nil
}

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

func (ev *event) upAdd(name string, vals []string) {
	ev.reqHdr.add(name, vals...)
	ev.res.headerOps = append(ev.res.headerOps, headerOp{"add", name, append([]string{}, vals...)})
	k := http.CanonicalHeaderKey(name)
	ev.res.UpstreamSet[k] = append(ev.res.UpstreamSet[k], vals...)
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

func serviceRequestSetHeader(ev *event, in proto.Message) (proto.Message, error) {
	kv := in.(*kpp.KV)
	vals, err := headerValues(kv.K, luaValue(kv.V))
	if err != nil {
		return nil, err
	}
	if strings.EqualFold(kv.K, ":authority") {
		return nil, nil // non-gRPC: Kong returns nil, err (dropped by the bridge)
	}
	ev.upSet(kv.K, vals)
	return nil, nil
}

func serviceRequestAddHeader(ev *event, in proto.Message) (proto.Message, error) {
	kv := in.(*kpp.KV)
	vals, err := headerValues(kv.K, luaValue(kv.V))
	if err != nil {
		return nil, err
	}
	ev.upAdd(kv.K, vals)
	return nil, nil
}

func serviceRequestClearHeader(ev *event, in proto.Message) (proto.Message, error) {
	ev.upClear(in.(*kpp.String).V)
	return nil, nil
}

func serviceRequestSetHeaders(ev *event, in proto.Message) (proto.Message, error) {
	return nil, setHeaders(in, ev.upSet)
}

// ---------------------------------------------------------------------------
// kong.service.response

func serviceResponseGetStatus(ev *event, _ proto.Message) (proto.Message, error) {
	if sr := ev.req.ServiceResponse; sr != nil {
		return intv(sr.Status), nil
	}
	return nil, nil
}

func serviceResponseGetHeader(ev *event, in proto.Message) (proto.Message, error) {
	if sr := ev.req.ServiceResponse; sr != nil {
		if v, ok := newHeaderList(sr.Headers).first(in.(*kpp.String).V); ok {
			return str(v), nil
		}
	}
	return nil, nil
}

func serviceResponseGetHeaders(ev *event, in proto.Message) (proto.Message, error) {
	max, err := checkMax("max_headers", in.(*kpp.Int).V)
	if err != nil {
		return nil, err
	}
	var l headerList
	if sr := ev.req.ServiceResponse; sr != nil {
		l = newHeaderList(sr.Headers)
	}
	return toStruct(l.table(max)), nil
}

func serviceResponseGetRawBody(ev *event, _ proto.Message) (proto.Message, error) {
	if sr := ev.req.ServiceResponse; sr != nil {
		return &kpp.ByteString{V: sr.Body}, nil
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
