// Package session is the PBX-neutral core of enforcing callwarden's
// decisions on a PBX: what an answer to a requester is (Outcome) and the
// adapter-level refusal reasons; the audit records of decisions, of their
// enforcement, of bypasses and of orphans (Audit); the monitor session's
// life cycle (enforce an allow, re-decide every mode switch, end) driven
// through the small PBX interface below; recording metadata and its rules
// (ids, who started, paused, resumed and stopped it, the target's active
// recording); the grants' max_duration and max_pause, on timers (limits.go);
// and the watchdog's bookkeeping of what a check allowed a
// channel (Allowances).
//
// A PBX adapter (pbx/asterisk today, pbx/freeswitch next) is a translator:
// it turns its PBX's events into calls of this package and implements PBX
// with its own protocol (ARI snoop and bridge; ESL eavesdrop and
// uuid_record). What the requester hears or reads (sounds, channel
// variables) is the adapter's job. This package imports enforce only: never
// an adapter, cache, config or cmd.
package session

import "github.com/callwarden/callwarden/enforce"

// Adapter-level reasons, for refusals made before or beside the engine
// (the engine's own reasons are enforce.Reason codes).
const (
	ReasonNoCall           = "target_not_in_call" // the target has no live, answered call
	ReasonNoRecording      = "no_recording"       // no such recording, or no active one
	ReasonAlreadyRecording = "already_recording"  // a second recording of the same call
	ReasonPBXError         = "pbx_error"          // the PBX failed to answer or act
	ReasonAuditFailed      = "audit_unavailable"  // an allow whose audit record could not be written
	ReasonNoDecision       = "no_allow_decision"  // a bypass the watchdog caught
	ReasonWatchdogLease    = "watchdog_lease"     // a daemon's watchdog started acting (it took the PBX's lease, or acts without it)
	ReasonInvalid          = "invalid_request"    // malformed request arguments
	ReasonUnknownTarget    = "unknown_target"     // the target names no user
	ReasonOrphaned         = "orphaned_session"   // a session a previous process left behind
)

// Outcome is what callwarden answered a request, whether the engine
// decided (Reason is the engine's) or the adapter refused first (no call,
// PBX error, ...).
type Outcome struct {
	Allow    bool
	Reason   string
	Decision enforce.Decision
}

// Decided is the outcome of an engine decision.
func Decided(d enforce.Decision) Outcome {
	return Outcome{Allow: d.Allow, Reason: d.Reason.String(), Decision: d}
}

// Refused is a refusal with an adapter-level reason.
func Refused(reason string) Outcome {
	return Outcome{Reason: reason, Decision: enforce.Deny(enforce.ReasonNone)}
}

// Verdict is "allow" or "deny".
func (o Outcome) Verdict() string {
	if o.Allow {
		return "allow"
	}
	return "deny"
}
