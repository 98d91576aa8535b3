// Package freeswitch enforces callwarden's decisions on a FreeSWITCH PBX
// through its event socket (ESL). It is a translator between ESL and the
// PBX-neutral session core (pbx/session), like pbx/asterisk is for ARI.
//
// This first slice holds the ESL plumbing and its safety rules, and the
// check verb:
//
//   - frame.go reads ESL frames (headers, Content-Length bodies,
//     percent-encoded values) for the outbound socket and for plain events;
//   - safe.go refuses control characters in every value sent to FreeSWITCH
//     (ESL is line framed: a CR or LF would inject a command);
//   - inbound.go keeps one inbound connection up (auth, "event plain"
//     subscription, reconnect with backoff); a command that times out
//     drops the connection, so that its late reply is never read as the
//     next command's. Commands are built by github.com/percipia/eslgo's
//     command package, but eslgo's Conn is not used: it hands a late reply
//     to the next command, hands each event to a goroutine of its own, and
//     its Close races with its own goroutines (go test -race fails), so
//     the framing is read here (frame.go);
//   - sequence.go restores Event-Sequence order, which FreeSWITCH and
//     eslgo's goroutine-per-event delivery both lose;
//   - outbound.go is the server the dialplan's socket application
//     ("async full") connects to: callwarden owns the listener, so Close
//     stops it and waits for the connections, and every connection has a
//     deadline; eslgo's outbound server cannot be stopped nor be handed an
//     accepted connection, so this side speaks ESL itself;
//   - channel.go reads the request (callwarden_action, _mode, _target) and
//     the requester (from the channel, never from a variable) out of the
//     connect reply; check.go decides, audits and answers a check;
//   - watchdog.go hangs up an eavesdrop and stops a recording that the
//     dialplan or another ESL client started without an allowing decision
//     (a check's allow, or callwarden's own start: Adapter.allow).
//   - model.go keeps FreeSWITCH's live channels from the inbound CHANNEL_*
//     events, indexed by the strings an identity resolves them by; each
//     inbound connection resyncs it with one listing (`show channels as
//     json`) merged under the events (tombstones keep destroyed channels
//     out), and a second listing once FreeSWITCH's rows caught up drops
//     ghosts. It answers only while synced and the connection is up, and
//     leaves an ambiguous agent (a leg being answered, two answered) to
//     show channels;
//   - monitor.go serves monitor requests: it finds the target's live call
//     (the channel model, its choice confirmed with uuid_exists; else, or
//     on a miss, show channels and uuid_dump on the outbound connection),
//     decides, and runs the session core's
//     monitor life cycle with eavesdrop on the supervisor's channel, over
//     the same outbound connection (its set-up and eavesdrop in one
//     write; a refused command breaks the eavesdrop off), after
//     registering an allowance so its own watchdog lets the eavesdrop
//     through.
//
// Mode switches by DTMF during a monitor session, recording (uuid_record)
// and playback are not implemented yet: such a request is refused and
// audited.
//
// ESL types never leave this package. It must not import cache, config,
// cmd or another PBX adapter: cmd/callwarden wires it.
package freeswitch
