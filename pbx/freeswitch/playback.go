package freeswitch

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/session"
)

// filePlayed is the Application-Response of a playback that played its
// file to the end (or was stopped); anything else is a failure ("FILE NOT
// FOUND", "PLAYBACK ERROR").
const filePlayed = "FILE PLAYED"

// playbackControls maps a digit the listener presses during a playback to
// the api command (%s: the channel) that does it, as on Asterisk: 4 back
// 5 s, 6 forward 5 s, 5 pause/resume (FreeSWITCH's pause toggles), 0
// restart, # stop. # is uuid_break: uuid_fileman's stop is not seen by a
// paused playback (FreeSWITCH 1.10 checks it only when it reads the file).
var playbackControls = map[string]string{"4": "uuid_fileman %s seek:-5000", "6": "uuid_fileman %s seek:+5000",
	"5": "uuid_fileman %s pause", "0": "uuid_fileman %s restart", "#": "uuid_break %s"}

// servePlayback serves callwarden_action=playback: decide
// recording.playback with the recording's queue, agent and age, audit,
// then answer, play the file to the requester and hang up when it ends; a
// refusal plays the refusal tone and hangs up.
func (a *Adapter) servePlayback(ctx context.Context, oc *outConn, ch channel, rq request, e session.Entry, log *zap.Logger) {
	e.Action, e.Detail, e.Recording = enforce.RecordingPlayback, "recording "+rq.recording, rq.recording
	o, rec := a.decidePlayback(ctx, ch, rq, &e, log)
	o = a.audited(ctx, verbPlayback, e, o, log)
	if !o.Allow {
		a.refuse(ctx, oc, ch, o, log)
		return
	}
	log = log.With(zap.String("recording", rec.ID))
	ran, err := a.play(ctx, oc, ch.uuid, a.recordingPath(rec.Name))
	failure := err
	if ran && errors.Is(err, ErrHungUp) {
		failure = nil // the requester hung up during the playback
	}
	if _, werr := a.audit.Result(ctx, e, o, failure); werr != nil {
		log.Error("audit write of an outcome failed", zap.String("user", e.User), zap.Error(werr))
	}
	switch {
	case errors.Is(err, ErrHungUp):
		return
	case err != nil:
		log.Error("cannot play the recording", zap.Error(err))
		a.refuse(ctx, oc, ch, session.Refused(session.ReasonPBXError), log)
		return
	}
	a.conclude(ctx, oc, ch, o, "", "NORMAL_CLEARING", log)
}

// decidePlayback decides with the session core's rule, as the Asterisk
// adapter does (session.PlaybackOutcome).
func (a *Adapter) decidePlayback(ctx context.Context, ch channel, rq request, e *session.Entry, log *zap.Logger) (session.Outcome, enforce.Recording) {
	snap := a.o.Snapshot()
	if snap == nil {
		return session.Decided(enforce.Decide(nil, &enforce.Request{}, a.o.Now())), enforce.Recording{}
	}
	if a.recs == nil {
		return session.Refused(enforce.ReasonStoreUnavailable.String()), enforce.Recording{}
	}
	user := resolveRequester(snap, ch)
	e.User = user
	sctx, cancel := context.WithTimeout(ctx, a.o.Timeout)
	defer cancel()
	o, rec, err := session.DecidePlayback(sctx, a.recs.Store, snap, user, rq.recording, a.o.Now())
	if err != nil {
		return storeUnavailable(log, err), rec
	}
	e.Target, e.Queue, e.Caller, e.RecordedAt = rec.Target, rec.Queue, rec.Caller, rec.StartedAt
	return o, rec
}

// play answers the channel and plays file to it; it returns when the
// playback ended (nil when it played the file), or ErrHungUp when the
// requester hung up, which ends it too; ran says whether the playback
// application ran. The connection's time limit is lifted once it runs: a
// recording lasts as long as it lasts.
func (a *Adapter) play(ctx context.Context, oc *outConn, uuid, file string) (ran bool, err error) {
	// The channel's application, hang-up and DTMF events: the digits reach
	// callwarden as DTMF events (the playback dequeues them); none of them
	// ends the playback by itself (playback_terminators none).
	for _, cmd := range []string{"filter Unique-ID " + uuid, "event plain CHANNEL_EXECUTE CHANNEL_EXECUTE_COMPLETE CHANNEL_HANGUP DTMF"} {
		if f, err := oc.command(ctx, cmd); err != nil {
			return false, err
		} else if !f.ok() {
			return false, fmt.Errorf("%w: %s: %s", ErrCommandFailed, cmd, f.reply())
		}
	}
	if _, err := apiCall(ctx, oc, "uuid_setvar "+uuid+" playback_terminators none"); err != nil {
		return false, err
	}
	if err := execute(ctx, oc, uuid, "answer", ""); err != nil {
		return false, err
	}
	if err := execute(ctx, oc, uuid, "playback", file); err != nil {
		return false, err
	}
	deadline := time.Now().Add(a.o.Timeout)
	for {
		f, err := oc.next(ctx, deadline)
		if err != nil {
			return ran, fmt.Errorf("playback of %s: %w", file, err)
		}
		ev, err := parsePlainEvent(f.body)
		if err != nil {
			oc.skipped++
			continue
		}
		switch name := ev.get("Event-Name"); {
		case name == "DTMF":
			a.playbackControl(ctx, oc, uuid, ev.get("DTMF-Digit"))
		case name == "CHANNEL_HANGUP":
			return ran, fmt.Errorf("playback of %s: %w", file, ErrHungUp)
		case ev.get("Application") != "playback":
		case name == "CHANNEL_EXECUTE":
			oc.unlimit()
			ran, deadline = true, time.Time{}
		case name == "CHANNEL_EXECUTE_COMPLETE":
			if r := ev.get("Application-Response"); r != filePlayed {
				return ran, fmt.Errorf("%w: playback of %s: %s", ErrCommandFailed, file, r)
			}
			return ran, nil
		}
	}
}

// playbackControl applies digit's command to the running playback; a
// failure only leaves the playback as it was.
func (a *Adapter) playbackControl(ctx context.Context, oc *outConn, uuid, digit string) {
	cmd, ok := playbackControls[digit]
	if !ok {
		return
	}
	if _, err := apiCall(ctx, oc, fmt.Sprintf(cmd, uuid)); err != nil {
		a.log.Debug("playback control failed", zap.String("call_id", uuid), zap.String("command", cmd), zap.Error(err))
	}
}
