// This file holds the records stores keep beside the policy: recording
// metadata and the audit trail.

package enforce

import "time"

// RecordingState is the life cycle of a recording.
type RecordingState string

// The recording states.
const (
	RecordingActive  RecordingState = "recording"
	RecordingPaused  RecordingState = "paused"
	RecordingStopped RecordingState = "stopped"
)

// Pause is one interval during which a recording was paused (e.g. while a
// card number was read out), with who paused and who resumed it.
type Pause struct {
	By        string    `json:"by"`
	At        time.Time `json:"at"`
	ResumedBy string    `json:"resumed_by,omitempty"`
	ResumedAt time.Time `json:"resumed_at,omitzero"`
	// Until is when the pausing grant's max_pause resumes the recording
	// (zero: no limit), kept so that a daemon re-attaching the recording
	// after a restart re-arms it.
	Until time.Time `json:"until,omitzero"`
}

// Recording is the metadata callwarden keeps about a recording it started:
// enough for the playback decision (queue, agent, age) and for auditors.
type Recording struct {
	// ID is callwarden's id, the one Stasis(callwarden,playback,<id>) names.
	ID string `json:"id"`
	// Name is the PBX's own name for it (ARI recording name, file name).
	Name string `json:"name"`
	PBX  string `json:"pbx,omitempty"`
	// Target is the recorded agent's user id; Queue the call's queue.
	Target string `json:"target,omitempty"`
	Queue  string `json:"queue,omitempty"`
	// Caller is the customer's number, stored whole; readers mask it per
	// their own profile's mask_digits.
	Caller    string         `json:"caller,omitempty"`
	Channel   string         `json:"channel,omitempty"`
	StartedBy string         `json:"started_by"`
	StartedAt time.Time      `json:"started_at"`
	StoppedBy string         `json:"stopped_by,omitempty"`
	StoppedAt time.Time      `json:"stopped_at,omitzero"`
	State     RecordingState `json:"state"`
	Pauses    []Pause        `json:"pauses,omitempty"`
	// Until is when the starting grant's max_duration stops the recording
	// (zero: no limit), kept for a daemon that re-attaches it.
	Until time.Time `json:"until,omitzero"`
	// Instance is the daemon that follows the recording in the PBX (its
	// end, its limits); another daemon re-attaches or ends it once that
	// one's heartbeat expired (SessionStore.Beat).
	Instance string `json:"instance,omitempty"`
	// Format is the audio's format as the PBX wrote it ("wav"); Foreign
	// marks a recording found in the PBX's store that callwarden did not
	// start (its target, queue and starter are unknown).
	Format  string `json:"format,omitempty"`
	Foreign bool   `json:"foreign,omitempty"`
	// Size is the audio's size in bytes, once known: the PBXs tell it
	// when the audio is read (the admin API's audio endpoint keeps it),
	// not when the recording stops. Zero: not known yet.
	Size int64 `json:"size,omitempty"`
}

// Duration is how long rec recorded: from its start to its stop (to now
// while it runs), less its pauses.
func (rec *Recording) Duration(now time.Time) time.Duration {
	if rec.StartedAt.IsZero() {
		return 0
	}
	end := rec.StoppedAt
	if end.IsZero() {
		end = now
	}
	d := end.Sub(rec.StartedAt)
	for _, p := range rec.Pauses {
		until := p.ResumedAt
		if until.IsZero() {
			until = end
		}
		d -= until.Sub(p.At)
	}
	return max(d, 0)
}

// AuditRecord is one audited event: a decision, an enforcement by the
// watchdog, or an admin change.
type AuditRecord struct {
	Time time.Time `json:"time"`
	// Source is where it happened: asterisk, freeswitch, http, admin,
	// watchdog.
	Source   string `json:"source"`
	User     string `json:"user,omitempty"`
	Action   string `json:"action"`
	Target   string `json:"target,omitempty"`
	Queue    string `json:"queue,omitempty"`
	Team     string `json:"team,omitempty"`
	Site     string `json:"site,omitempty"`
	Decision string `json:"decision"`
	Reason   string `json:"reason"`
	Profile  string `json:"profile,omitempty"`
	// Caller is masked per the requester's profile before it is written.
	Caller   string   `json:"caller,omitempty"`
	PBX      string   `json:"pbx,omitempty"`
	Channels []string `json:"channels,omitempty"`
	// Detail is a free-text complement (e.g. "hung up rogue ChanSpy").
	Detail string `json:"detail,omitempty"`
	// AskedBy names who asked for the decision, as opposed to User, whom
	// it is about: a check token's name ("token:cti"), "loopback" for an
	// unauthenticated loopback listener, or the PBX ("asterisk:pbx1").
	AskedBy string `json:"asked_by,omitempty"`
	// Outcome says what became of an allow in the call path: "enforced"
	// (the supervisor was bridged, the recording started) or "failed" (the
	// PBX refused; Detail says why). Empty for pure checks.
	Outcome string `json:"outcome,omitempty"`
	// Session is the live monitor session's id on every record of its
	// life (start, switches, end), so one session can be followed.
	Session string `json:"session,omitempty"`
	// Duration is a session end's length in seconds; Cause why it ended
	// (enforce.Cause*).
	Duration float64 `json:"duration,omitempty"`
	Cause    string  `json:"cause,omitempty"`
	// RecordedAt is when the recording a recording action acts on was
	// made, AssignProfile and AssignQueues what a profile.assign hands
	// out: the rest of the request, so that ReplayRequest can decide it
	// again against another policy (`--impact`).
	RecordedAt    time.Time `json:"recorded_at,omitzero"`
	AssignProfile string    `json:"assign_profile,omitempty"`
	AssignQueues  []string  `json:"assign_queues,omitempty"`
	// At is the instant the request was decided at when it is not Time:
	// a what-if check (GET /v1/check?at=...).
	At time.Time `json:"at,omitzero"`
	// Recording is the catalogued recording a playback, export or delete
	// was about, so its access history can be read back (AuditFilter).
	Recording string `json:"recording,omitempty"`
	// Addr is where an admin API request came from (the client's
	// address), for the access history of recordings.
	Addr string `json:"addr,omitempty"`
}

// The outcomes an adapter records for an allow it tried to enforce.
const (
	OutcomeEnforced = "enforced"
	OutcomeFailed   = "failed"
)

// AuditFilter selects audit records; zero fields match everything.
type AuditFilter struct {
	User, Target, Action, Decision string
	// Session keeps the records of one live monitor session.
	Session string
	// Recording keeps the records about one catalogued recording.
	Recording    string
	Since, Until time.Time
	Limit        int
}

// Match reports whether r passes f's field and time filters (Limit aside).
func (f *AuditFilter) Match(r *AuditRecord) bool {
	return (f.User == "" || r.User == f.User) &&
		(f.Target == "" || r.Target == f.Target) &&
		(f.Action == "" || r.Action == f.Action) &&
		(f.Decision == "" || r.Decision == f.Decision) &&
		(f.Session == "" || r.Session == f.Session) &&
		(f.Recording == "" || r.Recording == f.Recording) &&
		(f.Since.IsZero() || !r.Time.Before(f.Since)) &&
		(f.Until.IsZero() || r.Time.Before(f.Until))
}
