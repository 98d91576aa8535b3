package asterisk

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/CyCoreSystems/ari/v5"
	"go.uber.org/zap"

	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/session"
)

// monitorTarget gathers what every decision of a monitor session needs.
type monitorTarget struct {
	user  string // the requester
	agent string // the target's user id
	call  call
}

// decideMonitor resolves the requester and the target's call and decides
// mode; it never returns allow on an error.
func (a *Adapter) decideMonitor(ctx context.Context, ch ari.ChannelData, rq request, m mode) (monitorTarget, auditEntry, outcome) {
	e := auditEntry{verb: verbMonitor, action: m.Action(), target: rq.target, channels: []string{ch.ID}, requester: ch}
	snap := a.snapshot()
	if snap == nil {
		return monitorTarget{}, e, session.Decided(enforce.Decide(nil, &enforce.Request{}, a.o.Now()))
	}
	user, err := a.resolveCaller(ctx, snap, ch)
	if err != nil {
		a.log.Warn("cannot identify the requester", zap.String("channel", ch.ID), zap.Error(err))
		return monitorTarget{}, e, session.Refused(session.ReasonPBXError)
	}
	e.user = user
	agent, ok := resolveTarget(snap, rq.target)
	if !ok {
		return monitorTarget{}, e, session.Refused(session.ReasonUnknownTarget)
	}
	e.target = agent
	c, err := a.findCall(ctx, snap, agent, ch.ID)
	if err != nil {
		if !errors.Is(err, errNoCall) {
			a.log.Warn("cannot find the target's call", zap.String("target", agent), zap.Error(err))
			return monitorTarget{}, e, session.Refused(session.ReasonPBXError)
		}
		return monitorTarget{}, e, session.Refused(session.ReasonNoCall)
	}
	e.queue, e.caller = c.queue, c.caller
	e.channels = append(e.channels, c.agent.ID)
	d := enforce.Decide(snap, &enforce.Request{User: user, Action: m.Action(), Queue: c.queue, Agent: agent}, a.o.Now())
	return monitorTarget{user: user, agent: agent, call: c}, e, session.Decided(d)
}

// monitor serves Stasis(callwarden,monitor,<mode>,<target>): decide, then
// snoop on the target's channel with the mode's directions and bridge the
// supervisor to the snoop; DTMF 4/5/6 switch modes, each switch decided
// again; hanging up either side ends the session and removes the snoop and
// the bridge.
func (a *Adapter) monitor(ctx context.Context, in *inbox, sup ari.ChannelData, rq request, started time.Time, log *zap.Logger) {
	tgt, entry, o := a.decideMonitor(ctx, sup, rq, rq.mode)
	o = a.audited(ctx, entry, o)
	if !o.Allow {
		a.conclude(ctx, in, sup.ID, o, a.o.RefusalSound, !rq.continueOnDeny)
		return
	}
	log = log.With(zap.String("user", tgt.user), zap.String("target", tgt.agent), zap.String("target_channel", tgt.call.agent.ID))

	s := &monitorSession{a: a, in: in, sup: sup.ID, target: tgt.call.agent.ID, bridge: a.newID(kindBridge), log: log, entry: entry, allowed: o}
	defer s.teardown(ctx)
	a.follow(in, s.bridge, s.target)
	a.markOurs(s.bridge)
	if sup.State != "Up" {
		if err := a.rest.answer(ctx, sup.ID); err != nil {
			s.fail(ctx, "answer the supervisor", err)
			return
		}
	}
	if err := a.rest.createBridge(ctx, s.bridge, "callwarden-monitor"); err != nil {
		s.fail(ctx, "create the bridge", err)
		return
	}
	s.bridgeUp = true
	if err := a.rest.addToBridge(ctx, s.bridge, sup.ID); err != nil {
		s.fail(ctx, "bridge the supervisor", err)
		return
	}
	if err := s.attach(ctx, rq.mode); err != nil {
		s.fail(ctx, "attach the snoop", err)
		return
	}
	a.m.intercept.Observe(time.Since(started).Seconds())
	a.auditResult(ctx, entry, o, nil)
	a.setOutcome(ctx, sup.ID, o)
	log.Info("monitoring", zap.String("mode", rq.mode.String()), zap.Duration("intercept", time.Since(started)))
	if o.Decision.NotifyTarget {
		a.spawn(ctx, func(ctx context.Context) { a.notifyTarget(ctx, tgt.call.agent.ID) })
	}

	for {
		select {
		case ev := <-in.ch:
			switch e := ev.(type) {
			case *ari.ChannelDtmfReceived:
				if e.Channel.ID != sup.ID {
					continue
				}
				m, ok := modeForDigit(e.Digit)
				if !ok || m == s.mode {
					continue
				}
				s.switchMode(ctx, sup, rq, m)
				continue
			}
			if gone(ev, sup.ID) {
				log.Info("supervisor hung up; monitoring ended")
				return
			}
			if gone(ev, s.snoop) || gone(ev, s.target) {
				log.Info("target call ended; monitoring ended")
				s.hangupSup = true
				return
			}
		case <-ctx.Done():
			s.hangupSup = true
			return
		}
	}
}

// monitorSession is one supervisor bridged to one snoop.
type monitorSession struct {
	a         *Adapter
	in        *inbox
	sup       string
	target    string
	bridge    string
	bridgeUp  bool
	snoop     string
	mode      mode
	hangupSup bool
	log       *zap.Logger
	entry     auditEntry // the allowing decision's record, for its outcome's
	allowed   outcome
}

// attach creates a snoop with m's directions, waits until it is in Stasis,
// bridges it, and only then drops the previous snoop: a switch never leaves
// the supervisor on a snoop of the old mode.
func (s *monitorSession) attach(ctx context.Context, m mode) error {
	id := s.a.newID(kindSnoop)
	s.a.markOurs(id)
	s.a.follow(s.in, id)
	spy, whisper := directions(m)
	args := "snoop," + m.String() + ",spy=" + string(spy) + ",whisper=" + string(whisper)
	if _, err := s.a.rest.snoop(ctx, s.target, id, s.a.o.App, args, spy, whisper); err != nil {
		return err
	}
	if err := s.a.waitStasis(ctx, s.in, id, s.sup); err != nil {
		s.a.hangupQuiet(ctx, id)
		return err
	}
	if err := s.a.rest.addToBridge(ctx, s.bridge, id); err != nil {
		s.a.hangupQuiet(ctx, id)
		return err
	}
	old := s.snoop
	s.snoop, s.mode = id, m
	if old != "" {
		s.a.hangupQuiet(ctx, old)
	}
	return nil
}

// switchMode decides the new mode again; a refusal keeps the current mode
// and plays the refusal to the supervisor.
func (s *monitorSession) switchMode(ctx context.Context, sup ari.ChannelData, rq request, m mode) {
	_, entry, o := s.a.decideMonitor(ctx, sup, rq, m)
	entry.detail = "switch from " + s.mode.String() + " to " + m.String()
	o = s.a.audited(ctx, entry, o)
	if o.Allow {
		err := s.attach(ctx, m)
		s.a.auditResult(ctx, entry, o, err)
		if err != nil {
			s.log.Warn("mode switch failed; staying in the current mode", zap.String("mode", s.mode.String()), zap.Error(err))
			return
		}
		s.log.Info("mode switched", zap.String("mode", m.String()))
		return
	}
	s.log.Info("mode switch refused", zap.String("from", s.mode.String()), zap.String("to", m.String()), zap.String("reason", o.Reason))
	pb := s.a.newID(kindPlay)
	if err := s.a.rest.play(ctx, s.sup, pb, s.a.o.RefusalSound); err != nil {
		s.log.Debug("cannot play the refusal", zap.Error(err))
	}
}

// fail records that an allowed session could not be set up (outcome
// failed, so the audit trail does not claim a supervisor listened), and
// ends it: the supervisor is hung up, never left in Stasis.
func (s *monitorSession) fail(ctx context.Context, what string, err error) {
	s.log.Error("monitor setup failed; hanging up", zap.String("step", what), zap.Error(err))
	s.a.auditResult(ctx, s.entry, s.allowed, fmt.Errorf("%s: %w", what, err))
	s.a.setOutcome(ctx, s.sup, session.Refused(session.ReasonPBXError))
	s.hangupSup = true
}

// teardown removes the snoop and the bridge and, when the session ended
// on the target's side or on an error, hangs up the supervisor.
func (s *monitorSession) teardown(ctx context.Context) {
	ctx, cancel := s.a.cleanupCtx(ctx)
	defer cancel()
	// The bridge goes first: a snoop hung up while Asterisk is tearing its
	// bridge down can be left behind, out of Stasis.
	if s.bridgeUp {
		if err := s.a.rest.destroyBridge(ctx, s.bridge); err != nil && !errors.Is(err, ErrNotFound) {
			s.log.Warn("cannot destroy the monitor bridge", zap.String("bridge", s.bridge), zap.Error(err))
		}
	}
	// A bridge left behind is no longer this process's: the next sweep
	// for orphans destroys it.
	s.a.forget(s.bridge)
	if s.snoop != "" {
		s.a.hangupQuiet(ctx, s.snoop)
	}
	if s.hangupSup {
		s.a.hangupQuiet(ctx, s.sup)
	}
}

// hangupQuiet hangs a channel up, ignoring that it is already gone.
func (a *Adapter) hangupQuiet(ctx context.Context, id string) {
	if err := a.rest.hangup(ctx, id, "normal"); err != nil && !errors.Is(err, ErrNotFound) {
		a.log.Warn("cannot hang up", zap.String("channel", id), zap.Error(err))
	}
}

// notifyTarget plays the notify sound to the monitored agent only, through
// a short-lived snoop that whispers towards the agent and hears nothing.
func (a *Adapter) notifyTarget(ctx context.Context, target string) {
	id := a.newID(kindNotify)
	a.markOurs(id)
	in := a.subscribe(id)
	defer a.unsubscribe(in)
	cctx, cancel := a.cleanupCtx(ctx)
	defer cancel()
	defer a.hangupQuiet(cctx, id)
	if _, err := a.rest.snoop(ctx, target, id, a.o.App, "notify", ari.DirectionNone, ari.DirectionOut); err != nil {
		a.log.Warn("cannot notify the monitored agent", zap.String("channel", target), zap.Error(err))
		return
	}
	if err := a.waitStasis(ctx, in, id, target); err != nil {
		a.log.Warn("cannot notify the monitored agent", zap.String("channel", target), zap.Error(err))
		return
	}
	a.playAndWait(ctx, in, id, a.o.NotifySound, 5*time.Second)
}
