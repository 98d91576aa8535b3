package enforce

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
)

// smallSet is the size up to which a set is scanned rather than hashed.
const smallSet = 8

// strset is an immutable set of strings tuned for small sizes.
type strset struct {
	list []string
	m    map[string]struct{}
}

func newStrset(vals []string) strset {
	if len(vals) <= smallSet {
		return strset{list: vals}
	}
	m := make(map[string]struct{}, len(vals))
	for _, v := range vals {
		m[v] = struct{}{}
	}
	return strset{m: m}
}

func (s *strset) has(v string) bool {
	if s.m != nil {
		_, ok := s.m[v]
		return ok
	}
	for _, x := range s.list {
		if x == v {
			return true
		}
	}
	return false
}

// scopeSet is a compiled Scope.
type scopeSet struct {
	kind ScopeKind
	set  strset
}

// matchOne reports whether a single value is in the scope for requester u.
func (s *scopeSet) matchOne(dim Dimension, u *user, v string) bool {
	switch s.kind {
	case ScopeUnset, ScopeAll:
		return true
	case ScopeList:
		return v != "" && s.set.has(v)
	case ScopeAssigned:
		return v != "" && u.attributed[dim].has(v)
	case ScopeSelf:
		return v != "" && v == u.ID
	}
	return false
}

// match reports whether the request's value for dim is in the scope.
func (s *scopeSet) match(dim Dimension, u, target *user, req *Request) bool {
	if s.kind == ScopeUnset || s.kind == ScopeAll {
		return true
	}
	switch dim {
	case DimQueues:
		return s.matchOne(dim, u, req.Queue)
	case DimAgents:
		return s.matchOne(dim, u, req.Agent)
	case DimSites:
		return s.matchTarget(dim, u, req.Site, target, func(t *user) []string { return t.Sites })
	case DimTeams:
		return s.matchTarget(dim, u, req.Team, target, func(t *user) []string { return t.Teams })
	}
	return false
}

// matchTarget matches a dimension that describes the target agent (its
// teams, its site): the request's value when it has one (Decide has already
// refused a value that contradicts a known target), otherwise any of the
// target's own values from its user entry.
func (s *scopeSet) matchTarget(dim Dimension, u *user, v string, target *user, of func(*user) []string) bool {
	if v != "" {
		return s.matchOne(dim, u, v)
	}
	if target == nil {
		return false
	}
	for _, t := range of(target) {
		if s.matchOne(dim, u, t) {
			return true
		}
	}
	return false
}

type grant struct {
	Grant
	sets [numDimensions]scopeSet
}

type profile struct {
	Profile
	grants []grant
}

type user struct {
	User
	attributed [numDimensions]strset
}

// Snapshot is an immutable, indexed view of a Policy, built once and then
// only read, so any number of goroutines may decide from it concurrently.
// Its owner replaces it as a whole (see Holder), never edits it. Patch
// builds the next snapshot from it by sharing everything a change does not
// touch.
type Snapshot struct {
	generation uint64
	// origin names the store history the snapshot was read from (see
	// WithOrigin).
	origin string
	// policy is the policy compiled, or, for a patched snapshot, built on
	// first use from the indexes.
	policy *lazyPolicy
	// users and identities are layered so that Patch copies only what
	// changed; profiles and the protected sets are small and copied whole
	// when they change.
	users           layered[*user]
	identities      layered[string]
	profiles        map[string]*profile
	protectedUsers  map[string]struct{}
	protectedQueues map[string]struct{}
	protected       Protected
	// profileUsers counts the users of each profile, so that removing a
	// profile still assigned is refused without scanning every user.
	profileUsers map[string]int
}

// NewSnapshot validates p and compiles it into a Snapshot tagged with
// generation. It rejects duplicate ids, unknown profile references and
// invalid grants; the returned error joins every problem found.
func NewSnapshot(p Policy, generation uint64) (*Snapshot, error) {
	s := &Snapshot{
		policy:          &lazyPolicy{p: p, done: true},
		generation:      generation,
		profiles:        make(map[string]*profile, len(p.Profiles)),
		protectedUsers:  make(map[string]struct{}, len(p.Protected.Users)),
		protectedQueues: make(map[string]struct{}, len(p.Protected.Queues)),
		protected:       p.Protected,
		profileUsers:    make(map[string]int, len(p.Profiles)),
	}
	users := make(map[string]*user, len(p.Users))
	identities := make(map[string]string)
	var errs []error
	for i := range p.Profiles {
		pr := &p.Profiles[i]
		if err := CheckID(pr.Name); err != nil {
			errs = append(errs, fmt.Errorf("profiles[%d]: name: %w", i, err))
			continue
		}
		if _, dup := s.profiles[pr.Name]; dup {
			errs = append(errs, fmt.Errorf("profile %q: defined twice", pr.Name))
			continue
		}
		cp, perrs := compileProfile(pr)
		errs = append(errs, perrs...)
		s.profiles[pr.Name] = cp
	}
	// Delegable profiles must exist.
	for _, pr := range s.profiles {
		errs = append(errs, checkDelegable(pr, s.profiles)...)
	}
	for i := range p.Users {
		u := &p.Users[i]
		if err := CheckID(u.ID); err != nil {
			errs = append(errs, fmt.Errorf("users[%d]: id: %w", i, err))
			continue
		}
		if _, dup := users[u.ID]; dup {
			errs = append(errs, fmt.Errorf("user %q: defined twice", u.ID))
			continue
		}
		errs = append(errs, checkUser(u, s.profiles)...)
		if u.Profile != "" {
			s.profileUsers[u.Profile]++
		}
		for _, id := range u.Identities {
			if id == "" {
				continue // reported by checkUser
			}
			if other, dup := identities[id]; dup && other != u.ID {
				errs = append(errs, fmt.Errorf("user %q: identity %q already belongs to user %q", u.ID, id, other))
				continue
			}
			identities[id] = u.ID
		}
		users[u.ID] = compileUser(u)
	}
	// An identity must not name another user: ResolveIdentity would let it
	// take that user's place.
	for id, owner := range identities {
		if other, ok := users[id]; ok && other.ID != owner {
			errs = append(errs, fmt.Errorf("user %q: identity %q is the id of user %q", owner, id, id))
		}
	}
	errs = append(errs, checkProtected(p.Protected)...)
	for _, id := range p.Protected.Users {
		s.protectedUsers[id] = struct{}{}
	}
	for _, q := range p.Protected.Queues {
		s.protectedQueues[q] = struct{}{}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	s.users = newLayered(users)
	s.identities = newLayered(identities)
	return s, nil
}

// compileProfile compiles one named profile and checks it on its own.
func compileProfile(pr *Profile) (*profile, []error) {
	var errs []error
	if pr.MaskDigits < 0 {
		errs = append(errs, fmt.Errorf("profile %q: mask_digits must not be negative", pr.Name))
	}
	cp := &profile{Profile: *pr, grants: make([]grant, len(pr.Grants))}
	for gi, g := range pr.Grants {
		errs = append(errs, checkIDs(fmt.Sprintf("profile %q grant %d: profiles", pr.Name, gi), g.Profiles)...)
		for d := range g.Scopes {
			errs = append(errs, checkIDs(fmt.Sprintf("profile %q grant %d: %s", pr.Name, gi, Dimension(d)), g.Scopes[d].Values)...)
		}
		if err := validateGrant(g); err != nil {
			errs = append(errs, fmt.Errorf("profile %q grant %d: %w", pr.Name, gi, err))
		}
		cg := grant{Grant: g}
		for d := range g.Scopes {
			cg.sets[d] = scopeSet{kind: g.Scopes[d].Kind, set: newStrset(g.Scopes[d].Values)}
		}
		cp.grants[gi] = cg
	}
	return cp, errs
}

// checkDelegable reports the profiles pr may hand out that do not exist.
func checkDelegable(pr *profile, profiles map[string]*profile) []error {
	var errs []error
	for gi, g := range pr.grants {
		for _, name := range g.Profiles {
			if _, ok := profiles[name]; !ok {
				errs = append(errs, fmt.Errorf("profile %q grant %d: profiles: unknown profile %q", pr.Name, gi, name))
			}
		}
	}
	return errs
}

// checkUser checks one user on its own and its profile reference.
// checkIDs checks every id of a list against the id grammar.
func checkIDs(what string, ids []string) []error {
	var errs []error
	for i, id := range ids {
		if err := CheckID(id); err != nil {
			errs = append(errs, fmt.Errorf("%s[%d]: %w", what, i, err))
		}
	}
	return errs
}

func checkProtected(p Protected) []error {
	return append(checkIDs("protected: users", p.Users), checkIDs("protected: queues", p.Queues)...)
}

func checkUser(u *User, profiles map[string]*profile) []error {
	var errs []error
	for _, l := range [...]struct {
		what string
		ids  []string
	}{{"queues", u.Queues}, {"teams", u.Teams}, {"agents", u.Agents}, {"sites", u.Sites}, {"identities", u.Identities}} {
		errs = append(errs, checkIDs(fmt.Sprintf("user %q: %s", u.ID, l.what), l.ids)...)
	}
	if u.Profile != "" {
		if err := CheckID(u.Profile); err != nil {
			return append(errs, fmt.Errorf("user %q: profile: %w", u.ID, err))
		}
	}
	if len(errs) > 0 {
		return errs
	}
	if u.Profile != "" {
		if _, ok := profiles[u.Profile]; !ok {
			errs = append(errs, fmt.Errorf("user %q: unknown profile %q", u.ID, u.Profile))
		}
	}
	if !u.ValidFrom.IsZero() && !u.ValidUntil.IsZero() && !u.ValidUntil.After(u.ValidFrom) {
		errs = append(errs, fmt.Errorf("user %q: valid_until must be after valid_from", u.ID))
	}
	for _, id := range u.Identities {
		if id == "" {
			errs = append(errs, fmt.Errorf("user %q: empty identity", u.ID))
		}
	}
	return errs
}

func compileUser(u *User) *user {
	cu := &user{User: *u}
	cu.attributed[DimQueues] = newStrset(u.Queues)
	cu.attributed[DimTeams] = newStrset(u.Teams)
	cu.attributed[DimAgents] = newStrset(u.Agents)
	cu.attributed[DimSites] = newStrset(u.Sites)
	return cu
}

func validateGrant(g Grant) error {
	if g.Actions == 0 {
		return errors.New("actions: at least one action is required")
	}
	for a := Action(0); a < 16; a++ {
		if g.Actions.Has(a) && !a.Valid() {
			return fmt.Errorf("actions: invalid action %d", a)
		}
	}
	if len(g.Profiles) > 0 && !g.Actions.Has(ProfileAssign) {
		return errors.New("profiles: only meaningful with profile.assign")
	}
	if g.Actions.Has(ProfileAssign) && len(g.Profiles) == 0 {
		return errors.New("profiles: profile.assign needs the list of profiles it may hand out")
	}
	for d, sc := range g.Scopes {
		if sc.Kind == ScopeSelf && Dimension(d) != DimAgents {
			return fmt.Errorf("%s: self is only valid for agents", Dimension(d))
		}
		if sc.Kind == ScopeList && len(sc.Values) == 0 {
			return fmt.Errorf("%s: empty list (omit the field, or use all or assigned)", Dimension(d))
		}
		if sc.Kind != ScopeList && len(sc.Values) > 0 {
			return fmt.Errorf("%s: values given with a non-list scope", Dimension(d))
		}
	}
	if !g.ValidFrom.IsZero() && !g.ValidUntil.IsZero() && !g.ValidUntil.After(g.ValidFrom) {
		return errors.New("valid_until must be after valid_from")
	}
	if g.Hours != nil {
		h := g.Hours
		if h.From < 0 || h.From >= 24*60 || h.To < 0 || h.To > 24*60 || h.From == h.To {
			return errors.New("hours: from and to must be distinct times of day")
		}
		any := false
		for _, d := range h.Days {
			any = any || d
		}
		if !any {
			return errors.New("hours: days must name at least one day")
		}
	}
	if g.RecordedWithin < 0 {
		return errors.New("recorded_within must not be negative")
	}
	return nil
}

// Generation is the store generation the snapshot was built from.
func (s *Snapshot) Generation() uint64 { return s.generation }

// WithOrigin returns a copy of s tagged with origin: the identity of the
// store history its generation counts in (a Redis store's epoch, renewed
// when the store is emptied). A generation number alone does not identify
// a policy once a store can be reset; stores compare origins before
// applying a change computed against a snapshot. Patch keeps the origin.
func (s *Snapshot) WithOrigin(origin string) *Snapshot {
	c := *s
	c.origin = origin
	return &c
}

// Origin returns the tag given by WithOrigin ("" when none).
func (s *Snapshot) Origin() string { return s.origin }

// Protected returns the protected lists. Callers must treat them as
// read-only.
func (s *Snapshot) Protected() Protected { return s.protected }

// ProfileNames returns the names of the profiles, sorted.
func (s *Snapshot) ProfileNames() []string {
	names := make([]string, 0, len(s.profiles))
	for n := range s.profiles {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Policy returns the policy the snapshot was compiled from. Callers must
// treat it as read-only. For a snapshot made by Patch it is rebuilt from
// the indexes on first use (an O(n log n) step, off the decision path),
// with profiles sorted by name and users by id.
func (s *Snapshot) Policy() Policy { return s.policy.get(s) }

// User returns the user with the given id.
func (s *Snapshot) User(id string) (User, bool) {
	u, ok := s.users.get(id)
	if !ok {
		return User{}, false
	}
	return u.User, true
}

// Profile returns the profile with the given name.
func (s *Snapshot) Profile(name string) (Profile, bool) {
	p, ok := s.profiles[name]
	if !ok {
		return Profile{}, false
	}
	return p.Profile, true
}

// ProfileOf returns the profile of user id, if it has one.
func (s *Snapshot) ProfileOf(id string) (Profile, bool) {
	u, ok := s.users.get(id)
	if !ok || u.Profile == "" {
		return Profile{}, false
	}
	return s.Profile(u.Profile)
}

// UserCount returns the number of users.
func (s *Snapshot) UserCount() int { return s.users.n }

// IsProtected reports whether a user or queue is protected.
func (s *Snapshot) IsProtected(userID, queue string) bool {
	if _, ok := s.protectedUsers[userID]; ok && userID != "" {
		return true
	}
	_, ok := s.protectedQueues[queue]
	return ok && queue != ""
}

// ResolveIdentity finds the user whose identity is id: an exact identity
// ("1001", "PJSIP/1001", "1001@pbx.example"), or an Asterisk channel name
// whose prefix before the last '-' is an identity ("PJSIP/1001-0000002a"),
// or a user id.
func (s *Snapshot) ResolveIdentity(id string) (string, bool) {
	if id == "" {
		return "", false
	}
	if u, ok := s.identities.get(id); ok {
		return u, true
	}
	if strings.IndexByte(id, '/') >= 0 {
		if i := strings.LastIndexByte(id, '-'); i > 0 {
			if u, ok := s.identities.get(id[:i]); ok {
				return u, true
			}
		}
	}
	if _, ok := s.users.get(id); ok {
		return id, true
	}
	return "", false
}

// Holder owns the current snapshot and swaps it atomically; readers never
// see a half-applied policy.
type Holder struct {
	p atomic.Pointer[Snapshot]
}

// Load returns the current snapshot, or nil before the first Store.
func (h *Holder) Load() *Snapshot { return h.p.Load() }

// Store replaces the current snapshot.
func (h *Holder) Store(s *Snapshot) { h.p.Store(s) }
