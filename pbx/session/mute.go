package session

import (
	"context"
	"errors"

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
// A tap that cannot be unmuted stays muted (logged). The pause is known to
// this process only: sessions another daemon enforces on the same call are
// not muted.

// errTapClosed is a mode change asked of a session whose tap was cut off.
var errTapClosed = errors.New("session: the eavesdrop was cut off")

// paused reports whether the recording of target's call is paused; a nil
// registry knows of no pause.
func (r *Registry) paused(target string) bool {
	if r == nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.pausedRecs[target]
	return ok
}

// hush mutes (on) or unmutes the live sessions on target's call, whose
// recording (an id) was just paused, or resumed or ended. An unmute for
// another recording than the one paused does nothing. It returns once
// every tap did; hushes run one at a time, so that a resume right after a
// pause cannot overtake it.
func (r *Registry) hush(ctx context.Context, target, recording string, on bool) {
	if r == nil {
		return
	}
	r.muteMu.Lock()
	defer r.muteMu.Unlock()
	r.mu.Lock()
	if on {
		if r.pausedRecs == nil {
			r.pausedRecs = make(map[string]string)
		}
		r.pausedRecs[target] = recording
	} else if r.pausedRecs[target] != recording {
		r.mu.Unlock()
		return
	} else {
		delete(r.pausedRecs, target)
	}
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
	for t, rec := range r.pausedRecs {
		if rec == id {
			target, found = t, true
		}
	}
	r.mu.Unlock()
	if found {
		r.hush(ctx, target, id, false)
	}
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
