// This file holds the live session registry's contract: the record of a
// monitor session while it runs, and the store every daemon lists and
// ends sessions through.

package enforce

import (
	"cmp"
	"context"
	"slices"
	"time"
)

// ModeChange is one mode a monitor session entered, and when.
type ModeChange struct {
	Mode string    `json:"mode"`
	At   time.Time `json:"at"`
}

// LiveSession is a monitor session while it runs: a requester allowed to
// listen to, whisper to or barge into a target's call, enforced by one
// daemon. It is written when the eavesdrop runs, rewritten on every mode
// switch and removed when the session ends.
type LiveSession struct {
	// ID is callwarden's id of the session; every audit record of the
	// session carries it (AuditRecord.Session).
	ID string `json:"id"`
	// User is the requester (the supervisor); Channel its phone's channel
	// (by name), ChannelID that channel's id in the PBX (ARI channel id,
	// FreeSWITCH uuid), which a daemon converging a dead one's records
	// asks the PBX about.
	User      string `json:"user"`
	Channel   string `json:"channel,omitempty"`
	ChannelID string `json:"channel_id,omitempty"`
	// Target is the monitored agent's user id, TargetChannel its channel,
	// Queue the call's queue.
	Target        string `json:"target"`
	TargetChannel string `json:"target_channel,omitempty"`
	Queue         string `json:"queue,omitempty"`
	// Caller is the customer's number, stored whole; readers mask it per
	// their own profile's mask_digits.
	Caller string `json:"caller,omitempty"`
	// Mode is the current mode (listen, whisper, barge); Modes every mode
	// entered, the first one at StartedAt.
	Mode  string       `json:"mode"`
	Modes []ModeChange `json:"modes,omitempty"`
	// Profile and Grant are the allowing decision's profile and grant
	// index.
	Profile string `json:"profile,omitempty"`
	Grant   int    `json:"grant"`
	// PBX names the PBX instance; Instance the daemon that enforces the
	// session (the only one that can end it in the call path).
	PBX       string    `json:"pbx,omitempty"`
	Instance  string    `json:"instance"`
	StartedAt time.Time `json:"started_at"`
	// UpdatedAt is the time of the owner's last write: a record whose
	// owner died stays findable, with its owner and last sign of life.
	UpdatedAt time.Time `json:"updated_at"`
	// EndRequestedBy is set by RequestSessionEnd (another daemon's admin
	// API): the owner ends the session when it sees it.
	EndRequestedBy string `json:"end_requested_by,omitempty"`
}

// EndedSession is why and when a live session ended.
type EndedSession struct {
	ID    string    `json:"id"`
	Cause string    `json:"cause"`
	At    time.Time `json:"at"`
}

// SessionEndKeep is how long a SessionStore keeps a session's end: long
// enough for every daemon polling the store to see it, short enough that
// the ends of a busy day cost nothing.
const SessionEndKeep = 5 * time.Minute

// SessionStore is the registry of live monitor sessions, shared by every
// daemon on one store so that each lists, and may ask to end, all of them.
type SessionStore interface {
	// PutSession creates or replaces the session with s.ID and lists it
	// as live. It keeps an end already requested for that id. Errors:
	// ErrUnavailable.
	PutSession(ctx context.Context, s LiveSession) error
	// EndSession removes the session e.ID and keeps e, why and when it
	// ended, for SessionEndKeep, so that every daemon following the store
	// can say why a session left the list (SessionEnds). An unknown id is
	// not an error (its end is kept all the same). Errors: ErrUnavailable.
	EndSession(ctx context.Context, e EndedSession) error
	// SessionEnds returns the ends kept (EndSession) of the given ids,
	// by id; an id without one is left out. Errors: ErrUnavailable,
	// ErrCorrupt.
	SessionEnds(ctx context.Context, ids []string) (map[string]EndedSession, error)
	// LiveSessions returns every live session, oldest first (by
	// StartedAt, then ID). Errors: ErrUnavailable, ErrCorrupt.
	LiveSessions(ctx context.Context) ([]LiveSession, error)
	// Session returns the live session with the given id. Errors:
	// ErrNotFound, ErrUnavailable, ErrCorrupt.
	Session(ctx context.Context, id string) (LiveSession, error)
	// RequestSessionEnd marks the session as to be ended by its owner,
	// naming who asked. Errors: ErrNotFound (no such live session),
	// ErrUnavailable.
	RequestSessionEnd(ctx context.Context, id, by string) error
	// Beat says that the daemon instance is alive for the next ttl: the
	// records it owns (LiveSession.Instance, Recording.Instance) are then
	// not a dead daemon's. Errors: ErrUnavailable.
	Beat(ctx context.Context, instance string, ttl time.Duration) error
	// Alive reports, of instances, those whose last Beat has not expired.
	// Errors: ErrUnavailable.
	Alive(ctx context.Context, instances []string) (map[string]bool, error)
}

// ActiveRecordingLister lists the recordings in progress, for the live
// sessions view.
type ActiveRecordingLister interface {
	// ActiveRecordings returns every recording active or paused, oldest
	// first (by StartedAt, then ID). Errors: ErrUnavailable, ErrCorrupt.
	ActiveRecordings(ctx context.Context) ([]Recording, error)
}

// OutcomeEnded is the outcome of the audit record of a monitor session's
// end (with AuditRecord.Cause and Duration).
const OutcomeEnded = "ended"

// The causes a monitor session ends with (AuditRecord.Cause).
const (
	CauseRequesterHangup = "requester_hangup"
	CauseTargetHangup    = "target_hangup"
	CauseAdministrator   = "ended_by_administrator"
	CauseShutdown        = "daemon_shutdown"
	CauseSetupFailed     = "setup_failed"
	// CauseDaemonRestart: the daemon that owned the session or recording
	// died (its heartbeat expired) and the PBX no longer runs it; another
	// daemon, or its own next run, ended the record.
	CauseDaemonRestart = "daemon_restart"
	// CauseMaxDuration: the allowing grant's max_duration passed (a
	// monitor session ended, or a recording stopped).
	CauseMaxDuration = "max_duration"
	// CauseMaxPause: a recording paused longer than the allowing grant's
	// max_pause resumed by itself.
	CauseMaxPause = "max_pause"
	// CauseMuteFailed: the recording of the target's call was paused (a
	// card number) and the session could not be muted; it was cut off
	// rather than let the supervisor hear what the pause hides.
	CauseMuteFailed = "mute_failed"
	// The causes of a session ended because it was decided again and
	// denied (session.Registry): the requester's user, profile or grant
	// was removed or changed (a policy change); its grant's weekly hours
	// or a valid_until ended; the target became protected. Any other deny
	// ends it with the engine's reason as the cause.
	CauseRevoked         = "revoked"
	CauseWindowClosed    = "window_closed"
	CauseProtectedTarget = "protected_target"
	// CauseQueueMoved: the target's call moved to a queue the session's
	// grant does not cover (session.Registry.TargetMoved).
	CauseQueueMoved = "queue_moved"
)

// SortSessions sorts sessions oldest first, then by id (the order of
// SessionStore.LiveSessions).
func SortSessions(ss []LiveSession) {
	slices.SortFunc(ss, func(a, b LiveSession) int {
		return cmp.Or(a.StartedAt.Compare(b.StartedAt), cmp.Compare(a.ID, b.ID))
	})
}

// SortRecordings sorts recordings oldest first, then by id (the order of
// ActiveRecordingLister.ActiveRecordings).
func SortRecordings(rs []Recording) {
	slices.SortFunc(rs, func(a, b Recording) int {
		return cmp.Or(a.StartedAt.Compare(b.StartedAt), cmp.Compare(a.ID, b.ID))
	})
}
