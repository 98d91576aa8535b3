package enforce

import (
	"slices"
	"time"
)

// PolicyDiff says what an apply changed, by name.
type PolicyDiff struct {
	AddedProfiles    []string `json:"added_profiles,omitempty"`
	RemovedProfiles  []string `json:"removed_profiles,omitempty"`
	ChangedProfiles  []string `json:"changed_profiles,omitempty"`
	AddedUsers       []string `json:"added_users,omitempty"`
	RemovedUsers     []string `json:"removed_users,omitempty"`
	ChangedUsers     []string `json:"changed_users,omitempty"`
	ProtectedChanged bool     `json:"protected_changed,omitempty"`
}

// Empty reports whether the diff changes nothing.
func (d PolicyDiff) Empty() bool {
	return len(d.AddedProfiles)+len(d.RemovedProfiles)+len(d.ChangedProfiles)+
		len(d.AddedUsers)+len(d.RemovedUsers)+len(d.ChangedUsers) == 0 && !d.ProtectedChanged
}

// DiffPolicies says what changes when old is replaced by new: profiles and
// users added, removed or changed (by name and id, each list sorted), and
// whether the protected lists changed. An entry is "changed" when its
// content differs in any field. Times compare as instants and time zones by
// name, so a policy that went through a store (JSON, another *time.Location
// value for the same zone) compares equal to the one applied; nil and empty
// lists are equal; the order of the protected lists does not matter, the
// order of grants and of an entry's lists does (the engine reports grant
// indexes). Entries whose name or id is duplicated are compared by their
// last occurrence; NewSnapshot rejects such policies anyway.
//
// Apply and `profiles apply --dry-run` use it to tell the administrator what
// a profiles file changes.
func DiffPolicies(old, new Policy) PolicyDiff {
	var d PolicyDiff
	d.AddedProfiles, d.ChangedProfiles, d.RemovedProfiles = diffEntries(old.Profiles, new.Profiles, profileName, ProfilesEqual)
	d.AddedUsers, d.ChangedUsers, d.RemovedUsers = diffEntries(old.Users, new.Users, userID, UsersEqual)
	d.ProtectedChanged = !protectedEqual(old.Protected, new.Protected)
	d.sort()
	return d
}

// diffEntries names the entries of new that old lacks (added) or holds with
// other content (changed), and those of old that new lacks (removed), each
// by key, unsorted. A duplicated key counts by its last occurrence.
func diffEntries[E any](old, new []E, key func(E) string, equal func(a, b E) bool) (added, changed, removed []string) {
	oldByKey := make(map[string]*E, len(old))
	for i := range old {
		oldByKey[key(old[i])] = &old[i]
	}
	newByKey := make(map[string]*E, len(new))
	for i := range new {
		newByKey[key(new[i])] = &new[i]
	}
	for k, ne := range newByKey {
		oe, ok := oldByKey[k]
		switch {
		case !ok:
			added = append(added, k)
		case !equal(*oe, *ne):
			changed = append(changed, k)
		}
	}
	for k := range oldByKey {
		if _, ok := newByKey[k]; !ok {
			removed = append(removed, k)
		}
	}
	return added, changed, removed
}

func profileName(p Profile) string { return p.Name }
func userID(u User) string         { return u.ID }

// ProfilesEqual reports whether two profiles have the same content, with
// the equality DiffPolicies uses.
func ProfilesEqual(a, b Profile) bool {
	if a.Name != b.Name || a.NotifyTarget != b.NotifyTarget || a.MaskDigits != b.MaskDigits ||
		len(a.Grants) != len(b.Grants) {
		return false
	}
	for i := range a.Grants {
		if !grantsEqual(&a.Grants[i], &b.Grants[i]) {
			return false
		}
	}
	return true
}

// UsersEqual reports whether two users have the same content, with the
// equality DiffPolicies uses.
func UsersEqual(a, b User) bool {
	return a.ID == b.ID && a.Profile == b.Profile &&
		slices.Equal(a.Queues, b.Queues) && slices.Equal(a.Teams, b.Teams) &&
		slices.Equal(a.Agents, b.Agents) && slices.Equal(a.Sites, b.Sites) &&
		slices.Equal(a.Identities, b.Identities) &&
		a.ValidFrom.Equal(b.ValidFrom) && a.ValidUntil.Equal(b.ValidUntil)
}

func grantsEqual(a, b *Grant) bool {
	if a.Actions != b.Actions || !slices.Equal(a.Profiles, b.Profiles) ||
		!a.ValidFrom.Equal(b.ValidFrom) || !a.ValidUntil.Equal(b.ValidUntil) ||
		a.RecordedWithin != b.RecordedWithin ||
		a.MaxDuration != b.MaxDuration || a.MaxPause != b.MaxPause {
		return false
	}
	for d := range a.Scopes {
		if a.Scopes[d].Kind != b.Scopes[d].Kind || !slices.Equal(a.Scopes[d].Values, b.Scopes[d].Values) {
			return false
		}
	}
	return weeklyEqual(a.Hours, b.Hours)
}

func weeklyEqual(a, b *Weekly) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Days == b.Days && a.From == b.From && a.To == b.To && zoneName(a.Location) == zoneName(b.Location)
}

// zoneName names a location; nil is UTC, as time.Time treats it.
func zoneName(l *time.Location) string {
	if l == nil {
		return time.UTC.String()
	}
	return l.String()
}

// sameSet reports whether a and b hold the same strings, ignoring order and
// repetition.
func sameSet(a, b []string) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	m := make(map[string]bool, len(a))
	for _, v := range a {
		m[v] = false
	}
	for _, v := range b {
		if _, ok := m[v]; !ok {
			return false
		}
		m[v] = true
	}
	for _, seen := range m {
		if !seen {
			return false
		}
	}
	return true
}
