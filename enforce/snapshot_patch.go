package enforce

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
)

// PolicyPatch is a change to a policy, entry by entry: what a store's
// change log says changed between two generations, or what one admin
// request changes. Entries are put whole (added or replaced) or removed,
// by name and id.
type PolicyPatch struct {
	// Profiles are added, or replace the profile of the same name.
	Profiles []Profile
	// RemovedProfiles are removed by name; an unknown name is ignored.
	RemovedProfiles []string
	// Users are added, or replace the user of the same id.
	Users []User
	// RemovedUsers are removed by id; an unknown id is ignored.
	RemovedUsers []string
	// Protected, when set, replaces both protected lists.
	Protected *Protected
}

// Empty reports whether the patch changes nothing.
func (p *PolicyPatch) Empty() bool {
	return len(p.Profiles)+len(p.RemovedProfiles)+len(p.Users)+len(p.RemovedUsers) == 0 && p.Protected == nil
}

// Size is the number of entries the patch names.
func (p *PolicyPatch) Size() int {
	n := len(p.Profiles) + len(p.RemovedProfiles) + len(p.Users) + len(p.RemovedUsers)
	if p.Protected != nil {
		n++
	}
	return n
}

// Patch returns the snapshot of generation gen that NewSnapshot would build
// from s's policy with p applied, without recompiling what p does not
// touch: the user and identity indexes are shared with s through a small
// copy-on-write delta, profiles are resolved by name when deciding, so a
// changed profile reaches its users without touching them. s is unchanged
// and stays valid.
//
// It checks what p touches with NewSnapshot's rules (grants, unknown or
// removed profiles still in use, identities owned twice or naming another
// user, validity windows) and returns every problem joined, and no
// snapshot, when the result would be invalid. An entry both put and
// removed, or put twice, is an error.
func (s *Snapshot) Patch(p PolicyPatch, gen uint64) (*Snapshot, error) {
	var errs []error
	next := &Snapshot{
		generation:      gen,
		origin:          s.origin,
		policy:          &lazyPolicy{},
		users:           s.users,
		identities:      s.identities,
		profiles:        s.profiles,
		profileTab:      s.profileTab,
		profileIDs:      s.profileIDs,
		syms:            s.syms,
		protectedUsers:  s.protectedUsers,
		protectedQueues: s.protectedQueues,
		protected:       s.protected,
		profileUsers:    s.profileUsers,
	}

	// New names (queues, teams...) are numbered after the base's.
	in := newInterner(&s.syms)
	// Profiles: a fresh map and table when any changes (hundreds to a few
	// thousand entries: cheap next to recompiling).
	if len(p.Profiles)+len(p.RemovedProfiles) > 0 {
		next.profiles = maps.Clone(s.profiles)
		next.profileTab = slices.Clone(s.profileTab)
		ids := s.profileIDs
		seen := make(map[string]bool, len(p.Profiles))
		changed := make([]*profile, 0, len(p.Profiles))
		for i := range p.Profiles {
			pr := &p.Profiles[i]
			if err := CheckID(pr.Name); err != nil {
				errs = append(errs, fmt.Errorf("profiles[%d]: name: %w", i, err))
				continue
			}
			if seen[pr.Name] {
				errs = append(errs, fmt.Errorf("profile %q: defined twice", pr.Name))
				continue
			}
			seen[pr.Name] = true
			cp, perrs := compileProfile(pr, in)
			errs = append(errs, perrs...)
			id, known := ids[pr.Name]
			if !known {
				if len(ids) == len(s.profileIDs) {
					ids = maps.Clone(s.profileIDs)
				}
				id = int32(len(next.profileTab))
				next.profileTab = append(next.profileTab, nil)
				ids[pr.Name] = id
			}
			cp.id = id
			next.profileTab[id] = cp
			next.profiles[pr.Name] = cp
			changed = append(changed, cp)
		}
		for _, name := range p.RemovedProfiles {
			if seen[name] {
				errs = append(errs, fmt.Errorf("profile %q: both put and removed", name))
				continue
			}
			if old, ok := next.profiles[name]; ok {
				next.profileTab[old.id] = nil
				delete(next.profiles, name)
			}
		}
		next.profileIDs = ids
		for _, cp := range changed {
			errs = append(errs, checkDelegable(cp, next.profiles)...)
		}
		if len(p.RemovedProfiles) > 0 {
			// A removed profile must not be delegable by one that stays.
			for _, pr := range next.profiles {
				for gi, g := range pr.grants {
					for _, name := range g.Profiles {
						if _, ok := next.profiles[name]; !ok && slices.Contains(p.RemovedProfiles, name) {
							errs = append(errs, fmt.Errorf("profile %q grant %d: profiles: unknown profile %q", pr.Name, gi, name))
						}
					}
				}
			}
		}
	}

	// Users: old identities are released before new ones are claimed, so
	// an identity may move from one user to another in one patch.
	if len(p.Users)+len(p.RemovedUsers) > 0 {
		userChanges := make(map[string]userRef, len(p.Users)+len(p.RemovedUsers))
		idChanges := make(map[string]*user)
		refs := maps.Clone(s.profileUsers)
		release := func(id string) {
			old, ok := s.users.get(id)
			if !ok {
				return
			}
			if pr := s.profileTab[old.profile]; pr != nil {
				if refs[pr.Name]--; refs[pr.Name] <= 0 {
					delete(refs, pr.Name)
				}
			}
			for ident := range old.eachIdentity {
				idChanges[ident] = nil // claims come after every release
			}
		}
		for i := range p.Users {
			u := &p.Users[i]
			if err := CheckID(u.ID); err != nil {
				errs = append(errs, fmt.Errorf("users[%d]: id: %w", i, err))
				continue
			}
			if _, dup := userChanges[u.ID]; dup {
				errs = append(errs, fmt.Errorf("user %q: defined twice", u.ID))
				continue
			}
			release(u.ID)
			userChanges[u.ID] = new(user).compile(u, packUser(u), in, next.profileIDs)
		}
		for _, id := range p.RemovedUsers {
			if cu, dup := userChanges[id]; dup && cu.user != nil {
				errs = append(errs, fmt.Errorf("user %q: both put and removed", id))
				continue
			}
			release(id)
			userChanges[id] = userRef{}
		}
		for i := range p.Users {
			u := &p.Users[i]
			cu := userChanges[u.ID].user
			if cu == nil || cu.userID() != u.ID {
				continue
			}
			errs = append(errs, checkUser(u, next.profiles)...)
			if u.Profile != "" {
				refs[u.Profile]++
			}
			for ident := range cu.eachIdentity {
				if ident == "" {
					continue
				}
				owner, changed := idChanges[ident]
				if !changed {
					owner, _ = s.identities.get(ident)
				}
				if owner != nil && owner.userID() != u.ID {
					errs = append(errs, fmt.Errorf("user %q: identity %q already belongs to user %q", u.ID, ident, owner.userID()))
					continue
				}
				idChanges[ident] = cu
			}
		}
		next.users = s.users.with(userChanges)
		next.identities = s.identities.with(idChanges)
		next.profileUsers = refs
		// An identity must not name another user, in either direction.
		for ident, owner := range idChanges {
			if owner == nil {
				continue
			}
			if other, ok := next.users.get(ident); ok && other.userID() != owner.userID() {
				errs = append(errs, fmt.Errorf("user %q: identity %q is the id of user %q", owner.userID(), ident, ident))
			}
		}
		for id, cu := range userChanges {
			if cu.user == nil {
				continue
			}
			if owner, ok := next.identities.get(id); ok && owner.userID() != id {
				if _, reported := idChanges[id]; !reported {
					errs = append(errs, fmt.Errorf("user %q: identity %q is the id of user %q", owner.userID(), id, id))
				}
			}
		}
	}
	// A removed profile must have no users left (profileUsers counts them
	// after this patch's user changes; users put by the patch were checked
	// against next.profiles already).
	for _, name := range p.RemovedProfiles {
		if n := next.profileUsers[name]; n > 0 {
			errs = append(errs, fmt.Errorf("profile %q: removed but still assigned to %d users", name, n))
		}
	}

	if p.Protected != nil {
		errs = append(errs, checkProtected(*p.Protected)...)
		next.protected = Protected{Users: slices.Clone(p.Protected.Users), Queues: slices.Clone(p.Protected.Queues)}
		next.protectedUsers = make(map[string]struct{}, len(p.Protected.Users))
		next.protectedQueues = make(map[string]struct{}, len(p.Protected.Queues))
		for _, id := range p.Protected.Users {
			next.protectedUsers[id] = struct{}{}
		}
		for _, q := range p.Protected.Queues {
			next.protectedQueues[q] = struct{}{}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	next.syms = in.symbols()
	return next, nil
}

// lazyPolicy is a snapshot's uncompiled policy, built when first asked
// for: from NewSnapshot's profiles and its users in their order, or, for a
// patched snapshot, from the indexes, sorted. Building it copies every
// user (an O(n) step off the decision path), so that a snapshot which is
// only decided from holds its users once.
type lazyPolicy struct {
	once sync.Once
	p    Policy
	// compiled is set for NewSnapshot's, whose profiles and users (in the
	// policy's order, users being the policy's own when it had none) these
	// are.
	compiled bool
	profiles []Profile
	users    []User
	slab     []user
}

func (l *lazyPolicy) get(s *Snapshot) Policy {
	l.once.Do(func() {
		if l.compiled {
			p := Policy{Profiles: l.profiles, Users: l.users, Protected: s.protected}
			if len(l.slab) > 0 {
				p.Users = make([]User, len(l.slab))
				for i := range l.slab {
					p.Users[i] = l.slab[i].User()
				}
			}
			l.p = p
			return
		}
		p := Policy{
			Profiles:  make([]Profile, 0, len(s.profiles)),
			Users:     make([]User, 0, s.users.n),
			Protected: s.protected,
		}
		for _, pr := range s.profiles {
			p.Profiles = append(p.Profiles, pr.Profile)
		}
		s.users.each(func(_ string, u userRef) bool {
			p.Users = append(p.Users, u.User())
			return true
		})
		slices.SortFunc(p.Profiles, func(a, b Profile) int { return strings.Compare(a.Name, b.Name) })
		slices.SortFunc(p.Users, func(a, b User) int { return strings.Compare(a.ID, b.ID) })
		l.p = p
	})
	return l.p
}
