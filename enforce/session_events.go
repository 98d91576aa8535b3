// This file holds the changes of the live sessions view, as a stream of
// them tells a wallboard: what differs between two listings of the live
// sessions and the recordings in progress.

package enforce

import (
	"context"
	"slices"
)

// The types of SessionEvent.
const (
	EventSessionStarted   = "session.started"
	EventSessionSwitched  = "session.switched"
	EventSessionEnded     = "session.ended"
	EventRecordingStarted = "recording.started"
	EventRecordingPaused  = "recording.paused"
	EventRecordingResumed = "recording.resumed"
	EventRecordingStopped = "recording.stopped"
)

// SessionsView is the live monitor sessions and the recordings in
// progress as listed at one time, each oldest first.
type SessionsView struct {
	Sessions   []LiveSession `json:"sessions"`
	Recordings []Recording   `json:"recordings"`
}

// SessionEvent is one change of the live sessions view: a session that
// started, switched mode or ended, a recording that started, paused,
// resumed or stopped. It carries the session's or the recording's record
// as last listed (an ended session's, a stopped recording's last state
// when its final one cannot be read).
type SessionEvent struct {
	Type      string       `json:"type"`
	Session   *LiveSession `json:"session,omitempty"`
	Recording *Recording   `json:"recording,omitempty"`
	// Cause is why a session ended (EndedSession.Cause), empty when the
	// store no longer knows it.
	Cause string `json:"cause,omitempty"`
}

// Changes returns the events that turn v into next: the sessions that
// ended, switched mode or started, then the recordings that stopped,
// paused, resumed or started, each in its listing's order. Causes are left
// for the caller to fill (SessionStore.SessionEnds). Two switches between
// the listings are one event with the latest mode (the session's Modes
// hold every one).
func (v SessionsView) Changes(next SessionsView) []SessionEvent {
	var out []SessionEvent
	sessions := func(t string, s LiveSession) {
		s.Modes = slices.Clone(s.Modes)
		out = append(out, SessionEvent{Type: t, Session: &s})
	}
	recordings := func(t string, r Recording) {
		r.Pauses = slices.Clone(r.Pauses)
		out = append(out, SessionEvent{Type: t, Recording: &r})
	}
	diff(v.Sessions, next.Sessions, func(s LiveSession) string { return s.ID },
		func(s LiveSession) { sessions(EventSessionEnded, s) },
		func(old, s LiveSession) {
			if old.Mode != s.Mode {
				sessions(EventSessionSwitched, s)
			}
		},
		func(s LiveSession) { sessions(EventSessionStarted, s) })
	diff(v.Recordings, next.Recordings, func(r Recording) string { return r.ID },
		func(r Recording) { recordings(EventRecordingStopped, r) },
		func(old, r Recording) {
			switch {
			case old.State == r.State:
			case r.State == RecordingPaused:
				recordings(EventRecordingPaused, r)
			case r.State == RecordingActive:
				recordings(EventRecordingResumed, r)
			case r.State == RecordingStopped:
				recordings(EventRecordingStopped, r)
			}
		},
		func(r Recording) { recordings(EventRecordingStarted, r) })
	return out
}

// diff calls gone for each item of before missing from after, then, in
// after's order, kept for those in both and added for the new ones.
func diff[T any](before, after []T, id func(T) string, gone func(T), kept func(old, cur T), added func(T)) {
	now := make(map[string]struct{}, len(after))
	for _, x := range after {
		now[id(x)] = struct{}{}
	}
	was := make(map[string]T, len(before))
	for _, x := range before {
		was[id(x)] = x
		if _, ok := now[id(x)]; !ok {
			gone(x)
		}
	}
	for _, x := range after {
		if old, ok := was[id(x)]; ok {
			kept(old, x)
		} else {
			added(x)
		}
	}
}

// ExplainChanges fills in events what the stores still know: each ended
// session's Cause from ends (SessionStore.SessionEnds) and, with recs,
// each stopped recording's final record in place of its last listed one.
// What cannot be read stays as it was; the error of ends is returned for
// the caller to say.
func ExplainChanges(ctx context.Context, ends func(context.Context, []string) (map[string]EndedSession, error),
	recs RecordingStore, events []SessionEvent) error {
	var ended []string
	for _, e := range events {
		if e.Type == EventSessionEnded {
			ended = append(ended, e.Session.ID)
		}
	}
	var causes map[string]EndedSession
	var err error
	if len(ended) > 0 {
		causes, err = ends(ctx, ended)
	}
	for i, e := range events {
		switch {
		case e.Type == EventSessionEnded:
			events[i].Cause = causes[e.Session.ID].Cause
		case e.Type == EventRecordingStopped && recs != nil:
			if rec, rerr := recs.Recording(ctx, e.Recording.ID); rerr == nil {
				events[i].Recording = &rec
			}
		}
	}
	return err
}
