package enforce

import (
	"slices"
	"strings"
)

// Apply returns p with the patch applied: each entry the patch puts
// replaces the entry of the same name or id in place, or is appended (in
// the patch's order); the entries it removes are dropped; the protected
// lists are replaced when the patch has them. p is not modified; the
// entries themselves are shared, not deep-copied (Policy.Clone does that).
//
// It is the meaning of a patch on a whole policy, which Snapshot.Patch
// implements without recompiling: NewSnapshot(pt.Apply(p)) and
// NewSnapshot(p).Patch(pt) hold the same policy.
func (pt PolicyPatch) Apply(p Policy) Policy {
	out := Policy{Profiles: slices.Clone(p.Profiles), Users: slices.Clone(p.Users), Protected: p.Protected}
	out.Profiles = putEntries(out.Profiles, pt.Profiles, pt.RemovedProfiles, profileName)
	out.Users = putEntries(out.Users, pt.Users, pt.RemovedUsers, userID)
	if pt.Protected != nil {
		out.Protected = *pt.Protected
	}
	return out
}

// putEntries puts each of put into list (in place when its key is there,
// else appended), then drops the entries whose key is in removed.
func putEntries[E any](list, put []E, removed []string, key func(E) string) []E {
	for _, e := range put {
		k := key(e)
		if i := slices.IndexFunc(list, func(x E) bool { return key(x) == k }); i >= 0 {
			list[i] = e
		} else {
			list = append(list, e)
		}
	}
	if len(removed) == 0 {
		return list
	}
	return slices.DeleteFunc(list, func(x E) bool { return slices.Contains(removed, key(x)) })
}

// PatchOf returns the patch that turns old into new: the profiles and
// users of new that DiffPolicies finds added or changed, the names and ids
// it finds removed, and new's protected lists when they changed. For valid
// policies, PatchOf(old, new).Apply(old) holds the same policy as new.
func PatchOf(old, new Policy) PolicyPatch {
	d := DiffPolicies(old, new)
	var pt PolicyPatch
	profiles, users := nameSet(d.AddedProfiles, d.ChangedProfiles), nameSet(d.AddedUsers, d.ChangedUsers)
	for _, pr := range new.Profiles {
		if profiles[pr.Name] {
			pt.Profiles = append(pt.Profiles, pr)
		}
	}
	for _, u := range new.Users {
		if users[u.ID] {
			pt.Users = append(pt.Users, u)
		}
	}
	pt.RemovedProfiles, pt.RemovedUsers = d.RemovedProfiles, d.RemovedUsers
	if d.ProtectedChanged {
		prot := new.Protected
		pt.Protected = &prot
	}
	return pt
}

func nameSet(lists ...[]string) map[string]bool {
	m := map[string]bool{}
	for _, l := range lists {
		for _, n := range l {
			m[n] = true
		}
	}
	return m
}

// PatchDiff says what p changes when applied to s, by name, sorted as
// DiffPolicies sorts, and returns p reduced to the entries that change
// (entries put with the content they already have, and removals of
// entries that do not exist, are dropped). A store applies the reduced
// patch and logs the diff.
func (s *Snapshot) PatchDiff(p PolicyPatch) (PolicyDiff, PolicyPatch) {
	var d PolicyDiff
	var eff PolicyPatch
	eff.Profiles, eff.RemovedProfiles, d.AddedProfiles, d.ChangedProfiles, d.RemovedProfiles =
		patchEntries(p.Profiles, p.RemovedProfiles, s.Profile, profileName, ProfilesEqual)
	eff.Users, eff.RemovedUsers, d.AddedUsers, d.ChangedUsers, d.RemovedUsers =
		patchEntries(p.Users, p.RemovedUsers, s.User, userID, UsersEqual)
	if p.Protected != nil && !protectedEqual(s.Protected(), *p.Protected) {
		d.ProtectedChanged = true
		eff.Protected = p.Protected
	}
	d.sort()
	return d, eff
}

// patchEntries keeps, of the entries put and the keys removed, those that
// change what lookup finds, and names them as added, changed or removed.
func patchEntries[E any](put []E, removed []string, lookup func(string) (E, bool), key func(E) string,
	equal func(a, b E) bool) (effPut []E, effRemoved, added, changed, gone []string) {
	for _, e := range put {
		old, ok := lookup(key(e))
		switch {
		case !ok:
			added = append(added, key(e))
		case !equal(old, e):
			changed = append(changed, key(e))
		default:
			continue
		}
		effPut = append(effPut, e)
	}
	for _, k := range removed {
		if _, ok := lookup(k); ok {
			gone = append(gone, k)
			effRemoved = append(effRemoved, k)
		}
	}
	return effPut, effRemoved, added, changed, gone
}

// sort orders every list of d.
func (d *PolicyDiff) sort() {
	for _, l := range []*[]string{&d.AddedProfiles, &d.RemovedProfiles, &d.ChangedProfiles,
		&d.AddedUsers, &d.RemovedUsers, &d.ChangedUsers} {
		slices.Sort(*l)
	}
}

// protectedEqual compares protected lists as DiffPolicies does: as sets.
func protectedEqual(a, b Protected) bool {
	return sameSet(a.Users, b.Users) && sameSet(a.Queues, b.Queues)
}

// Clone deep-copies p, so that a store's copy is never shared with a
// caller.
func (p Policy) Clone() Policy {
	c := Policy{
		Profiles:  make([]Profile, len(p.Profiles)),
		Users:     make([]User, len(p.Users)),
		Protected: Protected{Users: slices.Clone(p.Protected.Users), Queues: slices.Clone(p.Protected.Queues)},
	}
	for i, pr := range p.Profiles {
		pr.Grants = slices.Clone(pr.Grants)
		for gi := range pr.Grants {
			g := &pr.Grants[gi]
			g.Profiles = slices.Clone(g.Profiles)
			for d := range g.Scopes {
				g.Scopes[d].Values = slices.Clone(g.Scopes[d].Values)
			}
			if g.Hours != nil {
				h := *g.Hours
				g.Hours = &h
			}
		}
		c.Profiles[i] = pr
	}
	for i, u := range p.Users {
		u.Queues, u.Teams, u.Agents, u.Sites = slices.Clone(u.Queues), slices.Clone(u.Teams), slices.Clone(u.Agents), slices.Clone(u.Sites)
		u.Identities = slices.Clone(u.Identities)
		c.Users[i] = u
	}
	return c
}

// Sort orders the profiles by name and the users by id: the order every
// store returns, so two stores holding the same policy return equal
// values.
func (p *Policy) Sort() {
	slices.SortFunc(p.Profiles, func(a, b Profile) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(p.Users, func(a, b User) int { return strings.Compare(a.ID, b.ID) })
}
