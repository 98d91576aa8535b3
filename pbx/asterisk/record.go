package asterisk

import (
	"context"
	"errors"
	"fmt"

	"github.com/CyCoreSystems/ari/v5"
	"go.uber.org/zap"

	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/session"
)

// recordOp serves Stasis(callwarden,record,<op>[,<target>]). Without a
// target the requester acts on its own call (an agent pausing its
// recording while a card number is read out). Recordings are ARI live
// recordings of a snoop channel on the target's call, so the call itself
// never enters Stasis; their metadata lives in the RecordingStore.
func (a *Adapter) recordOp(ctx context.Context, in *inbox, ch ari.ChannelData, rq request, log *zap.Logger) {
	e := auditEntry{verb: verbRecord, action: rq.op.Action(), target: rq.target, channels: []string{ch.ID}, requester: ch}
	o, act := a.decideRecord(ctx, ch, rq, &e, log)
	o = a.audited(ctx, e, o)
	if o.Allow && act != nil {
		err := act(ctx)
		a.auditResult(ctx, e, o, err)
		if err != nil {
			log.Error("recording operation failed", zap.String("op", rq.op.String()), zap.Error(err))
			o = session.Refused(session.ReasonPBXError)
		}
	}
	sound := a.o.NotifySound
	if !o.Allow {
		sound = a.o.RefusalSound
	}
	a.conclude(ctx, in, ch.ID, o, sound, false)
}

// decideRecord decides and returns the operation to run on allow.
func (a *Adapter) decideRecord(ctx context.Context, ch ari.ChannelData, rq request, e *auditEntry, log *zap.Logger) (outcome, func(context.Context) error) {
	snap := a.snapshot()
	if snap == nil {
		return session.Decided(enforce.Decide(nil, &enforce.Request{}, a.o.Now())), nil
	}
	user, err := a.resolveCaller(ctx, snap, ch)
	if err != nil {
		log.Warn("cannot identify the requester", zap.Error(err))
		return session.Refused(session.ReasonPBXError), nil
	}
	e.user = user
	agent := user
	if rq.target != "" {
		var ok bool
		if agent, ok = resolveTarget(snap, rq.target); !ok {
			return session.Refused(session.ReasonUnknownTarget), nil
		}
	}
	e.target = agent
	active, hasActive, err := a.recs.Active(ctx, agent)
	if err != nil {
		log.Warn("recording store unavailable", zap.Error(err))
		return session.Refused(enforce.ReasonStoreUnavailable.String()), nil
	}

	if rq.op == recStart {
		c, err := a.findCall(ctx, snap, agent, ch.ID)
		if err != nil {
			if errors.Is(err, errNoCall) {
				return session.Refused(session.ReasonNoCall), nil
			}
			log.Warn("cannot find the target's call", zap.Error(err))
			return session.Refused(session.ReasonPBXError), nil
		}
		e.queue, e.caller = c.queue, c.caller
		e.channels = append(e.channels, c.agent.ID)
		d := enforce.Decide(snap, &enforce.Request{User: user, Action: enforce.RecordingStart, Queue: c.queue, Agent: agent}, a.o.Now())
		return session.StartOutcome(d, hasActive), func(ctx context.Context) error {
			rec, err := a.recs.Start(ctx, ariRecorder{a}, user, agent, session.CallInfo{Channel: c.agent.ID, Queue: c.queue, Caller: c.caller}, d)
			if err != nil {
				return err
			}
			a.recs.Limit(ariRecorder{a}, rec, recStart, d)
			a.setRecordingVar(ctx, ch.ID, rec.ID)
			return nil
		}
	}

	if !hasActive {
		return session.Refused(session.ReasonNoRecording), nil
	}
	op := rq.op.Resolve(active)
	e.action = op.Action()
	e.queue, e.caller, e.recordedAt = active.Queue, active.Caller, active.StartedAt
	e.detail = "recording " + active.ID
	d := enforce.Decide(snap, ptr(session.ChangeRequest(user, op, active)), a.o.Now())
	return session.Decided(d), func(ctx context.Context) error {
		rec, err := a.recs.Change(ctx, ariRecorder{a}, user, active, op, d)
		if err != nil {
			return err
		}
		e.duration = session.ChangeDuration(rec, op)
		a.recs.Limit(ariRecorder{a}, rec, op, d)
		a.setRecordingVar(ctx, ch.ID, rec.ID)
		return nil
	}
}

func ptr[T any](v T) *T { return &v }

// setRecordingVar tells the requester the recording's id
// (CALLWARDEN_RECORDING).
func (a *Adapter) setRecordingVar(ctx context.Context, channelID, id string) {
	if err := a.rest.setVar(ctx, channelID, varRecording, id); err != nil && !errors.Is(err, ErrNotFound) {
		a.log.Debug("cannot set CALLWARDEN_RECORDING", zap.Error(err))
	}
}

// ariRecorder records on Asterisk (session.Recorder): an ARI live
// recording of a snoop channel on the target's call (hearing both sides),
// so the call itself never enters Stasis.
type ariRecorder struct{ a *Adapter }

// StartRecording snoops on the target and records the snoop channel; the
// snoop's id carries the application and the recording id (sweepOrphans).
func (r ariRecorder) StartRecording(ctx context.Context, target, id, name string) (string, error) {
	a := r.a
	snoopID := a.ownedID(kindRecSnoop, id)
	a.markOurs(snoopID)
	in := a.subscribe(snoopID)
	defer a.unsubscribe(in)
	if _, err := a.rest.snoop(ctx, target, snoopID, a.o.App, "recording", ari.DirectionBoth, ari.DirectionNone); err != nil {
		return "", fmt.Errorf("snoop for recording: %w", err)
	}
	if err := a.waitStasis(ctx, in, snoopID, target); err != nil {
		a.hangupQuiet(ctx, snoopID)
		return "", err
	}
	if _, err := a.rest.record(ctx, snoopID, name, a.o.RecordingFormat); err != nil {
		a.hangupQuiet(ctx, snoopID)
		return "", fmt.Errorf("start live recording: %w", err)
	}
	return snoopID, nil
}

// PauseRecording pauses the live recording; one already paused (409) is
// not an error.
func (r ariRecorder) PauseRecording(ctx context.Context, rec enforce.Recording) error {
	if err := r.a.rest.pauseRecording(ctx, rec.Name); err != nil && !errors.Is(err, ErrConflict) {
		return err
	}
	return nil
}

// ResumeRecording unpauses the live recording; one not paused (409) is
// not an error.
func (r ariRecorder) ResumeRecording(ctx context.Context, rec enforce.Recording) error {
	if err := r.a.rest.unpauseRecording(ctx, rec.Name); err != nil && !errors.Is(err, ErrConflict) {
		return err
	}
	return nil
}

// StopRecording stops the live recording and hangs up its snoop.
func (r ariRecorder) StopRecording(ctx context.Context, rec enforce.Recording) error {
	if err := r.a.rest.stopRecording(ctx, rec.Name); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	if rec.Channel != "" {
		r.a.hangupQuiet(ctx, rec.Channel)
	}
	return nil
}

// recordingEnded marks a recording stopped when Asterisk ends it (the call
// hung up, or it failed).
func (a *Adapter) recordingEnded(ctx context.Context, data ari.LiveRecordingData, how string) {
	id, ok := a.recs.Live(data.Name)
	if !ok {
		return
	}
	a.spawn(ctx, func(ctx context.Context) {
		ctx, cancel := a.cleanupCtx(ctx)
		defer cancel()
		if err := a.recs.Ended(ctx, id, "asterisk:"+how); err != nil {
			a.log.Warn("cannot mark the recording stopped", zap.String("recording", id), zap.Error(err))
		}
	})
}
