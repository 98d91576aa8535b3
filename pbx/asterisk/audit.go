package asterisk

import (
	"context"
	"time"

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
}

// auditTimeout bounds one audit write on the call path.
const auditTimeout = 2 * time.Second

// audited writes the audit record of outcome o for e, counts it, and
// returns the outcome to enforce. An allow whose audit cannot be written
// becomes a deny (audit_unavailable): nothing is enforced off the record.
func (a *Adapter) audited(ctx context.Context, e auditEntry, o outcome) outcome {
	rec := enforce.AuditRecord{
		Time:     a.o.Now().UTC(),
		Source:   "asterisk",
		User:     e.user,
		Action:   actionName(e.action),
		Target:   e.target,
		Queue:    e.queue,
		Decision: o.verdict(),
		Reason:   o.reason,
		Profile:  o.decision.Profile,
		Caller:   enforce.Mask(e.caller, o.decision.MaskDigits),
		PBX:      a.o.PBX,
		Channels: e.channels,
		Detail:   e.detail,
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), auditTimeout)
	err := a.o.Auditor.Audit(actx, rec)
	cancel()
	if err != nil {
		a.m.auditFailures.Inc()
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

func actionName(a enforce.Action) string {
	if a.Valid() {
		return a.String()
	}
	return "invalid"
}
