// This file answers the two questions of an access review: who may
// perform an action on a target (AccessIndex.WhoCan) and what one user may
// do (RightsOf). Both answer from the engine itself: the index only narrows
// the users Decide is asked about, and RightsOf lists the grants Decide
// reads, with `assigned` scopes resolved to the user's own names.

package enforce

import (
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strings"
	"time"
)

// ErrNotReviewable is returned by WhoCan for an action whose target is not
// a call or a recording: profile.assign hands out a profile, and RightsOf
// says per user which profiles on which queues.
var ErrNotReviewable = errors.New("who-can answers the call, recording and review actions; for profile.assign, see each user's rights")

// Access is one user WhoCan found allowed, with what allows it.
type Access struct {
	User    string `json:"user"`
	Profile string `json:"profile"`
	// Grant is the index of the allowing grant in Profile's grants.
	Grant int `json:"grant"`
}

// AccessIndex finds, for an action on a target, the users Decide may
// allow, without deciding for every user: per profile the users holding
// it, and per attributed name (queue, team, agent, site) the users it is
// attributed to. A grant's scope then names its candidates: everyone of
// the profile (an `all` or listed scope, once the target is in the list),
// the users attributed the target's name (`assigned`), or the target
// itself (`self`). Every candidate is then decided by Decide, so WhoCan
// never lists a user Decide refuses; that it misses none Decide allows is
// what its property test checks against every user.
//
// It is built once per snapshot (O(users), off the decision path) and
// then only read, so any number of goroutines may query it.
type AccessIndex struct {
	s *Snapshot
	// ids are the users, sorted; the index numbers a user by its place.
	ids       []string
	byProfile [][]int32
	byAttr    [numDimensions]map[int32][]int32
}

// NewAccessIndex indexes the users of s. A nil snapshot gives an index
// that finds no one.
func NewAccessIndex(s *Snapshot) *AccessIndex {
	ix := &AccessIndex{s: s}
	if s == nil {
		return ix
	}
	ix.byProfile = make([][]int32, len(s.profileTab))
	for d := range ix.byAttr {
		ix.byAttr[d] = make(map[int32][]int32)
	}
	ix.ids = make([]string, 0, s.users.n)
	s.users.each(func(id string, _ userRef) bool {
		ix.ids = append(ix.ids, id)
		return true
	})
	slices.Sort(ix.ids)
	for i, id := range ix.ids {
		u, _ := s.users.get(id)
		n := int32(i)
		if u.profile != 0 {
			ix.byProfile[u.profile] = append(ix.byProfile[u.profile], n)
		}
		for d := DimQueues; d < numDimensions; d++ {
			for _, sym := range u.attrOf(d) {
				ix.byAttr[d][sym] = append(ix.byAttr[d][sym], n)
			}
		}
	}
	return ix
}

// Snapshot returns the snapshot the index was built from.
func (ix *AccessIndex) Snapshot() *Snapshot { return ix.s }

// WhoCan lists, sorted by user id, every user Decide allows req.Action on
// req's target (Queue, Team, Agent, Site, RecordedAt) at now, each with the
// profile and grant that allow it. req.User is ignored. Errors:
// ErrNotReviewable for profile.assign, and an invalid action.
func (ix *AccessIndex) WhoCan(req Request, now time.Time) ([]Access, error) {
	if !req.Action.Valid() {
		return nil, fmt.Errorf("invalid action %d", req.Action)
	}
	if req.Action == ProfileAssign {
		return nil, ErrNotReviewable
	}
	if ix.s == nil {
		return nil, nil
	}
	req.User, req.AssignProfile, req.AssignQueues = "", "", nil
	c := decideCtx{s: ix.s, req: &req}
	marks := make([]uint64, (len(ix.ids)+63)/64)
	mark := func(u int32) { marks[u>>6] |= 1 << (u & 63) }
	// The users attributed the target's names in a dimension are the
	// same candidates for every profile: marked once.
	var attrDone [numDimensions]bool
	selfDone := false
	for pid, p := range ix.s.profileTab {
		if p == nil || len(ix.byProfile[pid]) == 0 {
			continue
		}
		for gi := range p.grants {
			g := &p.grants[gi]
			if !g.actions.Has(req.Action) || !g.listsMatch(&c) {
				continue
			}
			switch dim, kind := g.narrowest(); {
			case kind == ScopeSelf && !selfDone:
				selfDone = true
				if i, ok := slices.BinarySearch(ix.ids, req.Agent); ok {
					mark(int32(i))
				}
			case kind == ScopeAssigned && !attrDone[dim]:
				attrDone[dim] = true
				for _, sym := range c.targetIDs(dim) {
					for _, u := range ix.byAttr[dim][sym] {
						mark(u)
					}
				}
			case kind == ScopeAll:
				for _, u := range ix.byProfile[pid] {
					mark(u)
				}
			}
		}
	}
	var out []Access
	for w, word := range marks {
		for word != 0 {
			i := w*64 + bits.TrailingZeros64(word)
			word &= word - 1
			req.User = ix.ids[i]
			if d := Decide(ix.s, &req, now); d.Allow {
				out = append(out, Access{User: req.User, Profile: d.Profile, Grant: d.Grant})
			}
		}
	}
	return out, nil
}

// WhoCanAnswer is the answer to a who-can question, as the CLI and the
// admin API print it.
type WhoCanAnswer struct {
	Action string       `json:"action"`
	Target AnswerTarget `json:"target"`
	// RecordedAt is the recording's time, for a recording action.
	RecordedAt time.Time `json:"recorded_at,omitzero"`
	At         time.Time `json:"at"`
	Users      []Access  `json:"users"`
}

// NewWhoCanAnswer is the answer listing users for req at at.
func NewWhoCanAnswer(req Request, at time.Time, users []Access) WhoCanAnswer {
	if users == nil {
		users = []Access{}
	}
	return WhoCanAnswer{Action: req.Action.String(), Target: AnswerTarget{Queue: req.Queue, Team: req.Team, Agent: req.Agent, Site: req.Site},
		RecordedAt: req.RecordedAt.UTC(), At: at.UTC(), Users: users}
}

// listsMatch reports whether the target is in every listed (ScopeList)
// dimension of the grant: those do not depend on who asks.
func (g *grant) listsMatch(c *decideCtx) bool {
	for dim := DimQueues; dim < numDimensions; dim++ {
		if g.kinds[dim] == ScopeList && !g.match(dim, c) {
			return false
		}
	}
	return true
}

// narrowest returns the dimension whose scope depends on the requester and
// names the fewest candidates: self (the target alone) before assigned
// (the users attributed the target's name); ScopeAll when no dimension
// depends on the requester.
func (g *grant) narrowest() (Dimension, ScopeKind) {
	if g.kinds[DimAgents] == ScopeSelf {
		return DimAgents, ScopeSelf
	}
	for dim := DimQueues; dim < numDimensions; dim++ {
		if g.kinds[dim] == ScopeAssigned {
			return dim, ScopeAssigned
		}
	}
	return 0, ScopeAll
}

// targetIDs returns the numbers of the target's names in dim that match
// reads: the request's value, or for teams and sites the target agent's
// own when the request has none.
func (c *decideCtx) targetIDs(dim Dimension) []int32 {
	if c.req.value(dim) != "" || dim == DimQueues || dim == DimAgents {
		if id := c.id(dim); id != 0 {
			return []int32{id}
		}
		return nil
	}
	if t := c.target(); t != nil {
		return t.attrOf(dim)
	}
	return nil
}

// Rights is what one user may do, as RightsOf describes it: per action,
// the grants of its profile that list it.
type Rights struct {
	User    string `json:"user"`
	Profile string `json:"profile,omitempty"`
	// Reason, when set, is why the user may do nothing at all at the
	// instant asked about: unknown_user, no_profile, or outside_window
	// (its assignment's validity period); Actions are then still listed
	// for an assignment outside its period.
	Reason     string    `json:"reason,omitempty"`
	ValidFrom  time.Time `json:"valid_from,omitzero"`
	ValidUntil time.Time `json:"valid_until,omitzero"`
	// NotifyTarget and MaskDigits are the profile's options.
	NotifyTarget bool           `json:"notify_target,omitempty"`
	MaskDigits   int            `json:"mask_digits,omitempty"`
	Actions      []ActionRights `json:"actions"`
	// Protected are the exceptions to every grant but profile.assign and
	// audit.review: users (but on their own calls) and queues nobody
	// reaches.
	Protected ProtectedTargets `json:"protected"`
}

// ProtectedTargets is the protected lists as an access review shows them.
type ProtectedTargets struct {
	Users  []string `json:"users"`
	Queues []string `json:"queues"`
}

// ActionRights lists the grants that give one action.
type ActionRights struct {
	Action string        `json:"action"`
	Grants []GrantRights `json:"grants"`
}

// GrantRights is one grant as it applies to the user.
type GrantRights struct {
	// Grant is the grant's index in the profile.
	Grant int `json:"grant"`
	// Open says whether the grant's validity period and weekly hours
	// hold at the instant asked about: a closed grant allows nothing then.
	Open bool `json:"open"`
	// Scopes holds the dimensions the grant names, in the order queues,
	// teams, agents, sites; a dimension it does not name is not
	// constrained.
	Scopes []ScopeRights `json:"scopes,omitempty"`
	// Profiles are what a profile.assign grant may hand out.
	Profiles       []string     `json:"profiles,omitempty"`
	ValidFrom      time.Time    `json:"valid_from,omitzero"`
	ValidUntil     time.Time    `json:"valid_until,omitzero"`
	Hours          *HoursRights `json:"hours,omitempty"`
	RecordedWithin string       `json:"recorded_within,omitempty"`
}

// ScopeRights is one dimension of a grant's scope for the user.
type ScopeRights struct {
	// Dimension is queues, teams, agents or sites.
	Dimension string `json:"dimension"`
	// Kind is how the grant names it: all, list, assigned or self.
	Kind string `json:"kind"`
	// Values are the names it reaches: the grant's list, the user's
	// attributed names (assigned), the user itself (self); none for all.
	Values []string `json:"values,omitempty"`
}

// HoursRights is a grant's weekly window.
type HoursRights struct {
	Days     []string `json:"days"`
	From     string   `json:"from"`
	To       string   `json:"to"`
	TimeZone string   `json:"tz"`
}

var scopeKindNames = [...]string{ScopeUnset: "", ScopeList: "list", ScopeAll: "all", ScopeAssigned: "assigned", ScopeSelf: "self"}

var weekdayNames = [7]string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// RightsOf describes what user may do at the instant at, from the grants
// Decide reads: each action its profile's grants list, with the scope each
// grant reaches for this user. For a target in a grant's scope and a time
// in its windows, Decide allows, protected targets aside; for any other,
// it refuses (the property test holds the two together).
func RightsOf(s *Snapshot, user string, at time.Time) Rights {
	r := Rights{User: user, Actions: []ActionRights{}}
	if s == nil {
		r.Reason = ReasonStoreUnavailable.String()
		return r
	}
	r.Protected = ProtectedTargets{Users: s.protected.Users, Queues: s.protected.Queues}
	u, ok := s.users.get(user)
	if !ok {
		r.Reason = ReasonUnknownUser.String()
		return r
	}
	r.ValidFrom, r.ValidUntil = u.validFrom(), u.validUntil()
	p := s.profileTab[u.profile]
	if p == nil {
		r.Reason = ReasonNoProfile.String()
		return r
	}
	r.Profile, r.NotifyTarget, r.MaskDigits = p.Name, p.NotifyTarget, p.MaskDigits
	if u.window && !within(at, u.validFrom(), u.validUntil()) {
		r.Reason = ReasonOutsideWindow.String()
	}
	usr := u.User()
	for _, a := range Actions() {
		ar := ActionRights{Action: a.String()}
		for i := range p.grants {
			if g := &p.grants[i]; g.actions.Has(a) {
				ar.Grants = append(ar.Grants, g.rights(i, &usr, at))
			}
		}
		if len(ar.Grants) > 0 {
			r.Actions = append(r.Actions, ar)
		}
	}
	return r
}

// rights describes grant number i for user u at at.
func (g *grant) rights(i int, u *User, at time.Time) GrantRights {
	gr := GrantRights{
		Grant:      i,
		Open:       within(at, g.ValidFrom, g.ValidUntil) && (g.Hours == nil || g.Hours.Contains(at)),
		Profiles:   g.Profiles,
		ValidFrom:  g.ValidFrom,
		ValidUntil: g.ValidUntil,
	}
	attributed := [numDimensions][]string{u.Queues, u.Teams, u.Agents, u.Sites}
	for dim := DimQueues; dim < numDimensions; dim++ {
		sr := ScopeRights{Dimension: dim.String(), Kind: scopeKindNames[g.kinds[dim]]}
		switch g.kinds[dim] {
		case ScopeUnset:
			continue
		case ScopeList:
			sr.Values = g.Scopes[dim].Values
		case ScopeAssigned:
			sr.Values = attributed[dim]
		case ScopeSelf:
			sr.Values = []string{u.ID}
		}
		gr.Scopes = append(gr.Scopes, sr)
	}
	if h := g.Hours; h != nil {
		hr := &HoursRights{From: clock(h.From), To: clock(h.To), TimeZone: zoneName(h.Location)}
		for d, on := range h.Days {
			if on {
				hr.Days = append(hr.Days, weekdayNames[d])
			}
		}
		gr.Hours = hr
	}
	if g.RecordedWithin > 0 {
		gr.RecordedWithin = g.RecordedWithin.String()
	}
	return gr
}

// clock renders minutes after midnight as HH:MM.
func clock(m int) string { return fmt.Sprintf("%02d:%02d", m/60, m%60) }

// String describes the grant in one line, for `callwarden rights`:
// "grant #0: queues sales, support (assigned); hours mon,tue 08:00-18:00 UTC".
func (g GrantRights) String() string {
	var scope []string
	for _, s := range g.Scopes {
		switch s.Kind {
		case "all":
			scope = append(scope, "every "+strings.TrimSuffix(s.Dimension, "s"))
		case "list":
			scope = append(scope, s.Dimension+" "+strings.Join(s.Values, ", "))
		default:
			v := strings.Join(s.Values, ", ")
			if v == "" {
				v = "none"
			}
			scope = append(scope, s.Dimension+" "+v+" ("+s.Kind+")")
		}
	}
	if len(scope) == 0 {
		scope = []string{"any target"}
	}
	if len(g.Profiles) > 0 {
		scope = append(scope, "hands out "+strings.Join(g.Profiles, ", "))
	}
	if !g.ValidFrom.IsZero() {
		scope = append(scope, "from "+g.ValidFrom.Format(time.RFC3339))
	}
	if !g.ValidUntil.IsZero() {
		scope = append(scope, "until "+g.ValidUntil.Format(time.RFC3339))
	}
	if h := g.Hours; h != nil {
		scope = append(scope, fmt.Sprintf("hours %s %s-%s %s", strings.Join(h.Days, ","), h.From, h.To, h.TimeZone))
	}
	if g.RecordedWithin != "" {
		scope = append(scope, "recordings within "+g.RecordedWithin)
	}
	s := fmt.Sprintf("grant #%d: %s", g.Grant, strings.Join(scope, "; "))
	if !g.Open {
		s += " [closed at this time]"
	}
	return s
}
