package freeswitch

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.uber.org/zap"

	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/session"
)

// handleOutbound serves one connection of the socket application: connect,
// read the request and the requester off the channel, answer, exit.
func (a *Adapter) handleOutbound(ctx context.Context, oc *outConn) {
	log := a.log.With(zap.String("remote", oc.c.RemoteAddr().String()))
	defer func() {
		if oc.skipped > 0 {
			a.m.ignored.WithLabelValues("header").Add(float64(oc.skipped))
		}
	}()
	f, err := oc.command(ctx, "connect")
	if err != nil || f.contentType() != typeReply || !f.ok() {
		log.Warn("outbound socket: no usable connect reply", zap.Error(err), zap.String("reply", f.reply()))
		return
	}
	ch, err := parseChannel(f.header)
	if err != nil {
		log.Warn("outbound socket: connect reply names no channel", zap.Error(err))
		return
	}
	log = log.With(zap.String("call_id", ch.uuid), zap.String("channel", ch.name))
	rq, err := parseRequest(ch.vars)
	e := session.Entry{Channels: []string{ch.uuid},
		Requester: session.Requester{Channel: ch.uuid, Name: ch.name, CallerNumber: ch.number}}
	var o session.Outcome
	switch {
	case err != nil:
		e.Detail = err.Error()
		o = session.Refused(session.ReasonInvalid)
	case rq.verb == verbMonitor:
		a.serveMonitor(ctx, oc, ch, rq, e, log)
		return
	case rq.verb == verbRecord:
		a.serveRecord(ctx, oc, ch, rq, e, log)
		return
	case rq.verb == verbPlayback:
		a.servePlayback(ctx, oc, ch, rq, e, log)
		return
	default:
		e.Action = rq.action
		o = a.decideCheck(ctx, oc, ch, rq, &e, log)
	}
	o = a.audited(ctx, rq.verb, e, o, log)
	if rq.verb == verbCheck && o.Allow {
		// The dialplan starts the application once it reads the answer.
		a.allow(ch.uuid, rq.action)
	}
	a.answer(ctx, oc, ch, o, log)
}

// decideCheck decides a check: the requester from the channel, the target
// (a user or an identity) and its live call's queue or, without a target,
// the requester's own call whose queue the dialplan or mod_callcenter set
// on this channel. As on Asterisk, a target with no live call is decided
// on the agent alone (a queue-scoped grant then does not match).
func (a *Adapter) decideCheck(ctx context.Context, oc *outConn, ch channel, rq request, e *session.Entry, log *zap.Logger) session.Outcome {
	snap := a.o.Snapshot()
	if snap == nil {
		return session.Decided(enforce.Decide(nil, &enforce.Request{}, a.o.Now()))
	}
	user := resolveRequester(snap, ch)
	e.User = user
	req := enforce.Request{User: user, Action: rq.action}
	if rq.target == "" {
		req.Agent, e.Target = user, user
		req.Queue = strings.TrimSpace(ch.vars[varQueue])
		if req.Queue == "" {
			req.Queue = strings.TrimSpace(ch.vars[varCCQueue])
		}
	} else {
		agent, ok := snap.ResolveIdentity(rq.target)
		if !ok {
			e.Target = rq.target
			return session.Refused(session.ReasonUnknownTarget)
		}
		req.Agent, e.Target = agent, agent
		c, err := a.findCall(ctx, oc, snap, agent, ch.uuid)
		switch {
		case errors.Is(err, errNoCall):
		case err != nil:
			log.Warn("cannot find the target's call", zap.String("target", agent), zap.Error(err))
			return session.Refused(session.ReasonPBXError)
		default:
			req.Queue, e.Caller = c.queue, c.caller
			e.Channels = append(e.Channels, c.uuid)
		}
	}
	e.Queue = req.Queue
	return session.Decided(enforce.Decide(snap, &req, a.o.Now()))
}

// audited writes the decision's record and counts it; an allow whose
// record cannot be written becomes a deny.
func (a *Adapter) audited(ctx context.Context, v verb, e session.Entry, o session.Outcome, log *zap.Logger) session.Outcome {
	o, err := a.audit.Decision(ctx, e, o)
	action := session.ActionName(e.Action)
	if err != nil {
		log.Error("audit write failed", zap.String("user", e.User), zap.String("action", action), zap.Error(err))
	}
	a.m.decisions.WithLabelValues(v.String(), action, o.Verdict()).Inc()
	log.Info("decision", zap.String("verb", v.String()), zap.String("user", e.User), zap.String("action", action),
		zap.String("target", e.Target), zap.String("queue", e.Queue), zap.String("decision", o.Verdict()),
		zap.String("reason", o.Reason))
	return o
}

// answer sets callwarden_decision and callwarden_reason on the channel
// (uuid_setvar answers once the variable is set, unlike an asynchronous
// sendmsg) and exits, which returns the channel to the dialplan.
func (a *Adapter) answer(ctx context.Context, oc *outConn, ch channel, o session.Outcome, log *zap.Logger) {
	if !a.setOutcome(ctx, oc, ch, o, log) {
		return
	}
	if _, err := oc.command(ctx, "exit"); err != nil && !errors.Is(err, ErrHungUp) {
		log.Debug("exit", zap.Error(err))
	}
}

// setOutcome sets callwarden_decision and callwarden_reason on the
// channel; false when the connection must be dropped.
func (a *Adapter) setOutcome(ctx context.Context, oc *outConn, ch channel, o session.Outcome, log *zap.Logger) bool {
	// Both in one write: the second needs nothing of the first's reply.
	fs, err := oc.pipeline(ctx, []string{"api uuid_setvar " + ch.uuid + " " + varDecision + " " + o.Verdict()},
		[]string{"api uuid_setvar " + ch.uuid + " " + varReason + " " + o.Reason})
	for i := 0; err == nil && i < len(fs); i++ {
		if !fs[i].ok() {
			err = fmt.Errorf("%w: uuid_setvar: %s", ErrCommandFailed, strings.TrimSpace(fs[i].reply()))
		}
	}
	if err != nil {
		// The stream may be out of step: drop the connection; the dialplan
		// then finds no decision and must refuse.
		log.Warn("cannot set the decision's channel variables", zap.Error(err))
		return false
	}
	return true
}
