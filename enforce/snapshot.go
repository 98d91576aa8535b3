package enforce

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// grant is a compiled Grant: what Decide reads first (the actions, the
// scope kinds and their interned names) comes before the Grant itself,
// which only a timed grant or a profile.assign request reads.
type grant struct {
	actions ActionSet
	kinds   [numDimensions]ScopeKind
	// timed is set when the grant has a validity window, weekly hours or a
	// recording age limit.
	timed bool
	// lists holds the names of ScopeList dimensions.
	lists idList
	Grant
}

type profile struct {
	Profile
	grants []grant
	// id is the profile's number, the index of its entry in
	// Snapshot.profileTab.
	id int32
}

// user is a compiled User, kept small: a snapshot of 100k users holds
// 100k of them. rec is its record (packUser): its id, then its profile,
// attributed names and identities, which Decide never reads (it reads the
// userRef); NewSnapshot cuts every user's record from one string. more
// holds its validity window and its interned attributed names when they
// do not fit in its userRef, nil when it has neither. user.User rebuilds
// the User, its strings sharing the record.
type user struct {
	rec   string
	more  *userMore
	idLen uint16 // rec[:idLen] is the id
}

// userMore is what few users have.
type userMore struct {
	from, until time.Time // the validity window; zero: none
	attr        *idList   // nil when the names fit in the userRef
}

// userID returns the user's id.
func (u *user) userID() string { return u.rec[:u.idLen] }

// packed returns the record past the id.
func (u *user) packed() string { return u.rec[u.idLen:] }

// attr returns the user's spilled attributed names (userRef.spill).
func (u *user) attr() *idList { return u.more.attr }

// validFrom and validUntil are the user's window, zero when it has none.
func (u *user) validFrom() time.Time {
	if u.more == nil {
		return time.Time{}
	}
	return u.more.from
}

func (u *user) validUntil() time.Time {
	if u.more == nil {
		return time.Time{}
	}
	return u.more.until
}

// userLists are the packed lists of a user, in packing order: the
// attributed names of each Dimension in order, then the identities.
func userLists(u *User) [5]*[]string {
	return [5]*[]string{&u.Queues, &u.Teams, &u.Agents, &u.Sites, &u.Identities}
}

// appendRecord appends src's record to b: its id, then its profile,
// attributed names and identities, each name preceded by its length and
// each list by its count (uvarints), so that any bytes a name may hold
// survive.
func appendRecord(b []byte, src *User) []byte {
	b = append(b, src.ID...)
	b = binary.AppendUvarint(b, uint64(len(src.Profile)))
	b = append(b, src.Profile...)
	for _, l := range userLists(src) {
		b = binary.AppendUvarint(b, uint64(len(*l)))
		for _, name := range *l {
			b = binary.AppendUvarint(b, uint64(len(name)))
			b = append(b, name...)
		}
	}
	return b
}

// recordLen is the length of src's record, so that records are built in
// a buffer of their exact size (NewSnapshot's 100k records: no doubling).
func recordLen(src *User) int {
	n := len(src.ID) + uvarintLen(len(src.Profile)) + len(src.Profile)
	for _, l := range userLists(src) {
		n += uvarintLen(len(*l))
		for _, name := range *l {
			n += uvarintLen(len(name)) + len(name)
		}
	}
	return n
}

// uvarintLen is the length of x as a uvarint.
func uvarintLen(x int) int {
	n := 1
	for ; x >= 0x80; x >>= 7 {
		n++
	}
	return n
}

// packUser returns src's record on its own (Snapshot.Patch).
func packUser(src *User) string {
	return string(appendRecord(make([]byte, 0, recordLen(src)), src))
}

// unpacked reads a record past its id: the next name, or the next count.
type unpacked struct{ s string }

func (r *unpacked) uvarint() int {
	v, n := binary.Uvarint([]byte(r.s[:min(len(r.s), binary.MaxVarintLen64)]))
	r.s = r.s[n:]
	return int(v)
}

func (r *unpacked) name() string {
	n := r.uvarint()
	name := r.s[:n]
	r.s = r.s[n:]
	return name
}

// User rebuilds the User u was compiled from; its strings share u's.
// An empty list comes back nil.
func (u *user) User() User {
	out := User{ID: u.userID(), ValidFrom: u.validFrom(), ValidUntil: u.validUntil()}
	r := unpacked{u.packed()}
	out.Profile = r.name()
	for _, l := range userLists(&out) {
		if n := r.uvarint(); n > 0 {
			*l = make([]string, n)
			for i := range *l {
				(*l)[i] = r.name()
			}
		}
	}
	return out
}

// eachIdentity yields the user's identities, sharing u's strings, without
// rebuilding the User.
func (u *user) eachIdentity(yield func(string) bool) {
	r := unpacked{u.packed()}
	r.name() // the profile
	for range numDimensions {
		for range r.uvarint() {
			r.name()
		}
	}
	for range r.uvarint() {
		if !yield(r.name()) {
			return
		}
	}
}

// inlineIDs is how many attributed names a userRef holds itself.
const inlineIDs = 6

// userRef is what the user index holds for a user, in the index's own
// slot: what Decide reads of a requester or a target (its profile's
// number, whether it has a validity window, its attributed names interned,
// inline when few), so that finding a user and deciding on it reads one
// slot rather than chasing a pointer per field. The rest is in *user.
// The zero userRef is no user.
type userRef struct {
	*user
	profile int32 // 0: no profile
	window  bool
	spill   bool // the attributed names are in user.attr, not inline
	end     [numDimensions]uint8
	ids     [inlineIDs]int32
}

// compile fills u from src, whose record (packUser) is rec, and returns
// its index entry: it interns the attributed names with in and resolves
// its profile's number in profileIDs. src.ID must be a valid id.
func (u *user) compile(src *User, rec string, in *interner, profileIDs map[string]int32) userRef {
	*u = user{rec: rec, idLen: uint16(len(src.ID))}
	window := !src.ValidFrom.IsZero() || !src.ValidUntil.IsZero()
	if window {
		u.more = &userMore{from: src.ValidFrom, until: src.ValidUntil}
	}
	r := userRef{
		user:    u,
		profile: profileIDs[src.Profile],
		window:  window,
	}
	lists := [numDimensions][]string{src.Queues, src.Teams, src.Agents, src.Sites}
	var buf [inlineIDs]int32
	ids, end := in.internLists(buf[:0], &lists)
	if len(ids) > inlineIDs {
		r.spill = true
		if u.more == nil {
			u.more = &userMore{}
		}
		u.more.attr = &idList{ids: ids, end: end}
		return r
	}
	copy(r.ids[:], ids)
	for d := range end {
		r.end[d] = uint8(end[d])
	}
	return r
}

// attrOf returns the numbers of the user's attributed names in dim, sorted.
func (r *userRef) attrOf(dim Dimension) []int32 {
	if r.spill {
		return r.user.attr().of(dim)
	}
	start := uint8(0)
	if dim > 0 {
		start = r.end[dim-1]
	}
	return r.ids[start:r.end[dim]]
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
	users      layered[userRef]
	identities layered[*user]
	profiles   map[string]*profile
	// profileTab is every profile by number (nil: removed), profileIDs
	// their numbers by name; a number is never reused.
	profileTab      []*profile
	profileIDs      map[string]int32
	syms            symbols
	protectedUsers  map[string]struct{}
	protectedQueues map[string]struct{}
	protected       Protected
	// profileUsers counts the users of each profile, so that removing a
	// profile still assigned is refused without scanning every user.
	profileUsers map[string]int
}

// NewSnapshot validates p and compiles it into a Snapshot tagged with
// generation. It rejects duplicate ids, unknown profile references and
// invalid grants; the returned error joins every problem found. The
// snapshot keeps its own copy of the users; p is not retained beyond its
// profiles and protected lists.
func NewSnapshot(p Policy, generation uint64) (*Snapshot, error) {
	return compileSnapshot(p, generation, true)
}

// ValidatePolicy returns the error NewSnapshot would return for p, without
// compiling the users a snapshot decides from: a cheaper check for callers
// that only validate (a profiles file parsed before a daemon compiles it).
func ValidatePolicy(p Policy) error {
	_, err := compileSnapshot(p, 0, false)
	return err
}

// compileSnapshot is NewSnapshot; without compile it only checks p and
// returns no snapshot.
func compileSnapshot(p Policy, generation uint64, compile bool) (*Snapshot, error) {
	s := &Snapshot{
		generation:      generation,
		profiles:        make(map[string]*profile, len(p.Profiles)),
		profileTab:      make([]*profile, 1, len(p.Profiles)+1),
		profileIDs:      make(map[string]int32, len(p.Profiles)),
		protectedUsers:  make(map[string]struct{}, len(p.Protected.Users)),
		protectedQueues: make(map[string]struct{}, len(p.Protected.Queues)),
		protected:       p.Protected,
		profileUsers:    make(map[string]int, len(p.Profiles)),
	}
	in := newInterner(nil)
	nident := 0
	for i := range p.Users {
		nident += len(p.Users[i].Identities)
	}
	users := newStrIndex[userRef](len(p.Users))
	identities := newStrIndex[*user](nident)
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
		cp, perrs := compileProfile(pr, in)
		errs = append(errs, perrs...)
		cp.id = int32(len(s.profileTab))
		s.profileTab = append(s.profileTab, cp)
		s.profileIDs[pr.Name] = cp.id
		s.profiles[pr.Name] = cp
	}
	// Delegable profiles must exist.
	for _, pr := range s.profiles {
		errs = append(errs, checkDelegable(pr, s.profiles)...)
	}
	// The users are compiled into one slab, in the policy's order (the
	// order Policy returns them in), their records cut from one string;
	// only checking, the slab holds their ids, which the identity index
	// names owners by.
	slab := make([]user, len(p.Users))
	var recs string
	var ends []int // user i's record is recs[ends[i-1]:ends[i]]
	if compile {
		ends = make([]int, len(p.Users))
		size := 0
		for i := range p.Users {
			size += recordLen(&p.Users[i])
			ends[i] = size
		}
		b := make([]byte, 0, size)
		for i := range p.Users {
			b = appendRecord(b, &p.Users[i])
		}
		recs = string(b)
	}
	n := 0
	for i := range p.Users {
		var rec string
		if compile {
			rec = recs[:ends[i]]
			if i > 0 {
				rec = rec[ends[i-1]:]
			}
		}
		u := &p.Users[i]
		if err := CheckID(u.ID); err != nil {
			errs = append(errs, fmt.Errorf("users[%d]: id: %w", i, err))
			continue
		}
		if users.has(u.ID) {
			errs = append(errs, fmt.Errorf("user %q: defined twice", u.ID))
			continue
		}
		errs = append(errs, checkUser(u, s.profiles)...)
		if u.Profile != "" {
			s.profileUsers[u.Profile]++
		}
		// The indexes hold the compiled user's strings, not the policy's,
		// so that the policy's can be freed.
		cu := &slab[n]
		n++
		idents := slices.Values(u.Identities)
		var ref userRef
		if compile {
			ref = cu.compile(u, rec, in, s.profileIDs)
			idents = cu.eachIdentity
		} else {
			cu.rec, cu.idLen = u.ID, uint16(len(u.ID))
		}
		for ident := range idents {
			if ident == "" {
				continue // reported by checkUser
			}
			if other, dup := identities.get(ident); dup && other.userID() != cu.userID() {
				errs = append(errs, fmt.Errorf("user %q: identity %q already belongs to user %q", cu.userID(), ident, other.userID()))
				continue
			}
			identities.put(ident, cu)
		}
		users.put(cu.userID(), ref)
	}
	// An identity must not name another user: ResolveIdentity would let it
	// take that user's place.
	identities.each(func(id string, owner *user) bool {
		if id != owner.userID() && users.has(id) {
			errs = append(errs, fmt.Errorf("user %q: identity %q is the id of user %q", owner.userID(), id, id))
		}
		return true
	})
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
	if !compile {
		return nil, nil
	}
	s.users = layeredOf(users)
	s.identities = layeredOf(identities)
	s.syms = in.symbols()
	s.policy = &lazyPolicy{compiled: true, profiles: p.Profiles, slab: slab[:n]}
	if n == 0 {
		s.policy.users = p.Users
	}
	return s, nil
}

// compileProfile compiles one named profile and checks it on its own,
// interning the names its grants list with in.
func compileProfile(pr *Profile, in *interner) (*profile, []error) {
	var errs []error
	if pr.MaskDigits < 0 {
		errs = append(errs, fmt.Errorf("profile %q: mask_digits must not be negative", pr.Name))
	}
	cp := &profile{Profile: *pr, grants: make([]grant, len(pr.Grants))}
	for gi, g := range pr.Grants {
		errs = append(errs, checkIDs(g.Profiles, func() string { return fmt.Sprintf("profile %q grant %d: profiles", pr.Name, gi) })...)
		var lists [numDimensions][]string
		for d := range g.Scopes {
			errs = append(errs, checkIDs(g.Scopes[d].Values, func() string {
				return fmt.Sprintf("profile %q grant %d: %s", pr.Name, gi, Dimension(d))
			})...)
			if g.Scopes[d].Kind == ScopeList {
				lists[d] = g.Scopes[d].Values
			}
		}
		if err := validateGrant(g); err != nil {
			errs = append(errs, fmt.Errorf("profile %q grant %d: %w", pr.Name, gi, err))
		}
		cg := grant{
			Grant:   g,
			actions: g.Actions,
			timed:   !g.ValidFrom.IsZero() || !g.ValidUntil.IsZero() || g.Hours != nil || g.RecordedWithin != 0,
		}
		for d := range g.Scopes {
			cg.kinds[d] = g.Scopes[d].Kind
		}
		cg.lists.ids, cg.lists.end = in.internLists(nil, &lists)
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

// checkIDs checks every id of a list against the id grammar; what names
// the list in an error, and is only called when there is one, so that a
// large valid policy formats nothing.
func checkIDs(ids []string, what func() string) []error {
	var errs []error
	for i, id := range ids {
		if err := CheckID(id); err != nil {
			errs = append(errs, fmt.Errorf("%s[%d]: %w", what(), i, err))
		}
	}
	return errs
}

func checkProtected(p Protected) []error {
	return append(checkIDs(p.Users, func() string { return "protected: users" }),
		checkIDs(p.Queues, func() string { return "protected: queues" })...)
}

// checkUser checks one user on its own and its profile reference.
func checkUser(u *User, profiles map[string]*profile) []error {
	var errs []error
	for _, l := range [...]struct {
		what string
		ids  []string
	}{{"queues", u.Queues}, {"teams", u.Teams}, {"agents", u.Agents}, {"sites", u.Sites}, {"identities", u.Identities}} {
		errs = append(errs, checkIDs(l.ids, func() string { return fmt.Sprintf("user %q: %s", u.ID, l.what) })...)
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
	if why := validLimit(g.MaxDuration); why != "" {
		return errors.New("max_duration " + why)
	}
	if why := validLimit(g.MaxPause); why != "" {
		return errors.New("max_pause " + why)
	}
	if g.MaxDuration != 0 && !g.Actions.Has(MonitorListen) && !g.Actions.Has(MonitorWhisper) &&
		!g.Actions.Has(MonitorBarge) && !g.Actions.Has(RecordingStart) {
		return errors.New("max_duration needs a monitor action or recording.start among the grant's actions")
	}
	if g.MaxPause != 0 && !g.Actions.Has(RecordingPause) {
		return errors.New("max_pause needs recording.pause among the grant's actions")
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
	return u.User(), true
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
	if !ok || s.profileTab[u.profile] == nil {
		return Profile{}, false
	}
	return s.profileTab[u.profile].Profile, true
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
		return u.userID(), true
	}
	if strings.IndexByte(id, '/') >= 0 {
		if i := strings.LastIndexByte(id, '-'); i > 0 {
			if u, ok := s.identities.get(id[:i]); ok {
				return u.userID(), true
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
