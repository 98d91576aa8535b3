package session

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/callwarden/callwarden/enforce"
)

// A recording paused for a card number (PCI DSS: an agent pauses it while
// the customer reads the number out) leaves that part of the call out of
// the recording; the live monitor sessions on the same call must not hear
// it either. Recordings tells the registry of each pause, resume and end
// (Recordings.Sessions); the registry then mutes, or unmutes, the tap of
// every live session on the target's call that this process enforces, and
// a session that starts on that call while the pause lasts starts muted.
// A session whose tap cannot be muted is cut off at once and ended with
// cause enforce.CauseMuteFailed: it must not hear what the pause hides.
// A tap that cannot be unmuted stays muted (logged).
//
// A pause made through another daemon (several daemons on one store) is
// found in the shared recording store (RegistryOptions.Recordings): the
// registry reads the active recording of each target it holds sessions on
// at every poll (PollInterval), and mutes, or unmutes, as the store says.
// A pause is known by its recording and its start (Pause.At), so that the
// store, written after the PBX acted, never undoes what this process just
// did: a pause not yet saved, or a resume not yet saved, is left alone.

// errTapClosed is a mode change asked of a session whose tap was cut off.
var errTapClosed = errors.New("session: the eavesdrop was cut off")

// pauseMark is the pause a target's sessions were last muted or unmuted
// for: the recording, the pause's start, and whether they are muted.
type pauseMark struct {
	recording string
	at        time.Time
	on        bool
}

// paused reports whether the recording of target's call is paused; a nil
// registry knows of no pause.
func (r *Registry) paused(target string) bool {
	if r == nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pausedRecs[target].on
}

// lastPause is rec's latest pause's start (zero without one).
func lastPause(rec enforce.Recording) time.Time {
	if n := len(rec.Pauses); n > 0 {
		return rec.Pauses[n-1].At
	}
	return time.Time{}
}

// hush mutes (on) or unmutes the live sessions on target's call, whose
// recording (an id) was just paused at at, or resumed or ended. An unmute
// for another recording than the one paused does nothing, nor does one
// for another pause of it (at; zero: whichever). It returns once every
// tap did; hushes run one at a time, so that a resume right after a pause
// cannot overtake it.
func (r *Registry) hush(ctx context.Context, target, recording string, at time.Time, on bool) {
	if r == nil {
		return
	}
	r.muteMu.Lock()
	defer r.muteMu.Unlock()
	r.mu.Lock()
	mark := r.pausedRecs[target]
	if !on && (!mark.on || mark.recording != recording || (!at.IsZero() && !samePause(at, mark.at))) {
		r.mu.Unlock()
		return
	}
	if r.pausedRecs == nil {
		r.pausedRecs = make(map[string]pauseMark)
	}
	r.pausedRecs[target] = pauseMark{recording: recording, at: at, on: on}
	var hs []*handle
	for _, h := range r.live {
		if h.rec.Target == target && h.mute != nil {
			hs = append(hs, h)
		}
	}
	r.mu.Unlock()
	for _, h := range hs {
		r.muteOne(ctx, h, on)
	}
	if len(hs) > 0 {
		r.log.Info("live sessions on a call whose recording is paused muted or unmuted", zap.String("target", target),
			zap.String("recording", recording), zap.Bool("muted", on), zap.Int("sessions", len(hs)))
	}
}

// recordingEnded unmutes the sessions muted for recording id, which the
// PBX ended.
func (r *Registry) recordingEnded(ctx context.Context, id string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	target, found := "", false
	for t, m := range r.pausedRecs {
		if m.recording == id && m.on {
			target, found = t, true
		}
	}
	r.mu.Unlock()
	if found {
		r.hush(ctx, target, id, time.Time{}, false)
	}
}

// syncPauses mutes or unmutes the sessions on each target this process
// holds sessions on as the shared recording store says: a pause or resume
// made through another daemon. A store error changes nothing (logged).
func (r *Registry) syncPauses(ctx context.Context) {
	if r.o.Recordings == nil {
		return
	}
	r.mu.Lock()
	targets := make(map[string]pauseMark)
	for _, h := range r.live {
		if h.mute != nil {
			targets[h.rec.Target] = r.pausedRecs[h.rec.Target]
		}
	}
	r.mu.Unlock()
	if len(targets) == 0 {
		return
	}
	sctx, cancel := context.WithTimeout(ctx, r.o.Timeout)
	active, err := r.o.Recordings.ActiveRecordings(sctx)
	cancel()
	if err != nil {
		r.log.Warn("cannot read the recordings in progress for their pauses", zap.Error(err))
		return
	}
	byTarget := make(map[string]enforce.Recording, len(active))
	for _, rec := range active {
		if _, ok := targets[rec.Target]; ok {
			byTarget[rec.Target] = rec
		}
	}
	for target, mark := range targets {
		rec, ok := byTarget[target]
		switch {
		case !ok:
			if mark.on {
				r.hush(ctx, target, mark.recording, time.Time{}, false) // the recording ended
			}
		case rec.State == enforce.RecordingPaused:
			if at := lastPause(rec); mark.recording != rec.ID || !samePause(mark.at, at) {
				r.hush(ctx, target, rec.ID, at, true) // a pause this process has not seen
			}
		case mark.on && mark.recording != rec.ID:
			r.hush(ctx, target, mark.recording, time.Time{}, false) // another recording now
		case mark.on && pauseClosed(rec, mark.at):
			r.hush(ctx, target, rec.ID, mark.at, false) // resumed through another daemon
		}
	}
}

// samePause reports whether two pause starts are one: to the millisecond,
// whatever a store keeps of the time.
func samePause(a, b time.Time) bool { return a.Sub(b).Abs() < time.Millisecond }

// pauseClosed reports whether rec holds the pause that began at at, resumed.
func pauseClosed(rec enforce.Recording, at time.Time) bool {
	for _, p := range rec.Pauses {
		if samePause(p.At, at) {
			return !p.ResumedAt.IsZero()
		}
	}
	return false // not saved yet: the store is behind this process
}

// started mutes h, a session just registered, if the recording of its
// target's call is paused now: a pause between the Eavesdrop and the
// registration found no handle to mute.
func (r *Registry) started(ctx context.Context, h *handle) {
	r.muteMu.Lock()
	defer r.muteMu.Unlock()
	r.muteOne(ctx, h, r.paused(h.rec.Target))
}

// muteOne mutes or unmutes h's tap; muteMu is held. A session that cannot
// be muted is ended (its tap is already cut off, see Monitor.mute).
func (r *Registry) muteOne(ctx context.Context, h *handle, on bool) {
	err := h.mute(ctx, on)
	switch {
	case err == nil:
	case on:
		r.log.Warn("cannot mute a live session while the recording is paused; ending it",
			zap.String("session", h.rec.ID), zap.String("target", h.rec.Target), zap.Error(err))
		r.mu.Lock()
		r.stopTimer(h)
		h.end(enforce.CauseMuteFailed)
		r.mu.Unlock()
	default:
		r.log.Warn("cannot unmute a live session after the recording's pause; it stays muted",
			zap.String("session", h.rec.ID), zap.String("target", h.rec.Target), zap.Error(err))
	}
}

// mute mutes or unmutes the session's tap. A tap that cannot be muted is
// closed at once (fail closed), before the adapter ends the session.
func (s *Monitor) mute(ctx context.Context, on bool) error {
	s.tapMu.Lock()
	defer s.tapMu.Unlock()
	if s.ended || s.cut || s.muted == on {
		return nil
	}
	if err := s.tap.Mute(ctx, on); err != nil {
		if on {
			s.cut = true
			_ = s.tap.Close(ctx)
		}
		return err
	}
	s.muted = on
	return nil
}

// Muted reports whether the session is muted: the recording of the
// target's call is paused.
func (s *Monitor) Muted() bool {
	s.tapMu.Lock()
	defer s.tapMu.Unlock()
	return s.muted
}

// setMode changes the tap's mode; a muted tap stays muted.
func (s *Monitor) setMode(ctx context.Context, m Mode) error {
	s.tapMu.Lock()
	defer s.tapMu.Unlock()
	if s.cut {
		return errTapClosed
	}
	return s.tap.SetMode(ctx, m)
}

// isEnded reports whether End ran.
func (s *Monitor) isEnded() bool {
	s.tapMu.Lock()
	defer s.tapMu.Unlock()
	return s.ended
}
