package asterisk

import (
	"context"
	"time"

	"github.com/CyCoreSystems/ari/v5"
	"go.uber.org/zap"

	"github.com/callwarden/callwarden/enforce"
)

// outcome is what callwarden answered a request, whether the engine
// decided (reason is the engine's) or the adapter refused first (no call,
// PBX error, ...).
type outcome struct {
	allow    bool
	reason   string
	decision enforce.Decision
}

func decided(d enforce.Decision) outcome {
	return outcome{allow: d.Allow, reason: d.Reason.String(), decision: d}
}

func refused(reason string) outcome {
	return outcome{reason: reason, decision: enforce.Deny(enforce.ReasonNone)}
}

func (o outcome) verdict() string {
	if o.allow {
		return "allow"
	}
	return "deny"
}

// auditEntry is what an audit record says beside the outcome.
type auditEntry struct {
	verb     verb
	user     string
	action   enforce.Action
	target   string
	queue    string
	caller   string // unmasked; masked here per the requester's profile
	channels []string
	detail   string
	// requester is the channel that asked (the supervisor's phone): its
	// name and caller id go into every record, so even an unknown caller
	// (no user) can be traced back to a phone.
	requester ari.ChannelData
}

// auditTimeout bounds one audit write on the call path.
const auditTimeout = 2 * time.Second

// audited writes the audit record of outcome o for e, counts it, and
// returns the outcome to enforce. An allow whose audit cannot be written
// becomes a deny (audit_unavailable): nothing is enforced off the record.
func (a *Adapter) audited(ctx context.Context, e auditEntry, o outcome) outcome {
	rec := a.record(e, o)
	if err := a.writeAudit(ctx, rec); err != nil {
		a.log.Error("audit write failed", zap.String("user", e.user), zap.String("action", rec.Action), zap.Error(err))
		if o.allow {
			o = outcome{reason: reasonAuditFailed, decision: o.decision}
			o.decision.Allow = false
		}
	}
	a.m.decisions.WithLabelValues(e.verb.String(), rec.Action, o.verdict()).Inc()
	a.log.Info("decision", zap.String("verb", e.verb.String()), zap.String("user", e.user),
		zap.String("action", rec.Action), zap.String("target", e.target), zap.String("queue", e.queue),
		zap.String("decision", o.verdict()), zap.String("reason", o.reason), zap.Strings("channels", e.channels))
	return o
}

// auditResult writes a second record for an allow o that was audited
// (audited) and then enforced: its Outcome is enforce.OutcomeEnforced when
// failure is nil, else enforce.OutcomeFailed with the failure in Detail.
//
// The decision record is written before enforcement and stays the one
// that gates it (an allow that cannot be audited is never enforced); this
// record only completes it, so that an allow the PBX then refused does not
// read as a session that happened. A failure to write it is counted and
// logged, and does not undo an enforced allow that is already on record.
func (a *Adapter) auditResult(ctx context.Context, e auditEntry, o outcome, failure error) {
	rec := a.record(e, o)
	rec.Outcome = enforce.OutcomeEnforced
	if failure != nil {
		rec.Outcome = enforce.OutcomeFailed
		rec.Detail = joinDetail("failed after allow: "+failure.Error(), rec.Detail)
	}
	if err := a.writeAudit(ctx, rec); err != nil {
		a.log.Error("audit write of an outcome failed", zap.String("user", e.user), zap.String("action", rec.Action),
			zap.String("outcome", rec.Outcome), zap.Error(err))
	}
}

// record is the audit record of outcome o for e.
func (a *Adapter) record(e auditEntry, o outcome) enforce.AuditRecord {
	mask := o.decision.MaskDigits
	detail := e.detail
	if e.requester.ID != "" {
		detail = joinDetail(detail, "requested from "+e.requester.Name+" caller id "+
			orNone(enforce.Mask(callerNumber(e.requester), mask)))
	}
	return enforce.AuditRecord{
		Time:     a.o.Now().UTC(),
		Source:   "asterisk",
		User:     e.user,
		Action:   actionName(e.action),
		Target:   e.target,
		Queue:    e.queue,
		Decision: o.verdict(),
		Reason:   o.reason,
		Profile:  o.decision.Profile,
		Caller:   enforce.Mask(e.caller, mask),
		PBX:      a.o.PBX,
		Channels: e.channels,
		Detail:   detail,
		AskedBy:  a.askedBy(),
	}
}

// askedBy names this adapter as the asker of its decisions.
func (a *Adapter) askedBy() string { return "asterisk:" + a.o.PBX }

// writeAudit writes rec within auditTimeout, even after ctx ended (a
// shutdown still leaves a trail), and counts a failure.
func (a *Adapter) writeAudit(ctx context.Context, rec enforce.AuditRecord) error {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), auditTimeout)
	defer cancel()
	if err := a.o.Auditor.Audit(actx, rec); err != nil {
		a.m.auditFailures.Inc()
		return err
	}
	return nil
}

func joinDetail(parts ...string) string {
	out := ""
	for _, p := range parts {
		switch {
		case p == "":
		case out == "":
			out = p
		default:
			out += "; " + p
		}
	}
	return out
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func actionName(a enforce.Action) string {
	if a.Valid() {
		return a.String()
	}
	return "invalid"
}
