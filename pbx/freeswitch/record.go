package freeswitch

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/session"
)

// varRecording is set by callwarden on the requester's channel: the id of
// the recording an allowed record request started or changed (Asterisk's
// CALLWARDEN_RECORDING).
const varRecording = "callwarden_recording"

// endedBy names FreeSWITCH in the metadata of a recording it ended (the
// call hung up): RECORD_STOP without a user's stop first.
const endedBy = "freeswitch:finished"

// recordingDefaults applies the recording options' defaults and refuses a
// directory or a tone that cannot be sent on an ESL command line.
func recordingDefaults(o *Options) error {
	if o.RecordingsDir == "" {
		o.RecordingsDir = "/usr/local/freeswitch/recordings"
	}
	o.RecordingsDir = strings.TrimRight(o.RecordingsDir, "/")
	if o.ConfirmTone == "" {
		o.ConfirmTone = "tone_stream://%(200,0,800)"
	}
	if err := checkValues("recording option", o.RecordingsDir, o.ConfirmTone); err != nil {
		return err
	}
	if strings.ContainsAny(o.RecordingsDir, " \t") || !strings.HasPrefix(o.RecordingsDir, "/") {
		return fmt.Errorf("RecordingsDir %q: want an absolute path without spaces (uuid_record splits on them)", o.RecordingsDir)
	}
	return nil
}

// recordingPath is where FreeSWITCH writes the recording named name.
func (a *Adapter) recordingPath(name string) string {
	return a.o.RecordingsDir + "/" + name + ".wav"
}

// serveRecord serves callwarden_action=record: decide (the session core's
// rules: one recording per target, toggle resolved against the stored
// state), audit, act through uuid_record, then tell the requester with the
// confirmation or the refusal tone and hang up.
func (a *Adapter) serveRecord(ctx context.Context, oc *outConn, ch channel, rq request, e session.Entry, log *zap.Logger) {
	e.Action, e.Target = rq.action, rq.target
	o, act := a.decideRecord(ctx, oc, ch, rq, &e, log)
	o = a.audited(ctx, verbRecord, e, o, log)
	if !o.Allow || act == nil {
		a.refuse(ctx, oc, ch, o, log)
		return
	}
	id, err := act(ctx)
	if _, werr := a.audit.Result(ctx, e, o, err); werr != nil {
		log.Error("audit write of an outcome failed", zap.String("user", e.User), zap.Error(werr))
	}
	if err != nil {
		log.Error("recording operation failed", zap.String("op", rq.op.String()), zap.Error(err))
		a.refuse(ctx, oc, ch, session.Refused(session.ReasonPBXError), log)
		return
	}
	if _, err := apiCall(ctx, oc, "uuid_setvar "+ch.uuid+" "+varRecording+" "+id); err != nil {
		log.Debug("cannot set "+varRecording, zap.Error(err))
	}
	a.conclude(ctx, oc, ch, o, a.o.ConfirmTone, "NORMAL_CLEARING", log)
}

// decideRecord decides a record request and returns, on allow, the
// operation to run (it returns the recording's id). Without a target the
// requester acts on its own call: an agent pausing its recording while a
// card number is read out.
func (a *Adapter) decideRecord(ctx context.Context, oc *outConn, ch channel, rq request, e *session.Entry, log *zap.Logger) (session.Outcome, func(context.Context) (string, error)) {
	snap := a.o.Snapshot()
	if snap == nil {
		return session.Decided(enforce.Decide(nil, &enforce.Request{}, a.o.Now())), nil
	}
	if a.recs == nil {
		return session.Refused(enforce.ReasonStoreUnavailable.String()), nil
	}
	user := resolveRequester(snap, ch)
	e.User = user
	agent, ok := recordTarget(snap, user, rq.target)
	if !ok {
		return session.Refused(session.ReasonUnknownTarget), nil
	}
	e.Target = agent
	active, hasActive, err := a.recs.Active(ctx, agent)
	if err != nil {
		return storeUnavailable(log, err), nil
	}
	rc := &eslRecorder{a: a, oc: oc}
	if rq.op == session.RecStart {
		c, err := a.findCall(ctx, oc, snap, agent, ch.uuid)
		if err != nil {
			if errors.Is(err, errNoCall) {
				return session.Refused(session.ReasonNoCall), nil
			}
			log.Warn("cannot find the target's call", zap.String("target", agent), zap.Error(err))
			return session.Refused(session.ReasonPBXError), nil
		}
		e.Queue, e.Caller = c.queue, c.caller
		e.Channels = append(e.Channels, c.uuid)
		d := enforce.Decide(snap, &enforce.Request{User: user, Action: enforce.RecordingStart, Queue: c.queue, Agent: agent}, a.o.Now())
		return session.StartOutcome(d, hasActive), func(ctx context.Context) (string, error) {
			rec, err := a.recs.Start(ctx, rc, user, agent, session.CallInfo{Channel: c.uuid, Queue: c.queue, Caller: c.caller}, d)
			if err == nil {
				a.recs.Limit(&eslRecorder{a: a}, rec, session.RecStart, d)
			}
			return rec.ID, err
		}
	}
	if !hasActive {
		return session.Refused(session.ReasonNoRecording), nil
	}
	op := rq.op.Resolve(active)
	e.Action, e.Queue, e.Caller, e.RecordedAt = op.Action(), active.Queue, active.Caller, active.StartedAt
	e.Detail = "recording " + active.ID
	if active.Channel != "" {
		e.Channels = append(e.Channels, active.Channel)
	}
	req := session.ChangeRequest(user, op, active)
	d := enforce.Decide(snap, &req, a.o.Now())
	return session.Decided(d), func(ctx context.Context) (string, error) {
		rec, err := a.recs.Change(ctx, rc, user, active, op, d)
		if err == nil {
			a.recs.Limit(&eslRecorder{a: a}, rec, op, d)
			e.Duration = session.ChangeDuration(rec, op)
		}
		return rec.ID, err
	}
}

// storeUnavailable logs a recording store's error and refuses: what
// cannot be checked is never allowed.
func storeUnavailable(log *zap.Logger, err error) session.Outcome {
	log.Warn("recording store unavailable", zap.Error(err))
	return session.Refused(enforce.ReasonStoreUnavailable.String())
}

// recordTarget is the user whose call a record request acts on: the
// target's, else the requester's own.
func recordTarget(snap *enforce.Snapshot, user, target string) (string, bool) {
	if target == "" {
		return user, true
	}
	return snap.ResolveIdentity(target)
}

// conclude tells an allowed requester: the decision in channel variables,
// tone, then a hang-up with cause; it waits for the channel to hang up,
// so the socket stays open while the tone plays.
func (a *Adapter) conclude(ctx context.Context, oc *outConn, ch channel, o session.Outcome, tone, cause string, log *zap.Logger) {
	if !a.setOutcome(ctx, oc, ch, o, log) {
		return
	}
	if tone != "" {
		if err := execute(ctx, oc, ch.uuid, "playback", tone); err != nil {
			log.Warn("cannot play the tone", zap.Error(err))
		}
	}
	if err := execute(ctx, oc, ch.uuid, "hangup", cause); err != nil {
		log.Warn("cannot hang up the requester", zap.Error(err))
		return
	}
	for {
		if _, err := oc.next(ctx, time.Time{}); err != nil {
			return
		}
	}
}

// eslRecorder records on FreeSWITCH (session.Recorder) with uuid_record on
// the requester's outbound connection. FreeSWITCH records the call from
// inside the recorded channel (a media bug): there is no leg of callwarden's
// own, so a recording's Channel is the recorded channel's uuid, which
// every later uuid_record (mask, unmask, stop) names; it is never hung up.
// Without oc (a limit's timer, long after the request's connection
// closed) mask, unmask and stop go on the inbound connection.
type eslRecorder struct {
	a  *Adapter
	oc *outConn
}

// StartRecording registers the watchdog allowance first (callwarden's own
// watchdog stops every recording no decision allowed), then starts
// uuid_record on target: both sides of the call, in RecordingsDir/<name>.wav.
func (r *eslRecorder) StartRecording(ctx context.Context, target, _, name string) (string, error) {
	p := r.a.recordingPath(name)
	if err := checkValues("uuid_record", target, p); err != nil {
		return "", err
	}
	r.a.allow(target, enforce.RecordingStart)
	if _, err := apiCall(ctx, r.oc, "uuid_record "+target+" start "+p); err != nil {
		// Nothing started: the allowance must not let another recording
		// of that channel through.
		r.a.wd.unallow(target, enforce.RecordingStart)
		return "", fmt.Errorf("uuid_record start: %w", err)
	}
	return target, nil
}

// PauseRecording masks the recording: FreeSWITCH writes silence until
// unmask, so the file keeps the call's timing. mask fires no event.
func (r *eslRecorder) PauseRecording(ctx context.Context, rec enforce.Recording) error {
	return r.uuidRecord(ctx, rec, "mask")
}

// ResumeRecording unmasks the recording.
func (r *eslRecorder) ResumeRecording(ctx context.Context, rec enforce.Recording) error {
	return r.uuidRecord(ctx, rec, "unmask")
}

// StopRecording stops the recording. It first marks it as stopping, so
// its RECORD_STOP does not mark it ended by FreeSWITCH: the user's stop is
// the one on record. A recording FreeSWITCH already ended (the channel is
// gone, or it records that path no more) is not an error.
func (r *eslRecorder) StopRecording(ctx context.Context, rec enforce.Recording) error {
	r.a.stopping.Store(rec.Name, struct{}{})
	err := r.uuidRecord(ctx, rec, "stop")
	if err != nil && errors.Is(err, ErrCommandFailed) &&
		(strings.Contains(err.Error(), "Cannot locate session") || strings.Contains(err.Error(), "Cannot stop record session")) {
		return nil
	}
	return err
}

// uuidRecord sends uuid_record <channel> <cmd> <path> for rec.
func (r *eslRecorder) uuidRecord(ctx context.Context, rec enforce.Recording, cmd string) error {
	p := r.a.recordingPath(rec.Name)
	if err := checkValues("uuid_record", rec.Channel, p); err != nil {
		return err
	}
	if rec.Channel == "" || !validToken(rec.Channel) {
		return fmt.Errorf("freeswitch: recording %s names no recorded channel (%q)", rec.ID, rec.Channel)
	}
	if r.oc == nil {
		_, err := r.a.api(ctx, "uuid_record", rec.Channel, cmd, p)
		return err
	}
	_, err := apiCall(ctx, r.oc, "uuid_record "+rec.Channel+" "+cmd+" "+p)
	return err
}

// recordingEnded marks a recording callwarden started stopped when
// FreeSWITCH ends it (RECORD_STOP: the call hung up, or the recording
// failed), so the store never says it records forever. A recording this
// process does not know as live (it was started before a restart) is
// recognised by its path, RecordingsDir/callwarden-<id>.wav, and ended only
// when its metadata names this PBX and the channel the event is about. It
// runs beside the event loop: a slow store must not hold the events.
func (a *Adapter) recordingEnded(ev Event) {
	if a.recs == nil {
		return
	}
	p := ev.Get("Record-File-Path")
	name := strings.TrimSuffix(path.Base(p), ".wav")
	if _, ok := a.stopping.LoadAndDelete(name); ok {
		a.recs.Live(name)
		return
	}
	id, live := a.recs.Live(name)
	if !live {
		if path.Dir(p) != a.o.RecordingsDir || !validRecordingID(strings.TrimPrefix(name, "callwarden-")) {
			return
		}
		id = strings.TrimPrefix(name, "callwarden-")
	}
	channel := ev.Get("Unique-ID")
	a.bg.Add(1)
	go func() {
		defer a.bg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), a.o.Timeout)
		defer cancel()
		if !live {
			rec, err := a.recs.Store.Recording(ctx, id)
			if err != nil || rec.PBX != a.o.PBX || rec.Channel != channel {
				return // not one of this PBX's, or gone
			}
		}
		if err := a.recs.Ended(ctx, id, endedBy); err != nil {
			a.log.Warn("cannot mark the recording stopped", zap.String("recording", id), zap.Error(err))
		}
	}()
}
