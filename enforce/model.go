// Package enforce owns callwarden's model (actions, grants, scopes, profiles,
// users, protected targets) and its decision engine.
//
// Decide is a pure function of (snapshot, request, time): it performs no I/O,
// reads no clock and takes no lock. The package must not import the cache,
// config or pbx packages, nor any network library; adapters translate their
// own events into a Request and act on the Decision.
package enforce

import (
	"fmt"
	"strings"
	"time"
)

// Action is one right, never bundled with another.
type Action uint8

// The actions callwarden decides. The zero Action is invalid.
const (
	MonitorListen Action = iota + 1
	MonitorWhisper
	MonitorBarge
	RecordingStart
	RecordingStop
	RecordingPause
	RecordingResume
	RecordingPlayback
	RecordingExport
	RecordingDelete
	PresenceView
	ProfileAssign
	SessionEnd  // ending another's live monitor session (admin API)
	AuditReview // reading who may do what (who-can, rights: admin API)
	actionEnd
)

var actionNames = [...]string{
	MonitorListen:     "monitor.listen",
	MonitorWhisper:    "monitor.whisper",
	MonitorBarge:      "monitor.barge",
	RecordingStart:    "recording.start",
	RecordingStop:     "recording.stop",
	RecordingPause:    "recording.pause",
	RecordingResume:   "recording.resume",
	RecordingPlayback: "recording.playback",
	RecordingExport:   "recording.export",
	RecordingDelete:   "recording.delete",
	PresenceView:      "presence.view",
	ProfileAssign:     "profile.assign",
	SessionEnd:        "session.end",
	AuditReview:       "audit.review",
}

// Actions lists every valid action in a stable order.
func Actions() []Action {
	out := make([]Action, 0, actionEnd-1)
	for a := Action(1); a < actionEnd; a++ {
		out = append(out, a)
	}
	return out
}

// String returns the action's wire name, e.g. "monitor.listen".
func (a Action) String() string {
	if a.Valid() {
		return actionNames[a]
	}
	return fmt.Sprintf("action(%d)", uint8(a))
}

// Valid reports whether a is one of the defined actions.
func (a Action) Valid() bool { return a > 0 && a < actionEnd }

// ParseAction maps a wire name such as "recording.pause" to its Action.
func ParseAction(s string) (Action, error) {
	for a := Action(1); a < actionEnd; a++ {
		if actionNames[a] == s {
			return a, nil
		}
	}
	return 0, fmt.Errorf("unknown action %q (want one of %s)", s, strings.Join(actionNames[1:], ", "))
}

// targetsCall reports whether the action touches another person's call or
// recording, and is therefore refused on protected targets. Reviewing who
// may reach a protected target is an auditor's very question, so
// audit.review is not refused on one either.
func (a Action) targetsCall() bool { return a != ProfileAssign && a != AuditReview }

// ActionSet is a set of actions.
type ActionSet uint16

// NewActionSet returns the set holding the given actions.
func NewActionSet(actions ...Action) ActionSet {
	var s ActionSet
	for _, a := range actions {
		s |= 1 << a
	}
	return s
}

// Has reports whether a is in the set.
func (s ActionSet) Has(a Action) bool { return s&(1<<a) != 0 }

// List returns the actions of the set in their stable order.
func (s ActionSet) List() []Action {
	var out []Action
	for a := Action(1); a < actionEnd; a++ {
		if s.Has(a) {
			out = append(out, a)
		}
	}
	return out
}

// Dimension is one axis of a resource scope.
type Dimension uint8

// The scope dimensions, in the order they are checked.
const (
	DimQueues Dimension = iota
	DimTeams
	DimAgents
	DimSites
	numDimensions
)

var dimensionNames = [...]string{"queues", "teams", "agents", "sites"}

// String returns the dimension's name as written in a profiles file.
func (d Dimension) String() string { return dimensionNames[d] }

// ScopeKind says how a grant constrains one dimension.
type ScopeKind uint8

// The scope kinds. ScopeUnset means the grant does not name the dimension
// and so does not constrain it.
const (
	ScopeUnset    ScopeKind = iota
	ScopeList               // an explicit list of resource ids
	ScopeAll                // every present and future resource (XCALLY)
	ScopeAssigned           // the requester's attributed resources (XiVO)
	ScopeSelf               // the requester itself (agents only: its own calls)
)

// Scope constrains one dimension of a grant.
type Scope struct {
	Kind   ScopeKind
	Values []string // for ScopeList
}

// Weekly is a recurring window of wall-clock hours in a time zone.
// From and To are minutes after midnight; when To <= From the window runs
// past midnight and belongs to the day it starts on.
type Weekly struct {
	Days     [7]bool // indexed by time.Weekday
	From, To int
	Location *time.Location
}

// Grant gives a set of actions over a scope, optionally limited in time and
// in the age of the recordings it reaches.
type Grant struct {
	Actions ActionSet
	Scopes  [numDimensions]Scope
	// Profiles lists the profiles a profile.assign grant may hand out.
	Profiles []string
	// ValidFrom and ValidUntil bound the grant in absolute time; zero is open.
	ValidFrom, ValidUntil time.Time
	// Hours, when set, limits the grant to weekly wall-clock hours.
	Hours *Weekly
	// RecordedWithin, when positive, limits recording actions to recordings
	// at most this old.
	RecordedWithin time.Duration
	// MaxDuration, when positive, limits how long a monitor session or a
	// recording this grant allowed may run: the session core ends it
	// after that long. It applies to the grant's monitor actions and to
	// recording.start alike.
	MaxDuration time.Duration
	// MaxPause, when positive, limits how long a pause this grant allowed
	// (recording.pause) may last before the recording resumes by itself.
	MaxPause time.Duration
}

// MaxLimit is the longest max_duration or max_pause a grant may set.
const MaxLimit = 366 * 24 * time.Hour

// validLimit reports what is wrong with a max_duration or max_pause, or "".
func validLimit(d time.Duration) string {
	switch {
	case d < 0:
		return "must not be negative"
	case d > MaxLimit:
		return "must not exceed a year (366d)"
	}
	return ""
}

// Profile is a named set of grants. A profile with no grants allows nothing.
type Profile struct {
	Name   string
	Grants []Grant
	// NotifyTarget makes the monitored agent hear a tone.
	NotifyTarget bool
	// MaskDigits is how many trailing digits of caller numbers are masked in
	// what this profile's users see (audit, API).
	MaskDigits int
}

// User is one person's assignment: a profile, attributed resources, the PBX
// identities of its phones and an optional validity window.
type User struct {
	ID      string
	Profile string // empty: no profile, no access
	// Attributed resources, used by `assigned` scopes; a user's Teams are
	// also the teams it belongs to when it is the target.
	Queues, Teams, Agents, Sites []string
	// Identities recognise the user's phone: a channel-name prefix such as
	// "PJSIP/1001", an extension such as "1001", or user@domain.
	Identities            []string
	ValidFrom, ValidUntil time.Time
}

// Protected lists targets nobody may monitor, whatever the grants.
type Protected struct {
	Users  []string
	Queues []string
}

// Policy is the whole, uncompiled model: what a profiles file or the store
// holds. NewSnapshot compiles it.
type Policy struct {
	Profiles  []Profile
	Users     []User
	Protected Protected
}
