// Package asterisk enforces callwarden's decisions on an Asterisk PBX through
// ARI. It is a translator between ARI and the PBX-neutral session core
// (pbx/session): it runs the Stasis application (default name "callwarden")
// that the dialplan's feature codes enter, turns each StasisStart into an
// enforce.Request (args.go, resolve.go), asks enforce.Decide, and carries
// out the core's decisions with ARI calls: a mixing bridge and snoop
// channels for a monitor session (monitor.go), live recordings of a snoop
// (record.go), playback (playback.go), channel variables for a check
// (check.go), sounds and hangups for a refusal (handle.go). Subscribed to
// every channel and bridge of the PBX (never subscribeAll, see
// ariclient.Client.EventsURL), its watchdog hangs up ChanSpy, ExtenSpy,
// MixMonitor and foreign snoop channels nobody allowed (watchdog.go), and
// at every (re)connection it ends what a previous process left behind
// (orphans.go). From the same events it keeps a model of the PBX's live
// channels and bridges (model.go), resynced by a listing at every
// (re)connection, so that a request finds its target's call without
// listing the PBX; while the model is not synced, requests list it.
//
// adapter.go holds the options and the Adapter; connection.go keeps the
// event websocket up (reconnecting with backoff, registering, setting the
// event filter, leaving cleanly); route.go hands each event to the call
// handlers following its channels, bridges and playbacks; ids.go names what
// callwarden creates in Asterisk; events.go peeks at each event's type and
// drops the types github.com/CyCoreSystems/ari/v5 cannot decode (that
// library panics on them); rest.go is the typed ARI REST view over the one
// ARI client (ariclient), whose every call takes a context and a deadline.
//
// ARI types never leave this package. It must not import cache, config,
// cmd or another PBX adapter: cmd/callwarden wires it.
package asterisk
