package asterisk

import (
	"context"
	"errors"
	"fmt"
	"sync"
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
// run the session core's monitor life cycle (session.Monitor) on ARI: the
// supervisor bridged to a snoop on the target's channel with the mode's
// directions; DTMF 4/5/6 switch modes, each switch decided again; hanging
// up either side ends the session and removes the snoop and the bridge.
func (a *Adapter) monitor(ctx context.Context, in *inbox, sup ari.ChannelData, rq request, started time.Time, log *zap.Logger) {
	tgt, entry, o := a.decideMonitor(ctx, sup, rq, rq.mode)
	if o.Allow {
		entry.session = session.NewSessionID() // the decision record names the session too
	}
	o = a.audited(ctx, entry, o)
	if !o.Allow {
		a.conclude(ctx, in, sup.ID, o, a.o.RefusalSound, !rq.continueOnDeny)
		return
	}
	log = log.With(zap.String("user", tgt.user), zap.String("target", tgt.agent), zap.String("target_channel", tgt.call.agent.ID))
	pbx := &ariEavesdropper{a: a, in: in, sup: sup, log: log}
	s, err := session.StartMonitor(ctx, pbx, a.audit, session.MonitorSpec{
		Supervisor: sup.ID, Target: tgt.call.agent.ID, Mode: rq.mode,
		Entry: entry.entry(), Allowed: o, RefusalSound: a.o.RefusalSound, Registry: a.o.Sessions,
		Downgrades: true,
	})
	if err != nil {
		// Audited as failed by the core; the supervisor is told and hung
		// up, never left in Stasis.
		log.Error("monitor setup failed; hanging up", zap.Error(err))
		cctx, cancel := a.cleanupCtx(ctx)
		a.setOutcome(cctx, sup.ID, session.Refused(session.ReasonPBXError))
		a.hangupQuiet(cctx, sup.ID)
		cancel()
		return
	}
	cause := enforce.CauseShutdown
	defer func() {
		cctx, cancel := a.cleanupCtx(ctx)
		defer cancel()
		_ = s.End(cctx, cause)
	}()
	if tgt.call.peer != nil {
		// The queue may be set on the customer's channel (QUEUENAME):
		// its changes are the call's (ChannelVarset below).
		a.follow(in, tgt.call.peer.ID)
	}
	// The intercept is the supervisor's wait: up to the bridging, not
	// the session's registration and audit that follow it.
	intercept := pbx.bridgedAt.Sub(started)
	a.m.intercept.Observe(intercept.Seconds())
	a.setOutcome(ctx, sup.ID, o)
	log.Info("monitoring", zap.String("mode", rq.mode.String()), zap.Duration("intercept", intercept))
	if o.Decision.NotifyTarget {
		a.spawn(ctx, func(ctx context.Context) { a.notifyTarget(ctx, tgt.call.agent.ID) })
	}
	redecide := func(ctx context.Context, m mode) (session.Entry, outcome) {
		_, e, o := a.decideMonitor(ctx, sup, rq, m)
		return e.entry(), o
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
				if !ok || m == s.Mode() {
					continue
				}
				from := s.Mode()
				r := s.Switch(ctx, m, redecide)
				a.countDecision(verbMonitor, m.Action(), r.Outcome)
				switch {
				case !r.Outcome.Allow:
					log.Info("mode switch refused", zap.String("from", from.String()), zap.String("to", m.String()), zap.String("reason", r.Outcome.Reason))
				case r.Err != nil:
					log.Warn("mode switch failed; staying in the current mode", zap.String("mode", s.Mode().String()), zap.Error(r.Err))
				default:
					log.Info("mode switched", zap.String("mode", m.String()))
				}
				continue
			case *ari.ChannelVarset:
				// A queue variable changed on the target's channel or its
				// peer: the call may have moved queue. It is read again as
				// at the start (the same precedence) and the registry
				// decides the session again with it.
				q, err := a.currentQueue(ctx, tgt.call)
				if err != nil {
					log.Warn("cannot read the call's queue after it changed; deciding nothing", zap.Error(err))
					continue
				}
				a.o.Sessions.TargetMoved(ctx, tgt.call.agent.ID, q)
				continue
			}
			if gone(ev, sup.ID) {
				log.Info("supervisor hung up; monitoring ended")
				cause = enforce.CauseRequesterHangup
				return
			}
			if gone(ev, pbx.tap.snoop) || gone(ev, pbx.tap.target) {
				log.Info("target call ended; monitoring ended")
				cause = enforce.CauseTargetHangup
				return
			}
		case <-s.Redecided():
			// The policy or a window changed: the current mode is no
			// longer allowed, a lesser one is.
			from := s.Mode()
			if r := s.ApplyRedecision(ctx); r.Err != nil {
				log.Warn("downgrade failed; ending the session", zap.Error(r.Err))
			} else if s.Mode() != from {
				log.Info("mode downgraded on re-decision", zap.String("from", from.String()), zap.String("mode", s.Mode().String()))
			}
		case <-s.Done():
			// An administrator's end, or a re-decision that denied.
			cause = s.EndCause()
			log.Info("monitoring ended", zap.String("cause", cause), zap.String("by", s.EndedBy()))
			return
		case <-s.Expired():
			log.Info("monitoring ended: max_duration reached")
			cause = enforce.CauseMaxDuration
			return
		case <-ctx.Done():
			return
		}
	}
}

// ariEavesdropper is session.Eavesdropper on ARI for one supervisor's
// channel: a mixing bridge holding the supervisor and a snoop on the
// target.
type ariEavesdropper struct {
	a   *Adapter
	in  *inbox
	sup ari.ChannelData
	log *zap.Logger
	tap *ariTap // the session's tap, once Eavesdrop succeeded
	// bridgedAt is when Eavesdrop had the supervisor and the snoop bridged.
	bridgedAt time.Time
}

// Eavesdrop answers the supervisor, creates the bridge and attaches a
// snoop in mode m, all at once, then bridges the supervisor and the snoop
// in one call. A muted snoop is muted before it is bridged, so a muted
// session never hears the call. On any error it removes what it created.
func (p *ariEavesdropper) Eavesdrop(ctx context.Context, supervisor, target string, m mode, muted bool) (session.Tap, error) {
	a := p.a
	t := &ariTap{a: a, in: p.in, sup: supervisor, target: target, bridge: a.newID(kindBridge), muted: muted, log: p.log}
	a.follow(p.in, t.bridge, t.target)
	a.markOurs(t.bridge)
	var (
		wg                   sync.WaitGroup
		answerErr, bridgeErr error
	)
	if p.sup.State != "Up" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := a.rest.answer(ctx, supervisor); err != nil {
				answerErr = fmt.Errorf("answer the supervisor: %w", err)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := a.rest.createBridge(ctx, t.bridge, "callwarden-monitor"); err != nil {
			bridgeErr = fmt.Errorf("create the bridge: %w", err)
		}
	}()
	// The snoop is attached here, in this goroutine: only it reads the
	// inbox (waitStasis) until Eavesdrop returns.
	snoop, snoopErr := t.attach(ctx, m)
	wg.Wait()
	// bridgeUp even when the creation failed: a timed-out creation may
	// have made the bridge all the same, and Close ignores a missing one.
	t.bridgeUp = true
	err := errors.Join(answerErr, bridgeErr, snoopErr)
	if err == nil {
		if err = a.rest.addToBridge(ctx, t.bridge, supervisor, snoop); err != nil {
			err = fmt.Errorf("bridge the supervisor and the snoop: %w", err)
		}
	}
	if err != nil {
		cctx, cancel := a.cleanupCtx(ctx)
		defer cancel()
		if snoop != "" {
			a.hangupQuiet(cctx, snoop)
		}
		_ = t.Close(cctx)
		return nil, err
	}
	p.bridgedAt = time.Now()
	t.snoop = snoop
	p.tap = t
	return t, nil
}

// Play plays media to the channel without waiting for it.
func (p *ariEavesdropper) Play(ctx context.Context, channel, media string) error {
	return p.a.rest.play(ctx, channel, p.a.newID(kindPlay), media)
}

// Hangup hangs the channel up; one already gone is not an error.
func (p *ariEavesdropper) Hangup(ctx context.Context, channel string) error {
	if err := p.a.rest.hangup(ctx, channel, "normal"); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	return nil
}

// ariTap is one supervisor bridged to one snoop (session.Tap). The
// supervisor hears the call only through the snoop, in every mode, so
// muting the snoop's audio into the bridge (ARI mute, direction in) mutes
// the call for the supervisor, and nothing else: whisper and barge still
// carry the supervisor's voice to the call, and callwarden's own sounds
// (a refused switch) still reach the supervisor.
type ariTap struct {
	a        *Adapter
	in       *inbox
	sup      string
	target   string
	bridge   string
	bridgeUp bool
	snoop    string
	muted    bool
	log      *zap.Logger
}

// SetMode attaches a snoop with m's directions (attach), bridges it, and
// only then drops the previous snoop: a switch never leaves the supervisor
// on a snoop of the old mode, nor lets a muted supervisor hear the new one.
func (t *ariTap) SetMode(ctx context.Context, m mode) error {
	id, err := t.attach(ctx, m)
	if err != nil {
		return err
	}
	if err := t.a.rest.addToBridge(ctx, t.bridge, id); err != nil {
		t.a.hangupQuiet(ctx, id)
		return err
	}
	old := t.snoop
	t.snoop = id
	if old != "" {
		t.a.hangupQuiet(ctx, old)
	}
	return nil
}

// attach creates a snoop on the target with m's directions, waits until
// it is in Stasis and mutes it if the tap is muted; it returns the snoop's
// id, not yet bridged. On error it hangs the snoop up and returns "".
func (t *ariTap) attach(ctx context.Context, m mode) (string, error) {
	id := t.a.newID(kindSnoop)
	t.a.markOurs(id)
	t.a.follow(t.in, id)
	spy, whisper := directions(m)
	args := "snoop," + m.String() + ",spy=" + string(spy) + ",whisper=" + string(whisper)
	if _, err := t.a.rest.snoop(ctx, t.target, id, t.a.o.App, args, spy, whisper); err != nil {
		// A snoop whose creation timed out may exist all the same.
		t.a.hangupQuiet(ctx, id)
		return "", fmt.Errorf("attach the snoop: %w", err)
	}
	if err := t.a.waitStasis(ctx, t.in, id, t.sup); err != nil {
		t.a.hangupQuiet(ctx, id)
		return "", fmt.Errorf("attach the snoop: %w", err)
	}
	if t.muted {
		if err := t.a.rest.mute(ctx, id, true); err != nil {
			t.a.hangupQuiet(ctx, id)
			return "", fmt.Errorf("mute the snoop: %w", err)
		}
	}
	return id, nil
}

// Mute mutes or unmutes the snoop's audio into the bridge.
func (t *ariTap) Mute(ctx context.Context, on bool) error {
	if t.snoop != "" {
		if err := t.a.rest.mute(ctx, t.snoop, on); err != nil {
			return fmt.Errorf("mute the snoop: %w", err)
		}
	}
	t.muted = on
	return nil
}

// Close removes the bridge and the snoop; the supervisor stays.
func (t *ariTap) Close(ctx context.Context) error {
	// The bridge goes first: a snoop hung up while Asterisk is tearing its
	// bridge down can be left behind, out of Stasis.
	var err error
	if t.bridgeUp {
		if err = t.a.rest.destroyBridge(ctx, t.bridge); err != nil && !errors.Is(err, ErrNotFound) {
			t.log.Warn("cannot destroy the monitor bridge", zap.String("bridge", t.bridge), zap.Error(err))
		} else {
			err = nil
		}
	}
	// A bridge left behind is no longer this process's: the next sweep
	// for orphans destroys it.
	t.a.forget(t.bridge)
	if t.snoop != "" {
		t.a.hangupQuiet(ctx, t.snoop)
	}
	return err
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
