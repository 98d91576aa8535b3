// Package asterisk enforces callwarden's decisions on an Asterisk PBX through
// ARI: it runs the Stasis application (default name "callwarden") that the
// dialplan's feature codes enter, translates each StasisStart into an
// enforce.Request, asks enforce.Decide, and acts on the Decision (snoop and
// bridge, set CALLWARDEN_DECISION, record, play back, or refuse); with
// subscribe-all it also watches the whole PBX and hangs up ChanSpy,
// ExtenSpy, MixMonitor and foreign snoop channels nobody allowed.
//
// ARI types never leave this package. It owns its ARI transport (rest.go,
// ws.go): a REST client whose every call takes a context and a deadline,
// and a websocket reader that peeks at each event's type, counts and drops
// the types github.com/CyCoreSystems/ari/v5 does not know (that library
// panics on them) and decodes the rest with ari.DecodeEvent; once
// registered it asks Asterisk (eventFilter) for the event types it acts on
// only. It must not import cache, config, cmd or another pbx package:
// cmd/callwarden wires it.
package asterisk
