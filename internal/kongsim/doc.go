// Package kongsim plays Kong 3.x's side of the go-pdk (v0.11, "ProtoBuf:1")
// plugin-server protocol, so that a real go-pdk plugin binary can be tested
// end to end without Kong.
//
// Typical use:
//
//	bin := kongsim.Build(t, "./cmd/keycloak-jwt")   // go build, cached per test run
//	srv, err := kongsim.Start(bin)                  // -dump, then -kong-prefix <tmp>
//	defer srv.Close()
//	id, err := srv.StartInstance("keycloak-jwt", []byte(`{"issuer":"..."}`))
//	res, err := srv.HandleEvent(id, "access", kongsim.Request{
//		Path:    "/api",
//		Headers: map[string][]string{"Authorization": {"Bearer " + tok}},
//	})
//	// res.Exited/Status/Body/ExitHeaders, res.UpstreamSet, res.Calls, ...
//	// srv.UpstreamHeaders(res, req) gives what the upstream would receive.
//
// kongsim answers the PDK methods the keycloak-jwt plugin calls
// (kong.request.get_method/get_path/get_raw_query/get_headers,
// kong.client.get_credential/load_consumer/authenticate, kong.log.err,
// kong.response.exit, kong.service.request.clear_header/set_headers). Any
// other method of Kong's PDK is reported in Result.Unhandled and aborts the
// event, as Kong does with a method it does not know: add a handler (pdk.go)
// when the plugin starts calling one.
//
// # Protocol (as implemented by go-pdk 0.11 and Kong's pb_rpc.lua)
//
// Process: Kong runs "<binary> -dump" (JSON: Protocol, SocketPath, Plugins[]
// with Name, Phases, Version, Priority, Schema), then starts "<binary>
// -kong-prefix <prefix>"; the server listens on <prefix>/<basename>.socket
// (the plugin name is the executable's base name). kongsim uses a fresh temp
// directory as prefix.
//
// Framing: every message, in both directions, is a little-endian uint32 length
// followed by that many bytes. Kong opens a connection per RPC (keep-alive
// pooled) and sends one protobuf RpcCall{sequence, oneof call}; the server
// answers with one RpcReturn carrying the same sequence. cmd_start_instance
// takes the plugin name and the config as JSON bytes (Kong adds __key__,
// __seq__ and __plugin_id; go-pdk uses a non-zero __seq__ as the instance id)
// and returns InstanceStatus (kongsim sends no other command).
//
// Events: after RpcCall{cmd_handle_event{instance_id, event_name}} the plugin
// drives a "bridge loop" on the same connection: for each PDK call it sends a
// frame with the method name (e.g. "kong.request.get_header") and a frame with
// the protobuf-encoded argument; Kong answers with exactly one frame holding
// the encoded return value (an empty frame for nil/Empty). Argument and return
// types come from the "Kong" service in pluginsocket.proto; Kong maps
// Request_GetHeader to kong.request.get_header ('_' -> '.', camel case ->
// snake case, lowercased) unless a MethodName option overrides it (only
// kong.ctx.shared.set/get). When the handler returns, go-pdk sends an empty
// method frame, which ends the loop, followed by the RpcReturn frame.
//
// Gotchas reproduced here:
//
//   - kong.response.exit never returns inside Kong (the handler coroutine is
//     parked with a delayed response / ngx.exit runs), so Kong sends no reply;
//     go-pdk's Exit then closes the connection. Anything the plugin does after
//     Exit is lost. kongsim records the exit and closes its end.
//   - go-pdk reports command errors (bad config JSON, unknown instance id,
//     phase not implemented) by closing the connection without a reply and
//     logging the reason to stderr; kongsim turns that into an error carrying
//     the log text (e.g. "no plugin instance 3"). Real Kong would restart the
//     instance and retry, or answer 500.
//   - A PDK method Kong does not know, or a Lua error raised by the PDK
//     (wrong phase, invalid argument, load_consumer with a non-UUID id and
//     search_by_username=false, get_headers(0)...), aborts the event: no reply
//     is sent and the request gets a 500. HandleEvent returns a *KongError and
//     a Result with Exited, Status 500 and KongError/Unhandled filled in.
//   - Errors returned as a second Lua value are dropped by the bridge: e.g.
//     load_consumer for an unknown consumer gives the plugin an empty Consumer
//     and a nil error.
//   - Kong's Value decoding turns boolean false into nil (Lua "or" chain).
//   - get_headers reads at most max_headers lines (1 to 1000) and drops the
//     rest silently; go-pdk decodes its answer through UnwrapHeaders.
//   - kong.service.request.set_headers and clear_header modify the live
//     request headers, so later kong.request.get_headers calls see the new
//     values; an empty list in set_headers removes the header.
package kongsim
