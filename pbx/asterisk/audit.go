package asterisk

import (
	"context"
	"time"

	"github.com/CyCoreSystems/ari/v5"
	"go.uber.org/zap"

	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/session"
)

// outcome is what callwarden answered a request (see session.Outcome).
type outcome = session.Outcome

// auditEntry is what an audit record says beside the outcome, in ARI's
// terms; entry translates it for the session core.
type auditEntry struct {
	verb     verb
	user     string
	action   enforce.Action
	target   string
	queue    string
	caller   string // unmasked; masked by the core per the requester's profile
	channels []string
	detail   string
	session  string        // the monitor session an allow starts (session.NewSessionID)
	duration time.Duration // what a recording stop or resume closed (session.ChangeDuration)
	// recordedAt is when the recording acted on was made.
	recordedAt time.Time
	recording  string // the recording a playback is about
	// requester is the channel that asked (the supervisor's phone).
	requester ari.ChannelData
}

func (e auditEntry) entry() session.Entry {
	s := session.Entry{User: e.user, Action: e.action, Target: e.target, Queue: e.queue, Caller: e.caller,
		Channels: e.channels, Detail: e.detail, Session: e.session, Duration: e.duration, RecordedAt: e.recordedAt,
		Recording: e.recording}
	if e.requester.ID != "" {
		s.Requester = session.Requester{Channel: e.requester.ID, Name: e.requester.Name, CallerNumber: callerNumber(e.requester)}
	}
	return s
}

// audited writes the audit record of outcome o for e, counts it, and
// returns the outcome to enforce: an allow whose audit cannot be written
// becomes a deny (audit_unavailable).
func (a *Adapter) audited(ctx context.Context, e auditEntry, o outcome) outcome {
	o, err := a.audit.Decision(ctx, e.entry(), o)
	action := session.ActionName(e.action)
	if err != nil {
		a.log.Error("audit write failed", zap.String("user", e.user), zap.String("action", action), zap.Error(err))
	}
	a.countDecision(e.verb, e.action, o)
	a.log.Info("decision", zap.String("verb", e.verb.String()), zap.String("user", e.user),
		zap.String("action", action), zap.String("target", e.target), zap.String("queue", e.queue),
		zap.String("decision", o.Verdict()), zap.String("reason", o.Reason), zap.Strings("channels", e.channels))
	return o
}

// auditResult writes the result record of an allow that was enforced
// (session.Audit.Result); a failure to write it is logged.
func (a *Adapter) auditResult(ctx context.Context, e auditEntry, o outcome, failure error) {
	if rec, err := a.audit.Result(ctx, e.entry(), o, failure); err != nil {
		a.log.Error("audit write of an outcome failed", zap.String("user", e.user), zap.String("action", rec.Action),
			zap.String("outcome", rec.Outcome), zap.Error(err))
	}
}

// countDecision counts an audited decision.
func (a *Adapter) countDecision(v verb, action enforce.Action, o outcome) {
	a.m.decisions.WithLabelValues(v.String(), session.ActionName(action), o.Verdict()).Inc()
}
