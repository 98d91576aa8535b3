package enforce

import (
	"fmt"
	"time"
)

// Reason is the stable code explaining a decision. Codes are part of the
// public contract (CLI, HTTP, dialplan variables, audit): never renumber or
// rename them.
type Reason uint8

// The reason codes.
const (
	ReasonNone Reason = iota
	// ReasonGranted: a grant matched.
	ReasonGranted
	// ReasonUnknownUser: the requester is not a known user.
	ReasonUnknownUser
	// ReasonNoProfile: the requester has no profile.
	ReasonNoProfile
	// ReasonActionNotGranted: no grant of the profile lists the action.
	ReasonActionNotGranted
	// ReasonOutOfScope: grants list the action but not on this target.
	ReasonOutOfScope
	// ReasonOutsideWindow: the assignment or every in-scope grant is outside
	// its validity period or weekly hours.
	ReasonOutsideWindow
	// ReasonProtectedTarget: the target user or queue is protected.
	ReasonProtectedTarget
	// ReasonRecordingTooOld: the recording is older than recorded_within
	// allows, or its age is unknown.
	ReasonRecordingTooOld
	// ReasonProfileNotDelegable: profile.assign of a profile the grant does
	// not name.
	ReasonProfileNotDelegable
	// ReasonStoreUnavailable: no trustworthy snapshot to decide from.
	ReasonStoreUnavailable
	// ReasonInvalidRequest: the request itself is malformed.
	ReasonInvalidRequest
	// ReasonContextMismatch: the request claims a team or site for a target
	// the policy describes, and the policy says otherwise.
	ReasonContextMismatch
	reasonEnd
)

var reasonNames = [...]string{
	ReasonNone:                "none",
	ReasonGranted:             "granted",
	ReasonUnknownUser:         "unknown_user",
	ReasonNoProfile:           "no_profile",
	ReasonActionNotGranted:    "action_not_granted",
	ReasonOutOfScope:          "out_of_scope",
	ReasonOutsideWindow:       "outside_window",
	ReasonProtectedTarget:     "protected_target",
	ReasonRecordingTooOld:     "recording_too_old",
	ReasonProfileNotDelegable: "profile_not_delegable",
	ReasonStoreUnavailable:    "store_unavailable",
	ReasonInvalidRequest:      "invalid_request",
	ReasonContextMismatch:     "context_mismatch",
}

// String returns the reason's stable code, e.g. "out_of_scope".
func (r Reason) String() string {
	if r < reasonEnd {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// Reasons lists every reason code but ReasonNone.
func Reasons() []Reason {
	out := make([]Reason, 0, reasonEnd-1)
	for r := Reason(1); r < reasonEnd; r++ {
		out = append(out, r)
	}
	return out
}

// Request asks whether User may perform Action on a target.
type Request struct {
	User   string
	Action Action
	// Queue, Team, Agent and Site describe the target: the call's queue,
	// the team asked about, the target agent's user id and its site. Empty
	// means the request has no value for that dimension. When the policy
	// describes the target agent, its teams and sites come from its user
	// entry: an empty Team or Site is filled from there, and one that
	// contradicts it is refused (ReasonContextMismatch). Only for a target
	// the policy does not describe are Team and Site taken as given.
	Queue, Team, Agent, Site string
	// RecordedAt is when the recording was made, for recording_within.
	RecordedAt time.Time
	// AssignProfile is the profile handed out by a profile.assign request.
	// For such requests, AssignQueues (when set) are the queues it is handed
	// out on, each of which must be in the granter's scope.
	AssignProfile string
	AssignQueues  []string
}

// Decision is the engine's answer. The zero Decision denies.
type Decision struct {
	Allow  bool
	Reason Reason
	// Profile is the requester's profile, when it has one.
	Profile string
	// Grant is the index of the matching grant in Profile (allow) or of the
	// grant that came closest (deny); -1 when there is none.
	Grant int
	// NotifyTarget and MaskDigits carry the profile's options.
	NotifyTarget bool
	MaskDigits   int
	// MaxDuration and MaxPause are the allowing grant's limits (zero: none);
	// the session core enforces them with timers.
	MaxDuration, MaxPause time.Duration
	// ClaimedContext is true when the request's team or site was taken on
	// the requester's word, because the policy does not describe the target
	// agent; the CLI and the check API say so.
	ClaimedContext bool
}

// Verdict returns "allow" or "deny".
func (d Decision) Verdict() string {
	if d.Allow {
		return "allow"
	}
	return "deny"
}

func deny(r Reason) Decision { return Decision{Reason: r, Grant: -1} }

// Deny returns a denial with reason r and no matching grant; adapters use it
// to fail closed (e.g. ReasonStoreUnavailable).
func Deny(r Reason) Decision { return deny(r) }

// Decide answers req from snapshot s at time now. It is a pure function: the
// same inputs always give the same decision. A nil snapshot denies with
// ReasonStoreUnavailable. Decide does not allocate on the allow or deny
// paths of a well-formed request.
func Decide(s *Snapshot, req *Request, now time.Time) Decision {
	if s == nil {
		return deny(ReasonStoreUnavailable)
	}
	if !req.Action.Valid() {
		return deny(ReasonInvalidRequest)
	}
	u, _ := s.users.get(req.User)
	if u.user == nil {
		return deny(ReasonUnknownUser)
	}
	// Profiles are resolved by number at decision time, so that a changed
	// profile (Snapshot.Patch) reaches every user of it without touching
	// them.
	p := s.profileTab[u.profile]
	if p == nil {
		return deny(ReasonNoProfile)
	}
	d := Decision{Profile: p.Name, Grant: -1, NotifyTarget: p.NotifyTarget, MaskDigits: p.MaskDigits}
	if u.window && !within(now, u.validFrom(), u.validUntil()) {
		d.Reason = ReasonOutsideWindow
		return d
	}
	if req.Action.targetsCall() {
		// A protected user may act on its own calls (pause its recording);
		// a protected queue is closed to everyone, whoever claims the call.
		if len(s.protectedUsers) > 0 && req.Agent != "" && req.Agent != req.User {
			if _, ok := s.protectedUsers[req.Agent]; ok {
				d.Reason = ReasonProtectedTarget
				return d
			}
		}
		if len(s.protectedQueues) > 0 && req.Queue != "" {
			if _, ok := s.protectedQueues[req.Queue]; ok {
				d.Reason = ReasonProtectedTarget
				return d
			}
		}
	}
	c := decideCtx{s: s, req: req, u: u}
	// A target the policy describes has its team and site there: a request
	// that claims otherwise is refused rather than believed, so that a
	// caller cannot move an agent into a team it supervises. A claim is
	// only used for a target the policy does not describe.
	// The mismatch is reported once a grant lists the action: a request
	// nothing could allow is answered action_not_granted whatever it claims.
	// The target is otherwise looked up only when a grant's team or site
	// scope needs its entry.
	mismatch := false
	if req.Team != "" || req.Site != "" {
		if target := c.target(); target != nil {
			mismatch = (req.Team != "" && !c.targetHas(target, DimTeams)) ||
				(req.Site != "" && !c.targetHas(target, DimSites))
		} else {
			d.ClaimedContext = true
		}
	}
	// best tracks the most specific failure among grants listing the action:
	// out_of_scope < profile_not_delegable < outside_window < recording_too_old.
	best, bestGrant := ReasonActionNotGranted, -1
	for i := range p.grants {
		g := &p.grants[i]
		if !g.actions.Has(req.Action) {
			continue
		}
		if mismatch {
			d.Reason = ReasonContextMismatch
			return d
		}
		r := g.check(&c, now)
		if r == ReasonGranted {
			d.Allow, d.Reason, d.Grant = true, ReasonGranted, i
			d.MaxDuration, d.MaxPause = g.MaxDuration, g.MaxPause
			return d
		}
		if rank(r) > rank(best) {
			best, bestGrant = r, i
		}
	}
	d.Reason, d.Grant = best, bestGrant
	return d
}

// decideCtx is one decision's request with what Decide looked up for it:
// the requester, the request's names interned (each on first use), and the
// target agent's entry (on first use).
type decideCtx struct {
	s        *Snapshot
	req      *Request
	u        userRef
	ids      [numDimensions]int32
	have     [numDimensions]bool
	tgt      userRef
	tgtKnown bool
}

// id returns the number of the request's value for dim (0: none, or a name
// no scope holds).
func (c *decideCtx) id(dim Dimension) int32 {
	if !c.have[dim] {
		c.have[dim] = true
		c.ids[dim] = c.s.syms[dim].lookup(c.req.value(dim))
	}
	return c.ids[dim]
}

// targetHas reports whether the request's value of dim is one of the
// target's attributed names there (every attributed name is numbered).
func (c *decideCtx) targetHas(t *userRef, dim Dimension) bool {
	id := c.id(dim)
	return id != 0 && hasID(t.attrOf(dim), id)
}

// target returns the target agent's entry, nil when the request names none
// or the policy does not describe it.
func (c *decideCtx) target() *userRef {
	if !c.tgtKnown {
		c.tgtKnown = true
		if c.req.Agent != "" {
			c.tgt, _ = c.s.users.get(c.req.Agent)
		}
	}
	if c.tgt.user == nil {
		return nil
	}
	return &c.tgt
}

// value returns the request's value for dim.
func (r *Request) value(dim Dimension) string {
	switch dim {
	case DimQueues:
		return r.Queue
	case DimTeams:
		return r.Team
	case DimAgents:
		return r.Agent
	case DimSites:
		return r.Site
	}
	return ""
}

func rank(r Reason) int {
	switch r {
	case ReasonActionNotGranted:
		return 0
	case ReasonOutOfScope:
		return 1
	case ReasonProfileNotDelegable:
		return 2
	case ReasonOutsideWindow:
		return 3
	case ReasonRecordingTooOld:
		return 4
	}
	return 0
}

// check evaluates one grant that lists the requested action.
func (g *grant) check(c *decideCtx, now time.Time) Reason {
	req := c.req
	if req.Action == ProfileAssign {
		if !contains(g.Profiles, req.AssignProfile) {
			return ReasonProfileNotDelegable
		}
		if len(req.AssignQueues) > 0 {
			for _, q := range req.AssignQueues {
				if !g.matchOne(DimQueues, c, c.s.syms[DimQueues].lookup(q), q) {
					return ReasonOutOfScope
				}
			}
			return g.checkTime(req, now)
		}
	}
	for dim := DimQueues; dim < numDimensions; dim++ {
		if !g.match(dim, c) {
			return ReasonOutOfScope
		}
	}
	if !g.timed {
		return ReasonGranted
	}
	return g.checkTime(req, now)
}

// match reports whether the request's value for dim is in the grant's
// scope. For the dimensions that describe the target agent (its teams, its
// site), a request without a value matches on any of the target's own
// values from its user entry (Decide has already refused a value that
// contradicts a known target).
func (g *grant) match(dim Dimension, c *decideCtx) bool {
	if k := g.kinds[dim]; k == ScopeUnset || k == ScopeAll {
		return true
	}
	v := c.req.value(dim)
	if v != "" || dim == DimQueues || dim == DimAgents {
		return g.matchOne(dim, c, c.id(dim), v)
	}
	t := c.target()
	if t == nil {
		return false
	}
	for _, id := range t.attrOf(dim) {
		if g.matchOne(dim, c, id, "") {
			return true
		}
	}
	return false
}

// matchOne reports whether the name v, numbered id, is in the grant's scope
// of dim for the requester.
func (g *grant) matchOne(dim Dimension, c *decideCtx, id int32, v string) bool {
	switch g.kinds[dim] {
	case ScopeUnset, ScopeAll:
		return true
	case ScopeList:
		return id != 0 && hasID(g.lists.of(dim), id)
	case ScopeAssigned:
		return id != 0 && hasID(c.u.attrOf(dim), id)
	case ScopeSelf:
		return v != "" && v == c.req.User
	}
	return false
}

func (g *grant) checkTime(req *Request, now time.Time) Reason {
	if !within(now, g.ValidFrom, g.ValidUntil) {
		return ReasonOutsideWindow
	}
	if g.Hours != nil && !g.Hours.Contains(now) {
		return ReasonOutsideWindow
	}
	if g.RecordedWithin > 0 {
		if req.RecordedAt.IsZero() || req.RecordedAt.After(now) || now.Sub(req.RecordedAt) > g.RecordedWithin {
			return ReasonRecordingTooOld
		}
	}
	return ReasonGranted
}

// within reports whether now is in [from, until); zero bounds are open.
func within(now, from, until time.Time) bool {
	if !from.IsZero() && now.Before(from) {
		return false
	}
	if !until.IsZero() && !now.Before(until) {
		return false
	}
	return true
}

// Contains reports whether t falls in the weekly window, read as wall-clock
// time in the window's location. Around DST changes the window follows the
// wall clock: 08:00-18:00 is 08:00-18:00 local on both sides of a change.
func (w *Weekly) Contains(t time.Time) bool {
	loc := w.Location
	if loc == nil {
		loc = time.UTC
	}
	lt := t.In(loc)
	m := lt.Hour()*60 + lt.Minute()
	day := lt.Weekday()
	if w.From < w.To {
		return w.Days[day] && m >= w.From && m < w.To
	}
	// Overnight window: the evening part belongs to today, the morning part
	// to the day before.
	if m >= w.From {
		return w.Days[day]
	}
	if m < w.To {
		return w.Days[(day+6)%7]
	}
	return false
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
