package asterisk

import (
	"context"
	"errors"

	"github.com/CyCoreSystems/ari/v5"
	"go.uber.org/zap"

	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/session"
)

// check serves Stasis(callwarden,check,<action>[,<target>]): it sets
// CALLWARDEN_DECISION and CALLWARDEN_REASON and continues the dialplan.
// An allow also tells the watchdog that this channel may run the matching
// ChanSpy/ExtenSpy/MixMonitor next.
func (a *Adapter) check(ctx context.Context, in *inbox, ch ari.ChannelData, rq request, log *zap.Logger) {
	e := auditEntry{verb: verbCheck, action: rq.action, target: rq.target, channels: []string{ch.ID}, requester: ch}
	o := a.decideCheck(ctx, ch, rq, &e, log)
	o = a.audited(ctx, e, o)
	if o.Allow {
		a.allowances.Allow(ch.ID, rq.action)
		a.shareAllowance(ctx, ch.ID, rq.action, log)
	}
	a.conclude(ctx, in, ch.ID, o, "", false)
}

func (a *Adapter) decideCheck(ctx context.Context, ch ari.ChannelData, rq request, e *auditEntry, log *zap.Logger) outcome {
	snap := a.snapshot()
	if snap == nil {
		return session.Decided(enforce.Decide(nil, &enforce.Request{}, a.o.Now()))
	}
	user, err := a.resolveCaller(ctx, snap, ch)
	if err != nil {
		log.Warn("cannot identify the requester", zap.Error(err))
		return session.Refused(session.ReasonPBXError)
	}
	e.user = user
	req := enforce.Request{User: user, Action: rq.action}
	if rq.target == "" {
		// The caller's own call: the queue is on this very channel.
		req.Agent = user
		e.target = user
		q, err := a.callQueue(ctx, call{agent: ch})
		if err != nil {
			log.Warn("cannot read the call's queue", zap.Error(err))
			return session.Refused(session.ReasonPBXError)
		}
		req.Queue = q
	} else {
		agent, ok := resolveTarget(snap, rq.target)
		if !ok {
			return session.Refused(session.ReasonUnknownTarget)
		}
		req.Agent, e.target = agent, agent
		c, err := a.findCall(ctx, snap, agent, ch.ID)
		switch {
		case errors.Is(err, errNoCall):
			// No live call: decided on the agent alone (a queue-scoped
			// grant then does not match).
		case err != nil:
			log.Warn("cannot find the target's call", zap.Error(err))
			return session.Refused(session.ReasonPBXError)
		default:
			req.Queue = c.queue
			e.caller = c.caller
			e.channels = append(e.channels, c.agent.ID)
		}
	}
	e.queue = req.Queue
	return session.Decided(enforce.Decide(snap, &req, a.o.Now()))
}
