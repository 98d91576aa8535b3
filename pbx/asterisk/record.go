package asterisk

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/CyCoreSystems/ari/v5"
	"go.uber.org/zap"

	"github.com/callwarden/callwarden/enforce"
)

// reasonAlreadyRecording refuses a second recording of the same call.
const reasonAlreadyRecording = "already_recording"

// recordOp serves Stasis(callwarden,record,<op>[,<target>]). Without a
// target the requester acts on its own call (an agent pausing its
// recording while a card number is read out). Recordings are ARI live
// recordings of a snoop channel on the target's call, so the call itself
// never enters Stasis; their metadata lives in the RecordingStore.
func (a *Adapter) recordOp(ctx context.Context, in *inbox, ch ari.ChannelData, rq request, log *zap.Logger) {
	e := auditEntry{verb: verbRecord, action: rq.op.action(), target: rq.target, channels: []string{ch.ID}, requester: ch}
	o, act := a.decideRecord(ctx, ch, rq, &e, log)
	o = a.audited(ctx, e, o)
	if o.allow && act != nil {
		err := act(ctx)
		a.auditResult(ctx, e, o, err)
		if err != nil {
			log.Error("recording operation failed", zap.String("op", rq.op.String()), zap.Error(err))
			o = refused(reasonPBXError)
		}
	}
	sound := a.o.NotifySound
	if !o.allow {
		sound = a.o.RefusalSound
	}
	a.conclude(ctx, in, ch.ID, o, sound, false)
}

// decideRecord decides and returns the operation to run on allow.
func (a *Adapter) decideRecord(ctx context.Context, ch ari.ChannelData, rq request, e *auditEntry, log *zap.Logger) (outcome, func(context.Context) error) {
	snap := a.snapshot()
	if snap == nil {
		return decided(enforce.Decide(nil, &enforce.Request{}, a.o.Now())), nil
	}
	user, err := a.resolveCaller(ctx, snap, ch)
	if err != nil {
		log.Warn("cannot identify the requester", zap.Error(err))
		return refused(reasonPBXError), nil
	}
	e.user = user
	agent := user
	if rq.target != "" {
		var ok bool
		if agent, ok = resolveTarget(snap, rq.target); !ok {
			return refused(reasonUnknownTarget), nil
		}
	}
	e.target = agent
	active, err := a.o.Recordings.ActiveRecording(ctx, agent)
	switch {
	case errors.Is(err, enforce.ErrNotFound):
	case err != nil:
		log.Warn("recording store unavailable", zap.Error(err))
		return refused(enforce.ReasonStoreUnavailable.String()), nil
	}
	hasActive := err == nil

	if rq.op == recStart {
		c, err := a.findCall(ctx, snap, agent, ch.ID)
		if err != nil {
			if errors.Is(err, errNoCall) {
				return refused(reasonNoCall), nil
			}
			log.Warn("cannot find the target's call", zap.Error(err))
			return refused(reasonPBXError), nil
		}
		e.queue, e.caller = c.queue, c.caller
		e.channels = append(e.channels, c.agent.ID)
		d := enforce.Decide(snap, &enforce.Request{User: user, Action: enforce.RecordingStart, Queue: c.queue, Agent: agent}, a.o.Now())
		if d.Allow && hasActive {
			return refused(reasonAlreadyRecording), nil
		}
		return decided(d), func(ctx context.Context) error { return a.startRecording(ctx, ch.ID, user, agent, c) }
	}

	if !hasActive {
		return refused(reasonNoRecording), nil
	}
	op := rq.op
	if op == recToggle {
		op = recPause
		if active.State == enforce.RecordingPaused {
			op = recResume
		}
	}
	e.action = op.action()
	e.queue, e.caller = active.Queue, active.Caller
	e.detail = "recording " + active.ID
	d := enforce.Decide(snap, &enforce.Request{User: user, Action: op.action(), Queue: active.Queue, Agent: active.Target, RecordedAt: active.StartedAt}, a.o.Now())
	return decided(d), func(ctx context.Context) error { return a.changeRecording(ctx, ch.ID, user, active, op) }
}

// startRecording snoops on the target's call (hearing both sides) and
// records the snoop channel.
func (a *Adapter) startRecording(ctx context.Context, requester, user, agent string, c call) error {
	id := newRecordingID()
	name := "callwarden-" + id // the file name; the snoop carries the application
	snoopID := a.ownedID(kindRecSnoop, id)
	a.markOurs(snoopID)
	in := a.subscribe(snoopID)
	defer a.unsubscribe(in)
	if _, err := a.rest.snoop(ctx, c.agent.ID, snoopID, a.o.App, "recording", ari.DirectionBoth, ari.DirectionNone); err != nil {
		return fmt.Errorf("snoop for recording: %w", err)
	}
	if err := a.waitStasis(ctx, in, snoopID, c.agent.ID); err != nil {
		a.hangupQuiet(ctx, snoopID)
		return err
	}
	a.mu.Lock()
	a.liveRecs[name] = id
	a.mu.Unlock()
	if _, err := a.rest.record(ctx, snoopID, name, a.o.RecordingFormat); err != nil {
		a.hangupQuiet(ctx, snoopID)
		return fmt.Errorf("start live recording: %w", err)
	}
	rec := enforce.Recording{
		ID: id, Name: name, PBX: a.o.PBX,
		Target: agent, Queue: c.queue, Caller: c.caller, Channel: snoopID,
		StartedBy: user, StartedAt: a.o.Now().UTC(), State: enforce.RecordingActive,
	}
	if err := a.o.Recordings.SaveRecording(ctx, rec); err != nil {
		// A recording nobody can find again must not go on.
		_ = a.rest.stopRecording(ctx, name)
		a.hangupQuiet(ctx, snoopID)
		return fmt.Errorf("save recording metadata: %w", err)
	}
	if err := a.rest.setVar(ctx, requester, varRecording, id); err != nil && !errors.Is(err, ErrNotFound) {
		a.log.Debug("cannot set CALLWARDEN_RECORDING", zap.Error(err))
	}
	return nil
}

// changeRecording pauses, resumes or stops a live recording and keeps its
// metadata (who paused, when) in the store.
func (a *Adapter) changeRecording(ctx context.Context, requester, user string, rec enforce.Recording, op recordOp) error {
	now := a.o.Now().UTC()
	switch op {
	case recPause:
		if err := a.rest.pauseRecording(ctx, rec.Name); err != nil && !errors.Is(err, ErrConflict) {
			return fmt.Errorf("pause: %w", err)
		}
		rec.State = enforce.RecordingPaused
		rec.Pauses = append(rec.Pauses, enforce.Pause{By: user, At: now})
	case recResume:
		if err := a.rest.unpauseRecording(ctx, rec.Name); err != nil && !errors.Is(err, ErrConflict) {
			return fmt.Errorf("resume: %w", err)
		}
		rec.State = enforce.RecordingActive
		if n := len(rec.Pauses); n > 0 && rec.Pauses[n-1].ResumedAt.IsZero() {
			rec.Pauses[n-1].ResumedBy, rec.Pauses[n-1].ResumedAt = user, now
		}
	case recStop:
		if err := a.rest.stopRecording(ctx, rec.Name); err != nil && !errors.Is(err, ErrNotFound) {
			return fmt.Errorf("stop: %w", err)
		}
		if rec.Channel != "" {
			a.hangupQuiet(ctx, rec.Channel)
		}
		rec.State, rec.StoppedBy, rec.StoppedAt = enforce.RecordingStopped, user, now
		if n := len(rec.Pauses); n > 0 && rec.Pauses[n-1].ResumedAt.IsZero() {
			rec.Pauses[n-1].ResumedBy, rec.Pauses[n-1].ResumedAt = user, now
		}
	}
	if err := a.o.Recordings.SaveRecording(ctx, rec); err != nil {
		return fmt.Errorf("save recording metadata: %w", err)
	}
	if err := a.rest.setVar(ctx, requester, varRecording, rec.ID); err != nil && !errors.Is(err, ErrNotFound) {
		a.log.Debug("cannot set CALLWARDEN_RECORDING", zap.Error(err))
	}
	return nil
}

// recordingEnded marks a recording stopped when Asterisk ends it (the call
// hung up, or it failed).
func (a *Adapter) recordingEnded(ctx context.Context, data ari.LiveRecordingData, how string) {
	a.mu.Lock()
	id, ok := a.liveRecs[data.Name]
	delete(a.liveRecs, data.Name)
	a.mu.Unlock()
	if !ok {
		return
	}
	a.spawn(ctx, func(ctx context.Context) {
		ctx, cancel := a.cleanupCtx(ctx)
		defer cancel()
		rec, err := a.o.Recordings.Recording(ctx, id)
		if err != nil {
			a.log.Warn("recording ended but its metadata is unreadable", zap.String("recording", id), zap.Error(err))
			return
		}
		if rec.State == enforce.RecordingStopped {
			return
		}
		rec.State, rec.StoppedAt = enforce.RecordingStopped, a.o.Now().UTC()
		if rec.StoppedBy == "" {
			rec.StoppedBy = "asterisk:" + how
		}
		if err := a.o.Recordings.SaveRecording(ctx, rec); err != nil {
			a.log.Warn("cannot mark the recording stopped", zap.String("recording", id), zap.Error(err))
		}
	})
}

// newRecordingID returns a 12-digit recording id: digits only, so a phone
// can dial it after the playback feature code (*227<id>).
func newRecordingID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand does not fail on supported platforms.
	return fmt.Sprintf("%012d", binary.BigEndian.Uint64(b[:])%1_000_000_000_000)
}
